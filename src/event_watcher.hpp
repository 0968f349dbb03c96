// What is behind an end's event fd. The fd is made readable when the watched index (the
// writer's tail for a reader, the reader's head for a writer) moves away from where the end
// last found nothing, or when the peer's fate becomes known (once).
//
// One watcher thread per process serves every end that has an fd (up to 127 ends per thread:
// futex_waitv takes 128 words, one is the thread's own; a process with more ends gets one more
// thread per 127). An end is watched closely only while it is armed, i.e. after the program
// drained it to would_block (as the event_fd contract asks): then the watcher announces itself
// on the end's wait line, so the peer's next publish wakes it, and checks the peer's liveness
// every fate_check_interval. An end that is not armed costs no wake-up: the watcher sleeps on
// its line without announcing itself, so only the peer's state changes (close, abort, leaving)
// wake it; a peer's death is noticed once the end is armed again. Design notes are in
// docs/architecture.md ("Event loops").
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <sys/types.h>

#include "shmchan/shm/layout.hpp"

namespace shmchan::detail {

// A dead peer gives no wake-up: an armed end checks its peer's liveness (its lock) this
// often, which keeps the 250 ms promise of docs/reliability.md.
inline constexpr std::chrono::milliseconds fate_check_interval{200};

struct watched_end;
class watcher_shard;

class event_watcher {
public:
    event_watcher();
    ~event_watcher();
    event_watcher(const event_watcher&) = delete;
    event_watcher& operator=(const event_watcher&) = delete;

    // The fd, created and served from the first call on; armed at once (whatever is there
    // already is worth a look). Throws shmchan::error (system_error when the fd or the watcher
    // thread cannot be had; the next call tries again).
    // `fate`: the peer's end is final or its holder dead (end_state.hpp: peer_fate).
    // `index`: the watched index (an acquire load); `peer_final`: the peer's end (all of them,
    // for a writer with several readers) is final, a look at shared state only.
    int start(shm::wait_line& w, std::function<std::uint64_t()> index,
              std::function<bool()> peer_final, std::function<bool()> fate);
    // The end found nothing to do at `seen` (its own head for a reader, the head it last saw
    // for a writer).
    void arm(std::uint64_t seen) noexcept;
    // After this the watcher touches neither the end nor its segment; closes the fd.
    void stop() noexcept;

private:
    std::unique_ptr<watched_end> end_;
    watcher_shard* shard_ = nullptr;
    pid_t pid_ = 0;  // the process that registered: a forked child only closes its copy of the fd
};

}  // namespace shmchan::detail
