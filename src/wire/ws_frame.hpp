// WebSocket frames as a server sends them (RFC 6455 5.2: FIN set, no mask), so that the engine
// can write records as frames itself: several in one gather write, each payload straight from
// the ring; and the pongs and closes it then writes itself too, between those writes. Encoding
// only: what clients send is parsed by client_frames.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace shmchan::detail {

inline constexpr std::size_t ws_server_header_max = 10;
using ws_server_header_bytes = std::array<std::byte, ws_server_header_max>;

// Writes the header of one whole (FIN) unmasked text or binary frame of `n` payload bytes
// into `out`; returns its length (2, 4 or 10).
inline std::size_t ws_server_header(ws_server_header_bytes& out, bool text, std::uint64_t n) noexcept {
    out[0] = std::byte{static_cast<unsigned char>(text ? 0x81 : 0x82)};
    if (n < 126) {
        out[1] = std::byte{static_cast<unsigned char>(n)};
        return 2;
    }
    if (n <= 0xffff) {
        out[1] = std::byte{126};
        out[2] = std::byte{static_cast<unsigned char>(n >> 8)};
        out[3] = std::byte{static_cast<unsigned char>(n)};
        return 4;
    }
    out[1] = std::byte{127};
    for (int i = 0; i < 8; ++i) out[2 + i] = std::byte{static_cast<unsigned char>(n >> (56 - 8 * i))};
    return 10;
}

// A whole control frame (a pong or a close: at most 125 bytes of payload) in one buffer.
inline constexpr std::size_t ws_control_payload_max = 125;
using ws_control_frame = std::array<std::byte, 2 + ws_control_payload_max>;

// A pong echoing a ping's payload (at most 125 bytes, as a ping's is). Returns its length.
inline std::size_t ws_server_pong(ws_control_frame& out, std::span<const std::byte> payload) noexcept {
    const std::size_t n = std::min(payload.size(), ws_control_payload_max);
    out[0] = std::byte{0x8a};
    out[1] = std::byte{static_cast<unsigned char>(n)};
    std::copy_n(payload.begin(), n, out.begin() + 2);
    return 2 + n;
}

// A close frame with `code` and `reason` (cut at 123 bytes: callers pass close_reason_text's,
// which is cut at a character boundary). Returns its length.
inline std::size_t ws_server_close(ws_control_frame& out, std::uint16_t code, std::string_view reason) noexcept {
    const std::size_t n = std::min(reason.size(), ws_control_payload_max - 2);
    out[0] = std::byte{0x88};
    out[1] = std::byte{static_cast<unsigned char>(2 + n)};
    out[2] = std::byte{static_cast<unsigned char>(code >> 8)};
    out[3] = std::byte{static_cast<unsigned char>(code)};
    std::transform(reason.begin(), reason.begin() + static_cast<std::ptrdiff_t>(n), out.begin() + 4,
                   [](char c) { return std::byte{static_cast<unsigned char>(c)}; });
    return 4 + n;
}

}  // namespace shmchan::detail
