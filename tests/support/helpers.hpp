// Small helpers shared by the test files.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "shmchan/channel.hpp"
#include "shmchan/engine.hpp"
#include "shmchan/error.hpp"
#include "shmchan/testkit/checksum.hpp"

namespace shmchan::test {

// True in ASan/TSan builds, where time and memory bounds measure the sanitizer too.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif

// An engine on a free loopback port.
inline engine_options quiet_engine() {
    engine_options o;
    o.port = 0;
    return o;
}
// Ends opened through `t`, with `url` as the engine.
inline channel_options via(transport t, const std::string& url) {
    channel_options o;
    o.via = t;
    o.engine = url;
    return o;
}
// Polls `cond` every 20 ms until it holds or `limit` has passed.
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return cond();
}

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
inline std::uint64_t pattern_sum(std::uint64_t n) { return testkit::expected_checksum(n); }

}  // namespace shmchan::test
