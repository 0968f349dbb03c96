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
// Waiting: spin for 50 us, then sleep on a futex, as shmchan's ends do by default.
#include "support.hpp"

#include <atomic>
#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

namespace shmchan_bench {
namespace {

// Slots: max(4 MiB, 4 x payload) bytes, as shmchan's ring, 2 to 1024 of them.
std::size_t slots_for(std::size_t payload) {
    return std::clamp<std::size_t>(std::max<std::size_t>(4 * MiB, 4 * payload) / payload, 2, 1024);
}

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t seen, long timeout_ns) {
    timespec ts{0, timeout_ns};
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, &ts, nullptr, 0);
}
void futex_wake(std::atomic<std::uint32_t>& word) {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

// One side's published position, with what the other side needs to wake it.
struct alignas(64) position {
    std::atomic<std::uint64_t> value{0};
    // The waiter of the *other* side sleeps on these (see wait_until / publish).
    alignas(64) std::atomic<std::uint32_t> seq{0};
    std::atomic<std::uint32_t> sleeping{0};
};

enum class wait_mode { spin_then_sleep, spin, sleep };

// Waits until `cond(p.value)` holds. spin_then_sleep: 50 us of spinning, then futex sleeps of
// at most 1 ms (a wake lost to the unfenced check in publish() costs at most that); sleep:
// at once, with the fenced publish (latency runs).
template <class Cond>
std::uint64_t wait_until(position& p, wait_mode mode, Cond cond) {
    std::uint64_t v = p.value.load(std::memory_order_acquire);
    if (cond(v)) return v;
    if (mode != wait_mode::sleep) {
        const std::int64_t give_up = now_ns() + 50'000;
        for (unsigned n = 1;; ++n) {
            cpu_relax();
            v = p.value.load(std::memory_order_acquire);
            if (cond(v)) return v;
            if ((n & 63) == 0 && mode == wait_mode::spin_then_sleep && now_ns() > give_up) break;
            if ((n & 4095) == 0 && mode == wait_mode::spin) std::this_thread::yield();
        }
    }
    for (;;) {
        const std::uint32_t s = p.seq.load(std::memory_order_acquire);
        p.sleeping.store(1, std::memory_order_seq_cst);
        v = p.value.load(std::memory_order_seq_cst);
        if (cond(v)) break;
        futex_wait(p.seq, s, mode == wait_mode::sleep ? 100'000'000 : 1'000'000);
        v = p.value.load(std::memory_order_acquire);
        if (cond(v)) break;
    }
    p.sleeping.store(0, std::memory_order_relaxed);
    return v;
}

void publish(position& p, std::uint64_t v, bool fenced) {
    p.value.store(v, std::memory_order_release);
    if (fenced) std::atomic_thread_fence(std::memory_order_seq_cst);
    if (p.sleeping.load(std::memory_order_relaxed)) {
        p.seq.fetch_add(1, std::memory_order_release);
        futex_wake(p.seq);
    }
}

class inprocess final : public transport {
public:
    std::string name() const override { return "inprocess"; }
    std::string describe() const override {
        return "ceiling: two threads of one process, an SPSC ring of preallocated slots "
               "(max(4 MiB, 4 x payload)) with cached indices; producer fills a slot in place, "
               "consumer digests it in place: 0 copies, 0 syscalls while data flows; waits spin "
               "50 us then futex (throughput), spin (busy), futex at once (sleep)";
    }
    bool in_one_process() const override { return true; }

    // consume runs first (on its own thread), sets everything up, then calls ready().
    side_result consume(const run_spec& spec) override {
        setup(spec, slots_for(spec.payload));
        side_result r;
        digest d;
        spec.ready();
        std::uint64_t seen = 0;  // private copy of the producer's position
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            if (i == seen) seen = wait_until(head_, wait_mode::spin_then_sleep, [i](std::uint64_t h) { return h > i; });
            if (i == 0) r.start_ns = now_ns();
            d.update(std::span(slot(i), spec.payload));
            publish(tail_, i + 1, false);
            ++r.messages;
        }
        r.end_ns = now_ns();
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }
    side_result produce(const run_spec& spec) override {
        side_result r;
        std::uint64_t freed = 0;  // private copy of the consumer's position
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            if (i == spec.warmup) r.start_ns = now_ns();
            if (i - freed >= slots_)
                freed = wait_until(tail_, wait_mode::spin_then_sleep, [&](std::uint64_t t) { return i - t < slots_; });
            fill_payload(std::span(slot(i), spec.payload), i);
            publish(head_, i + 1, false);
        }
        r.end_ns = now_ns();
        r.messages = spec.messages;
        r.bytes = spec.messages * spec.payload;
        r.checksum = pattern_checksum(spec.payload, spec.messages);
        return r;
    }
    // Ping-pong over two one-slot rings: head_/slot 0 ping -> pong, tail_/slot 1 pong -> ping.
    side_result pong(const run_spec& spec) override {
        setup(spec, 2);
        const wait_mode mode = spec.busy_wait ? wait_mode::spin : wait_mode::sleep;
        const bool fenced = !spec.busy_wait;
        side_result r;
        digest d;
        spec.ready();
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            const std::uint64_t h = wait_until(head_, mode, [i](std::uint64_t v) { return v > i; });
            if ((h & ended) && (h & ~ended) <= i) break;  // the ping side ended the exchange
            if (i == 0) r.start_ns = now_ns();
            d.update(std::span(pool_->data(), spec.payload));
            fill_payload(std::span(pool_->data() + spec.payload, spec.payload), i);
            publish(tail_, i + 1, fenced);
            ++r.messages;
        }
        r.end_ns = now_ns();
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }
    side_result ping(const run_spec& spec) override {
        const wait_mode mode = spec.busy_wait ? wait_mode::spin : wait_mode::sleep;
        const bool fenced = !spec.busy_wait;
        side_result r;
        digest d;
        r.rtt_ns.reserve(spec.messages);
        r.start_ns = now_ns();
        const std::int64_t stop = spec.time_limit_ns ? r.start_ns + spec.time_limit_ns : INT64_MAX;
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            const std::int64_t t0 = now_ns();
            if (t0 > stop) break;
            fill_payload(std::span(pool_->data(), spec.payload), i);
            publish(head_, i + 1, fenced);
            wait_until(tail_, mode, [i](std::uint64_t t) { return t > i; });
            d.update(std::span(pool_->data() + spec.payload, spec.payload));
            r.rtt_ns.push_back(now_ns() - t0);
            ++r.messages;
        }
        r.end_ns = now_ns();
        if (r.messages < spec.messages) publish(head_, ended | r.messages, true);
        r.bytes = d.bytes();
        r.checksum = d.value();
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
