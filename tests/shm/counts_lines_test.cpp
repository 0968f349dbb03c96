// The counts lines (layout.hpp). The lapped line: the writer publishes where the oldest record
// it kept starts into two slots in turns, so a reader never depends on a writer halfway through
// publishing. The joined line: a recent tail with its counts, where a reader claiming its end
// starts counting.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "../support/heap_ring.hpp"

using namespace shmchan::shm;
using shmchan::test::heap_ring;

namespace {
// A drop_oldest ring of 1024 bytes; records carry their number (8 bytes, 32 per record).
struct dropping_ring {
    heap_ring r{1024};
    ring_geometry g = [this] {
        r.cb->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
        return geometry_for(1024, 1, overflow_policy::drop_oldest);
    }();
    ring_producer p{r.cb, r.data(), g};
    ring_consumer c{r.cb, r.data(), g};

    void push(std::uint64_t from, std::uint64_t to) {
        for (std::uint64_t i = from; i < to; ++i) REQUIRE(p.try_push(record_type::binary, &i, sizeof i) == ring_status::ok);
    }
    std::uint64_t read_one() {
        record_view v{};
        REQUIRE(c.try_peek(v) == ring_status::ok);
        REQUIRE(v.size == sizeof(std::uint64_t));
        std::uint64_t n = 0;
        std::memcpy(&n, v.data, sizeof n);
        c.release();
        return n;
    }
};
}  // namespace

TEST_CASE("lapped line: the writer publishes into the slot readers are not pointed at", "[ring][drop_oldest]") {
    dropping_ring d;
    d.push(0, 100);  // 32 records fit: the writer gave up 68
    const counts_line& l = d.r.cb->lapped;
    const std::uint32_t v = l.version.load();
    CHECK(v > 0);
    CHECK(l.pos.load() == l.slot[v & 1].pos.load());
    CHECK(l.slot[v & 1].seq.load() == 100 - 1024 / 32);
    CHECK(l.slot[v & 1].bytes.load() == 8 * (100 - 1024 / 32));
    d.push(100, 101);
    CHECK(l.version.load() == v + 1);  // the next publication went to the other slot
    CHECK(l.slot[v & 1].seq.load() == 100 - 1024 / 32);  // and left this one alone
}

TEST_CASE("lapped line: a writer stopped halfway through publishing holds no reader up", "[ring][drop_oldest][hostile]") {
    dropping_ring d;
    d.push(0, 100);
    // What a writer stopped (or killed) while it writes the next slot leaves: that slot half
    // written, the version still pointing at the other. (With the single seqlock of layout 6,
    // an odd version, which a reader waited on and then called corrupt.)
    counts_line& l = d.r.cb->lapped;
    counts_slot& next = l.slot[(l.version.load() + 1) & 1];
    next.pos.store(~std::uint64_t{0});
    next.seq.store(3);
    record_view v{};
    REQUIRE(d.c.try_peek(v) == ring_status::lapped);
    ring_consumer::gap g;
    REQUIRE(d.c.skip(g) == ring_status::ok);
    CHECK(g.records == 100 - 1024 / 32);
    CHECK(g.bytes == 8 * g.records);
    CHECK(d.read_one() == g.records);  // the oldest record kept, whole
}

TEST_CASE("joined line: a recent tail with exact counts, published every 64 records", "[ring][drop_oldest]") {
    heap_ring r{1 << 20};  // 32768 records of 32 bytes: nothing is dropped below
    r.cb->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
    const auto g = geometry_for(1 << 20, 1, overflow_policy::drop_oldest);
    ring_producer p{r.cb, r.data(), g};
    const counts_line& l = r.cb->joined;
    for (std::uint64_t i = 0; i < 1000; ++i) {
        REQUIRE(p.try_push(record_type::binary, &i, sizeof i) == ring_status::ok);
        const counts_slot& s = l.slot[l.version.load() & 1];
        const std::uint64_t n = i + 1;  // records committed
        CHECK(l.version.load() == n / join_publish_records);
        CHECK(s.seq.load() == n / join_publish_records * join_publish_records);
        CHECK(s.bytes.load() == 8 * s.seq.load());
        CHECK(s.pos.load() == 32 * s.seq.load());
        CHECK(l.pos.load() == s.pos.load());
    }
}

TEST_CASE("joined line: big records publish every quarter ring", "[ring][drop_oldest]") {
    dropping_ring d;  // 1024 bytes
    std::vector<std::byte> big(200);  // 224 bytes a record: a quarter ring or more after two
    const counts_line& l = d.r.cb->joined;
    REQUIRE(d.p.try_push(record_type::binary, big.data(), big.size()) == ring_status::ok);
    CHECK(l.version.load() == 0);
    REQUIRE(d.p.try_push(record_type::binary, big.data(), big.size()) == ring_status::ok);
    CHECK(l.version.load() == 1);
    CHECK(l.slot[1].pos.load() == 448);
    CHECK(l.slot[1].seq.load() == 2);
    CHECK(l.slot[1].bytes.load() == 400);
}

TEST_CASE("joined line: a reader joining counts from it, not from the oldest record kept", "[ring][drop_oldest][hostile]") {
    dropping_ring d;
    // 32 records kept (164..195); in a ring this small the joined line moves every quarter
    // ring (8 records): it names the tail after record 191.
    d.push(0, 196);
    const std::uint64_t from = d.r.cb->lapped.pos.load(), joined = d.r.cb->joined.pos.load();
    REQUIRE(from == 164 * 32);
    REQUIRE(joined == 192 * 32);
    // Headers the join must not need: the kept records before the joined line's position.
    // Counting from the lapped line (layout 7) walked them and called the ring corrupt.
    std::vector<std::uint32_t> saved;
    for (std::uint64_t pos = from; pos < joined; pos += 32) {
        auto* h = reinterpret_cast<record_header*>(d.r.data() + (pos & 1023));
        saved.push_back(h->length);
        h->length = 0xFFFF'FF00;
    }
    REQUIRE(d.c.join_at_tail() == ring_status::ok);
    CHECK(d.c.read_position() == 196 * 32);
    for (std::uint64_t pos = from, i = 0; pos < joined; pos += 32)  // the writer walks them when it drops
        reinterpret_cast<record_header*>(d.r.data() + (pos & 1023))->length = saved[i++];
    d.push(196, 197);
    CHECK(d.read_one() == 196);
    // Its numbering is the writer's: lapped later, the gap is exact.
    d.push(197, 300);
    record_view v{};
    REQUIRE(d.c.try_peek(v) == ring_status::lapped);
    ring_consumer::gap gp;
    REQUIRE(d.c.skip(gp) == ring_status::ok);
    CHECK(gp.records == 300 - 32 - 197);
    CHECK(gp.bytes == 8 * gp.records);
    CHECK(d.read_one() == 300 - 32);
}

TEST_CASE("joined line: a writer stopped halfway through publishing it holds no joiner up", "[ring][drop_oldest][hostile]") {
    dropping_ring d;
    d.push(0, 130);
    counts_line& l = d.r.cb->joined;
    counts_slot& next = l.slot[(l.version.load() + 1) & 1];
    next.pos.store(~std::uint64_t{0});  // half written: the version still names the other slot
    next.seq.store(5);
    REQUIRE(d.c.join_at_tail() == ring_status::ok);
    CHECK(d.c.read_position() == 130 * 32);
    d.push(130, 131);
    CHECK(d.read_one() == 130);
}

TEST_CASE("joined line: impossible values are corrupt, not an access", "[ring][drop_oldest][hostile]") {
    dropping_ring d;
    d.push(0, 100);
    counts_line& l = d.r.cb->joined;
    counts_slot& s = l.slot[l.version.load() & 1];
    SECTION("past the tail") { s.pos.store(100 * 32 + 64); }
    SECTION("not on a record boundary") { s.pos.store(64 * 32 + 8); }
    CHECK(d.c.join_at_tail() == ring_status::corrupt);
}

TEST_CASE("joined line: a writer end claimed over a joined pos off the record alignment reads no header there", "[ring][drop_oldest][hostile]") {
    // A new writer end counts the records from the joined line's pos to the tail; a pos off
    // the 8-byte alignment once made it read a header at an unaligned address (UBSan, from
    // fuzz_segment_open). It now takes the line's counts as they are and goes on writing.
    dropping_ring d;
    d.push(0, 100);
    counts_line& l = d.r.cb->joined;
    l.slot[l.version.load() & 1].pos.store(100 * 32 - 60);
    ring_producer again{d.r.cb, d.r.data(), d.g};
    for (std::uint64_t i = 100; i < 110; ++i) REQUIRE(again.try_push(record_type::binary, &i, sizeof i) == ring_status::ok);
    record_view v{};
    REQUIRE(d.c.try_peek(v) == ring_status::lapped);
    ring_consumer::gap g;
    REQUIRE(d.c.skip(g) == ring_status::ok);
    CHECK(d.read_one() == g.records);
}

TEST_CASE("lapped line: an impossible oldest position a writer end was claimed over is no count of unread bytes", "[ring][drop_oldest][hostile]") {
    // unread_bytes() took tail - oldest with oldest past the tail: a count near 2^64, and a
    // wait_drained that waited out its deadline.
    heap_ring r{1024};
    r.cb->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
    const ring_geometry g = geometry_for(1024, 1, overflow_policy::drop_oldest);
    counts_line& l = r.cb->lapped;
    l.slot[l.version.load() & 1].pos.store(std::uint64_t{1} << 40);
    ring_producer p{r.cb, r.data(), g};
    CHECK(p.unread_bytes() == 0);  // the reader (head 0) is at the tail (0)
}
