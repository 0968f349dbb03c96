// Client frame headers and unmasking (ws_client_header.hpp), by RFC 6455 5.2-5.4.
#include "wire/ws_client_header.hpp"

#include <cstring>

namespace shmchan::detail {

namespace {
using st = ws_header_result::status;
ws_header_result violation(std::string_view why) noexcept { return {st::violation, why}; }
}  // namespace

ws_header_result parse_client_header(std::span<const std::byte> in, bool in_message, ws_client_header& h,
                                     frame_from from) noexcept {
    if (in.size() < 2) return {};
    const auto b0 = std::to_integer<std::uint8_t>(in[0]), b1 = std::to_integer<std::uint8_t>(in[1]);
    if (b0 & 0x70) return violation("a frame with reserved bits set");
    const std::uint8_t op = b0 & 0x0f;
    const bool fin = (b0 & 0x80) != 0;
    if ((op > ws_op_binary && op < 0x8) || op > 0xa) return violation("a frame of an unknown opcode");
    const bool server = from == frame_from::server;
    if (!server && !(b1 & 0x80)) return violation("an unmasked client frame");
    if (server && (b1 & 0x80)) return violation("a masked server frame");
    const std::uint8_t len7 = b1 & 0x7f;
    if (op & 0x8) {
        if (!fin) return violation("a fragmented control frame");
        if (len7 > 125) return violation("a control frame longer than 125 bytes");
    } else if (op == ws_op_continuation && !in_message) {
        return violation("a continuation frame outside a fragmented message");
    } else if (op != ws_op_continuation && in_message) {
        return violation("a new message inside a fragmented one");
    }
    const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    const std::size_t size = 2 + ext + (server ? 0 : 4);
    if (in.size() < size) return {};
    std::uint64_t len = len7;
    if (ext) {
        len = 0;
        for (std::size_t i = 0; i < ext; ++i) len = len << 8 | std::to_integer<std::uint8_t>(in[2 + i]);
        if (ext == 2 && len < 126) return violation("a frame length not in its shortest form");
        if (ext == 8 && len <= 0xffff) return violation("a frame length not in its shortest form");
        if (len >> 63) return violation("a frame length above 2^63");
    }
    h.fin = fin;
    h.opcode = op;
    h.length = len;
    h.header_size = size;
    if (server) h.key = {};
    else std::memcpy(h.key.data(), in.data() + 2 + ext, 4);
    return {st::ok, {}};
}

void ws_unmask(std::span<std::byte> b, const std::array<std::byte, 4>& key, std::uint64_t phase) noexcept {
    std::array<std::byte, 8> k8;
    for (std::size_t i = 0; i < k8.size(); ++i) k8[i] = key[(phase + i) % 4];
    std::uint64_t k;
    std::memcpy(&k, k8.data(), sizeof k);
    if (k == 0) return;
    std::byte* p = b.data();
    const std::size_t n = b.size();
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {  // memcpy: no alignment assumed; compiles to plain loads
        std::uint64_t v;
        std::memcpy(&v, p + i, sizeof v);
        v ^= k;
        std::memcpy(p + i, &v, sizeof v);
    }
    for (; i < n; ++i) p[i] ^= k8[i % 8];
}

}  // namespace shmchan::detail
