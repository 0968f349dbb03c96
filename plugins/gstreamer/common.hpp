// What shmchansink and shmchansrc share: buffer metadata <-> frame_meta, the caps message,
// ref files, and words for shmchan's error codes. (docs/gstreamer.md)
#pragma once

#include <gst/gst.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <shmchan/frame.hpp>

namespace shmchan::gst {

// Every wait in the elements is cut into slices this long, so that unlock, flushing and a
// dead peer are noticed promptly.
inline constexpr std::chrono::milliseconds wait_slice{100};

// A text message "shmchan-caps:" + gst_caps_to_string() precedes the first frame of each caps.
inline constexpr std::string_view caps_prefix = "shmchan-caps:";
// Live mode (overflow drop-oldest): the caps message goes before every frame, and each frame's
// user header is caps_id_prefix + a number that changes with the caps, so that a source that
// joined late or lost records knows which caps a frame has. (docs/gstreamer.md, "Late join")
inline constexpr std::string_view caps_id_prefix = "shmchan-caps-id:";

// PTS, DTS, duration, offset, offset_end and flags of `buf` as a frame's meta, and back.
frame_meta meta_from_buffer(GstBuffer* buf) noexcept;
void meta_to_buffer(const frame_meta& meta, GstBuffer* buf) noexcept;
std::uint32_t flags_from_gst(guint gst_flags) noexcept;
guint flags_to_gst(std::uint32_t flags) noexcept;

// Writes `text` to `path` through a temporary name and rename(2): a reader of `path` sees the
// whole text or nothing. Empty on success, else what failed.
std::string write_file_atomically(const std::string& path, const std::string& text);
// The file's contents, or nothing when it does not exist (yet) or is empty.
std::optional<std::string> read_small_file(const std::string& path);

// Line `index` (from 0) of a ref file's text, trimmed; nothing when it has fewer lines.
// `count` gets the number of non-empty lines.
std::optional<std::string> ref_line(const std::string& text, std::size_t index, std::size_t& count);

// A sentence for an error code of shmchan; `peer` names the other end ("reader", "writer").
std::string describe(std::error_code e, std::string_view peer);

}  // namespace shmchan::gst
