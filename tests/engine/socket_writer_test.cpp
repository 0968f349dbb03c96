// The socket writer (src/socket_writer.cpp).
// - Its close(): one that runs out of time (the engine cannot take the end yet) loses nothing
//   and goes on when called again. The GStreamer sink closes in slices of 100 ms, and under
//   load a slice once ended before the engine's answer: the close was given up (the connection
//   shut) and the next call said "already closed".
// - Its own frames and upgrade, against a stand-in engine (Beast's server, or raw bytes): a
//   stock server reads its frames and its answer to a ping; a refusal that arrives in the same
//   segment as the 101 is seen; a data frame from the engine, or an upgrade answer without
//   "Connection: upgrade", is refused.
// - Its send queue: streamed small messages, with large ones, text and frames between them,
//   arrive in order, and without a further call; a write with a deadline returns by it while
//   the queue waits on an engine that does not read.
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <future>
#include <thread>

#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"
#include "support/fake_engine.hpp"
#include "support/raw_client.hpp"
#include "ws_client.hpp"  // sec_websocket_accept

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::eventually;
using shmchan::test::quiet_engine;
using shmchan::test::via;
using namespace shmchan::test::fake;
using namespace shmchan::test::raw_detail;

namespace {
namespace http = beast::http;

// The bytes at `offset` of fill_pattern's stream.
bool is_pattern(std::span<const std::byte> got, std::uint64_t offset) {
    std::vector<std::byte> want(got.size());
    fill_pattern(want, offset);
    return std::equal(got.begin(), got.end(), want.begin());
}

// The stand-in's reading: every message until the writer's close (which Beast answers).
void read_until_close(websocket::stream<tcp::socket&>& ws, const std::function<void(bool, std::string)>& on_message) {
    for (;;) {
        beast::flat_buffer b;
        beast::error_code ec;
        ws.read(b, ec);
        if (ec == websocket::error::closed) return;
        if (ec) throw beast::system_error(ec);
        on_message(ws.got_binary(), beast::buffers_to_string(b.data()));
    }
}

}  // namespace

TEST_CASE("engine: a socket writer's close that runs out of time goes on when called again", "[engine][socket]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel(4);  // a ring of 256 KiB: three chunks of 64 KiB fit, not four
    writer sw = open_writer(ch.writer_ref, via(transport::socket, eng.url()));
    reader rd = open_reader(ch.reader_ref);  // shared memory, and not reading yet
    constexpr std::size_t chunk = 64 << 10, chunks = 4;
    std::vector<std::byte> buf(chunk);
    for (std::size_t i = 0; i < chunks; ++i) {
        fill_pattern(buf, i * chunk);
        REQUIRE_FALSE(sw.write(buf, 10s));  // the fourth waits in the engine for room
    }
    // The end comes after the fourth chunk, which cannot enter the ring: no answer yet.
    CHECK(sw.close(300ms) == errc::timeout);
    std::atomic<bool> done{false};
    std::uint64_t got = 0;
    bool ordered = true, ended = false;
    std::thread t([&] {
        for (;;) {
            item it = rd.next(30s);
            if (it.is_chunk()) {
                ordered = ordered && is_pattern(it.data(), got);
                got += it.data().size();
                continue;
            }
            ended = it.is_end();
            break;
        }
        done = true;
    });
    CHECK_FALSE(sw.close(30s));  // the same close, answered once the reader made room
    t.join();
    CHECK(done);
    CHECK(ended);
    CHECK(got == chunk * chunks);
    CHECK(ordered);
    CHECK(sw.close() == errc::closed);  // closed now: a third call says so
}

TEST_CASE("socket writer: a stock server reads its frames, its pong and its close", "[engine][socket]") {
    struct seen {
        std::vector<std::pair<bool, std::string>> messages;  // binary?, bytes
        int pongs = 0;
        int close_code = -1;
        std::string close_reason;
    } got;
    std::atomic<bool> pinged{false};
    fake_engine fake([&](tcp::socket& s) {
        websocket::stream<tcp::socket&> ws(s);
        ws.accept();
        ws.control_callback([&](websocket::frame_type k, beast::string_view) {
            if (k == websocket::frame_type::pong) ++got.pongs;
        });
        ws.ping({});
        pinged = true;
        for (;;) {
            beast::flat_buffer b;
            beast::error_code ec;
            ws.read(b, ec);
            if (ec == websocket::error::closed) {
                got.close_code = ws.reason().code;
                got.close_reason = std::string(ws.reason().reason.data(), ws.reason().reason.size());
                return;  // Beast answered the close and saw the connection end
            }
            if (ec) throw beast::system_error(ec);
            got.messages.emplace_back(ws.got_binary(), beast::buffers_to_string(b.data()));
        }
    });
    std::vector<std::byte> payload(100000);
    fill_pattern(payload, 0);
    {
        writer w = open_writer(fake_ref(direction::write), via(transport::socket, fake.url()));
        REQUIRE(wait_for(pinged));  // the ping is on its way before the first write
        CHECK_FALSE(w.write(payload));
        CHECK_FALSE(w.send_message("note"));
        CHECK_FALSE(w.close(10s));  // the server's answer to our close is 1000
        // Beast's server ends its read only once the connection is gone (its teardown waits for
        // the client's end): a writer that is closed but still alive must not hold it open.
        CHECK(fake.done.wait_for(10s) == std::future_status::ready);
    }
    fake.join();
    CHECK(fake.failure.empty());
    REQUIRE(got.messages.size() == 2);
    CHECK(got.messages[0].first);
    CHECK(got.messages[0].second == std::string(reinterpret_cast<const char*>(payload.data()), payload.size()));
    CHECK_FALSE(got.messages[1].first);
    CHECK(got.messages[1].second == "note");
    CHECK(got.pongs == 1);
    CHECK(got.close_code == 1000);
    CHECK(got.close_reason == "channel_close");
}

// A write goes out with one sendmsg of the writer's own when the socket takes all of it; what
// it does not take at once (a server that reads late) goes on through Asio, in order.
TEST_CASE("socket writer: what the socket does not take at once follows in order", "[engine][socket]") {
    std::string got;
    int messages = 0;
    fake_engine fake([&](tcp::socket& s) {
        websocket::stream<tcp::socket&> ws(s);
        ws.accept();
        std::this_thread::sleep_for(300ms);  // the socket's buffers fill meanwhile
        read_until_close(ws, [&](bool, std::string m) {
            ++messages;
            got += m;
        });
    });
    std::vector<std::byte> payload(std::size_t{12} << 20);  // 12 messages of 1 MiB
    fill_pattern(payload, 0);
    {
        writer w = open_writer(fake_ref(direction::write), via(transport::socket, fake.url()));
        CHECK_FALSE(w.write(std::span(payload).first(100)));  // small: taken at once
        CHECK_FALSE(w.write(std::span(payload).subspan(100)));
        CHECK_FALSE(w.close(20s));
    }
    fake.join();
    CHECK(fake.failure.empty());
    CHECK(messages == 13);
    REQUIRE(got.size() == payload.size());
    CHECK(is_pattern(std::as_bytes(std::span(got.data(), got.size())), 0));
}

// Small messages written back to back go through the writer's send queue (several to a
// send); a large message, a frame or the close waits for the queue to drain. Whatever the mix,
// the server reads every message whole and in the order of the calls, and the last queued
// message arrives while the writer makes no call at all (issue 14: nothing waits for the
// writer's next call).
TEST_CASE("socket writer: streamed small messages, and large ones and frames between them, arrive in order",
          "[engine][socket]") {
    constexpr int messages = 20000;
    // Message i: binary of (i * 37) % 300 + 1 bytes, with every 1000th 100,000 bytes, every
    // 700th a text message, and one frame (a text meta, then its binary bytes) at 5000.
    const auto size_of = [](int i) { return i % 1000 == 999 ? 100000 : (i * 37) % 300 + 1; };
    const auto text_of = [](int i) { return "note " + std::to_string(i); };
    std::vector<std::pair<bool, std::string>> got;  // binary?, bytes (read after join)
    std::atomic<int> count{0};
    std::atomic<bool> release{false};
    fake_engine fake([&](tcp::socket& s) {
        websocket::stream<tcp::socket&> ws(s);
        ws.accept();
        ws.read_message_max(1 << 20);
        read_until_close(ws, [&](bool binary, std::string m) {
            got.emplace_back(binary, std::move(m));
            ++count;
        });
    });
    std::vector<std::byte> payload(100000);
    const int expected = messages + 1;  // the frame is two messages
    {
        writer w = open_writer(fake_ref(direction::write), via(transport::socket, fake.url()));
        for (int i = 0; i < messages; ++i) {
            if (i % 700 == 699) {
                REQUIRE_FALSE(w.send_message(text_of(i)));
            } else if (i == 5000) {
                fill_pattern(std::span(payload).first(200), static_cast<std::uint64_t>(i));
                REQUIRE_FALSE(w.write_frame(std::span(payload).first(200), frame_meta{}));
            } else {
                fill_pattern(std::span(payload).first(static_cast<std::size_t>(size_of(i))), static_cast<std::uint64_t>(i));
                REQUIRE_FALSE(w.write(std::span(payload).first(static_cast<std::size_t>(size_of(i)))));
            }
        }
        // No call on the writer now: every message must reach the server anyway.
        CHECK(eventually([&] { return count == expected; }, 20s));
        CHECK_FALSE(w.close(10s));
    }
    fake.join();
    CHECK(fake.failure.empty());
    REQUIRE(got.size() == static_cast<std::size_t>(expected));
    int bad = -1;
    for (int i = 0, k = 0; i < messages && bad < 0; ++i, ++k) {
        const auto& [binary, bytes] = got[static_cast<std::size_t>(k)];
        const auto as_bytes = std::as_bytes(std::span(bytes.data(), bytes.size()));
        if (i % 700 == 699) {
            if (binary || bytes != text_of(i)) bad = i;
        } else if (i == 5000) {
            // The frame: its meta as text, then its bytes.
            const auto& [b2, bytes2] = got[static_cast<std::size_t>(++k)];
            if (binary || !b2 || bytes2.size() != 200 ||
                !is_pattern(std::as_bytes(std::span(bytes2.data(), bytes2.size())), static_cast<std::uint64_t>(i)))
                bad = i;
        } else if (!binary || bytes.size() != static_cast<std::size_t>(size_of(i)) ||
                   !is_pattern(as_bytes, static_cast<std::uint64_t>(i))) {
            bad = i;
        }
    }
    CHECK(bad == -1);
}

// A write with a deadline returns by it while the writer's send queue holds messages the
// engine does not take, whether it waits for room in the queue (a small message) or for the
// queue to drain (16 KiB, which goes after it). Messages that a call said were written
// arrive, in order, once the engine reads.
TEST_CASE("socket writer: a write with a deadline returns in time while its queue waits on a stalled engine",
          "[engine][socket]") {
    std::atomic<bool> read_now{false};
    std::vector<std::uint32_t> got;  // the ids of the messages read (after join)
    fake_engine fake([&](tcp::socket& s) {
        websocket::stream<tcp::socket&> ws(s);
        ws.accept();
        ws.read_message_max(1 << 20);
        const auto id_of = [](const std::string& m) {
            std::uint32_t id = 0;
            if (m.size() >= 4) std::memcpy(&id, m.data(), 4);
            return id;
        };
        while (!read_now) std::this_thread::sleep_for(5ms);
        read_until_close(ws, [&](bool, std::string m) { got.push_back(id_of(m)); });
    });
    // A small receive window, so that a few dozen KiB fill the socket and the rest queues.
    const int small = 4096;
    REQUIRE(::setsockopt(fake.acc.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    std::vector<std::uint32_t> ok;    // written, by the call's word
    std::vector<std::uint32_t> late;  // timed out (sent or not)
    {
        writer w = open_writer(fake_ref(direction::write), via(transport::socket, fake.url()));
        std::vector<std::byte> m(64);
        for (std::uint32_t i = 0; i < 5'000'000; ++i) {  // until the socket and the queue are full
            std::memcpy(m.data(), &i, 4);
            const std::error_code e = w.write(m, 300ms);
            if (e == errc::timeout) {
                late.push_back(i);
                break;
            }
            REQUIRE_FALSE(e);
            ok.push_back(i);
        }
        REQUIRE_FALSE(late.empty());
        std::vector<std::byte> big(16 << 10);
        const std::uint32_t big_id = 1u << 30;
        std::memcpy(big.data(), &big_id, 4);
        const auto t0 = std::chrono::steady_clock::now();
        const std::error_code e = w.write(big, 300ms);
        CHECK(std::chrono::steady_clock::now() - t0 < 3s);
        CHECK((!e || e == errc::timeout));
        (e ? late : ok).push_back(big_id);
        read_now = true;
        CHECK_FALSE(w.close(20s));
    }
    fake.join();
    CHECK(fake.failure.empty());
    // Every message said to be written arrived; nothing else but timed-out ones; in order.
    CHECK(std::is_sorted(got.begin(), got.end()));
    CHECK(std::includes(got.begin(), got.end(), ok.begin(), ok.end()));
    for (const std::uint32_t id : got)
        CHECK((std::binary_search(ok.begin(), ok.end(), id) || std::find(late.begin(), late.end(), id) != late.end()));
}

// The sender thread's send fails when the engine's connection breaks under a stream of small
// messages: a later call of the writer says peer_lost (no close frame came), and does not hang.
TEST_CASE("socket writer: a connection that breaks under streamed small messages is peer_lost", "[engine][socket]") {
    fake_engine fake([&](tcp::socket& s) {
        websocket::stream<tcp::socket&> ws(s);
        ws.accept();
        for (int i = 0; i < 100; ++i) {
            beast::flat_buffer b;
            ws.read(b);
        }
        // Gone without a close frame, as a killed engine: unread bytes make the kernel reset.
        s.set_option(asio::socket_base::linger(true, 0));
        s.close();
    });
    std::error_code e;
    const auto t0 = std::chrono::steady_clock::now();
    {
        writer w = open_writer(fake_ref(direction::write), via(transport::socket, fake.url()));
        std::vector<std::byte> m(64);
        for (int i = 0; i < 10'000'000 && !e; ++i) e = w.write(m, 5s);
        CHECK(w.close(5s) == e);  // the same error again, at once
    }
    CHECK(e == errc::peer_lost);
    CHECK(std::chrono::steady_clock::now() - t0 < 20s);
    fake.join();
    CHECK(fake.failure.empty());
}

TEST_CASE("socket writer: a refusal in the same segment as the engine's 101 is already_claimed", "[engine][socket]") {
    fake_engine fake([&](tcp::socket& s) {
        s.set_option(asio::detail::socket_option::boolean<IPPROTO_TCP, TCP_CORK>(true));
        websocket::stream<tcp::socket&> ws(s);
        ws.accept();  // its 101 waits in the corked socket
        const std::string reason = "already claimed";
        std::string close{'\x88', static_cast<char>(2 + reason.size()), '\x03', '\xf0'};  // 1008
        asio::write(s, asio::buffer(close + reason));
        s.set_option(asio::detail::socket_option::boolean<IPPROTO_TCP, TCP_CORK>(false));  // both leave now
        read_to_end(s);
    });
    {
        writer w = open_writer(fake_ref(direction::write), via(transport::socket, fake.url()));
        std::vector<std::byte> b(1000);
        CHECK(w.write(b) == errc::already_claimed);
        CHECK(w.close(1s) == errc::already_claimed);
    }
    fake.join();
    CHECK(fake.failure.empty());
}

TEST_CASE("socket writer: a data frame from the engine is peer_lost", "[engine][socket]") {
    std::atomic<bool> sent{false};
    fake_engine fake([&](tcp::socket& s) {
        websocket::stream<tcp::socket&> ws(s);
        ws.accept();
        ws.binary(true);
        ws.write(asio::buffer(std::string("not for a writer")));
        sent = true;
        read_to_end(s);
    });
    {
        writer w = open_writer(fake_ref(direction::write), via(transport::socket, fake.url()));
        REQUIRE(wait_for(sent));
        std::vector<std::byte> b(1000);
        std::error_code e;
        for (int i = 0; i < 100 && !e; ++i) {  // the frame may still be on its way
            e = w.write(b);
            if (!e) std::this_thread::sleep_for(10ms);
        }
        CHECK(e == errc::peer_lost);
    }
    fake.join();
    CHECK(fake.failure.empty());
}

TEST_CASE("socket writer: an upgrade answer without Connection: upgrade is a protocol error", "[engine][socket]") {
    fake_engine fake([&](tcp::socket& s) {
        beast::flat_buffer b;
        http::request<http::empty_body> req;
        http::read(s, b, req);
        http::response<http::empty_body> res{http::status::switching_protocols, 11};
        res.set(http::field::upgrade, "websocket");  // no Connection header
        res.set(http::field::sec_websocket_accept,
                shmchan::detail::sec_websocket_accept(std::string(req[http::field::sec_websocket_key])));
        http::write(s, res);
        read_to_end(s);
    });
    try {
        writer w = open_writer(fake_ref(direction::write), via(transport::socket, fake.url()));
        FAIL("the upgrade was taken");
    } catch (const error& e) {
        CHECK(e.code() == errc::protocol_error);
    }
    fake.join();
    CHECK(fake.failure.empty());
}
