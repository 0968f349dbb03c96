// A WebSocket client for hostile tests: it sends whatever it is told to (text, binary, raw
// bytes on its socket) and reads with deadlines. Shared by tests/engine/*_test.cpp.
#pragma once

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/helpers.hpp"

namespace shmchan::test {

namespace raw_detail {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using namespace std::chrono_literals;
}  // namespace raw_detail
using namespace raw_detail;

// How long a reply may take. The engine parses a 2 MiB message of 2^20 values or 10^6 levels
// before it answers; under TSan, with the rest of the suite on the other CPU, a CI run took
// more than 10 s for one of them.
constexpr std::chrono::milliseconds reply_wait = shmchan::test::sanitized ? 60s : 10s;

// The HTTP status of an upgrade (or plain) request, over a raw TCP connection.
inline unsigned http_status(std::uint16_t port, const std::string& target, const std::string& extra_headers = "",
                     bool upgrade = true) {
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (upgrade)
        req += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n";
    req += extra_headers + "\r\n";
    beast::error_code ec;
    asio::write(s, asio::buffer(req), ec);
    std::string got;
    char b[1024];
    while (got.find("\r\n") == std::string::npos) {
        const std::size_t n = s.read_some(asio::buffer(b), ec);
        if (ec) break;
        got.append(b, n);
    }
    if (got.rfind("HTTP/1.1 ", 0) != 0) return 0;
    return static_cast<unsigned>(std::stoi(got.substr(9, 3)));
}

inline std::uint16_t port_of(const std::string& url) { return static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1))); }

// A WebSocket client that sends whatever it is told to, and reads with deadlines.
struct raw_client {
    asio::io_context ioc;
    websocket::stream<beast::tcp_stream> ws{ioc};
    websocket::response_type response;  // the engine's answer to the upgrade
    bool open = false;
    beast::flat_buffer buf;
    // An async write that may still be in flight (flood); completed by later runs.
    std::shared_ptr<bool> write_done;

    // Runs handlers until done() or the deadline (a write left in flight keeps the context
    // busy, so run_for alone would always wait out the deadline).
    void run_until(const std::function<bool()>& done, std::chrono::milliseconds t) {
        ioc.restart();
        const auto until = std::chrono::steady_clock::now() + t;
        while (!done() && std::chrono::steady_clock::now() < until)
            ioc.run_one_for(std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()) + 1ms);
    }

    explicit raw_client(std::uint16_t port, const std::string& target = "/") {
        beast::get_lowest_layer(ws).connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
        beast::error_code ec;
        ws.handshake(response, "127.0.0.1:" + std::to_string(port), target, ec);
        open = !ec;
        ws.read_message_max(std::size_t{64} << 20);
    }
    ~raw_client() {
        beast::error_code ignore;
        beast::get_lowest_layer(ws).socket().shutdown(tcp::socket::shutdown_both, ignore);
        beast::get_lowest_layer(ws).socket().close(ignore);
    }
    // Sends one message; false if it did not go out within `t` (the engine stopped reading).
    bool send(std::string_view text, bool binary = false, std::chrono::milliseconds t = 10s) {
        ws.binary(binary);
        write_done = std::make_shared<bool>(false);
        auto payload = std::make_shared<std::string>(text);
        ws.async_write(asio::buffer(*payload), [d = write_done, payload](beast::error_code, std::size_t) { *d = true; });
        run_until([d = write_done] { return *d; }, t);
        return *write_done;
    }
    struct incoming {
        enum class kind { message, closed, timeout } what;
        std::string text;
    };
    incoming next(std::chrono::milliseconds t = 10s) {
        bool done = false;
        beast::error_code ec;
        ws.async_read(buf, [&](beast::error_code e, std::size_t) {
            ec = e;
            done = true;
        });
        run_until([&] { return done; }, t);
        if (!done) {
            beast::get_lowest_layer(ws).cancel();
            run_until([&] { return done; }, 1s);
            return {incoming::kind::timeout, {}};
        }
        if (ec) return {incoming::kind::closed, {}};
        std::string s = beast::buffers_to_string(buf.data());
        buf.consume(buf.size());
        return {incoming::kind::message, std::move(s)};
    }
    json next_json(std::chrono::milliseconds t = reply_wait) {
        auto in = next(t);
        INFO("expected a message, got " << (in.what == incoming::kind::closed ? "a close" : "nothing"));
        REQUIRE(in.what == incoming::kind::message);
        return json::parse(in.text);
    }
    std::uint16_t close_code() const { return ws.reason().code; }
    // Sends n text messages make(0..n-1) while reading, until all are sent and `want` messages
    // have come back, or nothing moved for `stall` (the engine stopped reading us), or `limit`
    // passed. A write still in flight then stays in flight (it completes in later runs).
    struct pumped {
        std::vector<std::string> got;
        int sent = 0;             // writes completed
        bool in_flight = false;   // one more on its way
    };
    pumped pump(int n, const std::function<std::string(int)>& make, int want,
                std::chrono::milliseconds stall = 30s, std::chrono::milliseconds limit = 120s) {
        struct state {
            pumped r;
            int next = 0;
            bool failed = false;
            std::string out;
            std::chrono::steady_clock::time_point moved = std::chrono::steady_clock::now();
        };
        auto st = std::make_shared<state>();
        std::function<void()> write_one = [this, st, n, &make, &write_one] {
            if (st->next >= n) return;
            st->out = make(st->next++);
            st->r.in_flight = true;
            ws.text(true);
            ws.async_write(asio::buffer(st->out), [st, &write_one](beast::error_code e, std::size_t) {
                st->r.in_flight = false;
                st->moved = std::chrono::steady_clock::now();
                if (e) {
                    st->failed = true;
                    return;
                }
                ++st->r.sent;
                if (!st->failed) write_one();
            });
        };
        std::function<void()> read_one = [this, st, want, &read_one] {
            ws.async_read(buf, [this, st, want, &read_one](beast::error_code e, std::size_t) {
                st->moved = std::chrono::steady_clock::now();
                if (e) {
                    st->failed = true;
                    return;
                }
                st->r.got.push_back(beast::buffers_to_string(buf.data()));
                buf.consume(buf.size());
                if (static_cast<int>(st->r.got.size()) < want) read_one();
            });
        };
        write_one();
        if (want > 0) read_one();
        ioc.restart();
        const auto until = std::chrono::steady_clock::now() + limit;
        auto busy = [&] { return st->r.sent < n || static_cast<int>(st->r.got.size()) < want; };
        while (!st->failed && busy() && std::chrono::steady_clock::now() < until &&
               std::chrono::steady_clock::now() - st->moved < stall)
            ioc.run_one_for(50ms);
        if (static_cast<int>(st->r.got.size()) < want) {  // gave up reading: no read may stay pending
            bool quiet = false;
            beast::get_lowest_layer(ws).cancel();
            run_until([&] { return quiet; }, 1s);
        }
        // A write left in flight must not call write_one (a local) again.
        st->failed = true;
        return st->r;
    }
};

}  // namespace shmchan::test
