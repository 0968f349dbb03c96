// Client frame headers and unmasking (src/wire/ws_client_header.hpp): every length encoding at
// its edges, each refusal the header alone decides, need_more for every cut of a header, and
// unmasking in pieces at any phase equal to the byte-by-byte definition (RFC 6455 5.3).
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "wire/ws_client_header.hpp"

using namespace shmchan::detail;
using st = ws_header_result::status;

namespace {
std::vector<std::byte> bytes(std::initializer_list<unsigned> v) {
    std::vector<std::byte> out;
    for (unsigned b : v) out.push_back(std::byte{static_cast<unsigned char>(b)});
    return out;
}
ws_header_result parse(const std::vector<std::byte>& in, ws_client_header& h, bool in_message = false) {
    // Every proper prefix of a header that parses is need_more.
    const auto r = parse_client_header(in, in_message, h);
    if (r.what == st::ok)
        for (std::size_t n = 0; n < h.header_size; ++n) {
            ws_client_header scratch;
            CHECK(parse_client_header(std::span(in).first(n), in_message, scratch).what == st::need_more);
        }
    return r;
}
std::string_view why(std::initializer_list<unsigned> v, bool in_message = false) {
    ws_client_header h;
    const auto r = parse(bytes(v), h, in_message);
    CHECK(r.what == st::violation);
    return r.why;
}
}  // namespace

TEST_CASE("ws client header: lengths in their three encodings, the key, FIN and opcode", "[wire]") {
    ws_client_header h;
    REQUIRE(parse(bytes({0x82, 0x80 | 125, 1, 2, 3, 4}), h).what == st::ok);
    CHECK(h.fin);
    CHECK(h.opcode == ws_op_binary);
    CHECK(h.length == 125);
    CHECK(h.header_size == 6);
    CHECK(h.key == std::array<std::byte, 4>{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}});
    CHECK_FALSE(h.zero_key());
    REQUIRE(parse(bytes({0x01, 0x80 | 126, 0, 126, 0, 0, 0, 0}), h).what == st::ok);
    CHECK_FALSE(h.fin);
    CHECK(h.opcode == ws_op_text);
    CHECK(h.length == 126);
    CHECK(h.header_size == 8);
    CHECK(h.zero_key());
    REQUIRE(parse(bytes({0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9}), h).what == st::ok);
    CHECK(h.length == 0x10000);
    CHECK(h.header_size == 14);
    REQUIRE(parse(bytes({0x80, 0x80 | 3, 0, 0, 0, 0}), h, true).what == st::ok);  // a continuation, in a message
    CHECK(h.opcode == ws_op_continuation);
    REQUIRE(parse(bytes({0x89, 0x80, 0, 0, 0, 0}), h, true).what == st::ok);  // a ping between fragments
    CHECK(h.is_control());
}

TEST_CASE("ws client header: what the header alone refuses", "[wire]") {
    CHECK(why({0xc2, 0x80}) == "a frame with reserved bits set");
    CHECK(why({0x83, 0x80}) == "a frame of an unknown opcode");
    CHECK(why({0x8b, 0x80}) == "a frame of an unknown opcode");
    CHECK(why({0x82, 0x03}) == "an unmasked client frame");
    CHECK(why({0x09, 0x80}) == "a fragmented control frame");
    CHECK(why({0x89, 0x80 | 126}) == "a control frame longer than 125 bytes");
    CHECK(why({0x80, 0x80}) == "a continuation frame outside a fragmented message");
    CHECK(why({0x82, 0x80}, true) == "a new message inside a fragmented one");
    CHECK(why({0x82, 0x80 | 126, 0, 125, 0, 0, 0, 0}) == "a frame length not in its shortest form");
    CHECK(why({0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}) == "a frame length not in its shortest form");
    CHECK(why({0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) == "a frame length above 2^63");
}

TEST_CASE("ws server header: unmasked, no key, the same checks otherwise", "[wire]") {
    const auto server = [](const std::vector<std::byte>& in, ws_client_header& h, bool in_message = false) {
        const auto r = parse_client_header(in, in_message, h, frame_from::server);
        if (r.what == st::ok)
            for (std::size_t n = 0; n < h.header_size; ++n) {
                ws_client_header scratch;
                CHECK(parse_client_header(std::span(in).first(n), in_message, scratch, frame_from::server).what ==
                      st::need_more);
            }
        return r;
    };
    ws_client_header h;
    REQUIRE(server(bytes({0x82, 125}), h).what == st::ok);
    CHECK(h.length == 125);
    CHECK(h.header_size == 2);
    CHECK(h.zero_key());
    REQUIRE(server(bytes({0x01, 126, 0x01, 0x00}), h).what == st::ok);
    CHECK(h.length == 256);
    CHECK(h.header_size == 4);
    CHECK_FALSE(h.fin);
    REQUIRE(server(bytes({0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}), h).what == st::ok);
    CHECK(h.length == 0x10000);
    CHECK(h.header_size == 10);
    CHECK(server(bytes({0x82, 0x80 | 3, 0, 0, 0, 0}), h).why == "a masked server frame");
    CHECK(server(bytes({0x80, 3}), h).why == "a continuation frame outside a fragmented message");
    CHECK(server(bytes({0x89, 126}), h).why == "a control frame longer than 125 bytes");
    CHECK(server(bytes({0x82, 126, 0, 125}), h).why == "a frame length not in its shortest form");
}

TEST_CASE("ws unmask: in pieces, at any phase, as byte-by-byte XOR, a zero key changes nothing", "[wire]") {
    std::mt19937 g(42);
    std::vector<std::byte> plain(1000);
    for (auto& b : plain) b = std::byte{static_cast<unsigned char>(g())};
    const std::array<std::byte, 4> key{std::byte{0x12}, std::byte{0x34}, std::byte{0x56}, std::byte{0x78}};
    std::vector<std::byte> want = plain;
    for (std::size_t i = 0; i < want.size(); ++i) want[i] ^= key[i % 4];
    for (std::size_t piece : {1u, 3u, 7u, 8u, 9u, 64u, 333u, 1000u}) {
        INFO("pieces of " << piece);
        std::vector<std::byte> got = plain;
        for (std::size_t off = 0; off < got.size(); off += piece)
            ws_unmask(std::span(got).subspan(off, std::min(piece, got.size() - off)), key, off);
        CHECK(got == want);
    }
    std::vector<std::byte> same = plain;
    ws_unmask(same, {}, 3);
    CHECK(same == plain);
}
