// Waking a peer that sleeps on a wait_line, and sleeping there, without a lost wake-up and
// without a locked instruction on the hot path; and load_once for fields a peer may rewrite.
// Used by the ring (ring.hpp) and by everything that sleeps on a segment's lines.
#pragma once

#include <atomic>
#include <cstdint>

#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/wait.hpp"

namespace shmchan::shm {

// Waking and sleeping without a lost wake-up, and without a locked instruction on the hot path.
// The sleeper counts itself in `waiting`, then (SYNC) calls sleeper_barrier(): membarrier
// makes every registered process's earlier stores visible before it returns, so the sleeper's
// last look sees any tail/head published before the waker read `waiting`; and a waker reading
// `waiting` after the sleeper counted itself sees the count and wakes it. If the wake lands
// between the last look and FUTEX_WAIT, `seq` has changed and FUTEX_WAIT returns at once.
// Without membarrier (not registered), the waker instead reads `waiting` with an acq_rel
// read-modify-write: RMWs on one atomic are totally ordered, so either it reads the sleeper's
// increment, or the sleeper's increment reads from it and so sees the waker's earlier publish.
// (ThreadSanitizer understands the RMW form; it has nothing to check in the membarrier form,
// which orders only atomics.)
//
// A sleeper that sleeps often (the engine's event-fd watcher, once per message of a ping-pong)
// pays a membarrier each time, an IPI to the other CPUs: on this VM a VM exit there, ~10 µs of
// a 60 µs hop. It can instead ask for the read-modify-write form on its line (ask_rmw_wake):
// it sets `rmw_wake` once, then calls sleeper_barrier() once; from then on its sleeps need no
// barrier. SYNC with has_sleeper's load of rmw_wake, placed after the publish in program
// order: the barrier is a full fence at some instruction of each waker. A waker interrupted
// before its publish loads rmw_wake after the fence and sees the flag (RMW form); one
// interrupted after its publish has that publish seen by the sleeper's next look.
//
// A waker that publishes seldom and whose peer sleeps often (the engine's bridge ends: one
// commit per message or batch, a sleeping peer for each) can instead promise the RMW form on
// every wake, before its first publish (promise_rmw_wakes_on, then `rmw` true in every notify).
// A sleeper that finds every waker of its line counted in `rmw_wakers` skips its barrier:
// SYNC with the promise's store, which precedes each of that waker's publishes in its own
// program order, so every wake it could miss is an RMW on `waiting`.

// Whether someone sleeps (or is about to) on `w`. Called right after publishing (a tail or
// head store). `rmw`: this waker promised the RMW form (promise_rmw_wakes_on).
inline bool has_sleeper(wait_line& w, bool rmw = false) noexcept {
    std::atomic_signal_fence(std::memory_order_seq_cst);  // keep the publish above both loads
    if (!rmw && fast_wake() && w.rmw_wake.load(std::memory_order_relaxed) == 0)
        return w.waiting.load(std::memory_order_relaxed) != 0;
    return w.waiting.fetch_add(0, std::memory_order_acq_rel) != 0;
}
// Wakes the sleepers of `w`. One wake per sleep: later commits before a sleeper is up again
// skip the syscall.
inline void wake_sleepers(wait_line& w) noexcept {
    if (w.woken.exchange(1, std::memory_order_acq_rel) == 0) {
        w.seq.fetch_add(1, std::memory_order_release);
        futex_wake_all(w.seq);
    }
}
// Wakes a sleeper of `w`, if any. Called right after publishing (a tail or head store).
inline void notify(wait_line& w, bool rmw = false) noexcept {
    if (has_sleeper(w, rmw)) wake_sleepers(w);
}
// Counts this waker in `rmw_wakers`. \pre before its first publish; every has_sleeper() of
// this waker on `w` from then on passes rmw = true.
inline void promise_rmw_wakes_on(wait_line& w) noexcept {
    w.rmw_wakers.fetch_add(1, std::memory_order_seq_cst);
}
// Unconditional wake, for state changes (close, abort, a reader leaving).
inline void notify_always(wait_line& w) noexcept {
    w.seq.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(w.seq);
}
// Asks every waker on `w` for the read-modify-write form (above). The caller's next
// sleeper_barrier() makes the request seen; after that barrier its sleeps on `w` need none.
// `rmw_wake` counts the sleepers that rely on it (with several readers, one watched end each).
inline void ask_rmw_wake(wait_line& w) noexcept {
    w.rmw_wake.fetch_add(1, std::memory_order_seq_cst);
}
// Gives the request up (a watched end leaving): the caller no longer sleeps on `w` without
// the barrier, so no ordering is needed here.
inline void drop_rmw_wake(wait_line& w) noexcept {
    w.rmw_wake.fetch_sub(1, std::memory_order_relaxed);
}
// prepare_sleep() without the barrier, for a sleeper on many lines (the event-fd watcher): it
// announces itself on each, then calls sleeper_barrier() once before its last looks.
inline std::uint32_t announce_sleep(wait_line& w) noexcept {
    w.woken.exchange(0, std::memory_order_acq_rel);  // from here on a wake is a new syscall
    const std::uint32_t seq = w.seq.load(std::memory_order_acquire);
    // A count, not a flag: a reader thread and the event-fd watcher may both sleep here.
    w.waiting.fetch_add(1, std::memory_order_acq_rel);
    return seq;
}
// Whether all `wakers` of `w` (0: unknown, never) promised the RMW form.
inline bool wakers_promised(const wait_line& w, std::uint32_t wakers) noexcept {
    // SYNC with promise_rmw_wakes_on: acquire, so a count seen here follows each promise.
    return wakers != 0 && w.rmw_wakers.load(std::memory_order_acquire) >= wakers;
}
// Returns the futex value to sleep on, and whether sleeps may be long (false: membarrier is
// unavailable here, so a wake could be missed and the sleep must be short). After this call
// the caller re-checks its condition before futex_wait(w.seq, value, ...), then finish_sleep().
// `wakers`: how many wakers `w` has (0: unknown); when all of them promised the RMW form, no
// barrier is needed.
inline std::uint32_t prepare_sleep(wait_line& w, bool& long_sleep_ok, std::uint32_t wakers = 0) noexcept {
    const std::uint32_t seq = announce_sleep(w);
    long_sleep_ok = wakers_promised(w, wakers) || sleeper_barrier();
    return seq;
}
inline void finish_sleep(wait_line& w) noexcept {
    w.waiting.fetch_sub(1, std::memory_order_relaxed);
}

// One relaxed load of a field a peer may rewrite at any time (a plain read may be split or
// repeated by the compiler, so a checked value could differ from the one used).
template <class T>
inline T load_once(const T& field) noexcept {
    return __atomic_load_n(&field, __ATOMIC_RELAXED);
}

}  // namespace shmchan::shm
