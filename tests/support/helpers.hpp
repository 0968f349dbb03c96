// Small helpers shared by the test files.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "shmchan/channel.hpp"
#include "shmchan/checksum.hpp"
#include "shmchan/error.hpp"

namespace shmchan::test {

inline channel_options opts(std::size_t capacity, std::uint32_t spin_us) {
    channel_options o;
    o.capacity = capacity;
    o.spin_us = spin_us;
    return o;
}

// The errc a setup call throws, or errc::ok.
template <class F>
errc thrown(F&& f) {
    try {
        f();
    } catch (const error& e) {
        return e.kind();
    }
    return errc::ok;
}

// Checksum of the first n bytes of the test pattern (fill_pattern from offset 0).
inline std::uint64_t pattern_sum(std::uint64_t n) {
    stream_checksum s;
    std::vector<std::byte> buf(1 << 20);
    for (std::uint64_t off = 0; off < n; off += buf.size()) {
        const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), n - off));
        fill_pattern(std::span(buf.data(), k), off);
        s.update(std::span(buf.data(), k));
    }
    return s.value();
}

}  // namespace shmchan::test
