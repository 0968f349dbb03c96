// The ceiling: the same producer and consumer work on two threads of one process, handing
// pointers to preallocated buffers over through lock-free SPSC queues (boost::lockfree).
// The producer fills a free buffer in place and passes it on; the consumer digests it in
// place and hands it back. No copy, no system call, no process boundary.
#include "support.hpp"

#include <boost/lockfree/spsc_queue.hpp>

#include <atomic>
#include <thread>

namespace shmchan_bench {
namespace {

using queue = boost::lockfree::spsc_queue<std::byte*>;

// Buffers in flight: max(4 MiB, 4 x payload) bytes, as shmchan's ring, 2 to 1024 of them.
std::size_t buffers_for(std::size_t payload) {
    return std::clamp<std::size_t>(std::max<std::size_t>(4 * MiB, 4 * payload) / payload, 2, 1024);
}

// A queue plus a futex word for sleeping waits (latency, sleep mode).
struct channel {
    explicit channel(std::size_t n) : q(n) {}
    queue q;
    std::atomic<std::uint32_t> seq{0};

    void push(std::byte* p, bool notify) {
        while (!q.push(p)) cpu_relax();  // never full here: as many slots as buffers
        if (notify) {
            seq.fetch_add(1, std::memory_order_release);
            seq.notify_one();
        }
    }
    // spin: busy-wait (throughput yields now and then, so it survives a busy machine);
    // otherwise sleep on `seq` until a push.
    std::byte* pop(bool spin) {
        std::byte* p = nullptr;
        if (spin) {
            for (unsigned n = 1; !q.pop(p); ++n) {
                cpu_relax();
                if ((n & 4095) == 0) std::this_thread::yield();
            }
            return p;
        }
        for (;;) {
            const std::uint32_t s = seq.load(std::memory_order_acquire);
            if (q.pop(p)) return p;
            seq.wait(s, std::memory_order_acquire);
        }
    }
};

class inprocess final : public transport {
public:
    std::string name() const override { return "inprocess"; }
    std::string describe() const override {
        return "ceiling: two threads of one process, boost::lockfree::spsc_queue of pointers to "
               "preallocated buffers (max(4 MiB, 4 x payload) in flight); producer fills in "
               "place, consumer digests in place: 0 copies, 0 syscalls; waits spin (throughput, "
               "busy) or sleep on a futex (sleep)";
    }
    bool in_one_process() const override { return true; }

    // consume runs first (on its own thread), sets everything up, then calls ready().
    side_result consume(const run_spec& spec) override {
        setup(spec, false);
        for (std::size_t i = 0; i < pool_count_; ++i) free_->push(pool_->data() + i * spec.payload, false);
        side_result r;
        digest d;
        spec.ready();
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            std::byte* p = full_->pop(true);
            if (i == 0) r.start_ns = now_ns();
            d.update(std::span(p, spec.payload));
            free_->push(p, false);
            ++r.messages;
        }
        r.end_ns = now_ns();
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }
    side_result produce(const run_spec& spec) override {
        side_result r;
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            if (i == spec.warmup) r.start_ns = now_ns();
            std::byte* p = free_->pop(true);
            fill_payload(std::span(p, spec.payload), i);
            full_->push(p, false);
        }
        r.end_ns = now_ns();
        r.messages = spec.messages;
        r.bytes = spec.messages * spec.payload;
        r.checksum = pattern_checksum(spec.payload, spec.messages);
        return r;
    }
    // full_: ping -> pong, free_: pong -> ping; one buffer for each direction.
    side_result pong(const run_spec& spec) override {
        setup(spec, true);
        std::byte* out = pool_->data() + spec.payload;
        side_result r;
        digest d;
        spec.ready();
        const bool sleep = !spec.busy_wait;
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            std::byte* in = full_->pop(spec.busy_wait);
            if (i == 0) r.start_ns = now_ns();
            d.update(std::span(in, spec.payload));
            fill_payload(std::span(out, spec.payload), i);
            free_->push(out, sleep);
            ++r.messages;
        }
        r.end_ns = now_ns();
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }
    side_result ping(const run_spec& spec) override {
        std::byte* out = pool_->data();
        side_result r;
        digest d;
        const bool sleep = !spec.busy_wait;
        r.rtt_ns.reserve(spec.messages);
        r.start_ns = now_ns();
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            const std::int64_t t0 = now_ns();
            fill_payload(std::span(out, spec.payload), i);
            full_->push(out, sleep);
            std::byte* echo = free_->pop(spec.busy_wait);
            d.update(std::span(echo, spec.payload));
            r.rtt_ns.push_back(now_ns() - t0);
        }
        r.end_ns = now_ns();
        r.messages = spec.messages;
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }

private:
    void setup(const run_spec& spec, bool latency) {
        pool_count_ = latency ? 2 : buffers_for(spec.payload);
        pool_ = std::make_unique<buffer>(pool_count_ * spec.payload);  // pages touched up front
        full_ = std::make_unique<channel>(pool_count_ + 1);
        free_ = std::make_unique<channel>(pool_count_ + 1);
    }

    std::size_t pool_count_ = 0;
    std::unique_ptr<buffer> pool_;
    std::unique_ptr<channel> full_, free_;
};

}  // namespace

std::unique_ptr<transport> make_inprocess() { return std::make_unique<inprocess>(); }

}  // namespace shmchan_bench
