// Small helpers shared by the test files.
#pragma once

#include <atomic>
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

// Messages one at a time (wake-ups under test): a thread writes "m" number i, after `pause`,
// once the reader has taken i of them; `take` (this thread) waits for what came and returns how
// many messages it took, or -1 when nothing came within its own bound. A wait longer than
// `slow_after`, or one that ran out, counts as slow; the run stops early at 20 slow ones.
struct paced_run {
    int taken = 0;
    int slow = 0;
};
inline paced_run one_at_a_time(writer& w, int rounds, std::chrono::microseconds pause,
                               std::chrono::milliseconds slow_after, const std::function<int()>& take) {
    std::atomic<int> read_so_far{0};
    std::atomic<bool> stop{false};
    std::thread t([&] {
        for (int i = 0; i < rounds && !stop.load(); ++i) {
            if (pause.count()) std::this_thread::sleep_for(pause);
            if (w.write("m")) return;
            while (read_so_far.load() <= i && !stop.load()) std::this_thread::yield();
        }
    });
    paced_run r;
    while (r.taken < rounds && r.slow < 20) {
        const auto t0 = std::chrono::steady_clock::now();
        const int n = take();
        if (n < 0 || std::chrono::steady_clock::now() - t0 > slow_after) ++r.slow;
        if (n > 0) r.taken += n;
        read_so_far.store(r.taken);
    }
    stop.store(true);
    t.join();
    return r;
}

}  // namespace shmchan::test
