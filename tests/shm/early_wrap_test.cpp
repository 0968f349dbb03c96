// The writer's early wrap (ring_producer::early_wrap_fits): large records go back to the
// ring's start once everything there is released, so a writer whose readers keep up cycles
// through as little memory as they hold.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "../support/heap_ring.hpp"

using namespace shmchan::shm;
using shmchan::test::heap_ring;
using shmchan::test::ring_bytes;

namespace {
// Pushes `n` bytes (seed `seed`) and returns the ring offset of the record's payload as the
// reader sees it; the view is left for the caller to release.
std::size_t push_and_peek(ring_producer& p, ring_consumer& c, const heap_ring& r, std::size_t n, int seed,
                          record_view& v) {
    auto b = ring_bytes(n, seed);
    REQUIRE(p.try_push(record_type::binary, b.data(), b.size()) == ring_status::ok);
    REQUIRE(c.try_peek(v) == ring_status::ok);
    REQUIRE(v.size == n);
    CHECK(std::memcmp(v.data, b.data(), n) == 0);
    return static_cast<std::size_t>(v.data - r.data()) - sizeof(record_header);
}
// A 4096-byte ring whose writer wraps records from 1000 bytes early.
struct wrapping_ring {
    heap_ring r{4096};
    ring_producer p = [this] {
        auto w = r.producer();
        w.wrap_early_from(1000);
        return w;
    }();
    ring_consumer c = r.consumer();
};
}  // namespace

TEST_CASE("early wrap: a large record goes back to the start once the records there are released", "[ring]") {
    wrapping_ring w;
    auto& [r, p, c] = w;
    record_view v{};
    // Records of 1024 bytes (1000 + header, aligned): each released before the next is written
    // lands at offset 0, not at 1024, 2048, ...
    for (int i = 0; i < 6; ++i) {
        CHECK(push_and_peek(p, c, r, 1000, i, v) == 0);
        c.release();
    }
    CHECK(c.try_peek(v) == ring_status::empty);
}

TEST_CASE("early wrap: records still held are never written over, the writer goes on past them", "[ring]") {
    wrapping_ring w;
    auto& [r, p, c] = w;
    record_view v{};
    auto a = ring_bytes(1000, 1);
    REQUIRE(p.try_push(record_type::binary, a.data(), a.size()) == ring_status::ok);  // at 0, unread
    auto b = ring_bytes(1000, 2);
    REQUIRE(p.try_push(record_type::binary, b.data(), b.size()) == ring_status::ok);  // at 1024
    REQUIRE(c.try_peek(v) == ring_status::ok);
    CHECK(v.data == r.data() + sizeof(record_header));
    CHECK(std::memcmp(v.data, a.data(), 1000) == 0);
    c.release();  // 0..1024 free, 1024..2048 (b) unread
    // The next one fits before b: it wraps early, behind a padding record, and b is intact.
    auto d = ring_bytes(1000, 3);
    REQUIRE(p.try_push(record_type::binary, d.data(), d.size()) == ring_status::ok);
    CHECK(r.cb->producer.tail.load() == 4096 + 1024);
    // And one more does not fit anywhere until b is read.
    CHECK(p.try_push(record_type::binary, d.data(), d.size()) == ring_status::full);
    REQUIRE(c.try_peek(v) == ring_status::ok);
    CHECK(v.data == r.data() + 1024 + sizeof(record_header));
    CHECK(std::memcmp(v.data, b.data(), 1000) == 0);
    c.release();
    REQUIRE(c.try_peek(v) == ring_status::ok);  // the padding is skipped
    CHECK(v.data == r.data() + sizeof(record_header));
    CHECK(std::memcmp(v.data, d.data(), 1000) == 0);
    c.release();
    CHECK(c.try_peek(v) == ring_status::empty);
}

TEST_CASE("early wrap: small records, a ring where it is off, and drop_oldest go on in order", "[ring]") {
    // Each of three records of `n` bytes, released before the next, lands `rec` bytes after the
    // one before it.
    const auto in_order = [](ring_producer& p, ring_consumer& c, const heap_ring& r, std::size_t n,
                             std::size_t rec) {
        record_view v{};
        for (std::size_t i = 0; i < 3; ++i) {
            CHECK(push_and_peek(p, c, r, n, int(i), v) == i * rec);
            c.release();
        }
    };
    heap_ring r(4096);
    SECTION("below the size") {
        auto p = r.producer();
        p.wrap_early_from(1000);
        auto c = r.consumer();
        in_order(p, c, r, 496, 512);
    }
    SECTION("off (0)") {
        auto p = r.producer();
        p.wrap_early_from(0);
        auto c = r.consumer();
        in_order(p, c, r, 1000, 1024);
    }
    SECTION("drop_oldest: its writer never looks at the readers") {
        const auto g = geometry_for(4096, 1, overflow_policy::drop_oldest);
        r.cb->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
        ring_producer p(r.cb, r.data(), g);
        p.wrap_early_from(1000);
        ring_consumer c(r.cb, r.data(), g);
        in_order(p, c, r, 1000, 1024);
    }
}

TEST_CASE("early wrap is on by default for records from 2 MiB", "[ring]") {
    static_assert(default_early_wrap_min == std::size_t{2} << 20);
    const std::size_t cap = std::size_t{32} << 20;
    heap_ring r(cap);
    auto p = r.producer();
    auto c = r.consumer();
    record_view v{};
    CHECK(push_and_peek(p, c, r, default_early_wrap_min, 1, v) == 0);
    c.release();
    CHECK(push_and_peek(p, c, r, default_early_wrap_min, 2, v) == 0);
    c.release();
    CHECK(push_and_peek(p, c, r, default_early_wrap_min - 4096, 3, v) != 0);  // smaller: on in order
    c.release();
}
