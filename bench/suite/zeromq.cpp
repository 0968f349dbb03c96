// ZeroMQ over its ipc:// transport (a Unix-domain socket underneath), one PAIR socket per
// side. Messages are zmq_msg_t of exactly `payload` bytes: the producer fills the message's
// own buffer (zmq_msg_init_size) and sends it without a further copy in user space; the
// consumer digests the received message in place. The receiving side acknowledges the end and
// the sender closes only then: a ZeroMQ socket closed with messages still queued toward a busy
// peer loses them despite ZMQ_LINGER (libzmq#4660, #3774; seen here with PUSH/PULL).
#include "support.hpp"

#include <zmq.h>

#include <cerrno>

namespace shmchan_bench {
namespace {

[[noreturn]] void fail_zmq(const std::string& what) { fail(what + ": " + zmq_strerror(zmq_errno())); }

// High-water marks in messages: ZeroMQ's default 1000, fewer for large messages (about 64 MiB
// queued on each side, at least 4 messages).
int hwm_for(std::size_t payload) {
    return static_cast<int>(std::clamp<std::size_t>((64 * MiB) / payload, 4, 1000));
}

std::string endpoint_of(const run_spec& spec) { return "ipc://" + spec.scratch_dir + "/zmq.ipc"; }

class context {
public:
    context() : ctx_(zmq_ctx_new()) {
        if (!ctx_) fail_zmq("zmq_ctx_new");
    }
    ~context() {
        if (sock_) zmq_close(sock_);
        zmq_ctx_term(ctx_);  // waits until queued messages are delivered (linger -1)
    }
    context(const context&) = delete;
    context& operator=(const context&) = delete;
    void* open(int type, std::size_t payload) {
        sock_ = zmq_socket(ctx_, type);
        if (!sock_) fail_zmq("zmq_socket");
        const int hwm = hwm_for(payload);
        const int patience_ms = 10000;  // a lost message shows up as an error, not a hang
        if (zmq_setsockopt(sock_, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
            zmq_setsockopt(sock_, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
            zmq_setsockopt(sock_, ZMQ_RCVTIMEO, &patience_ms, sizeof patience_ms) != 0)
            fail_zmq("zmq_setsockopt");
        return sock_;
    }

    // The run's PAIR socket: bound to the endpoint, then spec.ready() (consumer, pong); or
    // connected to it (producer, ping).
    void* bind(const run_spec& spec) {
        void* s = open(ZMQ_PAIR, spec.payload);
        if (zmq_bind(s, endpoint_of(spec).c_str()) != 0) fail_zmq("zmq_bind");
        spec.ready();
        return s;
    }
    void* connect(const run_spec& spec) {
        void* s = open(ZMQ_PAIR, spec.payload);
        if (zmq_connect(s, endpoint_of(spec).c_str()) != 0) fail_zmq("zmq_connect");
        return s;
    }

private:
    void* ctx_;
    void* sock_ = nullptr;
};

void send_msg(void* s, std::size_t payload, std::uint64_t seq, bool spin) {
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, payload) != 0) fail_zmq("zmq_msg_init_size");
    fill_payload(std::span(static_cast<std::byte*>(zmq_msg_data(&m)), payload), seq);
    for (;;) {
        if (zmq_msg_send(&m, s, spin ? ZMQ_DONTWAIT : 0) >= 0) return;  // the message is zmq's now
        if (zmq_errno() == EINTR || (spin && zmq_errno() == EAGAIN)) continue;
        zmq_msg_close(&m);
        fail_zmq("zmq_msg_send");
    }
}

// Returns false on an empty message: the other side's end marker.
bool receive_msg(void* s, std::size_t payload, digest& d, bool spin) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (;;) {
        if (zmq_msg_recv(&m, s, spin ? ZMQ_DONTWAIT : 0) >= 0) break;
        if (zmq_errno() == EINTR || (spin && zmq_errno() == EAGAIN)) continue;
        zmq_msg_close(&m);
        if (zmq_errno() == EAGAIN) fail("nothing received for 10 s after " + std::to_string(d.bytes() / payload) + " messages");
        fail_zmq("zmq_msg_recv");
    }
    const std::size_t n = zmq_msg_size(&m);
    if (n == payload) d.update(std::span(static_cast<const std::byte*>(zmq_msg_data(&m)), n));
    zmq_msg_close(&m);
    if (n == 0) return false;
    if (n != payload) fail("received a message of " + std::to_string(n) + " bytes");
    return true;
}

// The end of a run: the last receiver says so with an empty message, the last sender waits
// for it (at most 10 s: a missing acknowledgement is not an error by itself, the counts and
// checksums are). In ping-pong the same empty message ends the exchange.
void acknowledge(void* s) {
    while (zmq_send(s, "", 0, 0) < 0)
        if (zmq_errno() != EINTR) fail_zmq("zmq_send (acknowledgement)");
}
void await_acknowledgement(void* s) {
    char c;
    while (zmq_recv(s, &c, 1, 0) < 0 && zmq_errno() == EINTR) {
    }
}

class zeromq final : public transport {
public:
    std::string name() const override { return "zeromq-ipc"; }
    std::string describe() const override {
        int major = 0, minor = 0, patch = 0;
        zmq_version(&major, &minor, &patch);
        return "ZeroMQ " + std::to_string(major) + "." + std::to_string(minor) + "." +
               std::to_string(patch) + " ipc:// (a Unix socket), PAIR sockets, an I/O thread "
               "in each process: producer fills a zmq_msg_init_size() buffer, the I/O threads "
               "move it through the socket (kernel copy in and out, plus batching copies), "
               "consumer digests the received message in place; busy-wait = ZMQ_DONTWAIT loops";
    }

    side_result consume(const run_spec& spec) override {
        context ctx;
        void* s = ctx.bind(spec);
        side_result r;
        digest d;
        consume_loop(  // the message arrives digested
            spec, r,
            [&](std::uint64_t i) {
                if (!receive_msg(s, spec.payload, d, false)) fail("an empty message after " + std::to_string(i));
            },
            [](std::uint64_t) {});
        finish(r, d);
        acknowledge(s);
        return r;
    }
    side_result produce(const run_spec& spec) override {
        side_result r;
        {
            context ctx;
            void* s = ctx.connect(spec);
            r = produce_loop(spec, [&](std::uint64_t i) { send_msg(s, spec.payload, i, false); });
            await_acknowledgement(s);
        }
        generated(r, spec);
        return r;
    }
    side_result pong(const run_spec& spec) override {
        context ctx;
        void* s = ctx.bind(spec);
        side_result r;
        digest d;
        const bool ended = pong_loop(  // false from receive_msg: the ping side is done
            spec, r, [&](std::uint64_t) { return receive_msg(s, spec.payload, d, spec.busy_wait); },
            [&](std::uint64_t i) { send_msg(s, spec.payload, i, spec.busy_wait); });
        finish(r, d);
        if (!ended) await_acknowledgement(s);
        return r;
    }
    side_result ping(const run_spec& spec) override {
        context ctx;
        void* s = ctx.connect(spec);
        side_result r;
        digest d;
        ping_loop(spec, r, [&](std::uint64_t i) {
            send_msg(s, spec.payload, i, spec.busy_wait);
            if (!receive_msg(s, spec.payload, d, spec.busy_wait)) fail("an empty echo");
        });
        finish(r, d);
        acknowledge(s);  // ends the exchange
        return r;
    }
};

}  // namespace

std::unique_ptr<transport> make_zeromq() { return std::make_unique<zeromq>(); }

}  // namespace shmchan_bench
