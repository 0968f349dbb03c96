// drop_oldest under a writer that laps its reader again and again: the reader's skip() must
// tell every gap, never call an honest writer corrupt. The writer is a child process on the
// reader's CPU, so the reader is preempted at arbitrary points (between reading the lapped
// line and the tail too) while the writer runs on for a whole time slice, many rings further.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include "../support/cpus.hpp"
#include "../support/heap_ring.hpp"

using namespace shmchan::shm;
using shmchan::test::heap_ring;

TEST_CASE("drop_oldest: a reader lapped again while it skips reports gaps, never corrupt", "[concurrency][ring]") {
    const auto cpus = shmchan::test::allowed_cpus();
    REQUIRE_FALSE(cpus.empty());
    constexpr std::size_t capacity = 1024;  // 32 records of 32 bytes: a lap is quick
    heap_ring r(capacity, 1, true);
    r.cb->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
    const auto g = geometry_for(capacity, 1, overflow_policy::drop_oldest);

    shmchan::test::pinned_to pin(cpus.front());  // the child inherits it
    REQUIRE(pin.ok());
    const pid_t writer = ::fork();
    REQUIRE(writer >= 0);
    if (writer == 0) {
        ring_producer p(r.cb, r.data(), g);
        // Each record carries its number, so the reader can check what it got and the gaps.
        // drop_oldest never refuses for room: any other status is the writer's failure.
        for (std::uint64_t n = 0;; ++n)
            if (p.try_push(record_type::binary, &n, sizeof n) != ring_status::ok) ::_exit(3);
    }

    std::uint64_t got = 0, missed = 0, skips = 0, expect = 0;
    ring_status bad = ring_status::ok;
    std::string wrong;
    {
        ring_consumer c(r.cb, r.data(), g);
        const auto skip = [&] {  // lapped: on to the oldest record kept, counting the gap
            ring_consumer::gap gp;
            bad = c.skip(gp);
            expect += gp.records;
            missed += gp.records;
            ++skips;
        };
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (std::chrono::steady_clock::now() < until && bad == ring_status::ok && wrong.empty()) {
            record_view v{};
            const ring_status st = c.try_peek(v);
            if (st == ring_status::ok) {
                std::uint64_t n = 0;
                if (v.size == sizeof n) std::memcpy(&n, v.data, sizeof n);
                if (!c.intact(c.pending_end())) {  // written over while read: skip, as lapped
                    skip();
                    continue;
                }
                c.release();
                if (v.size != sizeof n || n != expect)
                    wrong = "record " + std::to_string(n) + " where " + std::to_string(expect) + " was due";
                ++expect;
                ++got;
            } else if (st == ring_status::lapped) {
                skip();
            } else if (st != ring_status::empty) {
                bad = st;
            }
        }
    }
    int status = 0;
    const bool writer_ran_on = ::waitpid(writer, &status, WNOHANG) == 0;  // still writing
    ::kill(writer, SIGKILL);
    if (writer_ran_on) ::waitpid(writer, &status, 0);
    INFO("read " << got << ", missed " << missed << ", skips " << skips);
    CHECK(writer_ran_on);
    CHECK(bad == ring_status::ok);
    CHECK(wrong.empty());
    CHECK(skips > 10);  // the writer did lap the reader, many times (~250 here)
}
