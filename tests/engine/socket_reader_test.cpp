// The socket reader (src/socket_reader.cpp) reads the engine's frames itself, against a
// stand-in engine (Beast's server, or raw bytes): messages in fragments with a ping between
// them (answered), many small messages in one read, a large one read straight into its slot,
// the close that ends the stream; a masked frame from the engine is refused; a large message
// stalled or cut mid-payload.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "shmchan/shmchan.hpp"
#include "support/fake_engine.hpp"
#include "support/helpers.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::via;
using namespace shmchan::test::fake;

namespace {
std::string text_of(std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }
// The engine's close "stream_complete", written by hand (Beast's own close() drops the frames
// it reads while it waits for the answer, and the reader's pongs are among them); then reads
// the pongs (counted by the caller's control callback) and the reader's close.
void end_stream(tcp::socket& s, websocket::stream<tcp::socket&>& ws) {
    const std::string reason = "stream_complete";
    const std::string close{'\x88', static_cast<char>(2 + reason.size()), '\x03', '\xe8'};
    asio::write(s, asio::buffer(close + reason));
    beast::flat_buffer b;
    beast::error_code ec;
    ws.read(b, ec);
    if (ec != websocket::error::closed) throw beast::system_error(ec);
}
// Accepts the reader's upgrade and counts the pongs it answers with.
void accept_counting_pongs(websocket::stream<tcp::socket&>& ws, int& pongs) {
    ws.accept();
    ws.control_callback([&pongs](websocket::frame_type k, beast::string_view) {
        if (k == websocket::frame_type::pong) ++pongs;
    });
}
}  // namespace

TEST_CASE("socket reader: fragments, a ping between them, small and large messages, then the end", "[engine][socket]") {
    std::vector<std::byte> big(std::size_t{5} << 20);  // read straight into its slot
    fill_pattern(big, 0);
    int pongs = 0;
    fake_engine fake([&](tcp::socket& s) {
        websocket::stream<tcp::socket&> ws(s);
        accept_counting_pongs(ws, pongs);
        ws.binary(true);
        ws.write_some(false, asio::buffer(std::string("abc")));
        ws.ping({});  // between two fragments of one message
        ws.write_some(true, asio::buffer(std::string("def")));
        ws.text(true);
        ws.write(asio::buffer(std::string("hello")));
        ws.binary(true);
        for (int i = 0; i < 1000; ++i) ws.write(asio::buffer(std::to_string(i)));
        ws.write(asio::buffer(big));
        end_stream(s, ws);
    });
    {
        reader r = open_reader(fake_ref(direction::read), via(transport::socket, fake.url()));
        item it = r.next(10s);
        REQUIRE(it.is_chunk());
        CHECK(text_of(it.data()) == "abcdef");
        it = r.next(10s);
        REQUIRE(it.is_message());
        CHECK(text_of(it.data()) == "hello");
        bool in_order = true;
        for (int i = 0; i < 1000; ++i) {
            it = r.next(10s);
            in_order = in_order && it.is_chunk() && text_of(it.data()) == std::to_string(i);
        }
        CHECK(in_order);
        it = r.next(10s);
        REQUIRE(it.is_chunk());
        CHECK(it.data().size() == big.size());
        CHECK(std::equal(big.begin(), big.end(), it.data().begin()));
        CHECK(r.next(10s).is_end());
    }
    fake.join();
    INFO(fake.failure);
    CHECK(fake.failure.empty());
    CHECK(pongs == 1);
}

TEST_CASE("socket reader: after large messages, a ping, small ones and fragments arrive whole", "[engine][socket]") {
    // After a large message the reader reads the next header on its own, or behind the payload
    // in the same recvmsg (a header's worth at most).
    std::vector<std::byte> big1(std::size_t{200} << 10), big2(std::size_t{100} << 10), big3(std::size_t{90} << 10);
    fill_pattern(big1, 0);
    fill_pattern(big2, 1);
    fill_pattern(big3, 2);
    int pongs = 0;
    fake_engine fake([&](tcp::socket& s) {
        websocket::stream<tcp::socket&> ws(s);
        accept_counting_pongs(ws, pongs);
        ws.binary(true);
        ws.write(asio::buffer(big1));
        ws.ping(websocket::ping_data(std::string(125, 'p').c_str()));
        ws.text(true);
        ws.write(asio::buffer(std::string("small")));
        ws.binary(true);
        ws.write(asio::buffer(big2));
        ws.write_some(false, asio::buffer(big3));  // a large first fragment, a ping, the last one
        ws.ping({});
        ws.write_some(true, asio::buffer(std::string("end")));
        for (int i = 0; i < 3; ++i) ws.write(asio::buffer(std::to_string(i)));
        end_stream(s, ws);
    });
    {
        reader r = open_reader(fake_ref(direction::read), via(transport::socket, fake.url()));
        item it = r.next(10s);
        REQUIRE(it.is_chunk());
        CHECK(std::ranges::equal(it.data(), big1));
        it = r.next(10s);
        REQUIRE(it.is_message());
        CHECK(text_of(it.data()) == "small");
        it = r.next(10s);
        REQUIRE(it.is_chunk());
        CHECK(std::ranges::equal(it.data(), big2));
        it = r.next(10s);
        REQUIRE(it.is_chunk());
        REQUIRE(it.data().size() == big3.size() + 3);
        CHECK(std::equal(big3.begin(), big3.end(), it.data().begin()));
        CHECK(text_of(it.data().subspan(big3.size())) == "end");
        for (int i = 0; i < 3; ++i) {
            it = r.next(10s);
            REQUIRE(it.is_chunk());
            CHECK(text_of(it.data()) == std::to_string(i));
        }
        CHECK(r.next(10s).is_end());
    }
    fake.join();
    INFO(fake.failure);
    CHECK(fake.failure.empty());
    CHECK(pongs == 2);
}

TEST_CASE("socket reader: a masked frame from the engine is a protocol error", "[engine][socket]") {
    fake_engine fake([&](tcp::socket& s) {
        websocket::stream<tcp::socket&> ws(s);
        ws.accept();
        const std::string masked{'\x82', '\x83', '\x01', '\x02', '\x03', '\x04', 'x', 'y', 'z'};
        asio::write(s, asio::buffer(masked));
        read_to_end(s);
    });
    {
        reader r = open_reader(fake_ref(direction::read), via(transport::socket, fake.url()));
        const item it = r.next(10s);
        REQUIRE(it.is_error());
        CHECK(it.error() == errc::protocol_error);
    }
    fake.join();
    CHECK(fake.failure.empty());
}

// A large payload is read straight into its slot outside the event loop (read_direct): an
// engine that stalls mid-payload makes next() time out by its deadline with what came kept,
// and the message arrives whole once the rest comes; a connection cut mid-payload is peer_lost.
TEST_CASE("socket reader: a large message stalled mid-payload times out, then arrives whole, cut, it is peer_lost",
          "[engine][socket]") {
    constexpr std::size_t n = std::size_t{1} << 20, first = 300 << 10;
    std::vector<std::byte> big(n);
    fill_pattern(big, 0);
    const auto header = [](std::size_t len) {
        std::string h{'\x82', '\x7f'};
        for (int i = 7; i >= 0; --i) h += static_cast<char>((len >> (8 * i)) & 0xff);
        return h;
    };
    std::atomic<bool> go_on{false}, cut{false};
    fake_engine fake([&](tcp::socket& s) {
        websocket::stream<tcp::socket&> ws(s);
        ws.accept();
        asio::write(s, asio::buffer(header(n)));
        asio::write(s, asio::buffer(big.data(), first));
        while (!go_on) std::this_thread::sleep_for(5ms);
        asio::write(s, asio::buffer(big.data() + first, n - first));
        asio::write(s, asio::buffer(header(n)));
        asio::write(s, asio::buffer(big.data(), first));
        while (!cut) std::this_thread::sleep_for(5ms);
        s.shutdown(tcp::socket::shutdown_both);
    });
    {
        reader r = open_reader(fake_ref(direction::read), via(transport::socket, fake.url()));
        const auto t0 = std::chrono::steady_clock::now();
        item it = r.next(300ms);
        CHECK(std::chrono::steady_clock::now() - t0 < 2s);
        REQUIRE(it.is_error());
        CHECK(it.error() == errc::timeout);
        go_on = true;
        it = r.next(10s);
        REQUIRE(it.is_chunk());
        CHECK(it.data().size() == n);
        CHECK(std::equal(big.begin(), big.end(), it.data().begin()));
        it.release();
        CHECK(r.next(300ms).error() == errc::timeout);  // the second message, stalled too
        cut = true;
        it = r.next(10s);
        REQUIRE(it.is_error());
        CHECK(it.error() == errc::peer_lost);
    }
    fake.join();
    CHECK(fake.failure.empty());
}
