// Boost.Interprocess message_queue: a queue of fixed-size slots in a shared-memory segment,
// guarded by a process-shared mutex and condition variables. Message size = payload; depth
// max(4 MiB, 4 x payload) / payload (65536 slots of 64 B, 4 of 16 MiB): the same bytes in
// flight as shmchan's ring.
#include "support.hpp"

#include <boost/interprocess/ipc/message_queue.hpp>

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
    spin_or_block(
        spin, [&] { return q.try_receive(buf.data(), buf.size(), got, prio); },
        [&] { q.receive(buf.data(), buf.size(), got, prio); });
    if (got == 0) return false;
    if (got != buf.size()) fail("received a message of " + std::to_string(got) + " bytes");
    return true;
}

void send(bip::message_queue& q, const buffer& buf, bool spin) {
    spin_or_block(
        spin, [&] { return q.try_send(buf.data(), buf.size(), 0); }, [&] { q.send(buf.data(), buf.size(), 0); });
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
        consume_loop(
            spec, r,
            [&](std::uint64_t i) {
                if (!receive(q, buf, false)) fail("an empty message after " + std::to_string(i));
            },
            [&](std::uint64_t) { d.update(buf.span()); });
        finish(r, d);
        if (q.get_num_msg() != 0) fail("messages left in the queue after the last one");
        bip::message_queue::remove(queue_name(spec, 'a').c_str());
        return r;
    }
    side_result produce(const run_spec& spec) override {
        bip::message_queue q(bip::open_only, queue_name(spec, 'a').c_str());
        if (q.get_max_msg_size() != spec.payload) fail("the queue's message size is not the payload");
        buffer buf(spec.payload);
        side_result r = produce_loop(spec, [&](std::uint64_t i) {
            fill_payload(buf.span(), i);
            send(q, buf, false);
        });
        generated(r, spec);
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
        pong_loop(
            spec, r, [&](std::uint64_t) { return receive(a, in, spec.busy_wait); },  // false: the ping side is done
            [&](std::uint64_t i) {
                d.update(in.span());
                fill_payload(out.span(), i);
                send(b, out, spec.busy_wait);
            });
        finish(r, d);
        return r;
    }
    side_result ping(const run_spec& spec) override {
        bip::message_queue a(bip::open_only, queue_name(spec, 'a').c_str());
        bip::message_queue b(bip::open_only, queue_name(spec, 'b').c_str());
        buffer in(spec.payload), out(spec.payload);
        digest d;
        side_result r;
        ping_loop(spec, r, [&](std::uint64_t i) {
            fill_payload(out.span(), i);
            send(a, out, spec.busy_wait);
            if (!receive(b, in, spec.busy_wait)) fail("an empty echo");
            d.update(in.span());
        });
        finish(r, d);
        if (r.messages < spec.messages) a.send(out.data(), 0, 0);  // ends the exchange early
        return r;
    }
};

}  // namespace

std::unique_ptr<transport> make_message_queue() { return std::make_unique<message_queue>(); }

}  // namespace shmchan_bench
