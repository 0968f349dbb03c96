// Boost.Interprocess message_queue: a queue of fixed-size slots in a shared-memory segment,
// guarded by a process-shared mutex and condition variables. Message size = payload; depth
// max(4 MiB, 4 x payload) / payload (65536 slots of 64 B, 4 of 16 MiB): the same bytes in
// flight as shmchan's ring.
#include "support.hpp"

#include <boost/interprocess/ipc/message_queue.hpp>

#include <climits>
#include <sys/statvfs.h>

namespace shmchan_bench {
namespace {

namespace bip = boost::interprocess;

std::size_t depth_for(std::size_t payload) {
    return std::max<std::size_t>(std::max<std::size_t>(4 * MiB, 4 * payload) / payload, 4);
}

std::string queue_name(const run_spec& spec, char which) { return spec.endpoint + "-mq-" + which; }

// False on an empty message: the ping side's end of the exchange.
bool receive(bip::message_queue& q, buffer& buf, bool spin) {
    bip::message_queue::size_type got = 0;
    unsigned prio = 0;
    if (spin) {
        while (!q.try_receive(buf.data(), buf.size(), got, prio)) cpu_relax();
    } else {
        q.receive(buf.data(), buf.size(), got, prio);
    }
    if (got == 0) return false;
    if (got != buf.size()) fail("received a message of " + std::to_string(got) + " bytes");
    return true;
}

void send(bip::message_queue& q, const buffer& buf, bool spin) {
    if (spin) {
        while (!q.try_send(buf.data(), buf.size(), 0)) cpu_relax();
    } else {
        q.send(buf.data(), buf.size(), 0);
    }
}

class message_queue final : public transport {
public:
    std::string name() const override { return "boost-mq"; }
    std::string describe() const override {
        return "Boost.Interprocess message_queue (shm segment, process-shared mutex + condition "
               "variables): producer fills a private buffer, send() copies it into a slot, "
               "receive() copies it out into the consumer's buffer: 2 copies, a lock per message, "
               "futex syscalls when a side waits; busy-wait = try_send()/try_receive() loops";
    }

    std::string prepare(const run_spec& spec) override {
        // Two queues for ping-pong; slots of `payload` bytes plus Boost's headers.
        const double need = double(spec.latency ? 2 : 1) * double(depth_for(spec.payload)) *
                            double(spec.payload + 64);
        struct statvfs st{};
        if (::statvfs("/dev/shm", &st) == 0) {
            const double avail = double(st.f_bavail) * double(st.f_frsize);
            if (avail < need * 1.25)
                return "a message_queue of " + std::to_string(depth_for(spec.payload)) + " x " +
                       std::to_string(spec.payload) + "-byte messages does not fit in /dev/shm (" +
                       std::to_string(static_cast<long long>(avail)) + " bytes free)";
        }
        cleanup(spec);
        return {};
    }
    void cleanup(const run_spec& spec) override {
        bip::message_queue::remove(queue_name(spec, 'a').c_str());
        bip::message_queue::remove(queue_name(spec, 'b').c_str());
    }

    side_result consume(const run_spec& spec) override {
        bip::message_queue q(bip::create_only, queue_name(spec, 'a').c_str(), depth_for(spec.payload), spec.payload);
        buffer buf(spec.payload);
        digest d;
        side_result r;
        spec.ready();
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            if (!receive(q, buf, false)) fail("an empty message after " + std::to_string(i));
            if (i == 0) r.start_ns = now_ns();
            d.update(buf.span());
            ++r.messages;
        }
        r.end_ns = now_ns();
        if (q.get_num_msg() != 0) fail("messages left in the queue after the last one");
        bip::message_queue::remove(queue_name(spec, 'a').c_str());
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }
    side_result produce(const run_spec& spec) override {
        bip::message_queue q(bip::open_only, queue_name(spec, 'a').c_str());
        if (q.get_max_msg_size() != spec.payload) fail("the queue's message size is not the payload");
        buffer buf(spec.payload);
        side_result r;
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            if (i == spec.warmup) r.start_ns = now_ns();
            fill_payload(buf.span(), i);
            send(q, buf, false);
        }
        r.end_ns = now_ns();
        r.messages = spec.messages;
        r.bytes = spec.messages * spec.payload;
        r.checksum = pattern_checksum(spec.payload, spec.messages);
        return r;
    }
    // a: ping -> pong, b: pong -> ping.
    side_result pong(const run_spec& spec) override {
        bip::message_queue a(bip::create_only, queue_name(spec, 'a').c_str(), depth_for(spec.payload), spec.payload);
        bip::message_queue b(bip::create_only, queue_name(spec, 'b').c_str(), depth_for(spec.payload), spec.payload);
        buffer in(spec.payload), out(spec.payload);
        digest d;
        side_result r;
        spec.ready();
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            if (!receive(a, in, spec.busy_wait)) break;  // the ping side is done
            if (i == 0) r.start_ns = now_ns();
            d.update(in.span());
            fill_payload(out.span(), i);
            send(b, out, spec.busy_wait);
            ++r.messages;
        }
        r.end_ns = now_ns();
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }
    side_result ping(const run_spec& spec) override {
        bip::message_queue a(bip::open_only, queue_name(spec, 'a').c_str());
        bip::message_queue b(bip::open_only, queue_name(spec, 'b').c_str());
        buffer in(spec.payload), out(spec.payload);
        digest d;
        side_result r;
        r.rtt_ns.reserve(spec.messages);
        r.start_ns = now_ns();
        const std::int64_t stop = spec.time_limit_ns ? r.start_ns + spec.time_limit_ns : INT64_MAX;
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            const std::int64_t t0 = now_ns();
            if (t0 > stop) break;
            fill_payload(out.span(), i);
            send(a, out, spec.busy_wait);
            if (!receive(b, in, spec.busy_wait)) fail("an empty echo");
            d.update(in.span());
            r.rtt_ns.push_back(now_ns() - t0);
            ++r.messages;
        }
        r.end_ns = now_ns();
        if (r.messages < spec.messages) a.send(out.data(), 0, 0);  // ends the exchange early
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }
};

}  // namespace

std::unique_ptr<transport> make_message_queue() { return std::make_unique<message_queue>(); }

}  // namespace shmchan_bench
