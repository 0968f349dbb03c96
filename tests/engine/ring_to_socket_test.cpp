// The engine's bridge to a socket reader (src/engine/ring_to_socket.cpp) writes records as its
// own WebSocket frames and reads the client's frames itself: a client that pings all along a
// large stream gets every byte intact and a pong for every ping, never inside a record.
// (Violations, and what the writer learns of them: peer_fate_test.cpp; the parser:
// tests/wire/client_frames_test.cpp; the same over wss://: tls_test.cpp.)
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"
#include "support/pinging_reader.hpp"
#include "support/raw_client.hpp"
#include "support/streams.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::port_of;
using shmchan::test::quiet_engine;
using shmchan::test::raw_client;
using shmchan::test::via;

TEST_CASE("ring to socket: a client pinging all along a 64 MiB stream gets every byte and every pong", "[engine][socket]") {
    engine eng(quiet_engine());
    worker wk(eng.url());
    channel ch = wk.create_channel();
    raw_client rd(port_of(eng.url()), "/ws/channels/" + ch.reader_ref.channel_id + "?key=" + ch.reader_ref.access_key + "&dir=read");
    REQUIRE(rd.open);
    writer w = open_writer(ch.writer_ref, via(transport::shm, eng.url()));

    // The writer streams until 64 MiB went and 100 pongs came back meanwhile (so that pongs
    // do cross the stream), then ends it.
    constexpr std::uint64_t min_bytes = std::uint64_t{64} << 20;
    std::atomic<int> pongs{0};
    std::uint64_t written = 0;
    std::error_code werr;
    std::thread t([&] { werr = test::write_pattern_until(w, min_bytes, [&] { return pongs.load() >= 100; }, written); });
    const test::pinged_stream got = test::read_while_pinging(rd.ws, rd.ioc, pongs, 120s);
    t.join();

    CHECK_FALSE(werr);
    test::check_pinged_stream(got, written, min_bytes);
    CHECK(got.close_reason == "stream_complete");
    CHECK(got.pings - got.pongs <= 1);  // the last ping may meet the end of the stream
}
