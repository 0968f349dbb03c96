// A channel whose two ends are socket bridges of one engine: the writer's bridge rings the
// reader's after each commit (engine_impl.hpp, reader_kick), and the reader's bridge stops
// arming its event fd for data once it knows. A ring that went missing would leave a record in
// the ring with nothing to wake the bridge, so these tests move records one at a time, each
// waiting for the last to arrive: every record is the last for a while. The writer's end, its
// abort and its broken connection must reach the reader the same way.
#include <catch2/catch.hpp>

#include <string>

#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"
#include "support/raw_client.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::port_of;
using shmchan::test::quiet_engine;
using shmchan::test::raw_client;
using shmchan::test::via;

namespace {

// Long enough for a loaded sanitizer run; a lost ring waits for ever.
constexpr auto arrival = shmchan::test::sanitized ? 60s : 20s;

std::string record(int i) { return "record " + std::to_string(i) + std::string(50, static_cast<char>('a' + i % 26)); }

std::string text_of(const item& it) { return std::string(reinterpret_cast<const char*>(it.data().data()), it.data().size()); }

}  // namespace

TEST_CASE("socket to socket: each record crosses the engine alone, the end after it", "[engine][socket]") {
    const bool reader_first = GENERATE(true, false);
    CAPTURE(reader_first);
    engine eng(quiet_engine());
    worker wk(eng.url());
    channel ch = wk.create_channel();
    // Ends connect on first use: the reader's bridge starts before the writer's, or after.
    reader r = open_reader(ch.reader_ref, via(transport::socket, eng.url()));
    if (reader_first) CHECK(r.try_next().error() == errc::would_block);
    writer w = open_writer(ch.writer_ref, via(transport::socket, eng.url()));
    constexpr int records = shmchan::test::sanitized ? 300 : 2000;
    int wrong = 0, got = 0;
    for (int i = 0; i < records; ++i) {
        REQUIRE_FALSE(w.write(record(i)));
        item it = r.next(arrival);
        REQUIRE(it.is_chunk());
        if (text_of(it) != record(i)) ++wrong;
        ++got;
    }
    REQUIRE_FALSE(w.close());
    CHECK(r.next(arrival).is_end());
    CHECK(got == records);
    CHECK(wrong == 0);
}

TEST_CASE("socket to socket: the writer's abort reaches a reader that waits for its next record", "[engine][socket]") {
    engine eng(quiet_engine());
    worker wk(eng.url());
    channel ch = wk.create_channel();
    reader r = open_reader(ch.reader_ref, via(transport::socket, eng.url()));
    writer w = open_writer(ch.writer_ref, via(transport::socket, eng.url()));
    for (int i = 0; i < 10; ++i) {
        REQUIRE_FALSE(w.write(record(i)));
        REQUIRE(text_of(r.next(arrival)) == record(i));
    }
    w.abort("camera unplugged");
    const item it = r.next(arrival);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::aborted);
    CHECK(r.abort_reason() == "camera unplugged");
}

TEST_CASE("socket to socket: a writer whose connection breaks is reported to a waiting reader", "[engine][socket]") {
    engine eng(quiet_engine());
    worker wk(eng.url());
    channel ch = wk.create_channel();
    reader r = open_reader(ch.reader_ref, via(transport::socket, eng.url()));
    raw_client wr(port_of(eng.url()), "/ws/channels/" + ch.writer_ref.channel_id + "?key=" + ch.writer_ref.access_key + "&dir=write");
    REQUIRE(wr.open);
    for (int i = 0; i < 10; ++i) {
        REQUIRE(wr.send(record(i), true));
        REQUIRE(text_of(r.next(arrival)) == record(i));
    }
    boost::system::error_code ec;
    wr.ws.next_layer().socket().close(ec);  // no close frame: the connection just ends
    const item it = r.next(arrival);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::aborted);
    CHECK_FALSE(r.abort_reason().empty());
}
