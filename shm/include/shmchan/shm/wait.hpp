// Waiting on a shared futex word, and telling whether a process is still alive.
// No mutex or condition variable ever lives in shared memory: a process that dies while
// "holding" one of these words leaves nothing locked, and every sleep is bounded.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <sys/types.h>

namespace shmchan::shm {

// Sleeps while *word == expected, at most `timeout`. Spurious returns are allowed; callers
// re-check their condition. Works across processes (no FUTEX_PRIVATE_FLAG).
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::chrono::nanoseconds timeout) noexcept;
void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept;

// Asymmetric fences (membarrier(2), MEMBARRIER_CMD_GLOBAL_EXPEDITED). When this process is
// registered, a waker needs no fence after publishing: every sleeper calls sleeper_barrier()
// before its last look, which makes the registered wakers' stores visible. True when
// registered (SHMCHAN_NO_MEMBARRIER=1 turns it off, for comparisons).
bool fast_wake() noexcept;
// The sleeper's side; false if membarrier is unavailable here (then sleeps are kept short,
// since a registered waker elsewhere might not be seen).
bool sleeper_barrier() noexcept;

// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat); 0 if unknown
// (no /proc). For display only: liveness is the ends' locks (segment.hpp).
std::uint64_t process_start_time(pid_t pid) noexcept;
std::uint64_t self_start_time() noexcept;  // cached

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

}  // namespace shmchan::shm
