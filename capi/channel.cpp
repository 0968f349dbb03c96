// Channels and refs through the C ABI.
#include "handles.hpp"

#include <memory>

#include <nlohmann/json.hpp>

using namespace shmchan;
using capi::guarded;

extern "C" {

int shmchan_create_channel(const shmchan_options* options, shmchan_channel** out) {
    if (!out) return capi::invalid("shmchan_create_channel: out is NULL");
    *out = nullptr;
    return guarded([&] {
        auto opt = capi::options_of(options);
        auto c = std::make_unique<shmchan_channel>();
        c->ch = create_channel(opt);
        c->writer_ref = c->ch.writer_ref.dump();
        c->reader_ref = c->ch.reader_ref.dump();
        for (const auto& r : c->ch.reader_refs) c->reader_refs.push_back(r.dump());
        c->max_held = opt.max_held;
        *out = c.release();
        return 0;
    });
}

const char* shmchan_channel_writer_ref(const shmchan_channel* c) { return c ? c->writer_ref.c_str() : ""; }
const char* shmchan_channel_reader_ref(const shmchan_channel* c) { return c ? c->reader_ref.c_str() : ""; }
size_t shmchan_channel_reader_count(const shmchan_channel* c) { return c ? c->reader_refs.size() : 0; }
const char* shmchan_channel_reader_ref_at(const shmchan_channel* c, size_t i) {
    return c && i < c->reader_refs.size() ? c->reader_refs[i].c_str() : nullptr;
}

int shmchan_channel_take_writer(shmchan_channel* c, shmchan_writer** out) {
    if (!c || !out) return capi::invalid("shmchan_channel_take_writer: NULL argument");
    *out = nullptr;
    if (c->writer_taken) return capi::fail(SHMCHAN_E_CLOSED, "the channel's writer was already taken");
    return guarded([&] {
        auto w = std::make_unique<shmchan_writer>();
        w->w = std::move(c->ch.writer);
        c->writer_taken = true;
        *out = w.release();
        return 0;
    });
}

int shmchan_channel_take_reader(shmchan_channel* c, shmchan_reader** out) {
    if (!c || !out) return capi::invalid("shmchan_channel_take_reader: NULL argument");
    *out = nullptr;
    if (c->reader_taken) return capi::fail(SHMCHAN_E_CLOSED, "the channel's reader was already taken");
    return guarded([&] {
        auto r = std::make_unique<shmchan_reader>();
        r->r = std::move(c->ch.reader);
        r->max_held = c->max_held;
        c->reader_taken = true;
        *out = r.release();
        return 0;
    });
}

void shmchan_channel_free(shmchan_channel* c) { delete c; }

int shmchan_is_channel_ref(const char* json) {
    if (!json) return 0;
    auto j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
    return !j.is_discarded() && is_channel_ref(j) ? 1 : 0;
}

}  // extern "C"
