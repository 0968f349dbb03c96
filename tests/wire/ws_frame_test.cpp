// The server frame headers the engine writes itself (src/wire/ws_frame.hpp), byte for byte as
// RFC 6455 5.2 lays them out, at each length encoding's edges. (That clients read them is what
// the engine and interop tests show: every record to a socket reader goes out this way.)
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "wire/ws_frame.hpp"

using namespace shmchan::detail;

namespace {
std::vector<unsigned> header(bool text, std::uint64_t n) {
    ws_server_header_bytes h{};
    const std::size_t len = ws_server_header(h, text, n);
    std::vector<unsigned> out;
    for (std::size_t i = 0; i < len; ++i) out.push_back(std::to_integer<unsigned>(h[i]));
    return out;
}
}  // namespace

TEST_CASE("ws server header: FIN, opcode, no mask, and the three length encodings", "[wire]") {
    CHECK(header(false, 0) == std::vector<unsigned>{0x82, 0});
    CHECK(header(true, 5) == std::vector<unsigned>{0x81, 5});
    CHECK(header(false, 125) == std::vector<unsigned>{0x82, 125});
    CHECK(header(false, 126) == std::vector<unsigned>{0x82, 126, 0, 126});
    CHECK(header(true, 0xffff) == std::vector<unsigned>{0x81, 126, 0xff, 0xff});
    CHECK(header(false, 0x10000) == std::vector<unsigned>{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0});
    CHECK(header(false, 0x0102030405060708ull) == std::vector<unsigned>{0x82, 127, 1, 2, 3, 4, 5, 6, 7, 8});
}

TEST_CASE("ws server control frames: a pong echoes the payload, a close carries code and reason", "[wire]") {
    auto as_list = [](const ws_control_frame& f, std::size_t n) {
        std::vector<unsigned> out;
        for (std::size_t i = 0; i < n; ++i) out.push_back(std::to_integer<unsigned>(f[i]));
        return out;
    };
    ws_control_frame f{};
    const std::byte hi[2] = {std::byte{'h'}, std::byte{'i'}};
    CHECK(as_list(f, ws_server_pong(f, hi)) == std::vector<unsigned>{0x8a, 2, 'h', 'i'});
    CHECK(as_list(f, ws_server_pong(f, {})) == std::vector<unsigned>{0x8a, 0});
    CHECK(as_list(f, ws_server_close(f, 1002, "no")) == std::vector<unsigned>{0x88, 4, 0x03, 0xea, 'n', 'o'});
    CHECK(as_list(f, ws_server_close(f, 4000, "")) == std::vector<unsigned>{0x88, 2, 0x0f, 0xa0});
    // A reason longer than a close frame holds is cut at 123 bytes (125 with the code).
    const std::size_t n = ws_server_close(f, 1000, std::string(200, 'r'));
    CHECK(n == 127);
    CHECK(std::to_integer<unsigned>(f[1]) == 125);
}

TEST_CASE("ws client controls: the latest pong, the close before it, and nothing after the close", "[wire]") {
    ws_client_controls c;
    CHECK(c.next() == 0);  // nothing queued
    const std::byte first[] = {std::byte{1}}, second[] = {std::byte{2}, std::byte{3}};
    c.pong(first);
    c.pong(second);  // a later ping replaces the earlier one's pong (RFC 6455 5.5.3)
    REQUIRE(c.next() == 2 + 4 + 2);
    CHECK(c.out[0] == std::byte{0x8a});
    CHECK(c.out[1] == std::byte{0x82});  // masked, 2 bytes
    CHECK(c.out[2] == std::byte{0});     // a zero key
    CHECK(c.out[6] == std::byte{2});
    CHECK(c.out[7] == std::byte{3});
    CHECK(c.next() == 0);  // sent once
    c.pong(first);
    c.close(1000, "bye");
    REQUIRE(c.next() == 2 + 4 + 2 + 3);  // the close goes first ...
    CHECK(c.out[0] == std::byte{0x88});
    CHECK(c.close_sent);
    CHECK(c.next() == 0);  // ... and the pong queued before it never goes
    c.pong(first);
    c.close(1001, "");
    CHECK(c.next() == 0);  // nothing after our close
}
