// A Beast client that reads a channel's stream through the engine's socket reader end while it
// pings the engine: the next ping as soon as the last one's pong came, so that pings keep
// arriving while the engine writes records (issue 14: the engine writes its own frames, and a
// pong must never land inside one of them). Checks every byte against the test pattern and
// every pong against its ping. Over ws:// (ring_to_socket_test.cpp) and wss:// (tls_test.cpp).
#pragma once

#include <utility>  // before Asio (Boost 1.74)

#include <catch2/catch.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "shmchan/testkit/checksum.hpp"

namespace shmchan::test {

struct pinged_stream {
    std::uint64_t bytes = 0;  // stream bytes received
    std::uint64_t first_bad = std::numeric_limits<std::uint64_t>::max();  // first byte off the pattern
    int pings = 0, pongs = 0;
    int pongs_off = 0;  // pongs that did not echo the ping they answer
    bool closed = false, timed_out = false;
    std::uint16_t close_code = 0;
    std::string close_reason, error;  // the close's reason; the read's error when not a close
};

// Reads ws until the engine closes it (or `limit`), pinging all along; `pongs_out` counts the
// pongs for a writer thread that streams until enough of them came.
template <class NextLayer>
pinged_stream read_while_pinging(boost::beast::websocket::stream<NextLayer>& ws, boost::asio::io_context& ioc,
                                 std::atomic<int>& pongs_out, std::chrono::seconds limit) {
    namespace beast = boost::beast;
    namespace websocket = beast::websocket;
    pinged_stream out;
    bool done = false, ping_writing = false, pong_due = false;
    std::string last_ping;
    beast::flat_buffer buf;
    std::vector<std::byte> expect;

    std::function<void()> ping = [&] {
        if (done || ping_writing || pong_due) return;
        last_ping = "ping " + std::to_string(out.pings++);
        ping_writing = pong_due = true;
        ws.async_ping(websocket::ping_data(last_ping.c_str()), [&](beast::error_code) {
            ping_writing = false;
            ping();
        });
    };
    ws.control_callback([&](websocket::frame_type kind, beast::string_view payload) {
        if (kind != websocket::frame_type::pong) return;
        ++out.pongs;
        pongs_out.fetch_add(1, std::memory_order_relaxed);
        if (!pong_due || payload != last_ping) ++out.pongs_off;
        pong_due = false;
        ping();
    });
    std::function<void()> read = [&] {
        ws.async_read(buf, [&](beast::error_code ec, std::size_t n) {
            if (ec) {
                out.closed = ec == websocket::error::closed;
                out.close_code = ws.reason().code;
                out.close_reason = ws.reason().reason.c_str();
                if (!out.closed) out.error = ec.message();
                done = true;
                return;
            }
            expect.resize(n);
            fill_pattern(expect, out.bytes);
            if (out.first_bad == std::numeric_limits<std::uint64_t>::max() && std::memcmp(expect.data(), buf.data().data(), n) != 0)
                out.first_bad = out.bytes;
            out.bytes += n;
            buf.consume(n);
            read();
        });
    };
    read();
    ping();
    ioc.restart();
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < until) ioc.run_one_for(std::chrono::milliseconds(100));
    if (!done) {
        out.timed_out = true;
        beast::get_lowest_layer(ws).cancel();
    }
    // No handler may outlive this frame: the read and the last ping finish first.
    ioc.restart();
    const auto drain = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while ((ping_writing || !done) && std::chrono::steady_clock::now() < drain) ioc.run_one_for(std::chrono::milliseconds(100));
    ws.control_callback();
    return out;
}

// What both tests ask of a pinged stream the writer ended cleanly after `written` bytes: every
// byte intact, at least 100 pongs, each echoing its ping.
inline void check_pinged_stream(const pinged_stream& got, std::uint64_t written, std::uint64_t min_bytes) {
    INFO(got.bytes << " bytes of " << written << ", " << got.pings << " pings, " << got.pongs << " pongs; " << got.error);
    CHECK_FALSE(got.timed_out);
    CHECK(got.closed);
    CHECK(got.close_code == 1000);
    CHECK(got.bytes == written);
    CHECK(written >= min_bytes);
    CHECK(got.first_bad == std::numeric_limits<std::uint64_t>::max());
    CHECK(got.pongs >= 100);
    CHECK(got.pongs_off == 0);
}

}  // namespace shmchan::test
