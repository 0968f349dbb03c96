// Taking cache lines for writing without fetching them.
//
// A zero-copy writer fills ring memory that the reader's core read a moment ago. Ordinary
// stores must first fetch each such line for ownership (an RFO): with the two cores far apart
// (another CCX or socket; a VM's vCPUs placed so) that is one ~400 ns round trip per line, with
// few in flight, and a loan filled in place ran at ~6.5 GB/s where a copy into the ring ran at
// ~20. x86 fast-string stores (`rep stosb`) write whole lines without reading them (measured
// from 16 KiB up on AMD EPYC; smaller regions gained nothing), so zeroing a region first and
// then filling it ran at ~20 GB/s (docs/benchmarks.md). Elsewhere it is a memset.
#pragma once

#include <cstddef>
#include <cstring>
#include <span>

namespace shmchan {

// Zeroes `region` with full-line stores: afterwards its lines are this core's, cheap to fill.
inline void claim_for_writing(std::span<std::byte> region) noexcept {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    void* p = region.data();
    std::size_t n = region.size();
    asm volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(0) : "memory");
#else
    std::memset(region.data(), 0, region.size());
#endif
}

// Copies `n` bytes into shared memory another core reads: from 16 KiB up with `rep movsb` on
// x86-64 (full-line stores, as above). glibc's memcpy switches from `rep movsb` to vector
// stores above the L2 size on AMD, and writer::write() of 1 MiB then ran at 6.6 GB/s instead of
// ~20. Elsewhere, and below 16 KiB, memcpy.
inline void copy_into_shared(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (n >= (std::size_t{16} << 10)) {
        asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
        return;
    }
#endif
    if (n) std::memcpy(dst, src, n);
}

}  // namespace shmchan
