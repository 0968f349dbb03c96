// What the engine sends a socket writer (socket_writer.cpp): nothing but pings and one close
// frame, a refusal, the reader's fate (it left or died), or the answer to the writer's own
// close. The writer reads the socket itself; this parses what it read and keeps the close.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <system_error>

#include "shmchan/error.hpp"
#include "wire/channel_socket.hpp"
#include "wire/client_frames.hpp"

namespace shmchan::detail {

class writer_replies {
public:
    // Parses `in`, calling on_ping(payload) for each ping (its pong is the writer's to send);
    // true once the engine sends nothing more: a close frame, or bytes that break the protocol.
    template <class OnPing>
    bool take(std::span<const std::byte> in, OnPing&& on_ping) {
        for (std::size_t off = 0; off < in.size();) {
            std::size_t used = 0;
            const client_event ev = parser_.feed(in.subspan(off), used);
            off += used;
            switch (ev.what) {
                case client_event::kind::none:
                case client_event::kind::pong: break;
                case client_event::kind::ping: on_ping(ev.payload); break;
                case client_event::kind::close:
                    closed_ = true;
                    code_ = ev.code;
                    reason_.assign(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size());
                    return true;
                case client_event::kind::violation: return true;
            }
        }
        return false;
    }
    // Whether the engine's close frame came.
    bool close_received() const noexcept { return closed_; }
    // What it means (wire/channel_socket.hpp): 1000 answers our own close (no error); an abort
    // never comes back to the writer that sent it. Without a close frame: peer_lost.
    std::error_code fate() const {
        return closed_ ? decode_close(code_, reason_).error : make_error_code(errc::peer_lost);
    }

private:
    client_frame_parser parser_{client_frame_parser::source::server};
    bool closed_ = false;
    std::uint16_t code_ = 0;
    std::string reason_;
};

}  // namespace shmchan::detail
