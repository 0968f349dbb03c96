#include "waiting.hpp"

#include <cstdlib>

namespace shmchan::detail {

namespace {
long env_us(const char* name) {
    const char* v = std::getenv(name);
    return v && *v ? std::strtol(v, nullptr, 10) : -1L;
}
}  // namespace

spin_budget spin_of(const channel_options& o) {
    static const long env_base = env_us("SHMCHAN_SPIN_US");
    static const long env_max = env_us("SHMCHAN_SPIN_MAX_US");
    const long base_us = env_base >= 0 ? env_base : static_cast<long>(o.spin_us);
    const long max_us = env_max >= 0 ? env_max : static_cast<long>(o.spin_max_us);
    return {std::chrono::microseconds(base_us), std::chrono::microseconds(max_us)};
}

bool rmw_wakes_on() {
    static const bool on = [] {
        const char* v = std::getenv("SHMCHAN_RMW_WAKE");
        return !(v && v[0] == '0' && v[1] == '\0');
    }();
    return on;
}

}  // namespace shmchan::detail
