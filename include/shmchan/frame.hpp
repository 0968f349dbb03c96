// Frames: one unit of media (a video frame, an audio buffer, an encoded packet) with its
// timestamps and flags, delivered whole, never split, in order with chunks and messages.
//
//   shmchan::frame_meta m;
//   m.pts = 40'000'000;  // ns
//   m.flags = shmchan::frame_flags::keyframe;
//   w.write_frame(bytes, m);
//   // reader side:
//   auto it = r.next();
//   if (it.is_frame()) use(it.data(), it.meta().pts);
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

namespace shmchan {

// Flags of a frame. The low 16 bits have the meanings below (they mirror GStreamer's buffer
// flags, with `keyframe` as the inverse of its DELTA_UNIT); bits 16-31 are the application's.
namespace frame_flags {
inline constexpr std::uint32_t keyframe = 1u << 0;       // decodable on its own
inline constexpr std::uint32_t discont = 1u << 1;        // a discontinuity precedes it
inline constexpr std::uint32_t gap = 1u << 2;            // carries no real data (silence, ...)
inline constexpr std::uint32_t header = 1u << 3;         // stream headers (codec data)
inline constexpr std::uint32_t droppable = 1u << 4;
inline constexpr std::uint32_t corrupted = 1u << 5;
inline constexpr std::uint32_t marker = 1u << 6;         // media-specific (end of an RTP frame, ...)
inline constexpr std::uint32_t resync = 1u << 7;
inline constexpr std::uint32_t live = 1u << 8;
inline constexpr std::uint32_t decode_only = 1u << 9;
inline constexpr std::uint32_t sync_after = 1u << 10;
inline constexpr std::uint32_t non_droppable = 1u << 11;
inline constexpr std::uint32_t application = 0xFFFF'0000u;  // free for the application
}  // namespace frame_flags

struct frame_meta {
    // Times are nanoseconds; `none` says "not set" (GStreamer's GST_CLOCK_TIME_NONE).
    static constexpr std::int64_t none = std::numeric_limits<std::int64_t>::min();
    // Offsets are the media's own counters (frame or sample numbers); `no_offset` says "not set".
    static constexpr std::uint64_t no_offset = std::numeric_limits<std::uint64_t>::max();
    // The most bytes of `user` a frame carries.
    static constexpr std::size_t max_user = 256;

    std::int64_t pts = none;       // presentation time
    std::int64_t dts = none;       // decoding time
    std::int64_t duration = none;
    std::uint64_t offset = no_offset;
    std::uint64_t offset_end = no_offset;
    std::uint32_t flags = 0;       // frame_flags
    // A small header of the application's (caps, sequence numbers, ...), at most max_user bytes.
    // Writing: the caller's bytes, copied into the frame. Reading: a view into the ring, valid as
    // long as the item is.
    std::span<const std::byte> user;
};

}  // namespace shmchan
