// The header of a frame a WebSocket client sends (RFC 6455 5.2): what the engine reads on a
// writing client's socket itself (engine/socket_to_ring.cpp), so that a data frame's payload
// can go from the socket straight into a ring loan and be unmasked there, a machine word at a
// time (and not at all for a zero key, which shmchan's own socket writer sends).
//
// The parse checks everything the header alone decides, so that a bad frame is refused before
// any of its payload is read:
//   - reserved bits clear, a known opcode, the mask bit set (a client must mask; clear for a
//     server's frame);
//   - control frames (close, ping, pong) whole (FIN) and at most 125 bytes;
//   - data frames in sequence: a continuation only inside a fragmented message, a new message
//     (text or binary) only outside one;
//   - the length in its shortest encoding (Beast refuses others too), 63 bits at most.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace shmchan::detail {

inline constexpr std::uint8_t ws_op_continuation = 0x0, ws_op_text = 0x1, ws_op_binary = 0x2;

struct ws_client_header {
    bool fin = false;
    std::uint8_t opcode = 0;
    std::array<std::byte, 4> key{};
    std::uint64_t length = 0;      // the payload's
    std::size_t header_size = 0;   // 6 to 14 bytes
    bool is_control() const noexcept { return (opcode & 0x8) != 0; }
    bool zero_key() const noexcept {
        return key[0] == std::byte{0} && key[1] == std::byte{0} && key[2] == std::byte{0} && key[3] == std::byte{0};
    }
};

struct ws_header_result {
    enum class status : std::uint8_t { need_more, ok, violation };
    status what = status::need_more;
    std::string_view why;  // a violation's (static text); the connection fails with 1002
};

// Parses the header at the front of `in`. `in_message`: a fragmented data message is under
// way (its first frame came without FIN). need_more: `in` holds only part of the header.
// frame_from::server: a server's frame instead (what a socket reader reads, src/socket_reader.cpp):
// the same checks, but the mask bit must be clear (a server must not mask), so no key follows
// (h.key stays zero, header_size is 2 to 10).
enum class frame_from : std::uint8_t { client, server };
ws_header_result parse_client_header(std::span<const std::byte> in, bool in_message, ws_client_header& h,
                                     frame_from from = frame_from::client) noexcept;

// XORs `b` with the mask `key`, starting at key byte `phase` (the offset of b[0] in the frame's
// payload, mod 4: a payload may arrive in pieces). Eight bytes at a time; a zero key is a no-op.
void ws_unmask(std::span<std::byte> b, const std::array<std::byte, 4>& key, std::uint64_t phase) noexcept;

}  // namespace shmchan::detail
