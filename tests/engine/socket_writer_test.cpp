// The socket writer's close(): one that runs out of time (the engine cannot take the end yet)
// loses nothing and goes on when called again. The GStreamer sink closes in slices of 100 ms,
// and under load a slice once ended before the engine's answer: the close was given up (the
// connection shut) and the next call said "already closed".
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <thread>

#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::quiet_engine;
using shmchan::test::via;

namespace {
// The bytes at `offset` of fill_pattern's stream.
bool is_pattern(std::span<const std::byte> got, std::uint64_t offset) {
    std::vector<std::byte> want(got.size());
    fill_pattern(want, offset);
    return std::equal(got.begin(), got.end(), want.begin());
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
