// A ring of 4 KiB in ordinary memory with `n` readers, full of 4 records of 1 KiB that every
// reader took (read, not released yet): where a writer must wait for its readers. The tests of
// the space line's need hints and of the ends' cpu hints start from it.
#pragma once

#include <catch2/catch.hpp>

#include <vector>

#include "heap_ring.hpp"

namespace shmchan::test {

struct full_ring {
    static constexpr std::size_t cap = 4096;
    static constexpr std::size_t rec = 1024 - sizeof(shm::record_header);  // records of exactly 1 KiB

    explicit full_ring(std::size_t n) : r(cap, n), p(r.producer()) {
        for (std::size_t i = 0; i < n; ++i) cs.push_back(r.consumer(i));
        std::vector<std::byte> b(rec);
        for (int i = 0; i < 4; ++i) REQUIRE(p.try_push(shm::record_type::binary, b.data(), b.size()) == shm::ring_status::ok);
        for (auto& c : cs)
            for (int i = 0; i < 4; ++i) {
                shm::record_view v{};
                REQUIRE(c.try_peek(v) == shm::ring_status::ok);
                c.take();
            }
    }
    // The writer, its room gone, says what it needs and counts itself asleep.
    void writer_sleeps() {
        shm::ring_status st;
        REQUIRE(p.try_claim(rec, shm::record_type::binary, st) == nullptr);
        REQUIRE(st == shm::ring_status::full);
        p.say_need(rec);
        r.cb->space.waiting.store(1);
        r.cb->space.woken.store(0);
    }
    std::uint32_t wakes() const { return r.cb->space.seq.load(); }

    heap_ring r;
    shm::ring_producer p;
    std::vector<shm::ring_consumer> cs;
};

}  // namespace shmchan::test
