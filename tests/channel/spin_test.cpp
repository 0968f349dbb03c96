// Spinning beside the peer (waiting.hpp, spin_on_peer_cpu): an end that waits for a peer which
// last published from the waiter's own CPU sleeps at once, since the peer cannot run there while
// the waiter spins; a peer on another CPU is still spun for. Two threads pinned to CPUs, a
// fixed spin of 100 ms, and the waiting thread's CPU time tell which happened.
#include <catch2/catch.hpp>

#include <time.h>

#include <atomic>
#include <thread>
#include <vector>

#include "shmchan/shmchan.hpp"
#include "support/cpus.hpp"

using namespace shmchan;
using shmchan::test::allowed_cpus;
using shmchan::test::pinned_to;
using namespace std::chrono_literals;

namespace {
constexpr std::uint32_t spin_us = 100000;  // a fixed spin long enough to see in CPU time
constexpr std::size_t payload = 1000;      // records of 1 KiB: four fill a 4 KiB ring

std::chrono::nanoseconds thread_cpu() {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
}
// This thread on `cpu`, and a 4 KiB channel whose ends spin a fixed spin_us before sleeping.
struct spinning_channel {
    explicit spinning_channel(int cpu) : here(cpu), ch(create_channel(options())) { REQUIRE(here.ok()); }
    static channel_options options() {
        channel_options o;
        o.capacity = 4096;
        o.spin_us = spin_us;
        o.spin_max_us = spin_us;
        return o;
    }
    pinned_to here;
    channel ch;
    const std::vector<std::byte> rec = std::vector<std::byte>(payload, std::byte{7});
};

// The writer (this thread, on `writer_cpu`) fills the ring; a reader thread on `reader_cpu`
// takes four records, releasing three, and holds the fourth for 300 ms. The writer's CPU time
// while it writes four more, the last of which waits for that fourth record's room.
std::chrono::nanoseconds writer_wait_cpu(int writer_cpu, int reader_cpu) {
    spinning_channel sc(writer_cpu);
    channel& ch = sc.ch;
    const std::vector<std::byte>& rec = sc.rec;
    for (int i = 0; i < 4; ++i) REQUIRE_FALSE(ch.writer.write(rec));
    std::atomic<bool> holding{false}, pinned{true};
    std::size_t got = 0;
    std::thread r([&] {
        pinned_to there(reader_cpu);
        pinned = there.ok();
        item held;  // the fourth record, kept: the writer's eighth needs its room
        for (int i = 0; i < 4; ++i) {
            held = ch.reader.next(10s);  // releases the one before, publishing this CPU
            got += held.is_chunk();
        }
        holding = true;
        std::this_thread::sleep_for(300ms);
        held.release();
        for (item it = ch.reader.next(10s); it.is_chunk(); it = ch.reader.next(10s)) ++got;
    });
    while (!holding) std::this_thread::sleep_for(1ms);
    const auto t0 = thread_cpu();
    for (int i = 0; i < 4; ++i) CHECK_FALSE(ch.writer.write(rec));
    const auto used = thread_cpu() - t0;
    CHECK_FALSE(ch.writer.close());
    r.join();
    REQUIRE(pinned);
    CHECK(got == 8);
    return used;
}

// The writer (this thread, on `writer_cpu`) writes one record, which a reader thread on
// `reader_cpu` reads; then the reader waits 300 ms for the next. The reader's CPU time in that
// wait.
std::chrono::nanoseconds reader_wait_cpu(int writer_cpu, int reader_cpu) {
    spinning_channel sc(writer_cpu);
    channel& ch = sc.ch;
    const std::vector<std::byte>& rec = sc.rec;
    REQUIRE_FALSE(ch.writer.write(rec));
    std::atomic<bool> waiting{false}, pinned{true}, first{false}, second{false};
    std::chrono::nanoseconds used{};
    std::thread r([&] {
        pinned_to there(reader_cpu);
        pinned = there.ok();
        first = ch.reader.next(10s).is_chunk();
        waiting = true;
        if (!first) return;
        const auto t0 = thread_cpu();
        second = ch.reader.next(10s).is_chunk();
        used = thread_cpu() - t0;
    });
    while (!waiting) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(300ms);
    CHECK_FALSE(ch.writer.write(rec));
    r.join();
    REQUIRE(pinned);
    REQUIRE(first);
    CHECK(second);
    CHECK_FALSE(ch.writer.close());
    return used;
}
}  // namespace

TEST_CASE("spin: a writer whose reader in the way runs on its own CPU sleeps instead of spinning", "[concurrency][spin]") {
    const auto cpus = allowed_cpus();
    const auto same = writer_wait_cpu(cpus[0], cpus[0]);
    INFO("writer CPU while held by a reader on its CPU: " << same.count() / 1000 << " us of a " << spin_us << " us spin");
    CHECK(same < 20ms);
    if (cpus.size() < 2) return;  // nothing to compare with on one CPU
    const auto other = writer_wait_cpu(cpus[0], cpus[1]);
    INFO("writer CPU while held by a reader on another CPU: " << other.count() / 1000 << " us");
    CHECK(other > 20ms);  // it spun (a loaded machine may take part of that CPU away)
}

TEST_CASE("spin: a reader whose writer last committed on its own CPU sleeps instead of spinning", "[concurrency][spin]") {
    const auto cpus = allowed_cpus();
    const auto same = reader_wait_cpu(cpus[0], cpus[0]);
    INFO("reader CPU while its writer is on its CPU: " << same.count() / 1000 << " us of a " << spin_us << " us spin");
    CHECK(same < 20ms);
    if (cpus.size() < 2) return;
    const auto other = reader_wait_cpu(cpus[0], cpus[1]);
    INFO("reader CPU while its writer is on another CPU: " << other.count() / 1000 << " us");
    CHECK(other > 20ms);
}
