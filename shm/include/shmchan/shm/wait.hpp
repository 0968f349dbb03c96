// Waiting on a shared futex word, and telling whether a process is still alive.
// No mutex or condition variable ever lives in shared memory: a process that dies while
// "holding" one of these words leaves nothing locked, and every sleep is bounded.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <sched.h>
#include <sys/types.h>
#if defined(__GLIBC__) && __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#define SHMCHAN_HAVE_RSEQ 1
#endif

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

// The CPU this thread runs on, plus one (0: unknown). A load from the rseq area glibc
// registers for every thread (the kernel keeps its cpu_id current), else sched_getcpu().
// Each end publishes it beside its position (layout.hpp, `cpu`) so that a waiting peer can
// tell when the end it waits for last ran on its own CPU: spinning there only delays it.
inline std::uint32_t cpu_tag() noexcept {
#ifdef SHMCHAN_HAVE_RSEQ
    if (__rseq_size > 0) {
        const auto* r = reinterpret_cast<const volatile struct rseq*>(
            static_cast<const char*>(__builtin_thread_pointer()) + __rseq_offset);
        const auto c = static_cast<std::int32_t>(r->cpu_id);
        if (c >= 0) return static_cast<std::uint32_t>(c) + 1;
    }
#endif
    const int c = ::sched_getcpu();
    return c >= 0 ? static_cast<std::uint32_t>(c) + 1 : 0;
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

}  // namespace shmchan::shm
