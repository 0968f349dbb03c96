// drop_oldest under a writer that laps its reader again and again: the reader's skip() must
// tell every gap, never call an honest writer corrupt. Both threads share one CPU, so the
// reader is preempted at arbitrary points (between reading the lapped line and the tail too)
// while the writer runs on for a whole time slice, many rings further.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "../support/cpus.hpp"
#include "../support/heap_ring.hpp"

using namespace shmchan::shm;
using shmchan::test::heap_ring;

TEST_CASE("drop_oldest: a reader lapped again while it skips reports gaps, never corrupt", "[concurrency][ring]") {
    const auto cpus = shmchan::test::allowed_cpus();
    REQUIRE_FALSE(cpus.empty());
    constexpr std::size_t capacity = 1024;  // 16 records of 64 bytes: a lap is quick
    heap_ring r(capacity);
    r.cb->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
    const auto g = geometry_for(capacity, 1, overflow_policy::drop_oldest);

    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> written{0};
    std::atomic<ring_status> writer_status{ring_status::ok};
    std::thread writer([&] {
        shmchan::test::pinned_to pin(cpus.front());
        ring_producer p(r.cb, r.data(), g);
        // Each record carries its number, so the reader can check what it got and the gaps.
        for (std::uint64_t n = 0; !stop.load(std::memory_order_relaxed); ++n) {
            // drop_oldest never refuses for room: any other status is the writer's failure.
            if ((writer_status = p.try_push(record_type::binary, &n, sizeof n)) != ring_status::ok) return;
            written.store(n + 1, std::memory_order_relaxed);
        }
    });

    std::uint64_t got = 0, missed = 0, skips = 0, expect = 0;
    ring_status bad = ring_status::ok;
    std::string wrong;
    {
        shmchan::test::pinned_to pin(cpus.front());
        ring_consumer c(r.cb, r.data(), g);
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (std::chrono::steady_clock::now() < until && bad == ring_status::ok && wrong.empty()) {
            record_view v{};
            const ring_status st = c.try_peek(v);
            if (st == ring_status::ok) {
                std::uint64_t n = 0;
                if (v.size == sizeof n) std::memcpy(&n, v.data, sizeof n);
                if (!c.intact(c.pending_end())) {  // written over while read: skip, as lapped
                    ring_consumer::gap gp;
                    bad = c.skip(gp);
                    expect += gp.records;
                    missed += gp.records;
                    ++skips;
                    continue;
                }
                c.release();
                if (v.size != sizeof n || n != expect)
                    wrong = "record " + std::to_string(n) + " where " + std::to_string(expect) + " was due";
                ++expect;
                ++got;
            } else if (st == ring_status::lapped) {
                ring_consumer::gap gp;
                bad = c.skip(gp);
                expect += gp.records;
                missed += gp.records;
                ++skips;
            } else if (st != ring_status::empty) {
                bad = st;
            }
        }
    }
    stop = true;
    writer.join();
    INFO("read " << got << ", missed " << missed << ", skips " << skips << ", written " << written.load());
    CHECK(writer_status.load() == ring_status::ok);
    CHECK(bad == ring_status::ok);
    CHECK(wrong.empty());
    CHECK(skips > 10);  // the writer did lap the reader, many times (~250 here)
}
