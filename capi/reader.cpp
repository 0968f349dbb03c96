// The read end through the C ABI.
#include "handles.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

using namespace shmchan;
using capi::guarded;

namespace {
int kind_of(item::kind k) noexcept {
    switch (k) {
        case item::kind::chunk: return SHMCHAN_ITEM_CHUNK;
        case item::kind::message: return SHMCHAN_ITEM_MESSAGE;
        case item::kind::end: return SHMCHAN_ITEM_END;
        case item::kind::error: return SHMCHAN_ITEM_ERROR;
        case item::kind::frame: return SHMCHAN_ITEM_FRAME;
        case item::kind::gap: return SHMCHAN_ITEM_GAP;
    }
    return SHMCHAN_ITEM_ERROR;
}

void fill_meta(shmchan_frame_meta& out, const frame_meta& m) noexcept {
    out.pts = m.pts;
    out.dts = m.dts;
    out.duration = m.duration;
    out.offset = m.offset;
    out.offset_end = m.offset_end;
    out.flags = m.flags;
    out.user = m.user.empty() ? nullptr : m.user.data();
    out.user_size = m.user.size();
}

// The full item into the caller's, as much of it as its `size` says.
void deliver(shmchan_item* out, const shmchan_item& full) noexcept { capi::copy_sized(out, full, out->size); }
}  // namespace

extern "C" {

int shmchan_open_reader(const char* ref_json, const shmchan_options* options, shmchan_reader** out) {
    if (!ref_json || !out) return capi::invalid("shmchan_open_reader: NULL argument");
    *out = nullptr;
    return guarded([&] {
        auto opt = capi::options_of(options);
        auto r = std::make_unique<shmchan_reader>();
        r->r = open_reader(channel_ref::parse(ref_json), opt);
        r->max_held = opt.max_held;
        *out = r.release();
        return 0;
    });
}

int shmchan_reader_next(shmchan_reader* r, shmchan_item* out, int timeout_ms) {
    if (!r || !out) return capi::invalid("shmchan_reader_next: NULL argument");
    if (out->size < offsetof(shmchan_item, id))
        return capi::invalid("shmchan_reader_next: shmchan_item.size is not set (shmchan_item_init)");
    return guarded([&] {
        shmchan_item full;
        shmchan_item_init(&full);
        if (r->max_held == 1) r->current = item();  // its space goes back before we wait
        item it = timeout_ms == 0 ? r->r.try_next() : r->r.next(capi::timeout_of(timeout_ms));
        full.kind = kind_of(it.type());
        if (it.is_error()) {
            int code = capi::code_of(it.error());
            full.error = code;
            std::string detail;
            if (code == SHMCHAN_E_ABORTED) {
                r->abort_reason = r->r.abort_reason();
                full.abort_reason = r->abort_reason.c_str();
                detail = '"' + r->abort_reason + '"';
            }
            deliver(out, full);
            return capi::fail(it.error(), detail);
        }
        full.data = it.data().empty() ? nullptr : it.data().data();
        full.data_size = it.data().size();
        if (it.is_frame()) fill_meta(full.meta, it.meta());
        if (it.is_gap()) {
            full.gap_records = it.gap().records;
            full.gap_bytes = it.gap().bytes;
        }
        if (!it.is_end()) {
            full.id = ++r->last_id;
            if (r->max_held == 1) {
                r->current = std::move(it);
            } else {
                std::lock_guard lock(r->held_mutex);
                r->held.emplace(full.id, std::move(it));
            }
        }
        deliver(out, full);
        return 0;
    });
}

void shmchan_reader_release(shmchan_reader* r) {
    if (!r) return;
    if (r->max_held == 1) {
        r->current = item();
        return;
    }
    shmchan_reader_release_item(r, r->last_id);
}

void shmchan_reader_release_item(shmchan_reader* r, uint64_t id) {
    if (!r) return;
    if (r->max_held == 1) {
        if (id == r->last_id) r->current = item();
        return;
    }
    item gone;  // released outside the lock
    {
        std::lock_guard lock(r->held_mutex);
        auto i = r->held.find(id);
        if (i == r->held.end()) return;
        gone = std::move(i->second);
        r->held.erase(i);
    }
}

int shmchan_reader_item_intact(shmchan_reader* r, uint64_t id) {
    if (!r) return 0;
    if (r->max_held == 1) return id == r->last_id && r->current.intact() ? 1 : 0;
    std::lock_guard lock(r->held_mutex);
    auto i = r->held.find(id);
    return i != r->held.end() && i->second.intact() ? 1 : 0;
}

int shmchan_reader_fd(shmchan_reader* r) {
    if (!r) return capi::invalid("shmchan_reader_fd: NULL reader");
    return guarded([&] { return r->r.event_fd(); });
}

const char* shmchan_reader_abort_reason(shmchan_reader* r) {
    if (!r) return "";
    try {
        r->abort_reason = r->r.abort_reason();
    } catch (...) {
        // keep the last one known
    }
    return r->abort_reason.c_str();
}

uint64_t shmchan_reader_bytes_read(const shmchan_reader* r) { return r ? r->r.bytes_read() : 0; }

void shmchan_reader_free(shmchan_reader* r) {
    if (!r) return;
    r->current = item();
    {
        std::lock_guard lock(r->held_mutex);
        r->held.clear();
    }
    delete r;
}

}  // extern "C"
