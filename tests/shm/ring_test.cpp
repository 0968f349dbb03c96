#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "../support/heap_ring.hpp"

using namespace shmchan::shm;
using shmchan::test::heap_ring;
using shmchan::test::ring_bytes;

TEST_CASE("an empty ring has nothing to peek", "[ring]") {
    heap_ring r(4096);
    auto c = r.consumer();
    record_view v{};
    CHECK(c.try_peek(v) == ring_status::empty);
}

TEST_CASE("records come out in order with their type and bytes", "[ring]") {
    heap_ring r(4096);
    auto p = r.producer();
    auto c = r.consumer();
    auto a = ring_bytes(100, 1), b = ring_bytes(0, 2);
    REQUIRE(p.try_push(record_type::binary, a.data(), a.size()) == ring_status::ok);
    REQUIRE(p.try_push(record_type::text, "hi", 2) == ring_status::ok);
    REQUIRE(p.try_push(record_type::binary, b.data(), 0) == ring_status::ok);
    REQUIRE(p.try_push(record_type::end, nullptr, 0) == ring_status::ok);

    record_view v{};
    REQUIRE(c.try_peek(v) == ring_status::ok);
    CHECK(v.type == record_type::binary);
    REQUIRE(v.size == 100);
    CHECK(std::memcmp(v.data, a.data(), 100) == 0);
    c.release();
    REQUIRE(c.try_peek(v) == ring_status::ok);
    CHECK(v.type == record_type::text);
    CHECK(std::string(reinterpret_cast<const char*>(v.data), v.size) == "hi");
    c.release();
    REQUIRE(c.try_peek(v) == ring_status::ok);
    CHECK(v.type == record_type::binary);
    CHECK(v.size == 0);
    c.release();
    REQUIRE(c.try_peek(v) == ring_status::ok);
    CHECK(v.type == record_type::end);
    c.release();
    CHECK(c.try_peek(v) == ring_status::empty);
}

TEST_CASE("a full ring refuses a record until the reader releases", "[ring]") {
    heap_ring r(4096);
    auto p = r.producer();
    auto c = r.consumer();
    auto a = ring_bytes(1000, 3);  // 1008-byte records after the 16-byte header and alignment
    int pushed = 0;
    while (p.try_push(record_type::binary, a.data(), a.size()) == ring_status::ok) ++pushed;
    CHECK(pushed == 4);  // 4 * 1024 = 4096
    CHECK(p.try_push(record_type::binary, a.data(), a.size()) == ring_status::full);
    record_view v{};
    REQUIRE(c.try_peek(v) == ring_status::ok);
    CHECK(p.try_push(record_type::binary, a.data(), a.size()) == ring_status::full);  // not released yet
    c.release();
    CHECK(p.try_push(record_type::binary, a.data(), a.size()) == ring_status::ok);
}

TEST_CASE("a record that does not fit before the end wraps behind a padding record", "[ring]") {
    heap_ring r(4096);
    auto p = r.producer();
    auto c = r.consumer();
    record_view v{};
    for (std::size_t n : {2000u, 1000u}) {  // records of 2016 and 1024 bytes
        auto first = ring_bytes(n, 4);
        REQUIRE(p.try_push(record_type::binary, first.data(), first.size()) == ring_status::ok);
        REQUIRE(c.try_peek(v) == ring_status::ok);
        c.release();
    }  // head = tail = 3040: 1056 bytes left before the end
    auto big = ring_bytes(1500, 5);
    CHECK(p.can_claim(1500));
    REQUIRE(p.try_push(record_type::binary, big.data(), big.size()) == ring_status::ok);
    // The padding took the tail end; the record starts at offset 0.
    CHECK(r.cb->producer.tail.load() == 4096 + record_size(1500));
    REQUIRE(c.try_peek(v) == ring_status::ok);
    CHECK(v.data == r.data() + sizeof(record_header));
    REQUIRE(v.size == 1500);
    CHECK(std::memcmp(v.data, big.data(), 1500) == 0);
    c.release();
    CHECK(c.try_peek(v) == ring_status::empty);
}

TEST_CASE("the largest record fits once the ring is empty, wherever the tail is", "[ring]") {
    const std::size_t cap = 8192;
    heap_ring r(cap);
    auto p = r.producer();
    auto c = r.consumer();
    const std::size_t maxp = p.max_payload();
    CHECK(maxp == cap / 2 - sizeof(record_header));
    auto big = ring_bytes(maxp, 6);
    record_view v{};
    for (std::size_t lead : {0ul, 16ul, 1000ul, 3000ul, 4000ul, 2500ul}) {
        if (lead) {
            auto pad = ring_bytes(lead - std::min<std::size_t>(lead, 16), 7);
            REQUIRE(p.try_push(record_type::binary, pad.data(), pad.size()) == ring_status::ok);
            REQUIRE(c.try_peek(v) == ring_status::ok);
            c.release();
        }
        REQUIRE(p.try_push(record_type::binary, big.data(), big.size()) == ring_status::ok);
        REQUIRE(c.try_peek(v) == ring_status::ok);
        REQUIRE(v.size == maxp);
        CHECK(std::memcmp(v.data, big.data(), maxp) == 0);
        c.release();
    }
}

TEST_CASE("a record larger than the largest payload is refused", "[ring]") {
    heap_ring r(4096);
    auto p = r.producer();
    ring_status st;
    CHECK(p.try_claim(p.max_payload() + 1, record_type::binary, st) == nullptr);
    CHECK(st == ring_status::too_large);
    CHECK(p.try_claim(p.max_payload(), record_type::binary, st) != nullptr);
}

TEST_CASE("a loan can be committed shorter than claimed", "[ring]") {
    heap_ring r(4096);
    auto p = r.producer();
    auto c = r.consumer();
    ring_status st;
    std::byte* dst = p.try_claim(1000, record_type::binary, st);
    REQUIRE(dst);
    std::memset(dst, 0xab, 10);
    p.commit(10);
    record_view v{};
    REQUIRE(c.try_peek(v) == ring_status::ok);
    CHECK(v.size == 10);
    CHECK(v.data[9] == std::byte{0xab});
    c.release();
    CHECK(reader_line(r.cb, 0).head.load() == record_size(10));
}

TEST_CASE("the reader refuses corrupt records instead of reading out of bounds", "[ring][hostile]") {
    heap_ring r(4096);
    auto p = r.producer();
    auto a = ring_bytes(64, 8);
    REQUIRE(p.try_push(record_type::binary, a.data(), a.size()) == ring_status::ok);
    auto* h = reinterpret_cast<record_header*>(r.data());
    record_view v{};

    SECTION("length larger than the record") {
        h->length = 1u << 30;
        CHECK(r.consumer().try_peek(v) == ring_status::corrupt);
    }
    SECTION("length past the tail") {
        h->length = 200;
        CHECK(r.consumer().try_peek(v) == ring_status::corrupt);
    }
    SECTION("unknown record type") {
        h->type = 99;
        CHECK(r.consumer().try_peek(v) == ring_status::corrupt);
    }
    SECTION("padding that does not run to the end of the ring") {
        h->type = static_cast<std::uint32_t>(record_type::padding);
        CHECK(r.consumer().try_peek(v) == ring_status::corrupt);
    }
    SECTION("tail beyond head + capacity") {
        r.cb->producer.tail.store(1u << 20);
        CHECK(r.consumer().try_peek(v) == ring_status::corrupt);
    }
    SECTION("tail not record-aligned") {
        r.cb->producer.tail.store(81);
        CHECK(r.consumer().try_peek(v) == ring_status::corrupt);
    }
    SECTION("a head that is not record-aligned when the reader claims its end") {
        reader_line(r.cb, 0).head.store(4094);
        r.cb->producer.tail.store(4110);
        CHECK(r.consumer().try_peek(v) == ring_status::corrupt);
    }
    SECTION("a tail that is not record-aligned when the writer claims its end") {
        r.cb->producer.tail.store(4094);
        reader_line(r.cb, 0).head.store(4094);
        ring_status st;
        CHECK(r.producer().try_claim(10, record_type::binary, st) == nullptr);
        CHECK(st == ring_status::corrupt);
    }
    SECTION("a head moved past the tail is refused by the writer") {
        reader_line(r.cb, 0).head.store(1u << 20);
        ring_status st;
        auto big = ring_bytes(4000, 9);
        auto p2 = r.producer();
        CHECK(p2.try_claim(2000, record_type::binary, st) == nullptr);
        CHECK(st == ring_status::corrupt);
    }
}

TEST_CASE("after corrupt, only a reader whose head was impossible is named to drop", "[ring][hostile]") {
    heap_ring r(4096, 2);
    std::uint64_t x = 7;
    SECTION("reader 1's head past the tail: reader 1, and once it is dropped the claim goes on") {
        auto p = r.producer();
        REQUIRE(p.try_push(record_type::binary, &x, sizeof x) == ring_status::ok);
        reader_line(r.cb, 1).head.store(std::uint64_t{1} << 40);
        for (int i = 0; i < 200 && p.try_push(record_type::binary, &x, sizeof x) == ring_status::ok;) {
            reader_line(r.cb, 0).head.store(p.tail());  // reader 0 keeps up
            ++i;
        }
        REQUIRE(p.try_push(record_type::binary, &x, sizeof x) == ring_status::corrupt);
        REQUIRE(p.reader_to_drop() == 1);
        p.drop_reader(1);
        CHECK(p.try_push(record_type::binary, &x, sizeof x) == ring_status::ok);
        reader_line(r.cb, 0).head.store(std::uint64_t{1} << 40);  // now the last counted reader too
        ring_status st = ring_status::ok;
        for (int i = 0; i < 300 && st == ring_status::ok; ++i) st = p.try_push(record_type::binary, &x, sizeof x);
        CHECK(st == ring_status::corrupt);
        CHECK(p.reader_to_drop() == ring_producer::no_reader);  // the last one: nobody to drop
    }
    SECTION("a tail off the record alignment: nobody (it was reader 0 once, and a loop)") {
        r.cb->producer.tail.store(8);
        auto p = r.producer();
        CHECK(p.try_push(record_type::binary, &x, sizeof x) == ring_status::corrupt);
        CHECK(p.reader_to_drop() == ring_producer::no_reader);
    }
}
