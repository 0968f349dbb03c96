// A control block and ring in ordinary memory, for unit tests of the ring alone.
#pragma once

#include <sys/mman.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/ring.hpp"

namespace shmchan::test {

// `n` bytes that differ with `seed`: the ring tests' payloads.
inline std::vector<std::byte> ring_bytes(std::size_t n, int seed) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = std::byte(static_cast<unsigned char>(i * 31 + seed));
    return v;
}

// `shared`: in a MAP_SHARED anonymous mapping, so that a child forked after it shares the ring
// (a writer in another process: what drop_oldest's readers face, and where TSan does not
// report the overwritten bytes a lapped reader reads and then discards by design).
struct heap_ring {
    explicit heap_ring(std::size_t capacity, std::size_t readers = 1, bool shared = false)
        : readers(readers), bytes(shm::header_size_for(readers) + capacity), shared(shared) {
        if (shared) {
            void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) throw std::bad_alloc();
            mem = static_cast<std::byte*>(m);
        } else {
            mem = static_cast<std::byte*>(std::aligned_alloc(shm::cache_line, bytes));
        }
        cb = new (mem) shm::control_block{};
        for (std::size_t i = 0; i < readers; ++i) new (&shm::reader_line(cb, i)) shm::consumer_line{};
        cb->header.readers = static_cast<std::uint32_t>(readers);
        cb->header.magic = shm::segment_magic;
        cb->header.version = shm::layout_version;
        cb->header.header_size = static_cast<std::uint32_t>(shm::header_size_for(readers));
        cb->header.capacity = capacity;
        cb->header.max_payload = shm::max_payload_for(capacity);
        cb->header.segment_size = shm::header_size_for(readers) + capacity;
    }
    ~heap_ring() {
        if (shared) ::munmap(mem, bytes);
        else std::free(mem);
    }
    heap_ring(const heap_ring&) = delete;
    heap_ring& operator=(const heap_ring&) = delete;

    std::byte* data() const { return mem + shm::header_size_for(readers); }
    shm::ring_geometry geometry() const {
        return shm::geometry_for(cb->header.capacity, readers);
    }
    shm::ring_producer producer() const { return {cb, data(), geometry()}; }
    shm::ring_consumer consumer(std::size_t index = 0) const { return {cb, data(), geometry(), index}; }

    std::size_t readers;
    std::size_t bytes;
    bool shared;
    std::byte* mem;
    shm::control_block* cb;
};

}  // namespace shmchan::test
