// The lapped line (layout.hpp): the writer publishes where the oldest record it kept starts
// into two slots in turns, so a reader never depends on a writer halfway through publishing.
#include <catch2/catch.hpp>

#include <cstring>

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
    const lapped_line& l = d.r.cb->lapped;
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
    lapped_line& l = d.r.cb->lapped;
    lapped_slot& next = l.slot[(l.version.load() + 1) & 1];
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
