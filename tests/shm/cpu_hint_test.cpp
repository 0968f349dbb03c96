// The ends' cpu hints (layout.hpp `cpu`, wait.hpp cpu_tag): each end publishes the CPU it last
// published its position from, and a waiter asks whether the end it waits for is on its own CPU.
#include <catch2/catch.hpp>

#include <sched.h>

#include <vector>

#include "../support/cpus.hpp"
#include "../support/full_ring.hpp"
#include "shmchan/shm/wait.hpp"

using namespace shmchan::shm;
using shmchan::test::allowed_cpus;
using shmchan::test::full_ring;
using shmchan::test::heap_ring;
using shmchan::test::pinned_to;

namespace {
constexpr std::size_t cap = full_ring::cap;
constexpr std::size_t rec = full_ring::rec;
}  // namespace

TEST_CASE("cpu_tag is the CPU the thread runs on, plus one", "[ring][cpu]") {
    for (int c : allowed_cpus()) {
        pinned_to p(c);
        REQUIRE(p.ok());
        ::sched_yield();  // on the new CPU by now (setaffinity migrates before it returns)
        CHECK(cpu_tag() == static_cast<std::uint32_t>(c) + 1);
        CHECK(static_cast<int>(cpu_tag()) == ::sched_getcpu() + 1);
    }
}

TEST_CASE("cpu hints: a commit and a release publish where they ran", "[ring][cpu]") {
    heap_ring r(cap, 2);
    ring_producer p = r.producer();
    ring_consumer c0 = r.consumer(0);
    CHECK(r.cb->producer.cpu.load() == 0);  // nothing published yet: unknown
    const int cpu = allowed_cpus().back();
    pinned_to pin(cpu);
    REQUIRE(pin.ok());
    std::vector<std::byte> b(rec);
    REQUIRE(p.try_push(record_type::binary, b.data(), b.size()) == ring_status::ok);
    CHECK(r.cb->producer.cpu.load() == static_cast<std::uint32_t>(cpu) + 1);
    CHECK(c0.writer_on_cpu(static_cast<std::uint32_t>(cpu) + 1));
    CHECK_FALSE(c0.writer_on_cpu(static_cast<std::uint32_t>(cpu) + 2));
    CHECK_FALSE(c0.writer_on_cpu(0));  // unknown is nobody's CPU
    record_view v{};
    REQUIRE(c0.try_peek(v) == ring_status::ok);
    c0.release();
    CHECK(reader_line(r.cb, 0).cpu.load() == static_cast<std::uint32_t>(cpu) + 1);
    CHECK(reader_line(r.cb, 1).cpu.load() == 0);  // the other reader published nothing
}

TEST_CASE("cpu hints: a full ring holds the writer on a CPU where a reader with records to read ran", "[ring][cpu]") {
    {
        heap_ring r(cap, 1);
        ring_producer p = r.producer();
        std::vector<std::byte> b(rec);
        REQUIRE(p.try_push(record_type::binary, b.data(), b.size()) == ring_status::ok);
        reader_line(r.cb, 0).cpu.store(8);
        CHECK_FALSE(p.held_on_cpu(rec, 8));  // the first lap: room without any reader's release
    }
    full_ring f(3);
    auto& r = f.r;
    auto& p = f.p;
    REQUIRE_FALSE(p.can_claim(rec));
    // Hints written as peers in other processes would: reader 0 on "CPU 7", 1 on 8, 2 on 9.
    for (std::uint32_t i = 0; i < 3; ++i) reader_line(r.cb, i).cpu.store(8 + i);
    CHECK(p.held_on_cpu(rec, 8));
    CHECK(p.held_on_cpu(rec, 10));
    CHECK_FALSE(p.held_on_cpu(rec, 11));  // no reader there
    CHECK_FALSE(p.held_on_cpu(rec, 0));   // unknown is nobody's CPU
    // Reader 0 read everything: it has nothing to run for, and does not keep the writer awake.
    reader_line(r.cb, 0).head.store(4096);
    CHECK_FALSE(p.held_on_cpu(rec, 8));
    // Reader 1 is past the room the next record needs but has records left: it still wants
    // its CPU, and the writer will soon wait for it again.
    reader_line(r.cb, 1).head.store(1024);
    CHECK(p.held_on_cpu(rec, 9));
    // A reader the writer dropped (it died) holds nothing.
    p.drop_reader(1);
    CHECK_FALSE(p.held_on_cpu(rec, 9));
    CHECK(p.held_on_cpu(rec, 10));
}

TEST_CASE("cpu hints: drop_oldest never holds the writer", "[ring][cpu]") {
    heap_ring r(cap, 1);
    ring_producer p(r.cb, r.data(), geometry_for(cap, 1, overflow_policy::drop_oldest));
    std::vector<std::byte> b(rec);
    for (int i = 0; i < 6; ++i) REQUIRE(p.try_push(record_type::binary, b.data(), b.size()) == ring_status::ok);
    reader_line(r.cb, 0).cpu.store(8);
    CHECK_FALSE(p.held_on_cpu(rec, 8));
}
