// How ends wait: one deadline type, busy-wait budgets, and the one futex sleep every wait uses.
// The sleep protocol itself (announce, recheck, sleep, retire) is shm/wake.hpp's; the reasoning
// about wake-ups is in docs/architecture.md.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include <sched.h>

#include "shmchan/channel.hpp"
#include "shmchan/shm/ring.hpp"  // prepare_sleep, finish_sleep
#include "shmchan/shm/wait.hpp"

namespace shmchan::detail {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Bound of every sleep: a waiting end re-checks its peer's liveness this often, so a dead
// peer is reported within a few of these (the promise is 250 ms).
inline constexpr nanoseconds poll_interval = 50ms;

// A call's timeout as a point in time. At least a year is "no deadline" (forever); zero or
// less is "look once" (try_* calls and event loops, which must never spin).
class deadline {
public:
    explicit deadline(nanoseconds t)
        : infinite_(t >= nanoseconds(std::chrono::hours(24 * 365))), immediate_(t <= 0ns),
          at_(infinite_ ? clock::time_point::max() : clock::now() + std::max(t, 0ns)) {}
    static deadline none() { return deadline(forever); }

    bool infinite() const noexcept { return infinite_; }
    bool immediate() const noexcept { return immediate_; }
    bool passed() const { return !infinite_ && clock::now() >= at_; }
    clock::time_point at() const noexcept { return at_; }  // time_point::max() when infinite
    // How long the next futex sleep may be: short when a wake might be missed (no membarrier).
    nanoseconds next_sleep(bool long_sleep_ok) const {
        const nanoseconds cap = long_sleep_ok ? poll_interval : nanoseconds(1ms);
        if (infinite_) return cap;
        return std::clamp<nanoseconds>(at_ - clock::now(), 0ns, cap);
    }

private:
    bool infinite_;
    bool immediate_;
    clock::time_point at_;
};

// After how long a spin also yields the CPU (below): never (0) unless SHMCHAN_SPIN_YIELD_US=N
// says otherwise (A/B runs).
nanoseconds spin_yield_after();

// Busy-waiting for a time budget (not a count of `pause`, whose cost differs 10x between CPUs).
// With SHMCHAN_SPIN_YIELD_US=N, a spin that has lasted N us also yields the CPU every 16th
// pause. That gives the CPU to the peer on a machine with more busy processes than CPUs (a
// socket writer, the engine and a shared-memory reader on 2 vCPUs: +25% at 64 KiB), but it
// cut shared memory to shared memory at 64 KiB by up to 6x in some runs, so it is off
// (docs/benchmarks.md, "Spinning that yields").
class spinner {
public:
    explicit spinner(nanoseconds budget) : start_(clock::now()), until_(start_ + budget), zero_(budget <= 0ns) {}
    bool more() {
        if (zero_) return false;
        shm::cpu_relax();
        if ((++n_ & 15) != 0) return true;
        static const nanoseconds yield_after = spin_yield_after();
        const auto now = clock::now();
        if (yield_after > 0ns && now - start_ >= yield_after) ::sched_yield();
        return now < until_;
    }

private:
    clock::time_point start_;
    clock::time_point until_;
    bool zero_;
    unsigned n_ = 0;
};

// False unless SHMCHAN_SPIN_SAME_CPU=1 (A/B runs). A waiter whose peer last published its
// position from the waiter's own CPU (shm::cpu_tag) sleeps at once instead of spinning: the
// peer cannot run on that CPU while the waiter spins there, so a spin there only delays what
// it waits for (five processes on two CPUs: docs/benchmarks.md, "Spinning beside the peer").
bool spin_on_peer_cpu();

// The busy-wait budget of one end, learnt from the waits it met. A wait that ended soon after
// the end went to sleep paid a futex sleep, a wake-up syscall in the peer and a membarrier
// (48 us on the machine we measured) for a gap it could have spun through: the budget grows
// to cover such gaps (up to `max`) and falls back towards `base` when gaps are longer.
class spin_budget {
public:
    spin_budget(nanoseconds base, nanoseconds max)
        : base_(base), max_(std::max(base, max)), cur_(base) {}
    nanoseconds now() const { return cur_; }
    // A wait of `gap` (from the first miss to the data or room being there) just ended.
    void waited(nanoseconds gap) {
        if (base_ <= 0ns || max_ == base_) return;  // spinning off, or a fixed spin
        if (gap <= max_) cur_ = std::clamp(std::max(cur_, gap + gap / 4), base_, max_);
        else cur_ = std::max(base_, cur_ / 2);
    }

private:
    nanoseconds base_, max_, cur_;
};
// The options' budget; SHMCHAN_SPIN_US and SHMCHAN_SPIN_MAX_US override spin_us and spin_max_us
// (A/B runs of the benchmarks).
spin_budget spin_of(const channel_options& o);

// Liveness checks (a lock test, one fcntl) at most once per poll interval, on the slow path.
class liveness_timer {
public:
    bool due() {
        const auto now = clock::now();
        if (now < next_) return false;
        next_ = now + poll_interval;
        return true;
    }

private:
    clock::time_point next_{};
};

// False when SHMCHAN_RMW_WAKE=0: the event-fd watcher never asks its lines' wakers for the
// read-modify-write form (shm/wake.hpp), and pays a membarrier per sleep (for A/B runs).
bool rmw_wakes_on();

// channel_options::rmw_wakes, or SHMCHAN_RMW_WAKES=0|1 when set.
bool rmw_wakes_of(const channel_options& o);

enum class sleep_result { ready, woken, timed_out };

// One sleep on `line` until the peer's next publish (or the deadline's next_sleep): announce
// the sleeper, then check `ready()` (true: return at once, without sleeping), then the
// deadline, then sleep. Announcing first is what makes a publish between the check and the
// sleep wake it (prepare_sleep in shm/wake.hpp). `wakers`: how many ends wake this line (the
// writer for the data line, every reader for the space line).
template <class Ready>
sleep_result sleep_once(shm::wait_line& line, std::uint32_t wakers, const deadline& dl, Ready&& ready) {
    bool long_ok;
    const std::uint32_t seq = shm::prepare_sleep(line, long_ok, wakers);
    sleep_result r = sleep_result::woken;
    if (ready()) r = sleep_result::ready;
    else if (dl.passed()) r = sleep_result::timed_out;
    else shm::futex_wait(line.seq, seq, dl.next_sleep(long_ok));
    shm::finish_sleep(line);
    return r;
}

}  // namespace shmchan::detail
