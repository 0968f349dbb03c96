// Frames with metadata that depends on their index, for tests and benchmarks that check every
// field of every frame on the other side.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "shmchan/frame.hpp"

namespace shmchan::testkit {

// The meta of frame `i`: every field set in some frames and unset ("none") in others, user
// headers of every length from 0 to max_user. `user` holds the user header's bytes.
struct sample_frame {
    frame_meta meta;
    std::array<std::byte, frame_meta::max_user> user{};

    explicit sample_frame(std::uint64_t i) {
        const auto t = static_cast<std::int64_t>(i) * 40'000'000;  // 25 frames per second
        meta.pts = i % 11 == 10 ? frame_meta::none : t;
        meta.dts = i % 3 == 0 ? frame_meta::none : t - 1;
        meta.duration = i % 13 == 12 ? frame_meta::none : 40'000'000;
        meta.offset = i % 17 == 16 ? frame_meta::no_offset : i;
        meta.offset_end = i % 17 == 16 ? frame_meta::no_offset : i + 1;
        meta.flags = (i % 5 == 0 ? frame_flags::keyframe : 0) | (i % 7 == 0 ? frame_flags::discont : 0) |
                     static_cast<std::uint32_t>((i & 0xFFFF) << 16);
        const std::size_t n = i % (frame_meta::max_user + 1);
        for (std::size_t k = 0; k < n; ++k) user[k] = std::byte(static_cast<unsigned char>(i * 7 + k));
        meta.user = {user.data(), n};
    }
};

// Empty when `got` equals `want` field by field (user header bytes included); else which differs.
inline std::string meta_difference(const frame_meta& got, const frame_meta& want) {
    auto num = [](auto v) { return std::to_string(v); };
    if (got.pts != want.pts) return "pts " + num(got.pts) + " != " + num(want.pts);
    if (got.dts != want.dts) return "dts " + num(got.dts) + " != " + num(want.dts);
    if (got.duration != want.duration) return "duration " + num(got.duration) + " != " + num(want.duration);
    if (got.offset != want.offset) return "offset " + num(got.offset) + " != " + num(want.offset);
    if (got.offset_end != want.offset_end) return "offset_end " + num(got.offset_end) + " != " + num(want.offset_end);
    if (got.flags != want.flags) return "flags " + num(got.flags) + " != " + num(want.flags);
    if (got.user.size() != want.user.size()) return "user length " + num(got.user.size()) + " != " + num(want.user.size());
    for (std::size_t k = 0; k < got.user.size(); ++k)
        if (got.user[k] != want.user[k]) return "user byte " + num(k);
    return {};
}

}  // namespace shmchan::testkit
