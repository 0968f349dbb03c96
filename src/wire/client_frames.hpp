// The frames a channel socket's reading client sends the engine, parsed by the engine itself:
// once the engine writes records to a socket reader as its own frames (engine/ring_to_socket.cpp),
// nothing else may write on that socket, so Beast, which answers pings and closes by itself,
// no longer reads it either. A reader sends only control frames (RFC 6455 5.5): ping, pong,
// close. Everything else fails the connection.
//
// Incremental and allocation-free: bytes may arrive split anywhere; a frame is at most
// 2 + 4 + 125 bytes, kept in the parser until whole.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace shmchan::detail {

// What one whole client frame asks of the engine.
struct client_event {
    enum class kind : std::uint8_t {
        none,       // no whole frame yet: more bytes needed
        ping,       // answer with a pong carrying `payload`
        pong,       // nothing to do (a client may send one unasked)
        close,      // the client closes with `code` (1005: none given) and `payload` (its reason,
                    // valid UTF-8): answer with a close, the reader left
        violation,  // fail the connection with close `code` (1002, or 1007 for a reason that is
                    // not UTF-8), saying `why`: the reader is lost
    };
    kind what = kind::none;
    std::uint16_t code = 0;
    std::span<const std::byte> payload;  // unmasked; valid until the parser's next feed
    std::string_view why;                // a static text
};

inline constexpr std::uint16_t close_no_status = 1005;  // a close frame with no code (never sent)
inline constexpr std::uint16_t close_protocol_error = 1002;

class client_frame_parser {
public:
    static constexpr std::size_t control_max = 125;  // a control frame's largest payload

    // source::server: parses what the engine sends a socket writer instead (src/socket_writer.cpp):
    // the same control frames, which a server sends unmasked (a masked one is a violation).
    enum class source : std::uint8_t { client, server };
    explicit client_frame_parser(source from = source::client) noexcept : from_(from) {}

    // Takes bytes from `in` up to the end of the next whole frame, or all of them when no frame
    // ends there; `used` says how many. After a close or a violation the parser is finished:
    // it takes nothing more (a client sends nothing after its close; a violation ends the
    // connection) and returns none.
    client_event feed(std::span<const std::byte> in, std::size_t& used) noexcept;
    bool finished() const noexcept { return stage_ == stage::finished; }

private:
    enum class stage : std::uint8_t { opcode, length, mask, payload, finished };
    client_event fail(std::string_view why, std::uint16_t code = close_protocol_error) noexcept;
    client_event frame_done() noexcept;

    source from_;
    stage stage_ = stage::opcode;
    std::uint8_t opcode_ = 0;
    std::size_t length_ = 0, have_ = 0;  // the payload's length; bytes of mask or payload so far
    std::array<std::byte, 4> mask_{};
    std::array<std::byte, control_max> payload_{};
};

}  // namespace shmchan::detail
