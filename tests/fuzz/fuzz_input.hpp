// Reading a fuzz input: little-endian numbers taken off its front.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shmchan::fuzz {

// The next `bytes` (at most 8) of the input as a little-endian number, and the input moved past
// them; what the input lacks reads as zeros.
inline std::uint64_t take_le(const std::uint8_t*& p, std::size_t& n, std::size_t bytes = 8) noexcept {
    std::uint64_t v = 0;
    const std::size_t k = n < bytes ? n : bytes;
    for (std::size_t i = 0; i < k; ++i) v |= std::uint64_t{p[i]} << (8 * i);
    p += k;
    n -= k;
    return v;
}

}  // namespace shmchan::fuzz
