// A control block and ring in ordinary memory, for unit tests of the ring alone.
#pragma once

#include <cstdlib>
#include <memory>
#include <new>

#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/ring.hpp"

namespace shmchan::test {

struct heap_ring {
    explicit heap_ring(std::size_t capacity) {
        mem = static_cast<std::byte*>(std::aligned_alloc(shm::cache_line, shm::header_size_for(1) + capacity));
        cb = new (mem) shm::control_block{};
        new (&shm::reader_line(cb, 0)) shm::consumer_line{};
        cb->header.readers = 1;
        cb->header.magic = shm::segment_magic;
        cb->header.version = shm::layout_version;
        cb->header.header_size = shm::header_size_for(1);
        cb->header.capacity = capacity;
        cb->header.max_payload = shm::max_payload_for(capacity);
        cb->header.segment_size = shm::header_size_for(1) + capacity;
    }
    ~heap_ring() { std::free(mem); }
    heap_ring(const heap_ring&) = delete;
    heap_ring& operator=(const heap_ring&) = delete;

    std::byte* data() const { return mem + shm::header_size_for(1); }
    shm::ring_producer producer() const { return {cb, data(), shm::geometry_for(cb->header.capacity)}; }
    shm::ring_consumer consumer() const { return {cb, data(), shm::geometry_for(cb->header.capacity)}; }

    std::byte* mem;
    shm::control_block* cb;
};

}  // namespace shmchan::test
