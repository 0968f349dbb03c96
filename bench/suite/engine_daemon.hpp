// The engine the engine-* and node-socket transports run through: a shmchan::engine in a
// process of its own (this binary again, `_engine PARENT_PID [NAME=VALUE...]`), as a deployment
// runs it, and a shmchan::worker in the harness that creates channels through it. One per
// environment for the whole harness run, shared by those transports, started on first use:
// the engine as shipped; an unbatched one that sends records to socket readers one Beast write
// each (SHMCHAN_ENGINE_BATCH=0, as before issue 14), for the -unbatched transports; and one
// with --ab's variables for the B variants of the engine-* transports. Each A/B runs side by
// side in one run.
#pragma once

#include "support.hpp"

#include <shmchan/worker.hpp>

#include <memory>
#include <utility>
#include <string>
#include <vector>

namespace shmchan_bench {

// The daemon's side (`_engine PARENT_PID [NAME=VALUE...]`): sets the variables, prints
// "url ws://...", serves until stdin closes.
int engine_daemon_main(int argc, char** argv);

class engine_daemon {
public:
    explicit engine_daemon(std::vector<std::string> env) : env_(std::move(env)) {}
    ~engine_daemon() { stop(); }
    // Starts the daemon unless it runs (again, if it died); throws if it does not come up.
    void start();
    void stop();
    const std::string& url() const { return url_; }
    shmchan::worker& worker() { return *worker_; }
    int pid() const { return proc_.pid; }

private:
    std::vector<std::string> env_;  // NAME=VALUE, set in the daemon before the engine starts
    child_process proc_;
    std::string url_;
    std::unique_ptr<shmchan::worker> worker_;
};

// The harness's engine with these variables (none: as shipped).
engine_daemon& shared_engine(const std::vector<std::string>& env = {});
// What the unbatched twin adds.
inline constexpr const char* unbatched_env = "SHMCHAN_ENGINE_BATCH=0";

// engine::channels::create's buffer_size counts 64 KiB frames (ring = bit_ceil(n * 64 KiB),
// at most 1024 = 64 MiB): the same max(4 MiB, 4 x payload) as the shared-memory runs.
std::size_t engine_buffer_size(std::size_t payload);

}  // namespace shmchan_bench
