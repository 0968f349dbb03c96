// Fuzzes the engine's reading of a socket writer's frame headers and its unmasking
// (src/wire/ws_client_header.cpp), as engine/socket_to_ring.cpp walks a stream of frames:
// header, payload, header, ... with the fragmented-message state carried along. Input: byte 0
// seeds how each payload is cut into pieces for unmasking, and its top bit says whose frames
// the rest are: a client's (masked), or a server's as a socket reader reads them (unmasked, no key).
// Checked, for every header the parser takes:
//   - every proper prefix of it is need_more, and a violation is given with a reason;
//   - it re-encodes to exactly its bytes (FIN, opcode, the shortest length form, the key):
//     the parser reads nothing it does not check, and refuses every non-shortest length;
//   - control frames are whole and at most 125 bytes; data frames follow the message sequence;
//   - the payload unmasked in pieces at their phases equals byte-by-byte XOR (RFC 6455 5.3).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "wire/ws_client_header.hpp"

namespace d = shmchan::detail;
using st = d::ws_header_result::status;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_client_header: %s\n", what);
    std::abort();
}

std::vector<std::byte> encode(const d::ws_client_header& h, bool server) {
    std::vector<std::byte> out;
    const unsigned mask = server ? 0u : 0x80u;
    auto put = [&](std::uint64_t v) { out.push_back(std::byte{static_cast<unsigned char>(v)}); };
    put((h.fin ? 0x80u : 0u) | h.opcode);
    if (h.length < 126) {
        put(mask | h.length);
    } else if (h.length <= 0xffff) {
        put(mask | 126);
        put(h.length >> 8);
        put(h.length);
    } else {
        put(mask | 127);
        for (int i = 7; i >= 0; --i) put(h.length >> (8 * i));
    }
    if (!server) out.insert(out.end(), h.key.begin(), h.key.end());
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    unsigned cut = data[0] | 1u;
    const bool server = (data[0] & 0x80) != 0;
    const auto from = server ? d::frame_from::server : d::frame_from::client;
    std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
    bool in_message = false;
    while (!in.empty()) {
        d::ws_client_header h;
        const auto r = d::parse_client_header(in, in_message, h, from);
        if (r.what == st::need_more) {
            if (in.size() >= 14) fail("need_more with a whole header's bytes");
            break;
        }
        if (r.what == st::violation) {
            if (r.why.empty()) fail("a violation without a reason");
            break;
        }
        for (std::size_t n = 0; n < h.header_size; ++n) {
            d::ws_client_header scratch;
            if (d::parse_client_header(in.first(n), in_message, scratch, from).what != st::need_more)
                fail("a proper prefix of a header was not need_more");
        }
        if (server && !h.zero_key()) fail("a server frame with a key");
        const auto again = encode(h, server);
        if (again.size() != h.header_size || !std::equal(again.begin(), again.end(), in.begin()))
            fail("a header does not re-encode to its bytes");
        if (h.is_control()) {
            if (!h.fin || h.length > 125) fail("a control frame fragmented or above 125 bytes");
        } else {
            if ((h.opcode == d::ws_op_continuation) != in_message) fail("a data frame out of sequence");
            in_message = !h.fin;
        }
        in = in.subspan(h.header_size);
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(h.length, in.size()));
        std::vector<std::byte> got(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n)), want = got;
        for (std::size_t i = 0; i < n; ++i) want[i] ^= h.key[i % 4];
        for (std::size_t off = 0; off < n;) {
            const std::size_t piece = std::min<std::size_t>(cut % 23 + 1, n - off);
            d::ws_unmask(std::span(got).subspan(off, piece), h.key, off);
            off += piece;
            cut = cut * 1103515245u + 12345u;
        }
        if (got != want) fail("unmasking in pieces differs from byte-by-byte XOR");
        in = in.subspan(n);
    }
    return 0;
}
