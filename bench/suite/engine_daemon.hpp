// The engine the engine-* and node-socket transports run through: a shmchan::engine in a
// process of its own (this binary again, `_engine PARENT_PID`), as a deployment runs it, and a
// shmchan::worker in the harness that creates channels through it. One for the whole harness
// run, shared by those transports, started on first use; and a second one, unbatched, that
// sends records to socket readers one Beast write each (SHMCHAN_ENGINE_BATCH=0, as before
// issue 14), for the -unbatched transports: both ways side by side in one run.
#pragma once

#include "support.hpp"

#include <shmchan/worker.hpp>

#include <memory>
#include <string>

namespace shmchan_bench {

// The daemon's side (`_engine PARENT_PID [unbatched]`): prints "url ws://...", serves until
// stdin closes.
int engine_daemon_main(int parent_pid, bool unbatched);

class engine_daemon {
public:
    explicit engine_daemon(bool batched) : batched_(batched) {}
    ~engine_daemon() { stop(); }
    // Starts the daemon unless it runs (again, if it died); throws if it does not come up.
    void start();
    void stop();
    const std::string& url() const { return url_; }
    shmchan::worker& worker() { return *worker_; }
    int pid() const { return proc_.pid; }

private:
    bool batched_;
    child_process proc_;
    std::string url_;
    std::unique_ptr<shmchan::worker> worker_;
};

// The harness's engine (batched: as shipped), or its unbatched twin.
engine_daemon& shared_engine(bool batched = true);

// engine::channels::create's buffer_size counts 64 KiB frames (ring = bit_ceil(n * 64 KiB),
// at most 1024 = 64 MiB): the same max(4 MiB, 4 x payload) as the shared-memory runs.
std::size_t engine_buffer_size(std::size_t payload);

}  // namespace shmchan_bench
