// The engine's bridge to a socket reader (src/engine/ring_to_socket.cpp) writes records as its
// own WebSocket frames and reads the client's frames itself: a client that pings all along a
// large stream gets every byte intact and a pong for every ping, never inside a record.
// (Violations, and what the writer learns of them: peer_fate_test.cpp; the parser:
// tests/wire/client_frames_test.cpp; the same over wss://: tls_test.cpp.)
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

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

// Records up to 512 bytes leave copied into one staging buffer, larger ones straight from the
// ring, in the same writes: a mix around that boundary, chunks and messages (one not UTF-8,
// which goes repaired), arrives whole and in order at a socket reader.
TEST_CASE("ring to socket: small records copied and large ones sent from the ring arrive in order", "[engine][socket]") {
    engine eng(quiet_engine());
    worker wk(eng.url());
    channel ch = wk.create_channel();
    const std::size_t sizes[] = {2, 1, 63, 511, 512, 513, 4096, 70000, 7, 300};
    constexpr int records = 20000;
    auto body = [](int i, std::size_t n) {
        std::string b(n, '\0');
        for (std::size_t k = 0; k < n; ++k) b[k] = static_cast<char>('a' + (i * 7 + static_cast<int>(k)) % 26);
        return b;
    };
    std::error_code werr;
    std::thread t([&] {
        writer w = open_writer(ch.writer_ref, via(transport::shm, eng.url()));
        for (int i = 0; i < records && !werr; ++i) {
            const std::string b = body(i, sizes[i % std::size(sizes)]);
            if (i % 3 == 1) werr = w.send_message(i == 4 ? std::string("bad \xff") : b);
            else werr = w.write(b);
        }
        if (!werr) werr = w.close();
    });
    reader r = open_reader(ch.reader_ref, via(transport::socket, eng.url()));
    int got = 0, wrong = 0;
    for (;; ++got) {
        item it = r.next(30s);
        if (!it.is_chunk() && !it.is_message()) {
            CHECK(it.is_end());
            break;
        }
        std::string want = body(got, sizes[got % std::size(sizes)]);
        if (got % 3 == 1 && got == 4) want = "bad \xef\xbf\xbd";
        const std::string have(reinterpret_cast<const char*>(it.data().data()), it.data().size());
        if (have != want || it.is_message() != (got % 3 == 1)) ++wrong;
    }
    t.join();
    CHECK_FALSE(werr);
    CHECK(got == records);
    CHECK(wrong == 0);
}
