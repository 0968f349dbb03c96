// The ceiling: the same producer and consumer work on two threads of one process, handing
// preallocated buffers (slots) over through an in-process single-producer/single-consumer
// queue. The producer fills a free slot in place and publishes it; the consumer digests it in
// place and releases it. No copy, no system call while data flows, no process boundary.
//
// The queue is a ring of slot indices in the style of rigtorp/SPSCQueue: each side owns one
// index on its own cache line and keeps a private copy of the other's, reloaded only when the
// ring looks full (producer) or empty (consumer). (boost::lockfree::spsc_queue re-reads the
// other side's index on every push and pop, and a second queue to return buffers doubles the
// cross-core traffic: a first version built that way came out slower than shmchan itself.)
// Waiting as shmchan's ends do by default: spin for a budget that adapts to the gaps met (50 us,
// growing up to 250 us when waits end shortly after a sleep would have begun), then sleep on a
// futex, with the same asymmetric handshake (the sleeper pays a membarrier, the publisher a
// plain load; a publisher that could miss a sleeper would cost the ceiling a timeout per sleep).
#include "support.hpp"

#include <atomic>
#include <ctime>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

namespace shmchan_bench {
namespace {

// Slots: max(4 MiB, 4 x payload) bytes, as shmchan's ring (65536 of 64 B, 4 of 16 MiB): the
// depth decides how much a side can do while the other is not scheduled.
std::size_t slots_for(std::size_t payload) {
    return std::max<std::size_t>(std::max<std::size_t>(4 * MiB, 4 * payload) / payload, 2);
}

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t seen, long timeout_ns) {
    timespec ts{0, timeout_ns};
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, &ts, nullptr, 0);
}
void futex_wake(std::atomic<std::uint32_t>& word) {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

// Registered once per process; false where the kernel refuses (then every publish is fenced).
bool asymmetric_fences() {
    static const bool ok = ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    return ok;
}

// One side's published position, with what the other side needs to wake it.
struct alignas(64) position {
    std::atomic<std::uint64_t> value{0};
    // The waiter of the *other* side sleeps on these (see wait_until / publish).
    alignas(64) std::atomic<std::uint32_t> seq{0};
    std::atomic<std::uint32_t> sleeping{0};
    std::atomic<std::uint32_t> woken{0};  // one wake per sleep, not one per publish
};

enum class wait_mode { spin_then_sleep, spin, sleep };

// shmchan's spin_budget (src/channel.cpp): grows to cover gaps up to `max`, halves after
// longer ones, never below `base`.
class spin_budget {
public:
    std::int64_t now() const { return cur_; }
    void waited(std::int64_t gap) {
        if (gap <= max_) cur_ = std::clamp(std::max(cur_, gap + gap / 4), base_, max_);
        else cur_ = std::max(base_, cur_ / 2);
    }

private:
    std::int64_t base_ = 50'000, max_ = 250'000, cur_ = 50'000;
};

// Waits until `cond(p.value)` holds. spin_then_sleep: 50 us of spinning, then futex sleeps
// (throughput); spin: never sleeps (busy-wait latency); sleep: at once (sleeping latency).
// `fenced` must match the publisher's (publish()).
template <class Cond>
std::uint64_t wait_until(position& p, wait_mode mode, Cond cond, bool fenced, spin_budget* budget = nullptr) {
    std::uint64_t v = p.value.load(std::memory_order_acquire);
    if (cond(v)) return v;
    const std::int64_t first_miss = budget ? now_ns() : 0;
    auto done = [&] {
        if (budget) budget->waited(now_ns() - first_miss);
        return v;
    };
    if (mode != wait_mode::sleep) {
        const std::int64_t give_up = first_miss + (budget ? budget->now() : 0);
        for (unsigned n = 1;; ++n) {
            cpu_relax();
            v = p.value.load(std::memory_order_acquire);
            if (cond(v)) return done();
            if ((n & 15) == 0 && mode == wait_mode::spin_then_sleep && now_ns() > give_up) break;
        }
    }
    for (;;) {
        const std::uint32_t s = p.seq.load(std::memory_order_acquire);
        p.woken.store(0, std::memory_order_relaxed);
        p.sleeping.store(1, std::memory_order_seq_cst);
        // Pairs with publish(): either this load sees the new position, or the publisher's
        // later load of `sleeping` sees 1 and wakes us (a full barrier on both sides).
        if (fenced) std::atomic_thread_fence(std::memory_order_seq_cst);
        else ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
        v = p.value.load(std::memory_order_acquire);
        if (cond(v)) break;
        futex_wait(p.seq, s, 100'000'000);  // (a timeout only as a safety net)
        v = p.value.load(std::memory_order_acquire);
        if (cond(v)) break;
    }
    p.sleeping.store(0, std::memory_order_relaxed);
    return done();
}

// fenced: a full fence after the store (latency runs, or no membarrier); otherwise the
// sleeper's membarrier provides it.
void publish(position& p, std::uint64_t v, bool fenced) {
    p.value.store(v, std::memory_order_release);
    if (fenced) std::atomic_thread_fence(std::memory_order_seq_cst);
    else std::atomic_signal_fence(std::memory_order_seq_cst);  // keeps the load after the store
    if (p.sleeping.load(std::memory_order_relaxed) && !p.woken.exchange(1, std::memory_order_relaxed)) {
        p.seq.fetch_add(1, std::memory_order_release);
        futex_wake(p.seq);
    }
}

class inprocess final : public transport {
public:
    std::string name() const override { return "inprocess"; }
    std::string describe() const override {
        return "ceiling: two threads of one process, an SPSC ring of preallocated slots "
               "(max(4 MiB, 4 x payload) bytes) with cached indices; producer fills a slot in place, "
               "consumer digests it in place: 0 copies, 0 syscalls while data flows; waits spin "
               "50-250 us (adaptive, as shmchan) then futex (throughput), spin (busy), futex at "
               "once (sleep)";
    }
    bool in_one_process() const override { return true; }

    // consume runs first (on its own thread), sets everything up, then calls ready().
    side_result consume(const run_spec& spec) override {
        setup(spec, slots_for(spec.payload));
        side_result r;
        digest d;
        spec.ready();
        std::uint64_t seen = 0;  // private copy of the producer's position
        const bool fenced = !asymmetric_fences();
        spin_budget budget;
        consume_loop(
            spec, r,
            [&](std::uint64_t i) {
                if (i == seen)
                    seen = wait_until(head_, wait_mode::spin_then_sleep, [i](std::uint64_t h) { return h > i; }, fenced, &budget);
            },
            [&](std::uint64_t i) {
                d.update(std::span(slot(i), spec.payload));
                publish(tail_, i + 1, fenced);
            });
        finish(r, d);
        return r;
    }
    side_result produce(const run_spec& spec) override {
        claim_like_loans claims;
        std::uint64_t freed = 0;  // private copy of the consumer's position
        const bool fenced = !asymmetric_fences();
        spin_budget budget;
        side_result r = produce_loop(spec, [&](std::uint64_t i) {
            if (i - freed >= slots_)
                freed = wait_until(tail_, wait_mode::spin_then_sleep, [&](std::uint64_t t) { return i - t < slots_; }, fenced, &budget);
            claims.fill(std::span(slot(i), spec.payload), i, i >= slots_);
            publish(head_, i + 1, fenced);
        });
        generated(r, spec);
        return r;
    }
    // Ping-pong over two one-slot rings: head_/slot 0 ping -> pong, tail_/slot 1 pong -> ping.
    side_result pong(const run_spec& spec) override {
        claim_like_loans claims;
        setup(spec, 2);
        const wait_mode mode = spec.busy_wait ? wait_mode::spin : wait_mode::sleep;
        const bool fenced = !spec.busy_wait;  // busy: nobody sleeps; sleep: a fence is cheap next to a wake-up
        side_result r;
        digest d;
        spec.ready();
        pong_loop(
            spec, r,
            [&](std::uint64_t i) {
                const std::uint64_t h = wait_until(head_, mode, [i](std::uint64_t v) { return v > i; }, true);
                return !((h & ended) && (h & ~ended) <= i);  // false: the ping side ended the exchange
            },
            [&](std::uint64_t i) {
                d.update(std::span(pool_->data(), spec.payload));
                claims.fill(std::span(pool_->data() + spec.payload, spec.payload), i, i > 0);
                publish(tail_, i + 1, fenced);
            });
        finish(r, d);
        return r;
    }
    side_result ping(const run_spec& spec) override {
        claim_like_loans claims;
        const wait_mode mode = spec.busy_wait ? wait_mode::spin : wait_mode::sleep;
        const bool fenced = !spec.busy_wait;  // busy: nobody sleeps; sleep: a fence is cheap next to a wake-up
        side_result r;
        digest d;
        ping_loop(spec, r, [&](std::uint64_t i) {
            claims.fill(std::span(pool_->data(), spec.payload), i, i > 0);
            publish(head_, i + 1, fenced);
            wait_until(tail_, mode, [i](std::uint64_t t) { return t > i; }, true);
            d.update(std::span(pool_->data() + spec.payload, spec.payload));
        });
        finish(r, d);
        if (r.messages < spec.messages) publish(head_, ended | r.messages, true);
        return r;
    }

private:
    void setup(const run_spec& spec, std::size_t slots) {
        slots_ = slots;
        payload_ = spec.payload;
        pool_ = std::make_unique<buffer>(slots * spec.payload);  // pages touched up front
    }
    std::byte* slot(std::uint64_t i) const { return pool_->data() + (i % slots_) * payload_; }

    static constexpr std::uint64_t ended = std::uint64_t{1} << 63;  // ping: no more round trips
    position head_;  // producer: slots published
    position tail_;  // consumer: slots released
    std::size_t slots_ = 0, payload_ = 0;
    std::unique_ptr<buffer> pool_;
};

}  // namespace

std::unique_ptr<transport> make_inprocess() { return std::make_unique<inprocess>(); }

}  // namespace shmchan_bench
