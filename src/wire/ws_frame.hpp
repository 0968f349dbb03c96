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

// The header of a whole frame as shmchan's socket writer sends it (a client): masked, with a
// zero key, so the payload goes as it is, straight from the caller's memory, and the engine
// has nothing to unmask. (RFC 6455 5.3 asks a client for an unpredictable key, to keep a
// browser's script from steering the bytes an intermediary sees; a native end has no such
// script, and any server reads these frames.) Returns its length (6, 8 or 14).
inline constexpr std::size_t ws_client_header_max = 14;
using ws_client_header_bytes = std::array<std::byte, ws_client_header_max>;
inline std::size_t ws_zero_key_header(ws_client_header_bytes& out, std::uint8_t opcode, std::uint64_t n) noexcept {
    ws_server_header_bytes h;
    const std::size_t len = ws_server_header(h, opcode == 0x1, n);
    std::copy_n(h.begin(), len, out.begin());
    out[0] = std::byte{static_cast<unsigned char>(0x80 | opcode)};
    out[1] |= std::byte{0x80};
    std::fill_n(out.begin() + static_cast<std::ptrdiff_t>(len), 4, std::byte{0});
    return len + 4;
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

// The same from a client: masked with a zero key (as ws_zero_key_header), 4 bytes longer.
using ws_client_control_frame = std::array<std::byte, 6 + ws_control_payload_max>;
inline std::size_t ws_client_control(ws_client_control_frame& out, const ws_control_frame& server, std::size_t len) noexcept {
    out[0] = server[0];
    out[1] = server[1] | std::byte{0x80};
    std::fill_n(out.begin() + 2, 4, std::byte{0});
    std::copy_n(server.begin() + 2, len - 2, out.begin() + 6);
    return len + 4;
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

// A client end's control frames waiting for a gap between its writes: the latest ping's pong
// and its close. The close goes first and nothing goes after it (RFC 6455 5.5.1).
struct ws_client_controls {
    void pong(std::span<const std::byte> ping_payload) noexcept {
        if (!close_sent) pong_len = ws_server_pong(pong_frame, ping_payload);
    }
    void close(std::uint16_t code, std::string_view reason) noexcept {
        close_len = ws_server_close(close_frame, code, reason);
    }
    // The next frame to write, masked with a zero key into `out`: its length, 0 for none.
    std::size_t next() noexcept {
        if (close_sent) return 0;
        std::size_t n = 0;
        if (close_len) {
            n = ws_client_control(out, close_frame, close_len);
            close_sent = true;
        } else if (pong_len) {
            n = ws_client_control(out, pong_frame, pong_len);
        }
        pong_len = close_len = 0;
        return n;
    }
    bool close_sent = false;  // our close is written (or being written)
    ws_client_control_frame out{};

private:
    ws_control_frame pong_frame{}, close_frame{};
    std::size_t pong_len = 0, close_len = 0;
};

}  // namespace shmchan::detail
