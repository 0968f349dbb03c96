// Fuzzes the channel socket's frame meta decoder (src/wire/frame_meta_json.cpp) with arbitrary
// text, and base64 with arbitrary bytes.
//   decode_frame_meta: accepts or refuses with a reason, never throws; what it accepts has a
//   size within the limit, no 'none' value spelled out, at most max_user user bytes; and its
//   re-encoding decodes to the same meta (the encoder's output is always accepted).
//   base64_decode: what it accepts re-encodes to the same text (canonical), and encode/decode
//   round-trips any bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <span>
#include <string_view>

#include "wire/frame_meta_json.hpp"

namespace d = shmchan::detail;
using shmchan::frame_meta;

namespace {
[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_frame_meta: %s\n", what);
    std::abort();
}
bool same(const d::decoded_frame_meta& a, const d::decoded_frame_meta& b) {
    return a.size == b.size && a.meta.pts == b.meta.pts && a.meta.dts == b.meta.dts &&
           a.meta.duration == b.meta.duration && a.meta.offset == b.meta.offset &&
           a.meta.offset_end == b.meta.offset_end && a.meta.flags == b.meta.flags && a.user == b.user;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    constexpr std::size_t limit = 1u << 20;
    d::decoded_frame_meta m;
    try {
        m = d::decode_frame_meta(text, limit);
    } catch (...) {
        fail("decode_frame_meta threw");
    }
    if (m) {
        if (m.size > limit) fail("accepted a size above the limit");
        if (m.user.size() > frame_meta::max_user) fail("accepted a user header above max_user");
        if (!m.meta.user.empty()) fail("meta.user set by the decoder");
        frame_meta again = m.meta;
        again.user = m.user;
        const std::string t = d::encode_frame_meta(m.size, again);
        if (!d::is_frame_meta(t)) fail("the encoding lacks the prefix");
        const auto back = d::decode_frame_meta(t, limit);
        if (!back) fail("the decoder refused the encoder's output");
        if (!same(back, m)) fail("encode/decode changed the meta");
    } else if (m.error.empty()) {
        fail("refused without a reason");
    }

    if (const auto b = d::base64_decode(text)) {
        if (d::base64_encode(*b) != text) fail("base64_decode accepted a non-canonical text");
    }
    const std::span<const std::byte> raw(reinterpret_cast<const std::byte*>(data), size);
    const auto round = d::base64_decode(d::base64_encode(raw));
    if (!round || !std::equal(round->begin(), round->end(), raw.begin(), raw.end())) fail("base64 round trip failed");
    return 0;
}
