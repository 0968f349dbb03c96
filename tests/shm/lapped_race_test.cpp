// drop_oldest under a writer that laps its reader again and again: the reader's skip() must
// tell every gap, never call an honest writer corrupt. The writer is a child process on the
// reader's CPU, so the reader is preempted at arbitrary points (between reading the lapped
// line and the tail too) while the writer runs on for a whole time slice, many rings further.
// And readers joining a large ring under a writer that never stops: each starts at the tail
// with the writer's counts, never corrupt.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "../support/cpus.hpp"
#include "../support/heap_ring.hpp"
#include "../support/helpers.hpp"

using namespace shmchan::shm;
using shmchan::test::heap_ring;

namespace {

// A child process that pushes 8-byte records into the ring until killed. Each record carries
// its number, so the reader can check what it got and the gaps. drop_oldest never refuses for
// room: any other status is the writer's failure (exit 3).
pid_t fork_nonstop_writer(heap_ring& r, const ring_geometry& g) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        ring_producer p(r.cb, r.data(), g);
        for (std::uint64_t n = 0;; ++n)
            if (p.try_push(record_type::binary, &n, sizeof n) != ring_status::ok) ::_exit(3);
    }
    return pid;
}

}  // namespace

TEST_CASE("drop_oldest: a reader lapped again while it skips reports gaps, never corrupt", "[concurrency][ring]") {
    const auto cpus = shmchan::test::allowed_cpus();
    REQUIRE_FALSE(cpus.empty());
    constexpr std::size_t capacity = 1024;  // 32 records of 32 bytes: a lap is quick
    heap_ring r(capacity, 1, true);
    r.cb->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
    const auto g = geometry_for(capacity, 1, overflow_policy::drop_oldest);

    shmchan::test::pinned_to pin(cpus.front());  // the child inherits it
    REQUIRE(pin.ok());
    const pid_t writer = fork_nonstop_writer(r, g);
    REQUIRE(writer >= 0);

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

TEST_CASE("drop_oldest: readers join a large ring (64 MiB) under a nonstop writer at the tail, with exact counts", "[concurrency][ring]") {
    // 2M records of 32 bytes. Counting them all from the oldest kept (layout 7) took ~20 ms a
    // join, against a writer that gives up the oldest records first; under load a join could be
    // overtaken 1000 times and fail as corrupt. The joined line leaves a few records to count.
    // Under sanitizers the writer is far slower: a lap of 64 MiB took over a second under TSan,
    // longer than a joiner waits for one.
    constexpr std::size_t capacity = shmchan::test::sanitized ? std::size_t{8} << 20 : std::size_t{64} << 20;
    heap_ring r(capacity, 1, true);
    r.cb->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
    const auto g = geometry_for(capacity, 1, overflow_policy::drop_oldest);
    const pid_t writer = fork_nonstop_writer(r, g);
    REQUIRE(writer >= 0);
    struct killer {
        pid_t pid;
        ~killer() {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    } kill_writer{writer};

    int joins = 0, gaps_checked = 0, lapped_at_once = 0;
    std::string wrong;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(shmchan::test::sanitized ? 10 : 3);
    while (std::chrono::steady_clock::now() < until && wrong.empty() && (joins < 20 || gaps_checked < 3)) {
        ring_consumer c(r.cb, r.data(), g);
        const std::uint64_t tail_before = r.cb->producer.tail.load();
        if (const ring_status js = c.join_at_tail(); js != ring_status::ok) {
            wrong = "join " + std::to_string(joins) + " failed (status " + std::to_string(static_cast<int>(js)) + ")";
            break;
        }
        ++joins;
        const std::uint64_t joined_at = c.read_position();
        if (joined_at < tail_before) wrong = "a join started before the tail it found";
        // The first record it reads, then (lapped: it stops reading meanwhile) the gap and the
        // next: the gap must be exactly the records between them, in the writer's numbering.
        std::uint64_t first = 0, next = 0;
        record_view v{};
        ring_status st;
        while ((st = c.try_peek(v)) == ring_status::empty) {}
        // Descheduled for a whole lap (tens of ms) since the join, as under a loaded ctest -j2:
        // nothing to check this time. Every join lapped so would fail the checks below.
        if (st == ring_status::lapped) {
            ++lapped_at_once;
            continue;
        }
        if (st != ring_status::ok || v.size != sizeof first) {
            wrong = "no record after a join (status " + std::to_string(static_cast<int>(st)) + ", size " +
                    std::to_string(v.size) + ")";
            break;
        }
        std::memcpy(&first, v.data, sizeof first);
        if (!c.intact(c.pending_end())) continue;  // the writer lapped it already: no count to check
        c.release();
        const auto lap_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
        while ((st = c.try_peek(v)) != ring_status::lapped && std::chrono::steady_clock::now() < lap_until) {
            if (st != ring_status::ok && st != ring_status::empty) break;
            ::usleep(1000);  // not reading: the writer laps it
        }
        if (st != ring_status::lapped) continue;  // a slow writer (sanitizers): no gap this time
        // The oldest record kept, where skip() goes, is the next the writer overwrites: stopped
        // (anywhere, a publication included), it cannot do so before the reader checked it.
        int status = 0;
        if (::kill(writer, SIGSTOP) != 0 || ::waitpid(writer, &status, WUNTRACED) != writer || !WIFSTOPPED(status)) {
            wrong = "the writer could not be stopped";
            break;
        }
        ring_consumer::gap gp;
        if (c.skip(gp) != ring_status::ok) {
            wrong = "skip failed";
        } else if (c.try_peek(v) != ring_status::ok || v.size != sizeof next) {
            wrong = "no record after a skip, with the writer stopped";
        } else {
            std::memcpy(&next, v.data, sizeof next);  // before the writer runs on
            if (!c.intact(c.pending_end())) wrong = "a record overwritten with the writer stopped";
        }
        ::kill(writer, SIGCONT);
        if (!wrong.empty()) break;
        if (next != first + 1 + gp.records || gp.bytes != 8 * gp.records)
            wrong = "after record " + std::to_string(first) + " a gap of " + std::to_string(gp.records) +
                    " records, then record " + std::to_string(next) + " (joined at record " +
                    std::to_string(joined_at / 32) + ", skipped to record " + std::to_string(c.read_position() / 32) + ")";
        ++gaps_checked;
    }
    INFO(joins << " joins (" << lapped_at_once << " lapped before their first read), " << gaps_checked
               << " gaps checked: " << wrong);
    CHECK(wrong.empty());
    CHECK(joins >= 20);
    CHECK(gaps_checked >= 1);
}

TEST_CASE("drop_oldest: a join lapped near the end of every walk gives up after a bounded walk", "[concurrency][ring][hostile]") {
    // A ref holder that only moves pointers (the lapped line and the tail, a ring at a time,
    // in the writer's publication order) over a ring of valid empty records laps every walk
    // of the join: that cost up to 1000 walks of the whole ring, with no deadline, on the
    // claiming thread: at least 3 s here, lapped every 3 ms while a walk takes longer. The walk
    // is budgeted now: four rings of headers, ~50 ms for 64 MiB; under TSan headers are walked
    // ~40x slower, so the ring is 8 MiB there (~0.3 s, 2 s under a loaded ctest -j2 at 64 MiB).
    constexpr std::size_t capacity = shmchan::test::sanitized ? std::size_t{8} << 20 : std::size_t{64} << 20;
    heap_ring r(capacity, 1);
    std::memset(r.data(), 0, capacity);
    for (std::size_t off = 0; off < capacity; off += sizeof(record_header)) {  // empty records
        auto* h = reinterpret_cast<record_header*>(r.data() + off);
        h->length = 0;
        h->type = static_cast<std::uint32_t>(record_type::binary);
    }
    r.cb->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
    const auto g = geometry_for(capacity, 1, overflow_policy::drop_oldest);
    r.cb->producer.tail.store(capacity);  // a ring ahead of the lapped line (0)
    std::atomic<bool> stop{false};
    std::atomic<int> moves{0};
    std::thread holder([&] {
        std::uint64_t pos = 0;
        std::uint32_t v = 0;
        for (; !stop.load(); ++moves) {
            std::this_thread::sleep_for(std::chrono::milliseconds(3));
            pos += capacity;
            counts_slot& s = r.cb->lapped.slot[(v + 1) & 1];
            s.pos.store(pos);
            s.seq.store(0);
            s.bytes.store(0);
            r.cb->lapped.version.store(++v);
            r.cb->lapped.pos.store(pos);
            r.cb->producer.tail.store(pos + capacity);
        }
    });
    ring_consumer c(r.cb, r.data(), g);
    const auto t0 = std::chrono::steady_clock::now();
    const ring_status st = c.join_at_tail();
    const auto took = std::chrono::steady_clock::now() - t0;
    stop = true;
    holder.join();
    INFO("join: status " << static_cast<int>(st) << " after "
                         << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms, "
                         << moves.load() << " laps");
    // Lapped at every try, it ends as corrupt (or ok, when a try read the lapped line and the
    // tail between the holder's two stores, an empty ring): what matters is that it ends after
    // a few walks, not a thousand.
    CHECK((st == ring_status::corrupt || st == ring_status::ok));
    CHECK(took < std::chrono::seconds(2));
}
