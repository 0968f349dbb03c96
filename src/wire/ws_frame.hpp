// The header of a WebSocket frame as a server sends it (RFC 6455 5.2: FIN set, no mask), so
// that the engine can write records as frames itself: several in one gather write, each
// payload straight from the ring. Encoding only: frames from clients are parsed by Beast.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

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

}  // namespace shmchan::detail
