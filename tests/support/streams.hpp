// Whole streams of the test pattern (fill_pattern): written in chunks and closed or aborted,
// read back into a byte count and checksum.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "shmchan/testkit/checksum.hpp"
#include "shmchan/error.hpp"
#include "shmchan/reader.hpp"
#include "shmchan/writer.hpp"

namespace shmchan::test {

// "ok", the errc's name, or "other" for an error of another category.
inline const char* errc_name(std::error_code e) {
    if (!e) return "ok";
    return e.category() == error_category() ? to_string(static_cast<errc>(e.value())) : "other";
}

// `size` bytes of the pattern in writes of `chunk`, each allowed `timeout`; then close (within
// `timeout`), or abort with `abort_reason` when one is given. The first error, if any.
inline std::error_code write_pattern(writer& w, std::uint64_t size, std::size_t chunk,
                                     std::chrono::milliseconds timeout, const std::string& abort_reason = {}) {
    std::vector<std::byte> buf(chunk);
    for (std::uint64_t off = 0; off < size;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - off));
        fill_pattern(std::span(buf.data(), n), off);
        if (auto e = w.write(std::span(buf.data(), n), timeout)) return e;
        off += n;
    }
    if (!abort_reason.empty()) {
        w.abort(abort_reason);
        return {};
    }
    return w.close(timeout);
}

// The pattern in writes of 64 KiB until at least `min_size` bytes went and `enough()` holds,
// then close; errc::timeout when that took longer than `limit`. `written`: the bytes written.
inline std::error_code write_pattern_until(writer& w, std::uint64_t min_size, const std::function<bool()>& enough,
                                           std::uint64_t& written, std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    std::vector<std::byte> buf(64 << 10);
    const auto until = std::chrono::steady_clock::now() + limit;
    for (written = 0; written < min_size || !enough(); written += buf.size()) {
        if (std::chrono::steady_clock::now() > until) return make_error_code(errc::timeout);
        fill_pattern(buf, written);
        if (auto e = w.write(buf, limit)) return e;
    }
    return w.close(limit);
}

struct read_result {
    std::uint64_t bytes = 0, sum = 0;
    std::error_code error;
    std::string reason;    // the abort reason, with an error
    bool stopped = false;  // stop_after bytes were read
};
// Reads the whole stream (each next() allowed `timeout`), or only its first `stop_after` bytes
// when that is not 0: its byte count and checksum, or the error that ended it.
inline read_result read_stream(reader& r, std::chrono::milliseconds timeout, std::uint64_t stop_after = 0) {
    read_result out;
    stream_checksum s;
    for (;;) {
        item it = r.next(timeout);
        if (it.is_chunk()) {
            s.update(it.data());
            if (stop_after && s.bytes() >= stop_after) {
                out.stopped = true;
                break;
            }
        } else if (it.is_end()) {
            break;
        } else if (it.is_error()) {
            out.error = it.error();
            out.reason = r.abort_reason();
            break;
        }
    }
    out.bytes = s.bytes();
    out.sum = s.value();
    return out;
}

}  // namespace shmchan::test
