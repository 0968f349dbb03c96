// What a socket writer learns about its socket reader: peer_lost when the reader's connection
// broke (its process was killed), peer_closed when the reader left (closed its socket). Issue 14:
// both used to be peer_closed, because the engine's ring only knows that its reader end is gone.
#include <catch2/catch.hpp>

#include <csignal>
#include <thread>

#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"
#include "support/process.hpp"
#include "support/raw_client.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::child;
using shmchan::test::peer_path;
using shmchan::test::port_of;
using shmchan::test::raw_client;
using shmchan::test::quiet_engine;
using shmchan::test::via;

namespace {
// Writes the pattern until a write fails (or 60 s pass: a hang is a failure too).
std::error_code write_until_error(writer& w) {
    std::vector<std::byte> buf(64 << 10);
    const auto until = std::chrono::steady_clock::now() + 60s;
    for (std::uint64_t off = 0; std::chrono::steady_clock::now() < until; off += buf.size()) {
        fill_pattern(buf, off);
        if (auto e = w.write(buf, 5s); e && e != errc::timeout) return e;
    }
    return make_error_code(errc::timeout);
}

// A writer by `how` streams to a socket reader in another process, killed once it read 1 MiB:
// what the writer's next write says.
std::error_code fate_of_killed_reader(transport how) {
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel(4);
    writer wr = open_writer(ch.writer_ref, via(how, eng.url()));
    REQUIRE(wr.via() == how);
    std::error_code werr;
    std::thread t([&] { werr = write_until_error(wr); });
    child rd = child::spawn({peer_path(), "read", ch.reader_ref.dump(), "--engine", eng.url(), "--mark", "1048576"});
    std::string line;
    while (!(line = rd.read_line(30s)).empty() && line.rfind("MARK", 0) != 0) {}
    const bool marked = line.rfind("MARK", 0) == 0;
    rd.kill(SIGKILL);
    rd.wait(10s);
    t.join();
    REQUIRE(marked);
    return werr;
}
// The same with a socket reader in this process that reads one chunk and closes its end.
std::error_code fate_of_reader_that_left(transport how) {
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel(4);
    writer wr = open_writer(ch.writer_ref, via(how, eng.url()));
    std::error_code werr;
    std::thread t([&] { werr = write_until_error(wr); });
    bool got_chunk = false;
    {
        reader sr = open_reader(ch.reader_ref, via(transport::socket, eng.url()));
        got_chunk = sr.next(10s).is_chunk();
    }  // the reader leaves early: it closes its socket
    t.join();
    REQUIRE(got_chunk);
    return werr;
}
}  // namespace

TEST_CASE("engine: a socket writer whose socket reader was killed reports peer_lost", "[engine][socket][fate]") {
    CHECK(fate_of_killed_reader(transport::socket) == errc::peer_lost);
}

TEST_CASE("engine: a socket writer whose socket reader left reports peer_closed", "[engine][socket][fate]") {
    CHECK(fate_of_reader_that_left(transport::socket) == errc::peer_closed);
}

// The same through the ring's other side: a shared-memory writer whose reader is a socket
// reader. The engine's ring end finishes as lost (not left) when the connection broke.
TEST_CASE("engine: a shared-memory writer whose socket reader was killed reports peer_lost", "[engine][socket][fate]") {
    CHECK(fate_of_killed_reader(transport::shm) == errc::peer_lost);
}

TEST_CASE("engine: a shared-memory writer whose socket reader left reports peer_closed", "[engine][socket][fate]") {
    CHECK(fate_of_reader_that_left(transport::shm) == errc::peer_closed);
}

// A socket reader that breaks the protocol (sends data, or a frame a client must mask unmasked)
// is failed with close 1002, and counts as lost: the engine cannot trust it left on purpose.
TEST_CASE("engine: a socket reader that breaks the protocol gets close 1002, and its writer reports peer_lost",
          "[engine][socket][fate]") {
    const unsigned char unmasked_ping[] = {0x89, 0x00};
    for (const bool raw : {false, true}) {
        INFO((raw ? "an unmasked ping" : "a binary message"));
        engine eng(quiet_engine());
        worker w(eng.url());
        channel ch = w.create_channel(4);
        raw_client rd(port_of(eng.url()), "/ws/channels/" + ch.reader_ref.channel_id + "?key=" + ch.reader_ref.access_key + "&dir=read");
        REQUIRE(rd.open);
        writer mw = open_writer(ch.writer_ref, via(transport::shm, eng.url()));
        std::error_code werr;
        std::thread t([&] { werr = write_until_error(mw); });
        const bool flowing = rd.next().what == raw_client::incoming::kind::message;
        if (raw) boost::asio::write(boost::beast::get_lowest_layer(rd.ws).socket(), boost::asio::buffer(unmasked_ping));
        else rd.send("not for the engine", true);
        raw_client::incoming in;
        while ((in = rd.next()).what == raw_client::incoming::kind::message) {}
        t.join();
        CHECK(flowing);
        CHECK(in.what == raw_client::incoming::kind::closed);
        CHECK(rd.close_code() == 1002);
        CHECK(werr == errc::peer_lost);
    }
}
