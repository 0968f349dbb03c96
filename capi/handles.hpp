// The C ABI's handles and the one guard every entry point goes through: C++ exceptions and
// error codes become negative SHMCHAN_E_* codes and a per-thread message, never an unwind
// across the C boundary.
#pragma once

#include <shmchan/channel.hpp>
#include <shmchan/shmchan.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace shmchan::capi {

// Records `message` as this thread's last error and returns the code.
int fail(int code, std::string_view message) noexcept;
// A shmchan error_code (or another category's, as SHMCHAN_E_SYSTEM) with an optional detail.
int fail(std::error_code e, std::string_view detail = {}) noexcept;
int invalid(std::string_view message) noexcept;
inline int code_of(std::error_code e) noexcept {
    return e.category() == shmchan::error_category() ? -e.value() : SHMCHAN_E_SYSTEM;
}

template <class F>
int guarded(F&& f) noexcept {
    try {
        return f();
    } catch (const shmchan::error& e) {
        return fail(-static_cast<int>(e.kind()), e.what());
    } catch (const std::bad_alloc&) {
        return fail(SHMCHAN_E_NO_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        return fail(SHMCHAN_E_INTERNAL, e.what());
    } catch (...) {
        return fail(SHMCHAN_E_INTERNAL, "unknown exception");
    }
}

// Writes `full` over a caller's growable struct of `size` bytes (its own sizeof, which may be
// smaller than ours, built against an older header, or larger, built against a newer one): no
// byte past `size`, nor past our own struct (a `size` read from a struct the caller forgot to
// initialise may be anything), `size` kept.
template <class T>
void copy_sized(T* out, const T& full, std::size_t size) noexcept {
    std::memcpy(static_cast<void*>(out), &full, std::min(size, sizeof full));
    out->size = size;
}
// The shmchan_*_init_size calls: `size` is the caller's sizeof (the init macros), so the fields
// we do not know are zeroed too.
template <class T>
void init_sized(T* out, const T& full, std::size_t size) noexcept {
    std::memset(static_cast<void*>(out), 0, size);
    copy_sized(out, full, size);
}

inline shmchan::nanoseconds timeout_of(int ms) noexcept {
    return ms < 0 ? shmchan::forever : std::chrono::milliseconds(ms);
}

// The caller's options (as much as its `size` says) over the defaults.
shmchan::channel_options options_of(const shmchan_options* o);
shmchan::frame_meta meta_of(const shmchan_frame_meta* m) noexcept;

}  // namespace shmchan::capi

struct shmchan_writer {
    shmchan::writer w;
    shmchan::loan loan;  // the one open loan, if any
};

struct shmchan_reader {
    shmchan::reader r;
    std::size_t max_held = 1;
    shmchan::item current;  // max_held 1: the latest item
    std::mutex held_mutex;  // max_held > 1: items may be released from any thread
    std::unordered_map<std::uint64_t, shmchan::item> held;
    std::uint64_t last_id = 0;
    std::string abort_reason;
};

struct shmchan_channel {
    shmchan::channel ch;
    std::string writer_ref, reader_ref;
    std::vector<std::string> reader_refs;  // every reader's, [0] == reader_ref
    std::size_t max_held = 1;
    bool writer_taken = false, reader_taken = false;
};
