// The space line's need hints (shm/wake.hpp, ring_producer.hpp): with several readers, only the release
// that gives a sleeping writer its room wakes it. A wake shows as a bump of the line's `seq`;
// a sleeper is simulated by counting one in `waiting`, as prepare_sleep() does.
#include <catch2/catch.hpp>

#include <vector>

#include "../support/full_ring.hpp"

using namespace shmchan::shm;
using shmchan::test::full_ring;
using shmchan::test::heap_ring;

namespace {
constexpr std::size_t cap = full_ring::cap;
constexpr std::size_t rec = full_ring::rec;
}  // namespace

TEST_CASE("need hints: of three readers only the last to free the room wakes the writer", "[ring][wake]") {
    full_ring f(3);
    auto& cs = f.cs;
    f.writer_sleeps();
    const std::uint32_t w0 = f.wakes();
    cs[0].release_to(1024);  // room for the next record once all three are past the first
    cs[2].release_to(4096);
    CHECK(f.wakes() == w0);  // reader 1 still holds it: nobody wakes the writer for nothing
    cs[1].release_to(512 + 16);  // not yet past the first record
    CHECK(f.wakes() == w0);
    cs[1].release_to(1024);
    CHECK(f.wakes() == w0 + 1);
    CHECK(f.p.can_claim(rec));
}

TEST_CASE("need hints: a reader dropped by the writer is not waited for", "[ring][wake]") {
    full_ring f(2);
    auto& cs = f.cs;
    f.p.drop_reader(1);  // it died: its head stays where it was
    f.writer_sleeps();
    const std::uint32_t w0 = f.wakes();
    cs[0].release_to(1024);
    CHECK(f.wakes() == w0 + 1);
}

TEST_CASE("need hints: none said (zero) means every release wakes a sleeper", "[ring][wake]") {
    full_ring f(2);
    auto& cs = f.cs;
    f.writer_sleeps();
    f.p.clear_need();  // an event-fd watcher sleeps here, or a writer of an older build
    const std::uint32_t w0 = f.wakes();
    cs[0].release_to(16 + 16);
    CHECK(f.wakes() == w0 + 1);
}

TEST_CASE("need hints: a drained writer is woken when every reader read everything", "[ring][wake]") {
    full_ring f(2);
    auto& cs = f.cs;
    f.p.say_need(0, true);
    f.r.cb->space.waiting.store(1);
    const std::uint32_t w0 = f.wakes();
    cs[0].release_to(4096);
    cs[1].release_to(3072);
    CHECK(f.wakes() == w0);
    cs[1].release_to(4096);
    CHECK(f.wakes() == w0 + 1);
}

TEST_CASE("need hints are hints: bits of readers the segment does not have are ignored", "[ring][wake]") {
    full_ring f(2);
    auto& cs = f.cs;
    f.writer_sleeps();
    // A hostile peer rewrites them: reader 63's line is not there (ASan would see it read).
    f.r.cb->space.need_readers.store(~std::uint64_t{0});
    const std::uint32_t w0 = f.wakes();
    cs[1].release_to(1024);
    CHECK(f.wakes() == w0);  // reader 0 (a real one) is still in the way
    cs[0].release_to(1024);
    CHECK(f.wakes() == w0 + 1);
    // An impossible need: nobody wakes the writer, whose sleep is bounded by the poll interval.
    f.r.cb->space.need_head.store(~std::uint64_t{0});
    f.r.cb->space.woken.store(0);
    cs[0].release_to(2048);
    CHECK(f.wakes() == w0 + 1);
}

TEST_CASE("rmw wake: a sleeper that asked for the read-modify-write form is woken, and only then", "[ring][wake]") {
    heap_ring r(cap, 1);
    ring_producer p = r.producer();
    ask_rmw_wake(r.cb->data);  // as the event-fd watcher does on its first sleep on a line
    CHECK(r.cb->data.rmw_wake.load() != 0);
    std::vector<std::byte> b(16);
    const std::uint32_t s0 = r.cb->data.seq.load();
    REQUIRE(p.try_push(record_type::binary, b.data(), b.size()) == ring_status::ok);
    CHECK(r.cb->data.seq.load() == s0);  // nobody asleep: no wake
    r.cb->data.woken.store(0);
    r.cb->data.waiting.store(1);  // a sleeper announced itself
    REQUIRE(p.try_push(record_type::binary, b.data(), b.size()) == ring_status::ok);
    CHECK(r.cb->data.seq.load() == s0 + 1);
    CHECK(has_sleeper(r.cb->data));
}

TEST_CASE("rmw wakes: each end's promise counts once, and a line's sleepers rely on it only when every waker promised", "[ring][wake]") {
    full_ring f(3);
    CHECK_FALSE(wakers_promised(f.r.cb->data, 1));  // nobody promised: the barrier stays
    f.p.promise_rmw_wakes();
    f.p.promise_rmw_wakes();  // a second call by the same end is no second waker
    CHECK(f.r.cb->data.rmw_wakers.load() == 1);
    CHECK(wakers_promised(f.r.cb->data, 1));   // the data line has one waker, the writer
    CHECK_FALSE(wakers_promised(f.r.cb->data, 0));  // "unknown" never skips the barrier
    // The space line has one waker per reader: two of three promising is not enough.
    f.cs[0].promise_rmw_wakes();
    f.cs[2].promise_rmw_wakes();
    CHECK_FALSE(wakers_promised(f.r.cb->space, 3));
    f.cs[1].promise_rmw_wakes();
    CHECK(wakers_promised(f.r.cb->space, 3));
    bool long_ok = false;
    prepare_sleep(f.r.cb->space, long_ok, 3);  // no barrier needed, so long sleeps are fine
    CHECK(long_ok);
    finish_sleep(f.r.cb->space);
}

TEST_CASE("rmw wakes: the promising ends still wake a sleeper, and only then", "[ring][wake]") {
    full_ring f(1);
    f.p.promise_rmw_wakes();
    f.cs[0].promise_rmw_wakes();
    // The writer sleeps for room; the reader's release that gives it room wakes it.
    f.writer_sleeps();
    const std::uint32_t w0 = f.wakes();
    f.cs[0].release_to(1024);
    CHECK(f.wakes() == w0 + 1);
    // The reader sleeps for data (the line's rmw_wake is zero: only the promise asks for the
    // RMW form); the next commit wakes it, and one without a sleeper wakes nobody.
    REQUIRE(f.r.cb->data.rmw_wake.load() == 0);
    std::vector<std::byte> b(16);
    const std::uint32_t s0 = f.r.cb->data.seq.load();
    f.r.cb->data.woken.store(0);
    f.r.cb->data.waiting.store(1);
    REQUIRE(f.p.try_push(record_type::binary, b.data(), b.size()) == ring_status::ok);
    CHECK(f.r.cb->data.seq.load() == s0 + 1);
    f.r.cb->data.waiting.store(0);
    f.r.cb->data.woken.store(0);
    REQUIRE(f.p.try_push(record_type::binary, b.data(), b.size()) == ring_status::ok);
    CHECK(f.r.cb->data.seq.load() == s0 + 1);
}
