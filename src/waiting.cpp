#include "waiting.hpp"

#include <cstdlib>

namespace shmchan::detail {

spin_budget spin_of(const channel_options& o) {
    static const long env_max = [] {
        const char* v = std::getenv("SHMCHAN_SPIN_MAX_US");
        return v && *v ? std::strtol(v, nullptr, 10) : -1L;
    }();
    const long max_us = env_max >= 0 ? env_max : static_cast<long>(o.spin_max_us);
    return {std::chrono::microseconds(o.spin_us), std::chrono::microseconds(max_us)};
}

bool rmw_wakes_on() {
    static const bool on = [] {
        const char* v = std::getenv("SHMCHAN_RMW_WAKE");
        return !(v && v[0] == '0' && v[1] == '\0');
    }();
    return on;
}

}  // namespace shmchan::detail
