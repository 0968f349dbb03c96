// A segment file whose bytes a hostile ref holder chose: segment::open must refuse it with
// shm::error or accept only a header whose geometry fits the file, and a reader over an
// accepted segment must stay inside it (ASan checks every access). Input: the file's bytes
// (its size too), with the header fields where the input puts them: the reader count and the
// overflow policy (layout 5) included. Under drop_oldest the reader joins at the tail first
// and skips when lapped.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <unistd.h>

#include "shmchan/shm/ring.hpp"
#include "shmchan/shm/segment.hpp"

namespace shm = shmchan::shm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* p, std::size_t n) {
    static const std::string name = [] {
        char b[64];
        std::snprintf(b, sizeof b, "/shmchan-00000000-0000-4000-8000-f0%010x", unsigned(::getpid()));
        return std::string(b);
    }();
    const std::string path = shm::shm_dir() + name;
    ::unlink(path.c_str());
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) std::abort();
    // Small inputs stand for the start of a file of the minimal size (zeros after them).
    const std::size_t size = n < shm::header_size_for(1) + shm::min_capacity ? shm::header_size_for(1) + shm::min_capacity : n;
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0 || ::pwrite(fd, p, n, 0) != static_cast<ssize_t>(n)) std::abort();
    ::close(fd);
    try {
        auto seg = shm::segment::open(name);
        const shm::ring_geometry g = seg->geometry();
        if (g.header_size + g.capacity != seg->size()) std::abort();  // validated geometry fits the file
        // The writer reads every reader's head (the reader count is the header's, validated);
        // the last reader's line is the farthest from the control block.
        shm::ring_producer prod(seg->control(), seg->data(), g);
        (void)prod.can_claim(16);
        shm::ring_consumer cons(seg->control(), seg->data(), g, g.readers - 1);
        // drop_oldest: the reader joins at the tail as a claim does (walking from the joined or
        // lapped line), and skips whenever it is told it was lapped.
        const bool drop = g.overflow == shm::overflow_policy::drop_oldest;
        const bool joined = !drop || cons.join_at_tail() == shm::ring_status::ok;
        volatile unsigned sink = 0;
        for (int i = 0; joined && i < 64; ++i) {
            shm::record_view v{};
            const shm::ring_status st = cons.try_peek(v);
            if (st == shm::ring_status::lapped && drop) {
                shm::ring_consumer::gap gap;
                if (cons.skip(gap) != shm::ring_status::ok) break;
                continue;
            }
            if (st != shm::ring_status::ok) break;
            for (std::size_t k = 0; k < v.size; k += 4096) sink = sink + unsigned(v.data[k]);
            if (v.size) sink = sink + unsigned(v.data[v.size - 1]);
            cons.release();
        }
    } catch (const shm::error&) {
    }
    ::unlink(path.c_str());
    return 0;
}
