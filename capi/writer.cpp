// The write end through the C ABI.
#include "handles.hpp"

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>

using namespace shmchan;
using capi::guarded;

// shmchan_writer_reader_status passes the C++ state through as the SHMCHAN_READER_* number.
static_assert(SHMCHAN_READER_WAITING == static_cast<int>(reader_status::state::waiting));
static_assert(SHMCHAN_READER_READING == static_cast<int>(reader_status::state::reading));
static_assert(SHMCHAN_READER_DONE == static_cast<int>(reader_status::state::done));
static_assert(SHMCHAN_READER_LEFT == static_cast<int>(reader_status::state::left));
static_assert(SHMCHAN_READER_LOST == static_cast<int>(reader_status::state::lost));

namespace {
// A writer's failure, with what the writer said beyond the code: the capacity a frame that is
// too large needs (last_error() keeps its text until the next failure that says more).
int writer_fail(shmchan_writer* w, std::error_code e) noexcept {
    try {
        return capi::fail(e, e == errc::too_large ? w->w.last_error() : std::string());
    } catch (...) {
        return capi::fail(e);
    }
}

int open_loan(shmchan_writer* w, size_t size, void** data, int timeout_ms, bool frame) {
    if (!w || !data) return capi::invalid("loan: NULL argument");
    *data = nullptr;
    if (w->loan) return capi::invalid("loan: the previous loan is neither committed nor abandoned");
    if (frame) w->loan = w->w.get_frame_loan(size, capi::timeout_of(timeout_ms));
    else if (timeout_ms == 0) w->loan = w->w.try_loan(size);
    else w->loan = w->w.get_loan(size, capi::timeout_of(timeout_ms));
    if (!w->loan) return writer_fail(w, w->loan.error());
    *data = w->loan.data().data();
    return 0;
}
}  // namespace

extern "C" {

int shmchan_open_writer(const char* ref_json, const shmchan_options* options, shmchan_writer** out) {
    if (!ref_json || !out) return capi::invalid("shmchan_open_writer: NULL argument");
    *out = nullptr;
    return guarded([&] {
        auto opt = capi::options_of(options);
        auto w = std::make_unique<shmchan_writer>();
        w->w = open_writer(channel_ref::parse(ref_json), opt);
        *out = w.release();
        return 0;
    });
}

int shmchan_writer_write(shmchan_writer* w, const void* data, size_t size, int timeout_ms) {
    if (!w || (!data && size)) return capi::invalid("shmchan_writer_write: NULL argument");
    if (w->loan) return capi::invalid("shmchan_writer_write: a loan is open");
    auto e = w->w.write({static_cast<const std::byte*>(data), size}, capi::timeout_of(timeout_ms));
    return e ? writer_fail(w, e) : 0;
}

int shmchan_writer_loan(shmchan_writer* w, size_t size, void** data, int timeout_ms) {
    return open_loan(w, size, data, timeout_ms, false);
}

int shmchan_writer_frame_loan(shmchan_writer* w, size_t size, void** data, int timeout_ms) {
    return open_loan(w, size, data, timeout_ms, true);
}

int shmchan_writer_commit(shmchan_writer* w, size_t used) {
    if (!w) return capi::invalid("shmchan_writer_commit: NULL writer");
    if (!w->loan) return capi::invalid("shmchan_writer_commit: no loan is open");
    if (used > w->loan.size()) return capi::invalid("shmchan_writer_commit: used exceeds the loan");
    w->loan.commit(used);
    w->loan = loan();
    return 0;
}

int shmchan_writer_commit_frame(shmchan_writer* w, size_t used, const shmchan_frame_meta* meta) {
    if (!w) return capi::invalid("shmchan_writer_commit_frame: NULL writer");
    if (!w->loan || !w->loan.is_frame()) return capi::invalid("shmchan_writer_commit_frame: no frame loan is open");
    if (used > w->loan.size()) return capi::invalid("shmchan_writer_commit_frame: used exceeds the loan");
    // A user header longer than SHMCHAN_FRAME_MAX_USER is refused and the loan stays open.
    if (auto e = w->loan.commit(used, capi::meta_of(meta))) return capi::guarded([&] { return capi::fail(e, w->w.last_error()); });
    w->loan = loan();
    return 0;
}

int shmchan_writer_abandon(shmchan_writer* w) {
    if (!w) return capi::invalid("shmchan_writer_abandon: NULL writer");
    if (!w->loan) return capi::invalid("shmchan_writer_abandon: no loan is open");
    w->loan.abandon();
    w->loan = loan();
    return 0;
}

int shmchan_writer_write_frame(shmchan_writer* w, const void* data, size_t size,
                               const shmchan_frame_meta* meta, int timeout_ms) {
    if (!w || (!data && size)) return capi::invalid("shmchan_writer_write_frame: NULL argument");
    if (w->loan) return capi::invalid("shmchan_writer_write_frame: a loan is open");
    auto e = w->w.write_frame({static_cast<const std::byte*>(data), size}, capi::meta_of(meta),
                              capi::timeout_of(timeout_ms));
    return e ? writer_fail(w, e) : 0;
}

int shmchan_writer_send_message(shmchan_writer* w, const char* text, size_t size, int timeout_ms) {
    if (!w || (!text && size)) return capi::invalid("shmchan_writer_send_message: NULL argument");
    if (w->loan) return capi::invalid("shmchan_writer_send_message: a loan is open");
    auto e = w->w.send_message({text ? text : "", size}, capi::timeout_of(timeout_ms));
    return e ? writer_fail(w, e) : 0;
}

int shmchan_writer_close(shmchan_writer* w, int timeout_ms) {
    if (!w) return capi::invalid("shmchan_writer_close: NULL writer");
    if (w->loan) w->loan.abandon();
    auto e = w->w.close(capi::timeout_of(timeout_ms));
    return e ? writer_fail(w, e) : 0;
}

int shmchan_writer_abort(shmchan_writer* w, const char* reason) {
    if (!w) return capi::invalid("shmchan_writer_abort: NULL writer");
    if (w->loan) w->loan.abandon();
    return guarded([&] {
        w->w.abort(reason ? reason : "");
        return 0;
    });
}

int shmchan_writer_wait_drained(shmchan_writer* w, int timeout_ms) {
    if (!w) return capi::invalid("shmchan_writer_wait_drained: NULL writer");
    auto e = w->w.wait_drained(capi::timeout_of(timeout_ms));
    return e ? writer_fail(w, e) : 0;
}

int shmchan_writer_fd(shmchan_writer* w) {
    if (!w) return capi::invalid("shmchan_writer_fd: NULL writer");
    return guarded([&] { return w->w.event_fd(); });
}

uint64_t shmchan_writer_bytes_written(const shmchan_writer* w) { return w ? w->w.bytes_written() : 0; }
size_t shmchan_writer_max_record(const shmchan_writer* w) { return w ? w->w.max_record() : 0; }
size_t shmchan_writer_max_frame(const shmchan_writer* w) { return w ? w->w.max_frame() : 0; }

void shmchan_writer_free(shmchan_writer* w) { delete w; }

void shmchan_reader_status_init_size(shmchan_reader_status* out, size_t size) {
    if (!out || size < sizeof out->size) return;
    shmchan_reader_status s;
    std::memset(&s, 0, sizeof s);
    capi::init_sized(out, s, size);
}

const char* shmchan_reader_state_name(int state) {
    if (state < SHMCHAN_READER_WAITING || state > SHMCHAN_READER_LOST) return "?";
    return to_string(static_cast<reader_status::state>(state));
}

size_t shmchan_writer_reader_count(const shmchan_writer* w) {
    if (!w) return 0;
    try {
        return w->w.readers().size();
    } catch (...) {
        return 0;  // out of memory for a vector of at most 64: nothing to report
    }
}

int shmchan_writer_reader_status(const shmchan_writer* w, size_t index, shmchan_reader_status* out) {
    if (!w || !out) return capi::invalid("shmchan_writer_reader_status: NULL argument");
    if (out->size < offsetof(shmchan_reader_status, released) + sizeof out->released)
        return capi::invalid("shmchan_writer_reader_status: shmchan_reader_status.size is not set (shmchan_reader_status_init)");
    return guarded([&] {
        const auto all = w->w.readers();
        if (index >= all.size())
            return capi::invalid("shmchan_writer_reader_status: index " + std::to_string(index) + " is beyond the last of " +
                                 std::to_string(all.size()) + " readers");
        out->state = static_cast<int>(all[index].st);
        out->pid = all[index].pid;
        out->released = all[index].released;
        return 0;
    });
}

}  // extern "C"
