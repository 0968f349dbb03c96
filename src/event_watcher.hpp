// The thread behind an end's event fd. It makes the fd readable when the watched index (the
// writer's tail for a reader, the reader's head for a writer) moves away from where the end
// last found nothing, or when the peer's fate becomes known (once). It watches shared memory
// only while the end is armed, i.e. after the program drained the end to would_block (as the
// event_fd contract asks): while data flows and the program is busy with it, the watcher
// sleeps on a private word and costs nothing (no membarrier, no read of /proc per record). A
// program that polls again without draining is still signalled (progress or the peer's fate)
// within a poll interval.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#include "shmchan/shm/layout.hpp"

namespace shmchan::detail {

class event_watcher {
public:
    // The fd, created and served from the first call on. Throws shmchan::error.
    int start(shm::wait_line& w, const std::atomic<std::uint64_t>& index, std::function<bool()> fate);
    // The end found nothing to do at `seen` (its own head for a reader, the head it last saw
    // for a writer).
    void arm(std::uint64_t seen) noexcept;
    void stop(shm::wait_line& w);
    // In a forked child: the thread exists only in the parent; let go of it without joining.
    void abandon() noexcept;

private:
    void run(shm::wait_line& w, const std::atomic<std::uint64_t>& index, const std::function<bool()>& fate);

    int efd_ = -1;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint32_t> arms_{0};  // arm() calls; the futex word of the idle watcher
    std::atomic<bool> idle_{false};
    std::atomic<std::uint64_t> seen_{0};
};

}  // namespace shmchan::detail
