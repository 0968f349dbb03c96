// The server frame headers the engine writes itself (src/wire/ws_frame.hpp), byte for byte as
// RFC 6455 5.2 lays them out, at each length encoding's edges. (That clients read them is what
// the engine and interop tests show: every record to a socket reader goes out this way.)
#include <catch2/catch.hpp>

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
