// Two threads on one channel: order, wake-ups, the event fd, and ends finishing together.
#include <catch2/catch.hpp>

#include <poll.h>
#include <random>
#include <thread>
#include <unistd.h>

#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"
#include "support/process.hpp"

using namespace shmchan;
using namespace std::chrono_literals;

namespace {
void drain(int fd) {
    std::uint64_t v;
    while (::read(fd, &v, sizeof v) == sizeof v) {
    }
}
bool readable_within(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1;
}
}  // namespace

TEST_CASE("threaded: chunks, loans and messages arrive complete and in order", "[concurrency]") {
    for (std::uint32_t spin : {0u, 50u}) {  // sleeping on the futex, and spinning first
        channel_options o;
        o.capacity = 16384;
        o.spin_us = spin;
        channel ch = create_channel(o);
        const std::size_t maxr = ch.writer.max_record();
        constexpr int records = 20000;

        stream_checksum sent;
        std::error_code werr;
        std::thread producer([&] {
            std::mt19937 rng(42);
            std::vector<std::byte> buf(3 * maxr);
            std::uint64_t off = 0;
            for (int i = 0; i < records && !werr; ++i) {
                const std::size_t n = rng() % (i % 100 == 0 ? buf.size() : 700);
                if (i % 7 == 0) {
                    werr = ch.writer.send_message("m" + std::to_string(i));
                    continue;
                }
                if (i % 2 == 0 && n <= maxr) {
                    loan l = ch.writer.get_loan(n);
                    if (!l) {
                        werr = l.error();
                        break;
                    }
                    fill_pattern(l.data(), off);
                    sent.update(l.data());
                    l.commit();
                } else {
                    fill_pattern(std::span(buf.data(), n), off);
                    sent.update(std::span(buf.data(), n));
                    werr = ch.writer.write(std::span(buf.data(), n));
                }
                off += n;
            }
            if (!werr) werr = ch.writer.close();
        });

        stream_checksum got;
        int expect_msg = 0;
        bool msgs_in_order = true;
        for (;;) {
            item it = ch.reader.next(10s);
            if (it.is_chunk()) got.update(it.data());
            else if (it.is_message()) {
                msgs_in_order &= it.text() == "m" + std::to_string(expect_msg);
                expect_msg += 7;
            } else {
                CHECK(it.is_end());
                CHECK_FALSE(it.error());
                break;
            }
        }
        producer.join();
        CHECK_FALSE(werr);
        CHECK(msgs_in_order);
        CHECK(expect_msg == (records + 6) / 7 * 7);
        CHECK(got.bytes() == sent.bytes());
        CHECK(got.value() == sent.value());
    }
}

TEST_CASE("the event fd polls readable when data, end or abort arrive", "[concurrency]") {
    channel ch = create_channel();
    reader r = std::move(ch.reader);
    const int fd = r.event_fd();
    CHECK(r.event_fd() == fd);
    auto drain_fd = [fd] { drain(fd); };
    auto wait_readable = [fd](int ms) { return readable_within(fd, ms); };
    wait_readable(200);  // an initial "maybe" is allowed
    drain_fd();
    CHECK(r.try_next().error() == errc::would_block);

    std::thread w([&] {
        std::this_thread::sleep_for(50ms);
        (void)ch.writer.write("ping");
    });
    REQUIRE(wait_readable(5000));
    drain_fd();
    w.join();
    item it = r.try_next();
    // The fd may fire before the record is visible to this thread only if the watcher saw the
    // tail first; then a short blocking read gets it.
    if (it.error() == errc::would_block) it = r.next(1s);
    REQUIRE(it.is_chunk());
    CHECK(it.text() == "ping");
    it.release();
    CHECK(r.try_next().error() == errc::would_block);

    ch.writer.abort("bye");
    REQUIRE(wait_readable(5000));
    drain_fd();
    CHECK(r.try_next().error() == errc::aborted);
    CHECK(r.abort_reason() == "bye");
}

TEST_CASE("ends finishing at the same moment always remove the segment", "[concurrency]") {
    for (int i = 0; i < 200; ++i) {
        channel ch = create_channel(shmchan::test::opts(8192, 0));
        const std::string id = ch.reader_ref.channel_id;
        REQUIRE_FALSE(ch.writer.write("x"));
        REQUIRE(ch.reader.next().is_chunk());
        std::thread a([&] { (void)ch.writer.close(); });
        std::thread b([&] { ch.reader = reader(); });  // reader leaves as the writer closes
        a.join();
        b.join();
        REQUIRE_FALSE(shmchan::test::segment_exists(id));
    }
}

TEST_CASE("the writer's event fd polls readable when room appears or the reader leaves", "[concurrency]") {
    channel ch = create_channel(shmchan::test::opts(4096, 0));
    const int fd = ch.writer.event_fd();
    auto drain_fd = [fd] { drain(fd); };
    auto wait_readable = [fd](int ms) { return readable_within(fd, ms); };
    std::vector<std::byte> chunk(1000);
    while (!ch.writer.try_write(chunk)) {
    }
    CHECK(ch.writer.try_write(chunk) == errc::would_block);
    wait_readable(200);
    drain_fd();
    std::thread r([&] {
        std::this_thread::sleep_for(50ms);
        item it = ch.reader.next();
    });  // the item is released as the thread ends: room for one more chunk
    REQUIRE(wait_readable(5000));
    r.join();
    drain_fd();
    CHECK_FALSE(ch.writer.try_write(chunk));

    ch.reader = reader();  // the reader leaves
    REQUIRE(wait_readable(5000));
    CHECK(ch.writer.try_write(chunk) == errc::peer_closed);
}

// Messages one at a time, each after a pause longer than the reader's spin: the reader sleeps
// before each (shm/wake.hpp). A lost wake-up would be found only by the 50 ms poll of the
// sleep: count the messages that took 30 ms or more.
namespace {
void reader_sleeps_before_each(const channel_options& o) {
    channel ch = create_channel(o);
    constexpr int rounds = 400;
    // Each after a pause beyond the spin budget.
    const test::paced_run r = test::one_at_a_time(ch.writer, rounds, std::chrono::microseconds(400),
                                                  std::chrono::milliseconds(30), [&] {
                                                      item it = ch.reader.next(std::chrono::seconds(2));
                                                      return it.is_chunk() ? 1 : -1;
                                                  });
    CHECK(r.taken == rounds);
    CHECK(r.slow <= 8);  // the odd descheduling on a loaded machine; a lost wake-up each time would be 20
}
}  // namespace

TEST_CASE("a reader sleeping before every message is woken at once by each", "[concurrency]") {
    reader_sleeps_before_each(test::opts(4096, 0));
}

// channel_options::rmw_wakes (shm/wake.hpp): the ends promise the read-modify-write form, and
// their sleeping peers skip the membarrier. Pauses longer than the spin make every wait a
// sleep; a lost wake-up would show as a wait of the 50 ms poll.
TEST_CASE("ends that promised read-modify-write wakes wake their sleeping peer at once", "[concurrency]") {
    channel_options o = test::opts(4096, 0);
    o.rmw_wakes = true;
    SECTION("the reader sleeps for each message") { reader_sleeps_before_each(o); }
    SECTION("the writer sleeps for room before each record") {
        channel ch = create_channel(o);
        const std::vector<std::byte> rec(1500, std::byte{7});  // two fill the 4 KiB ring
        REQUIRE_FALSE(ch.writer.write(rec));
        REQUIRE_FALSE(ch.writer.write(rec));
        constexpr int rounds = 300;
        std::atomic<int> slow{0};
        std::thread w([&] {
            for (int i = 0; i < rounds; ++i) {
                const auto t0 = std::chrono::steady_clock::now();
                if (ch.writer.write(rec)) return;  // waits for the reader's next release
                if (std::chrono::steady_clock::now() - t0 > 30ms) ++slow;
            }
        });
        int got = 0;
        for (int i = 0; i < rounds + 2; ++i) {
            std::this_thread::sleep_for(400us);  // the writer is asleep by now
            item it = ch.reader.next(std::chrono::seconds(2));
            if (!it.is_chunk()) break;
            CHECK(it.data().size() == rec.size());
            ++got;
        }
        w.join();
        CHECK(got == rounds + 2);
        CHECK(slow.load() <= 8);  // the odd descheduling; each of the pauses is 0.4 ms
    }
}
