// The channel-socket wire (/ws/channels/...): what the engine and shmchan's socket ends say to
// each other besides the stream itself. Close codes and reasons are written here once and
// decoded by one function, so the two sides cannot drift. See docs/engine.md.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "shmchan/error.hpp"

namespace shmchan::detail {

// Close codes. 1000: end of stream (or the answer to a writer's channel_close); 1007: a text
// frame that is not UTF-8, or a frame meta that does not decode ("bad frame: ..."); 1008: the
// end is refused (reason_already_claimed, or why the engine cannot open it), or a frame meta
// not followed by exactly its bytes ("bad frame: ..."); 1009: a frame or record too large; 1011: the engine could not go on
// ("<errc name>: ..." to a writer, reason_writer_lost to a reader); 4000: the writer aborted,
// reason "aborted: <the writer's reason>" (between shmchan ends; stock SDKs see a close).
inline constexpr std::uint16_t close_normal = 1000;
inline constexpr std::uint16_t close_bad_payload = 1007;
inline constexpr std::uint16_t close_refused = 1008;
inline constexpr std::uint16_t close_too_big = 1009;
inline constexpr std::uint16_t close_internal = 1011;
inline constexpr std::uint16_t close_aborted = 4000;

inline constexpr std::string_view reason_already_claimed = "already claimed";
inline constexpr std::string_view reason_writer_lost = "writer lost";
inline constexpr std::string_view aborted_prefix = "aborted: ";
// A frame sent wrong (wire/frame_meta_json.hpp): 1007 or 1008 with this prefix (protocol_error).
inline constexpr std::string_view reason_bad_frame = "bad frame: ";

// A header of the engine's answer to a socket writer's upgrade: the largest frame the channel's
// ring takes (its writer's max_frame()), in decimal.
inline constexpr const char* max_frame_header = "X-Shmchan-Max-Frame";

// The close reason of an abort: "aborted: <why>", cut to fit a close frame.
std::string aborted_close_reason(std::string_view why);

// What a close frame from the engine means to a shmchan end: {} for a clean end (1000), else
// the error to report, and for errc::aborted the writer's reason. A connection that broke
// without a close frame is errc::peer_lost (not decoded here).
struct close_meaning {
    std::error_code error;
    std::string abort_reason;
};
close_meaning decode_close(std::uint16_t code, std::string_view reason);


inline constexpr std::size_t max_close_reason = 123;  // bytes in a close frame's reason

// A close reason: valid UTF-8 (invalid bytes replaced by '?'), cut at a character boundary
// to at most 123 bytes. (A reason cut inside a character is a protocol error to the peer.)
std::string close_reason_text(std::string_view s);

// Valid UTF-8? (What a text frame must carry.)
bool valid_utf8(std::string_view s) noexcept;
// s with each invalid sequence replaced by U+FFFD (as a decoding reader sees it).
std::string to_valid_utf8(std::string_view s);

// How a socket writer's stream ended, from what its socket reported.
struct writer_outcome {
    bool clean = false;       // close 1000: end of stream
    std::string abort_reason; // otherwise: the reader sees an abort with this reason
};
// close_received: a close frame came (code, reason); otherwise the connection broke with
// `failure` (a close 1000 sent just before the break still counts: the stock Node SDK sends
// close and drops the connection at once).
writer_outcome socket_writer_outcome(bool close_received, std::uint16_t code, std::string_view reason,
                                     std::string_view failure);

// Feeds one frame from a socket writer into a ring writer, from byte `off` on: a text frame
// is one message record, a binary frame becomes records of at most max_record() bytes. Returns
// {} when the whole frame is in (off = its size), would_block/timeout when the ring is full
// (call again with the same off once there is room), std::errc::illegal_byte_sequence for a
// text frame that is not UTF-8 (nothing written: the stream must fail with 1007; Beast 1.74 lets one through
// when a fragmented message ends with an empty frame), or another error (too_large: a text
// frame above max_record()). Writer: the shmchan::writer interface (try_write, send_message,
// max_record).
template <class Writer>
std::error_code feed_frame(Writer& w, bool text, std::span<const std::byte> frame, std::size_t& off) {
    if (text) {
        const std::string_view t(reinterpret_cast<const char*>(frame.data()), frame.size());
        if (!valid_utf8(t)) return std::make_error_code(std::errc::illegal_byte_sequence);
        auto e = w.send_message(t, std::chrono::nanoseconds(0));
        if (!e) off = frame.size();
        return e;
    }
    while (off < frame.size()) {
        const std::size_t piece = std::min(frame.size() - off, w.max_record());
        if (auto e = w.try_write(frame.subspan(off, piece))) return e;
        off += piece;
    }
    return {};
}

}  // namespace shmchan::detail
