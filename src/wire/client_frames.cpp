// Client frames to the engine's socket readers (client_frames.hpp), by RFC 6455 5.2-5.5.
#include "wire/client_frames.hpp"

#include <algorithm>

#include "wire/channel_socket.hpp"

namespace shmchan::detail {

namespace {

constexpr std::uint8_t op_close = 0x8, op_ping = 0x9, op_pong = 0xa;

// The close codes a peer may send (as Boost.Beast 1.74 accepts them): the registered ones
// that mean something on the wire, and the ranges for libraries and applications.
bool valid_close_code(std::uint16_t c) noexcept {
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1013) || (c >= 3000 && c <= 4999);
}

}  // namespace

client_event client_frame_parser::fail(std::string_view why, std::uint16_t code) noexcept {
    stage_ = stage::finished;
    return {client_event::kind::violation, code, {}, why};
}

client_event client_frame_parser::feed(std::span<const std::byte> in, std::size_t& used) noexcept {
    used = 0;
    while (used < in.size() && stage_ != stage::finished) {
        const auto b = std::to_integer<std::uint8_t>(in[used]);
        switch (stage_) {
            case stage::opcode: {
                ++used;
                // Checked at the first byte: a data frame is refused before its payload comes.
                if (b & 0x70) return fail("a frame with reserved bits set");
                opcode_ = b & 0x0f;
                if (opcode_ < 0x3)
                    return fail(from_ == source::client ? "a reading client sent a data frame" : "the engine sent a writer a data frame");
                if (opcode_ != op_close && opcode_ != op_ping && opcode_ != op_pong) return fail("a frame of an unknown opcode");
                if (!(b & 0x80)) return fail("a fragmented control frame");
                stage_ = stage::length;
                break;
            }
            case stage::length:
                ++used;
                if (from_ == source::client && !(b & 0x80)) return fail("an unmasked client frame");
                if (from_ == source::server && (b & 0x80)) return fail("a masked server frame");
                length_ = b & 0x7f;  // 126 and 127 announce longer lengths: too long for control
                if (length_ > control_max) return fail("a control frame longer than 125 bytes");
                have_ = 0;
                if (from_ == source::client) {
                    stage_ = stage::mask;
                    break;
                }
                mask_ = {};  // unmasked: the payload is taken as it is
                stage_ = stage::payload;
                if (length_ == 0) return frame_done();
                break;
            case stage::mask: {
                const std::size_t n = std::min(mask_.size() - have_, in.size() - used);
                std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(used), n, mask_.begin() + static_cast<std::ptrdiff_t>(have_));
                used += n;
                have_ += n;
                if (have_ < mask_.size()) break;
                have_ = 0;
                stage_ = stage::payload;
                if (length_ == 0) return frame_done();
                break;
            }
            case stage::payload: {
                const std::size_t n = std::min(length_ - have_, in.size() - used);
                for (std::size_t i = 0; i < n; ++i) payload_[have_ + i] = in[used + i] ^ mask_[(have_ + i) % 4];
                used += n;
                have_ += n;
                if (have_ == length_) return frame_done();
                break;
            }
            case stage::finished: break;
        }
    }
    return {};
}

client_event client_frame_parser::frame_done() noexcept {
    const std::span<const std::byte> body(payload_.data(), length_);
    stage_ = stage::opcode;
    if (opcode_ == op_ping) return {client_event::kind::ping, 0, body, {}};
    if (opcode_ == op_pong) return {client_event::kind::pong, 0, body, {}};
    // A close: no payload, or a valid code and a UTF-8 reason (5.5.1, 7.4).
    if (length_ == 0) {
        stage_ = stage::finished;
        return {client_event::kind::close, close_no_status, {}, {}};
    }
    if (length_ == 1) return fail("a close frame of one byte");
    const auto code = static_cast<std::uint16_t>(std::to_integer<unsigned>(body[0]) << 8 | std::to_integer<unsigned>(body[1]));
    if (!valid_close_code(code)) return fail("a close frame with an invalid code");
    const auto reason = body.subspan(2);
    if (!valid_utf8(std::string_view(reinterpret_cast<const char*>(reason.data()), reason.size())))
        return fail("a close reason that is not UTF-8", close_bad_payload);
    stage_ = stage::finished;
    return {client_event::kind::close, code, reason, {}};
}

}  // namespace shmchan::detail
