// Hostile and bad input on the channel side of a running engine: malformed channel socket
// URLs, wrong keys, abort reasons and text that test the socket's UTF-8 handling, and where the
// engine listens. The worker side's are in hostile_test.cpp. Each case asserts what the client
// sees (HTTP status, close code, error) and that the channel still works.
#include <catch2/catch.hpp>

#include <utility>  // before Asio (Boost 1.74)

#include <string>
#include <vector>

#include "shmchan/engine.hpp"
#include "shmchan/shmchan.hpp"
#include "shmchan/worker.hpp"
#include "support/engine_process.hpp"
#include "support/helpers.hpp"
#include "support/process.hpp"
#include "support/raw_client.hpp"
#include "support/serves_normally.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::check_serves_normally;
using shmchan::test::http_status;
using shmchan::test::listening_line;
using shmchan::test::port_of;
using shmchan::test::quiet_engine;
using shmchan::test::raw_client;
using shmchan::test::thrown;
using shmchan::test::via;
using json = nlohmann::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

TEST_CASE("hostile: malformed channel socket URLs are refused, the channel still works", "[engine][hostile]") {
    engine eng(quiet_engine());
    const auto port = port_of(eng.url());
    worker w(eng.url());
    channel ch = w.create_channel();
    const std::string id = ch.reader_ref.channel_id, rkey = ch.reader_ref.access_key, wkey = ch.writer_ref.access_key;
    const std::string base = "/ws/channels/" + id;
    const std::string unknown = "00000000-0000-4000-8000-000000000000";

    CHECK(http_status(port, "/ws/channels/not-a-uuid?key=" + rkey + "&dir=read") == 404);  // bad id
    CHECK(http_status(port, "/ws/channels/" + unknown + "?key=" + rkey + "&dir=read") == 404);
    CHECK(http_status(port, base + "?key=not-a-key&dir=read") == 404);                     // bad key
    CHECK(http_status(port, base + "?key=" + unknown + "&dir=read") == 404);                // wrong key
    CHECK(http_status(port, base + "?dir=read") == 400);                                    // missing key
    CHECK(http_status(port, base + "?key=" + rkey) == 400);                                 // missing dir
    CHECK(http_status(port, base + "?key=" + rkey + "&dir=sideways") == 400);               // wrong direction
    CHECK(http_status(port, base + "?key=" + rkey + "&key=" + wkey + "&dir=read") == 400);  // ambiguous
    CHECK(http_status(port, base + "?key=%G0&dir=read") == 400);
    CHECK(http_status(port, "/ws/channels/?key=" + rkey + "&dir=read") == 400);
    CHECK(http_status(port, base + "?key=" + rkey + "&dir=read&pad=" + std::string(3000, 'p')) == 414);  // overlong
    CHECK(http_status(port, base, "X-Pad: " + std::string(9000, 'p') + "\r\n") == 431);
    CHECK(http_status(port, base + "?key=" + rkey + "&dir=read", "", false) == 404);  // not an upgrade
    CHECK(http_status(port, "garbage") == 400);
    // The other end's key: 403, either way round.
    CHECK(http_status(port, base + "?key=" + rkey + "&dir=write") == 403);
    CHECK(http_status(port, base + "?key=" + wkey + "&dir=read") == 403);

    // None of that claimed an end: the channel works, with keys as encodeURIComponent and
    // upper case write them.
    std::string enc = rkey, upper = wkey;
    for (std::size_t p; (p = enc.find('-')) != std::string::npos;) enc.replace(p, 1, "%2d");
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    raw_client rd(port, base + "?key=" + enc + "&dir=read");
    REQUIRE(rd.open);
    raw_client wr(port, base + "?key=" + upper + "&dir=write");
    REQUIRE(wr.open);
    REQUIRE(wr.send("payload", true));
    auto in = rd.next();
    REQUIRE(in.what == raw_client::incoming::kind::message);
    CHECK(in.text == "payload");
    wr.ws.close(websocket::close_code::normal);
    CHECK(rd.next().what == raw_client::incoming::kind::closed);
    CHECK(rd.close_code() == 1000);
    check_serves_normally(eng.url());
}

TEST_CASE("hostile: a reader ref's key never opens the write end, through the socket or shared memory",
          "[engine][hostile][security]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel();
    channel_ref forged_writer = ch.reader_ref;  // the reader's key, claiming to be a writer ref
    forged_writer.dir = direction::write;
    channel_ref forged_reader = ch.writer_ref;
    forged_reader.dir = direction::read;
    CHECK(thrown([&] { open_writer(forged_writer, via(transport::socket, eng.url())); }) == errc::wrong_direction);  // 403
    CHECK(thrown([&] { open_writer(forged_writer, via(transport::shm, eng.url())); }) == errc::bad_key);
    CHECK(thrown([&] { open_reader(forged_reader, via(transport::socket, eng.url())); }) == errc::wrong_direction);
    CHECK(thrown([&] { open_reader(forged_reader, via(transport::shm, eng.url())); }) == errc::bad_key);
    CHECK(thrown([&] { open_writer(ch.reader_ref, via(transport::automatic, eng.url())); }) == errc::wrong_direction);
    // The keys are 128 random bits each, distinct per direction.
    CHECK(ch.reader_ref.access_key != ch.writer_ref.access_key);
    CHECK(ch.reader_ref.access_key.size() == 36);
    // The genuine refs still open their ends.
    writer wr = open_writer(ch.writer_ref, via(transport::socket, eng.url()));
    reader rd = open_reader(ch.reader_ref, via(transport::shm, eng.url()));
    REQUIRE_FALSE(wr.write("ok"));
    REQUIRE_FALSE(wr.close());
    CHECK(rd.read_all().size() == 2);
}

TEST_CASE("hostile: an abort reason of multi-byte characters crosses the socket intact, both ways", "[engine][hostile]") {
    // Regression: the engine cut "aborted: <reason>" at 123 bytes, inside a character; the
    // reader's WebSocket failed on the invalid close frame and saw peer_lost, not the abort.
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel();
    reader rd = open_reader(ch.reader_ref, via(transport::socket, eng.url()));
    writer wr = open_writer(ch.writer_ref, via(transport::shm, eng.url()));
    std::string reason = "x";
    for (int i = 0; i < 100; ++i) reason += "\xc3\xa9";  // é
    REQUIRE_FALSE(wr.write("data"));
    wr.abort(reason);
    REQUIRE(rd.next(10s).is_chunk());
    item it = rd.next(10s);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::aborted);
    CHECK(rd.abort_reason().size() == 113);  // 123 - "aborted: " (9), at a character boundary
    CHECK(reason.rfind(rd.abort_reason(), 0) == 0);

    // The other way: a socket writer's abort, cut the same way on its side, reaches a
    // shared-memory reader as the abort with its reason (it was "socket writer disconnected").
    channel ch2 = w.create_channel();
    reader rd2 = open_reader(ch2.reader_ref, via(transport::shm, eng.url()));
    writer wr2 = open_writer(ch2.writer_ref, via(transport::socket, eng.url()));
    REQUIRE_FALSE(wr2.write("data"));
    wr2.abort(reason);
    REQUIRE(rd2.next(10s).is_chunk());
    item it2 = rd2.next(10s);
    REQUIRE(it2.is_error());
    CHECK(it2.error() == errc::aborted);
    CHECK(rd2.abort_reason().size() == 113);
    CHECK(reason.rfind(rd2.abort_reason(), 0) == 0);
}

TEST_CASE("hostile: text that is not UTF-8: a socket writer's fails the stream with 1007, a ring's is repaired", "[engine][hostile]") {
    // Regression (fuzz_channel_frames): Beast 1.74 accepts a fragmented text message whose last
    // fragment is empty without checking that it ends on a whole character.
    engine eng(quiet_engine());
    const auto port = port_of(eng.url());
    worker w(eng.url());
    channel ch = w.create_channel();
    reader rd = open_reader(ch.reader_ref, via(transport::shm, eng.url()));
    raw_client sock(port, "/ws/channels/" + ch.writer_ref.channel_id + "?key=" + ch.writer_ref.access_key + "&dir=write");
    REQUIRE(sock.open);
    // Masked frames written by hand: text "ab\xe0" (not final), then an empty final continuation.
    auto frame = [](bool fin, unsigned op, const std::string& payload) {
        std::string f;
        f += static_cast<char>((fin ? 0x80 : 0) | op);
        f += static_cast<char>(0x80 | payload.size());
        const char mask[4] = {0x11, 0x22, 0x33, 0x44};
        f.append(mask, 4);
        for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
        return f;
    };
    const std::string wire = frame(true, 2, "ok") + frame(false, 1, "ab\xe0") + frame(true, 0, "");
    asio::write(beast::get_lowest_layer(sock.ws).socket(), asio::buffer(wire));
    CHECK(sock.next().what == raw_client::incoming::kind::closed);
    CHECK(sock.close_code() == 1007);
    item a = rd.next(10s);
    REQUIRE(a.is_chunk());
    CHECK(a.text() == "ok");
    item b = rd.next(10s);
    REQUIRE(b.is_error());
    CHECK(b.error() == errc::aborted);
    CHECK(rd.abort_reason() == "socket writer sent a text frame that is not UTF-8");

    // The other way: a shared-memory writer's message that is not UTF-8 reaches a socket reader
    // repaired (before, the reader's WebSocket failed on the invalid text frame: peer_lost).
    channel ch2 = w.create_channel();
    reader srd = open_reader(ch2.reader_ref, via(transport::socket, eng.url()));
    writer swr = open_writer(ch2.writer_ref, via(transport::shm, eng.url()));
    REQUIRE_FALSE(swr.send_message("a\xff" "b"));
    REQUIRE_FALSE(swr.close());
    item m = srd.next(10s);
    REQUIRE(m.is_message());
    CHECK(m.text() == "a\xef\xbf\xbd" "b");
    CHECK(srd.next(10s).is_end());
}

TEST_CASE("hostile: the engine listens on loopback by default and warns about any other address",
          "[engine][hostile][security]") {
    CHECK(engine_options{}.host == "127.0.0.1");
    auto loop = shmchan::test::child::spawn({shmchan::test::cli_path(), "engine", "--listen", "127.0.0.1:0"}, false, true);
    CHECK(listening_line(loop).find("listening on ws://127.0.0.1:") != std::string::npos);
    loop.kill(SIGTERM);
    CHECK(loop.read_all(5s).find("warning") == std::string::npos);
    loop.wait(10s);
    auto any = shmchan::test::child::spawn({shmchan::test::cli_path(), "engine", "--listen", "0.0.0.0:0"}, false, true);
    const std::string warning = any.read_line();
    CHECK(warning.find("warning: listening on 0.0.0.0 without TLS: traffic and access keys travel in clear") !=
          std::string::npos);
    CHECK(listening_line(any).find("listening on ws://0.0.0.0:") != std::string::npos);
    any.kill(SIGTERM);
    any.wait(10s);
}
