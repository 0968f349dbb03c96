// The frame meta text message of the channel socket (src/wire/frame_meta_json.cpp): what it
// encodes, that every field survives the round trip, and that the decoder refuses anything else.
#include <catch2/catch.hpp>

#include "wire/channel_socket.hpp"
#include "wire/frame_meta_json.hpp"

using namespace shmchan;
using namespace shmchan::detail;

namespace {
std::vector<std::byte> bytes_of(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
}
std::string frame_json(const std::string& fields) { return R"({"shmchan_frame":{)" + fields + "}}"; }
}  // namespace

TEST_CASE("frame meta json: the encoding, unset fields omitted", "[wire][frames]") {
    frame_meta m;
    CHECK(encode_frame_meta(5, m) == R"({"shmchan_frame":{"size":5}})");
    const auto user = bytes_of("hi!?");
    m.pts = -1;
    m.dts = 2;
    m.duration = 3;
    m.offset = 4;
    m.offset_end = 5;
    m.flags = 0xFFFF'FFFFu;
    m.user = user;
    const std::string t = encode_frame_meta(7, m);
    CHECK(is_frame_meta(t));
    CHECK(t == R"({"shmchan_frame":{"dts":2,"duration":3,"flags":4294967295,"offset":4,"offset_end":5,"pts":-1,"size":7,"user":"aGkhPw=="}})");
    const auto d = decode_frame_meta(t, 100);
    REQUIRE(d);
    CHECK(d.size == 7);
    CHECK(d.meta.pts == -1);
    CHECK(d.meta.dts == 2);
    CHECK(d.meta.duration == 3);
    CHECK(d.meta.offset == 4);
    CHECK(d.meta.offset_end == 5);
    CHECK(d.meta.flags == 0xFFFF'FFFFu);
    CHECK(d.user == user);
}

TEST_CASE("frame meta json: extremes round-trip, a user header is cut at max_user", "[wire][frames]") {
    std::vector<std::byte> user(frame_meta::max_user + 10, std::byte{0xff});
    frame_meta m;
    m.pts = std::numeric_limits<std::int64_t>::max();
    m.dts = std::numeric_limits<std::int64_t>::min() + 1;
    m.offset = 0;
    m.offset_end = frame_meta::no_offset - 1;
    m.user = user;
    const auto d = decode_frame_meta(encode_frame_meta(0, m), 0);
    REQUIRE(d);
    CHECK(d.meta.pts == m.pts);
    CHECK(d.meta.dts == m.dts);
    CHECK(d.meta.duration == frame_meta::none);
    CHECK(d.meta.offset == 0);
    CHECK(d.meta.offset_end == m.offset_end);
    CHECK(d.user.size() == frame_meta::max_user);
}

TEST_CASE("frame meta json: only the exact prefix marks a meta, anything wrong after it is refused", "[wire][frames]") {
    CHECK_FALSE(is_frame_meta(R"( {"shmchan_frame":{"size":1}})"));
    CHECK_FALSE(is_frame_meta(R"({"shmchan_frame" : {"size":1}})"));
    CHECK_FALSE(is_frame_meta("hello"));
    const std::string too_long_user(348, 'A');
    for (const std::string& bad : {
             std::string(R"({"shmchan_frame":)"), std::string(R"({"shmchan_frame":{"size":1}} )") + "x",
             std::string(R"({"shmchan_frame":{"size":1},"x":1})"), std::string(R"({"shmchan_frame":[1]})"),
             frame_json(""), frame_json(R"("size":-1)"), frame_json(R"("size":1.5)"), frame_json(R"("size":"1")"),
             frame_json(R"("size":101)"), frame_json(R"("size":1,"size":2)"), frame_json(R"("size":1,"pts":9223372036854775808)"),
             frame_json(R"("size":1,"pts":-9223372036854775808)"), frame_json(R"("size":1,"pts":null)"),
             frame_json(R"("size":1,"offset":-1)"), frame_json(R"("size":1,"offset":18446744073709551615)"),
             frame_json(R"("size":1,"flags":4294967296)"), frame_json(R"("size":1,"flags":-1)"),
             frame_json(R"("size":1,"user":7)"), frame_json(R"("size":1,"user":"aGk")"),
             frame_json(R"("size":1,"user":"aGl=")"), frame_json(R"("size":1,"user":"a!==")"),
             frame_json(R"("size":1,"user":")" + too_long_user + "\""), frame_json(R"("size":1,"extra":0)")}) {
        INFO(bad);
        const auto d = decode_frame_meta(bad, 100);
        CHECK_FALSE(d);
        CHECK_FALSE(d.error.empty());
    }
    CHECK(decode_frame_meta(frame_json(R"("size":100)"), 100));
    CHECK(decode_frame_meta(frame_json(R"("size":1,"user":"")"), 100));
}

TEST_CASE("frame meta json: base64 is strict and canonical", "[wire][frames]") {
    for (std::size_t n = 0; n < 10; ++n) {
        std::vector<std::byte> b(n);
        for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>(i * 37 + 200);
        const auto back = base64_decode(base64_encode(b));
        REQUIRE(back);
        CHECK(*back == b);
    }
    CHECK(base64_encode(bytes_of("any carnal pleas")) == "YW55IGNhcm5hbCBwbGVhcw==");
    for (const char* bad : {"A", "AA", "AAA", "A===", "AB==", "ABC=", "=AAA", "AA=A", "AAAA====x", "AA\n="})
        CHECK_FALSE(base64_decode(bad));
}

TEST_CASE("frame meta json: a bad frame's close reason decodes as protocol_error", "[wire][frames]") {
    CHECK(decode_close(close_bad_payload, "bad frame: frame meta is not JSON").error == errc::protocol_error);
    CHECK(decode_close(close_refused, "bad frame: its meta announced 10 bytes, 5 came").error == errc::protocol_error);
    CHECK(decode_close(close_refused, reason_already_claimed).error == errc::already_claimed);
}
