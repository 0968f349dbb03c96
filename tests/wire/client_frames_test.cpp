// What a channel socket's reading client may send the engine (src/wire/client_frames.hpp):
// pings, pongs and a close, masked; everything else is a violation. Every case is fed whole,
// a byte at a time, and split at every point, and must give the same events.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "wire/client_frames.hpp"

using namespace shmchan::detail;
using kind = client_event::kind;

namespace {

using bytes = std::vector<std::byte>;

bytes of(std::initializer_list<unsigned> v) {
    bytes out;
    for (unsigned b : v) out.push_back(std::byte{static_cast<unsigned char>(b)});
    return out;
}
bytes operator+(bytes a, const bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// A client frame: first byte b0, the payload masked with the RFC 6455 5.7 example's key
// (unless `masked` is false); `len7` overrides the 7-bit length field.
bytes frame(unsigned b0, const std::string& payload, bool masked = true, int len7 = -1) {
    const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    bytes out = of({b0, (masked ? 0x80u : 0u) | static_cast<unsigned>(len7 >= 0 ? len7 : static_cast<int>(payload.size()))});
    if (masked)
        for (unsigned char k : key) out.push_back(std::byte{k});
    for (std::size_t i = 0; i < payload.size(); ++i)
        out.push_back(std::byte{static_cast<unsigned char>(payload[i] ^ (masked ? key[i % 4] : 0))});
    return out;
}
bytes close_frame(unsigned code, const std::string& reason) {
    return frame(0x88, std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)} + reason);
}

struct event {
    kind what;
    std::uint16_t code;
    std::string payload, why;
    bool operator==(const event&) const = default;
};

// Feeds `in` in pieces of `step` bytes (0: at `split` and the rest), until the parser finishes.
struct parsed {
    std::vector<event> events;
    std::size_t used = 0;  // bytes the parser took
};
parsed parse(const bytes& in, std::size_t step, std::size_t split = 0) {
    client_frame_parser p;
    parsed out;
    std::size_t at = 0;
    while (at < in.size() && !p.finished()) {
        const std::size_t piece = step ? std::min(step, in.size() - at) : (at < split ? split - at : in.size() - at);
        const std::span<const std::byte> s(in.data() + at, piece);
        std::size_t off = 0;
        while (off < s.size() && !p.finished()) {
            std::size_t used = 0;
            const client_event ev = p.feed(s.subspan(off), used);
            REQUIRE(used <= s.size() - off);
            off += used;
            if (ev.what != kind::none)
                out.events.push_back({ev.what, ev.code, std::string(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size()),
                                      std::string(ev.why)});
            if (used == 0) break;
        }
        at += off;
        if (off < s.size()) break;  // finished inside the piece
    }
    out.used = at;
    return out;
}
// The same result whole, a byte at a time, and at every split.
parsed parse_every_way(const bytes& in) {
    const parsed whole = parse(in, in.size() + 1);
    CHECK(parse(in, 1).events == whole.events);
    CHECK(parse(in, 1).used == whole.used);
    for (std::size_t k = 1; k < in.size(); ++k) {
        INFO("split at " << k);
        const parsed p = parse(in, 0, k);
        CHECK(p.events == whole.events);
        CHECK(p.used == whole.used);
    }
    return whole;
}
event violation(const parsed& p) {
    REQUIRE(p.events.size() == 1);
    REQUIRE(p.events[0].what == kind::violation);
    return p.events[0];
}

}  // namespace

TEST_CASE("client frames: the RFC 6455 example of a masked frame unmasks to its payload", "[wire]") {
    // 5.7: a masked "Hello" (there a text frame; here as the pong it is also shown as).
    const parsed p = parse_every_way(of({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
    REQUIRE(p.events.size() == 1);
    CHECK(p.events[0] == event{kind::pong, 0, "Hello", ""});
}

TEST_CASE("client frames: pings of 0, 5 and 125 bytes, pongs, then a close, in one stream", "[wire]") {
    const std::string big(125, 'x');
    const bytes in = frame(0x89, "") + frame(0x89, "ping!") + frame(0x8a, "pong") + frame(0x89, big) +
                     close_frame(1000, "bye") + frame(0x89, "after the close");
    const parsed p = parse_every_way(in);
    REQUIRE(p.events.size() == 5);
    CHECK(p.events[0] == event{kind::ping, 0, "", ""});
    CHECK(p.events[1] == event{kind::ping, 0, "ping!", ""});
    CHECK(p.events[2] == event{kind::pong, 0, "pong", ""});
    CHECK(p.events[3] == event{kind::ping, 0, big, ""});
    CHECK(p.events[4] == event{kind::close, 1000, "bye", ""});
    // Nothing after the close is taken.
    CHECK(p.used == in.size() - frame(0x89, "after the close").size());
}

TEST_CASE("client frames: a close without a code is 1005, and codes a peer may send pass", "[wire]") {
    CHECK(parse_every_way(frame(0x88, "")).events == std::vector<event>{{kind::close, close_no_status, "", ""}});
    for (unsigned code : {1000u, 1001u, 1003u, 1007u, 1011u, 1013u, 3000u, 4000u, 4999u}) {
        INFO("code " << code);
        CHECK(parse_every_way(close_frame(code, "é")).events == std::vector<event>{{kind::close, static_cast<std::uint16_t>(code), "é", ""}});
    }
}

TEST_CASE("client frames: data frames from a reading client are violations, at their first byte", "[wire]") {
    for (unsigned b0 : {0x81u, 0x82u, 0x80u, 0x01u, 0x02u, 0x00u}) {
        INFO("first byte " << b0);
        const parsed p = parse_every_way(frame(b0, "data"));
        CHECK(violation(p) == event{kind::violation, 1002, "", "a reading client sent a data frame"});
        CHECK(p.used == 1);
    }
}

TEST_CASE("client frames: unmasked, reserved bits, unknown opcodes, fragmented or long control frames", "[wire]") {
    CHECK(violation(parse_every_way(frame(0x89, "ping", false))).why == "an unmasked client frame");
    CHECK(violation(parse_every_way(frame(0x88, "", false))).why == "an unmasked client frame");
    for (unsigned rsv : {0x40u, 0x20u, 0x10u}) CHECK(violation(parse_every_way(frame(0x89 | rsv, "x"))).why == "a frame with reserved bits set");
    for (unsigned op : {0x3u, 0x7u, 0xbu, 0xfu}) CHECK(violation(parse_every_way(frame(0x80 | op, "x"))).why == "a frame of an unknown opcode");
    CHECK(violation(parse_every_way(frame(0x09, "x"))).why == "a fragmented control frame");
    CHECK(violation(parse_every_way(frame(0x08, ""))).why == "a fragmented control frame");
    // 126 and 127 announce 16- and 64-bit lengths: above 125, refused at the length byte.
    for (int len7 : {126, 127}) {
        const parsed p = parse_every_way(frame(0x89, std::string(200, 'p'), true, len7));
        CHECK(violation(p).why == "a control frame longer than 125 bytes");
        CHECK(p.used == 2);
    }
    // A violation after good frames: the good ones first, then it, then nothing.
    const parsed p = parse_every_way(frame(0x89, "ok") + frame(0x82, "no") + frame(0x89, "never"));
    REQUIRE(p.events.size() == 2);
    CHECK(p.events[0].what == kind::ping);
    CHECK(p.events[1].what == kind::violation);
}

TEST_CASE("client frames: bad close frames: one byte, invalid codes, a reason that is not UTF-8", "[wire]") {
    CHECK(violation(parse_every_way(frame(0x88, "\x03"))).why == "a close frame of one byte");
    for (unsigned code : {0u, 999u, 1004u, 1005u, 1006u, 1014u, 1015u, 2999u, 5000u, 65535u}) {
        INFO("code " << code);
        CHECK(violation(parse_every_way(close_frame(code, ""))) == event{kind::violation, 1002, "", "a close frame with an invalid code"});
    }
    CHECK(violation(parse_every_way(close_frame(1000, "\xff"))) == event{kind::violation, 1007, "", "a close reason that is not UTF-8"});
    CHECK(violation(parse_every_way(close_frame(1000, "\xc3"))).code == 1007);  // cut inside a character
}

TEST_CASE("client frames: a finished parser takes nothing more", "[wire]") {
    client_frame_parser p;
    const bytes bad = frame(0x82, "x");
    std::size_t used = 0;
    CHECK(p.feed(bad, used).what == kind::violation);
    CHECK(p.finished());
    const bytes ping = frame(0x89, "x");
    CHECK(p.feed(ping, used).what == kind::none);
    CHECK(used == 0);
}
