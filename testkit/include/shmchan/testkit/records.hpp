// Records that carry their own index, so that a reader that misses some (overflow drop-oldest)
// can still check every record it gets: record i holds i (8 bytes, little endian on this host)
// and then the pattern bytes at stream positions i * size + 8 and on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "shmchan/testkit/checksum.hpp"

namespace shmchan::testkit {

// \pre out.size() >= 8
inline void fill_record(std::span<std::byte> out, std::uint64_t index) noexcept {
    std::memcpy(out.data(), &index, 8);
    fill_pattern(out.subspan(8), index * out.size() + 8);
}

// The record's index when every byte is the one fill_record() put there, else nothing.
inline std::optional<std::uint64_t> check_record(std::span<const std::byte> in) {
    if (in.size() < 8) return std::nullopt;
    std::uint64_t index = 0;
    std::memcpy(&index, in.data(), 8);
    std::byte want[4096];
    for (std::size_t off = 8; off < in.size(); off += sizeof want) {
        const std::size_t n = std::min(sizeof want, in.size() - off);
        fill_pattern({want, n}, index * in.size() + off);
        if (std::memcmp(want, in.data() + off, n) != 0) return std::nullopt;
    }
    return index;
}

}  // namespace shmchan::testkit
