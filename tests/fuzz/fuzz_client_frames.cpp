// Fuzzes the parser of what a channel socket's reading client sends the engine
// (src/wire/client_frames.cpp). Input: byte 0 picks how the rest is cut into pieces (sizes
// 1..16 from a cycle it seeds); the rest is the bytes a client sends. Checked:
//   - fed whole and fed in pieces, the parser gives the same events and takes the same bytes
//     (it is incremental: bytes may arrive split anywhere);
//   - it never takes more than it is given, and takes nothing once finished (after a close or
//     a violation, the only events that finish it, and always the last);
//   - pings and pongs carry at most 125 bytes; a close has a code a peer may send (or 1005,
//     none) and a UTF-8 reason; a violation is 1002 or 1007, with a reason.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "wire/channel_socket.hpp"
#include "wire/client_frames.hpp"

namespace d = shmchan::detail;
using kind = d::client_event::kind;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_client_frames: %s\n", what);
    std::abort();
}

struct event {
    kind what;
    std::uint16_t code;
    std::string payload, why;
    bool operator==(const event&) const = default;
};

void check(const d::client_event& ev) {
    const std::string_view body(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size());
    switch (ev.what) {
        case kind::none: fail("an event of kind none was recorded");
        case kind::ping:
        case kind::pong:
            if (body.size() > 125) fail("a ping or pong longer than 125 bytes");
            break;
        case kind::close:
            if (body.size() > 123) fail("a close reason longer than 123 bytes");
            if (!d::valid_utf8(body)) fail("a close reason that is not UTF-8");
            if (ev.code != d::close_no_status && !((ev.code >= 1000 && ev.code <= 1003) || (ev.code >= 1007 && ev.code <= 1013) ||
                                                   (ev.code >= 3000 && ev.code <= 4999)))
                fail("a close with a code a peer may not send");
            break;
        case kind::violation:
            if (ev.code != 1002 && ev.code != 1007) fail("a violation with a code other than 1002 or 1007");
            if (ev.why.empty()) fail("a violation without a reason");
            if (!body.empty()) fail("a violation with a payload");
            break;
    }
}

// Parses `in` cut into pieces by `sizes` (cycled; empty: whole). Returns the events; `taken`:
// the bytes the parser took.
std::vector<event> parse(std::span<const std::byte> in, const std::vector<std::size_t>& sizes, std::size_t& taken) {
    d::client_frame_parser p;
    std::vector<event> out;
    std::size_t at = 0, k = 0;
    while (at < in.size()) {
        const std::size_t piece = sizes.empty() ? in.size() - at : std::min(sizes[k++ % sizes.size()], in.size() - at);
        std::size_t off = 0;
        while (off < piece) {
            const bool was_finished = p.finished();
            std::size_t used = 0;
            const d::client_event ev = p.feed(in.subspan(at + off, piece - off), used);
            if (used > piece - off) fail("took more bytes than it was given");
            if (was_finished && (used != 0 || ev.what != kind::none)) fail("took bytes or gave an event once finished");
            if (!was_finished && !p.finished() && used < piece - off && ev.what == kind::none)
                fail("stopped inside the input without an event");
            if (ev.what != kind::none) {
                if (!out.empty() && (out.back().what == kind::close || out.back().what == kind::violation))
                    fail("an event after a close or a violation");
                if (p.finished() != (ev.what == kind::close || ev.what == kind::violation))
                    fail("finished without a close or a violation, or not after one");
                check(ev);
                out.push_back({ev.what, ev.code, std::string(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size()),
                               std::string(ev.why)});
            }
            off += used;
            if (used == 0) break;
        }
        at += off;
        if (off < piece) break;  // finished
    }
    taken = at;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
    std::vector<std::size_t> sizes;
    for (unsigned x = data[0] | 1u, i = 0; i < 7; ++i) {
        x = x * 1103515245u + 12345u;
        sizes.push_back(1 + (x >> 16) % 16);
    }
    std::size_t whole_taken = 0, cut_taken = 0, bytes_taken = 0;
    const auto whole = parse(in, {}, whole_taken);
    const auto cut = parse(in, sizes, cut_taken);
    const auto bytewise = parse(in, {1}, bytes_taken);
    if (whole != cut || whole != bytewise) fail("events differ with how the bytes were cut");
    if (whole_taken != cut_taken || whole_taken != bytes_taken) fail("bytes taken differ with how the bytes were cut");
    return 0;
}
