// A frame over the channel socket: one text message carrying its meta as JSON, immediately
// followed by one binary message holding exactly its bytes (docs/engine.md, "Frames"):
//
//   {"shmchan_frame":{"size":N,"pts":..,"dts":..,"duration":..,"offset":..,"offset_end":..,
//                     "flags":..,"user":"<base64>"}}
//
// Unset fields are omitted (frame_meta::none, no_offset, flags 0, no user bytes). A text message
// is a frame meta exactly when it begins with the bytes `{"shmchan_frame":`; then it must decode
// strictly or the stream fails. Any other text message is an ordinary message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmchan/frame.hpp"

namespace shmchan::detail {

inline constexpr std::string_view frame_meta_prefix = R"({"shmchan_frame":)";

// The text message announcing a frame of `size` bytes. meta.user: at most max_user bytes used.
std::string encode_frame_meta(std::size_t size, const frame_meta& meta);

// Does this text message announce a frame (then decode it; else it is a message)?
inline bool is_frame_meta(std::string_view text) noexcept {
    return text.substr(0, frame_meta_prefix.size()) == frame_meta_prefix;
}

struct decoded_frame_meta {
    std::size_t size = 0;
    frame_meta meta;             // meta.user is empty: the bytes are in `user`
    std::vector<std::byte> user;  // at most frame_meta::max_user bytes
    std::string error;           // why it was refused (then nothing else is set)
    explicit operator bool() const noexcept { return error.empty(); }
};
// Strict: the whole text is one JSON object {"shmchan_frame":{...}} with only the fields above,
// size an integer in [0, max_size], pts/dts/duration integers (int64, not frame_meta::none),
// offset/offset_end unsigned (not no_offset), flags in [0, 2^32), user canonical base64 of at
// most frame_meta::max_user bytes.
decoded_frame_meta decode_frame_meta(std::string_view text, std::size_t max_size);

// Standard base64 with padding; decode is strict (canonical only) and returns nullopt otherwise.
std::string base64_encode(std::span<const std::byte> bytes);
std::optional<std::vector<std::byte>> base64_decode(std::string_view text);

}  // namespace shmchan::detail
