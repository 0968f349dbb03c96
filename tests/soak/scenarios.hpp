// The soak's lanes: each runs a fixed rotation of scenarios (channels created, written, read,
// aborted, left early or left unused) until told to stop; every byte read is checked.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <shmchan/shmchan.hpp>
#include <shmchan/worker.hpp>

#include "support/helpers.hpp"

namespace shmchan::soak {

struct options {
    double seconds = 20;
    int lanes = 4;
    // Bytes per channel: four rings' worth; two under sanitizers (unoptimized and 5-20x slower
    // per byte), so that an interval still holds enough channels to measure.
    std::uint64_t size = test::sanitized ? 512 << 10 : 1 << 20;
    double interval = 0;  // 0: seconds / 12 (/ 8 under sanitizers), within [1, 10]
    double rss_bound_mib = 16;     // growth allowed after warm-up, per process (unsanitized)
    double throughput_factor = 5;  // each interval at least median / this
    double ttl = 5;                // the engine's channel TTL (unused channels expire)
};

enum scenario : int {
    fn_shm_shm,       // engine channel: shm writer here -> function reading through shm
    fn_socket_socket, // socket writer here -> function reading through the socket
    fn_shm_socket,    // shm writer here -> function reading through the socket
    local_socket,     // socket writer and socket reader, both here
    direct,           // create_channel here (no engine): writer thread -> reader
    aborted,          // engine channel; the writer (shm or socket) aborts half-way
    fn_early_close,   // the function's reader leaves after a quarter; the writer learns it
    direct_early,     // the same on a direct channel, here
    unused,           // an engine channel nobody opens: it expires after the TTL
    scenario_count
};
extern const char* const scenario_names[scenario_count];

// The functions of the two worker processes (see soak_test.cpp): one reads through shared
// memory, one through the engine's socket.
inline constexpr const char* shm_function = "soak::shm";
inline constexpr const char* socket_function = "soak::socket";

struct state {
    options opt;
    std::string url;
    worker* caller = nullptr;
    std::uint64_t full_sum = 0, half_sum = 0;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> bytes{0}, channels{0}, failures{0};
    std::atomic<std::uint64_t> per_scenario[scenario_count] = {};
    std::mutex mu;
    std::set<std::string> ids;             // channels of this run whose segment may still exist
    std::uint64_t created = 0;             // channels this run created
    std::vector<std::string> failure_log;  // the first few failures
    std::map<std::string, std::uint64_t> early_close_outcomes;  // what writers saw in fn-early-close

    channel_options via(transport t) const { return test::via(t, url); }
    void remember(const channel& ch);
    void fail(const std::string& what);
    // Segments of this run still in /dev/shm (other programs' segments there are not counted).
    std::size_t segments_left();
};

// Runs scenarios on lane `id` until s.stop; a failure is counted and logged, and the lane goes on.
void lane(state& s, int id);

}  // namespace shmchan::soak
