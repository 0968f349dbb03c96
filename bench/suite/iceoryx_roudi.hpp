// RouDi, the iceoryx daemon, as the iceoryx transport runs it (see iceoryx.cpp's header for
// why it is configured as it is): found, checked for a foreign instance, configured with one
// pool per payload size, started as the harness's child and stopped with what it leaves; and the
// small helpers both the daemon and the transport's sides need.
#pragma once

#include "support.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <sys/types.h>
#include <thread>

namespace shmchan_bench {

using clock_type = std::chrono::steady_clock;

inline constexpr const char* roudi_ready_line = "RouDi is ready for clients";
inline constexpr const char* roudi_socket = "/tmp/roudi";
inline constexpr const char* roudi_lock_files[] = {"/tmp/iox-unique-roudi.lock", "/tmp/roudi.lock"};
inline constexpr const char* mgmt_segment = "/dev/shm/iceoryx_mgmt";
inline constexpr std::size_t chunk_header_bytes = 40;       // iox::mepoo::ChunkHeader, no user header
inline constexpr std::size_t mgmt_segment_bytes = 66 * MiB;  // ~63 MiB with the Debian build
inline constexpr auto roudi_start_timeout = std::chrono::seconds(30);
inline constexpr auto roudi_stop_timeout = std::chrono::seconds(10);

// The harness's default payloads (throughput and latency): pools made up front.
inline constexpr std::size_t default_payloads[] = {64,       256,       KiB,     4 * KiB, 16 * KiB,
                                                   64 * KiB, 256 * KiB, MiB,     4 * MiB, 16 * MiB};

// The subscriber queue capacity (the throughput in-flight window) for a payload size.
std::uint64_t queue_depth(std::size_t payload);
// Chunks beyond the window: one being filled, one being digested, and the ping/pong pairs.
inline constexpr std::uint64_t pool_spare = 4;
inline std::size_t pool_chunk(std::size_t payload) { return (std::max<std::size_t>(payload, 8) + 7) & ~std::size_t(7); }

// True when something accepts on the Unix socket at `path` (a stale socket file is refused).
bool socket_answers(const char* path);
// The sockets of a runtime whose process was killed; nothing while one is in use.
void remove_runtime_files(const std::string& name);

template <class Pred>
bool wait_until(Pred pred, clock_type::duration limit) {
    const auto deadline = clock_type::now() + limit;
    while (!pred()) {
        if (clock_type::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

class roudi_daemon {
public:
    ~roudi_daemon() { stop(); }
    // RouDi running with a pool for `payload` (a new size restarts it with one pool more):
    // "" or the reason the transport is skipped.
    std::string ensure(std::size_t payload);
    // Stops our RouDi, if any, and removes whatever it left.
    void stop() { stop_roudi(); }
    pid_t pid() const { return roudi_pid_; }

private:
    std::string foreign_roudi() const;
    std::string start_roudi(const std::string& roudi);
    void stop_roudi();
    bool alive();
    bool reap(clock_type::duration limit);
    std::string read_log() const;
    std::string log_tail() const;

    pid_t roudi_pid_ = -1;                       // our RouDi, until reaped
    bool started_ = false;                       // files of a RouDi of ours may be left
    std::map<std::size_t, std::uint64_t> pools_; // chunk payload size -> count, while it runs
    std::string dir_, config_path_, log_path_, data_segment_;
};

}  // namespace shmchan_bench
