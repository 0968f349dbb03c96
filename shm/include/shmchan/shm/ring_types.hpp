// What the ring's two sides share: the status of a call, reader masks, a record's view.
#pragma once

#include <cstddef>
#include <cstdint>

#include "shmchan/shm/layout.hpp"

namespace shmchan::shm {

// lapped: (drop_oldest) the writer overwrote records this reader had not read; skip().
enum class ring_status { ok, full, empty, corrupt, too_large, lapped };

// A bit for each of `n` readers (\pre 1 <= n <= 64).
constexpr std::uint64_t all_readers(std::size_t n) noexcept {
    return n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
}

struct record_view {
    record_type type;
    const std::byte* data;
    std::size_t size;
};

}  // namespace shmchan::shm
