#include "waiting.hpp"

#include "env_knob.hpp"

namespace shmchan::detail {

spin_budget spin_of(const channel_options& o) {
    static const auto env_base = env_number("SHMCHAN_SPIN_US");
    static const auto env_max = env_number("SHMCHAN_SPIN_MAX_US");
    const std::uint64_t base_us = env_base.value_or(o.spin_us), max_us = env_max.value_or(o.spin_max_us);
    return {std::chrono::microseconds(base_us), std::chrono::microseconds(max_us)};
}

bool rmw_wakes_on() {
    static const bool on = env_number("SHMCHAN_RMW_WAKE").value_or(1) != 0;
    return on;
}

bool rmw_wakes_of(const channel_options& o) {
    static const auto env = env_number("SHMCHAN_RMW_WAKES");
    return env ? *env != 0 : o.rmw_wakes;
}

bool spin_on_peer_cpu() {
    static const bool on = env_number("SHMCHAN_SPIN_SAME_CPU").value_or(0) != 0;
    return on;
}

nanoseconds spin_yield_after() {
    return std::chrono::microseconds(env_number("SHMCHAN_SPIN_YIELD_US").value_or(0));
}

}  // namespace shmchan::detail
