#pragma once
#include "shmchan/channel.hpp"
namespace shmchan::test {
inline channel_options opts(std::size_t capacity, std::uint32_t spin) {
    channel_options o;
    o.capacity = capacity;
    o.spin_us = spin;
    return o;
}
}  // namespace shmchan::test
