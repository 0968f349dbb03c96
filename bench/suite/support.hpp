// Helpers shared by the harness and the transports of the benchmark suite: files in the run's
// scratch directory, exact reads and writes on file descriptors (blocking or spinning), a
// base for transports that are a pair of byte streams (Unix socket, TCP, pipe), and waits.
#pragma once

#include "transport.hpp"

#include <climits>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

namespace shmchan_bench {

constexpr std::size_t KiB = 1024, MiB = KiB * 1024;

// "what: strerror(errno)", thrown as std::runtime_error (the child wrapper turns it into
// side_result::error).
[[noreturn]] void fail_errno(const std::string& what);
[[noreturn]] inline void fail(const std::string& what) { throw std::runtime_error(what); }

// Files the accepting side (or prepare()) leaves for the other side: written to a temporary
// name and renamed, so a reader never sees half of one.
void write_file(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);

// This binary, by its real path.
std::string self_exe();
// `name` looked up in PATH (or as given, if it has a slash): its path if executable, else "".
std::string find_program(const std::string& name);
// The environment variable `var` if set and not empty, else `fallback`.
std::string env_or(const char* var, const std::string& fallback);

// A helper process that is this binary again (a daemon such as the engine): stdin and stdout
// on pipes, stderr inherited. It should die with the harness (PR_SET_PDEATHSIG, see
// die_with_parent()).
struct child_process {
    int pid = -1;
    int to = -1;    // its stdin
    int from = -1;  // its stdout
};
child_process spawn_self(const std::vector<std::string>& args);
// The same for another program (argv[0] is its path), e.g. the Node producer.
child_process spawn_program(const std::vector<std::string>& argv);
// Closes its stdin (the daemon's signal to stop), waits up to `grace_ms`, then kills it.
void stop_child(child_process& c, int grace_ms);
// One line from `fd` within `timeout_ms` ("" on end of file or timeout).
std::string read_line_for(int fd, int timeout_ms);
// In a child: be killed when the harness dies; false if it already has. 0: no parent to
// follow (a side started by hand).
bool die_with_parent(int parent_pid);

// Exact transfers on a descriptor. With `spin` the descriptor must be non-blocking and the call
// retries on EAGAIN at once (busy-wait); otherwise it blocks in the kernel. Throw on errors and
// on end of file.
void write_exact(int fd, const void* data, std::size_t n, bool spin);
void read_exact(int fd, void* data, std::size_t n, bool spin);
// The same, but a clean end of file before the first byte returns false (the end of an
// exchange); an end in the middle of a message still throws.
bool read_message(int fd, void* data, std::size_t n, bool spin);
void set_nonblocking(int fd);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// The bookkeeping every side shares, written once so that every transport times the same
// points. The callables do the transport's work; the loops only number the messages, read the
// clock and count.

// Spin: try_() until it returns true, cpu_relax() between tries (busy-wait); otherwise block()
// once (a call that waits in the kernel or the library). Always inlined: no call per message.
template <class Try, class Block>
[[gnu::always_inline]] inline void spin_or_block(bool spin, Try&& try_, Block&& block) {
    if (spin) {
        while (!try_()) cpu_relax();
    } else {
        block();
    }
}

// CLOCK_PROCESS_CPUTIME_ID in seconds (every thread of the process, user and system).
inline double process_cpu_now() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Throughput, the producer: send(i) for every message; the clock runs from when message
// #warmup begins to after the last send. The caller closes its end, then calls generated().
template <class Send>
side_result produce_loop(const run_spec& spec, Send&& send) {
    side_result r;
    double cpu0 = 0;
    for (std::uint64_t i = 0; i < spec.messages; ++i) {
        if (i == spec.warmup) {
            r.start_ns = now_ns();
            cpu0 = process_cpu_now();
        }
        send(i);
    }
    r.end_ns = now_ns();
    r.cpu_s = process_cpu_now() - cpu0;
    return r;
}
// After the producer's clock and its close: what it generated (pattern_checksum, never timed).
inline void generated(side_result& r, const run_spec& spec) {
    r.messages = spec.messages;
    r.bytes = spec.messages * spec.payload;
    r.checksum = pattern_checksum(spec.payload, spec.messages);
}

// Throughput, the consumer: arrive(i) waits for message i (or its first part); the clock starts
// once message 0 has arrived, at start() (now, or when the transport saw it begin); take(i)
// digests it (reading what remains of it, releasing it). Stops no clock: finish() does.
template <class Arrive, class Take, class Start = std::int64_t (*)() noexcept>
void consume_loop(const run_spec& spec, side_result& r, Arrive&& arrive, Take&& take, Start start = now_ns) {
    for (std::uint64_t i = 0; i < spec.messages; ++i) {
        arrive(i);
        if (i == 0) r.start_ns = start();
        take(i);
        ++r.messages;
    }
}

// Latency, the ping side: round_trip(i) fills and sends ping i, waits for its echo and digests
// it; one sample from before the fill to after the digest, then after(i) (checks outside the
// sample). No round trip starts once spec.time_limit_ns has passed since the first. Stops no
// clock: finish() does.
template <class RoundTrip, class After>
void ping_loop(const run_spec& spec, side_result& r, RoundTrip&& round_trip, After&& after) {
    r.rtt_ns.reserve(spec.messages);
    r.start_ns = now_ns();
    const std::int64_t stop = spec.time_limit_ns ? r.start_ns + spec.time_limit_ns : INT64_MAX;
    for (std::uint64_t i = 0; i < spec.messages; ++i) {
        const std::int64_t t0 = now_ns();
        if (t0 > stop) break;
        round_trip(i);
        r.rtt_ns.push_back(now_ns() - t0);
        after(i);
        ++r.messages;
    }
}
template <class RoundTrip>
void ping_loop(const run_spec& spec, side_result& r, RoundTrip&& round_trip) {
    ping_loop(spec, r, round_trip, [](std::uint64_t) {});
}

// Latency, the pong side: arrive(i) waits for ping i, false if the ping side ended the exchange
// instead; the clock starts once ping 0 has arrived, at start() as for consume_loop; echo(i)
// digests it and sends echo i. Returns true if the exchange was ended (false: all
// spec.messages echoed). Stops no clock.
template <class Arrive, class Echo, class Start = std::int64_t (*)() noexcept>
bool pong_loop(const run_spec& spec, side_result& r, Arrive&& arrive, Echo&& echo, Start start = now_ns) {
    for (std::uint64_t i = 0; i < spec.messages; ++i) {
        if (!arrive(i)) return true;
        if (i == 0) r.start_ns = start();
        echo(i);
        ++r.messages;
    }
    return false;
}

// The end of a side that digests (consumer, ping, pong): its clock stops now; what it digested.
inline void finish(side_result& r, const digest& d) {
    r.end_ns = now_ns();
    r.bytes = d.bytes();
    r.checksum = d.value();
}

// Stream sockets (Unix, TCP): a SOCK_STREAM | SOCK_CLOEXEC socket of `family`; bind() to `a`
// and listen() for one peer; accept() it; connect() to `a`. `what` names the address in errors.
int stream_socket(int family);
void bind_listen(int fd, const sockaddr* a, socklen_t len, const std::string& what);
int accept_one(int listener);
void connect_to(int fd, const sockaddr* a, socklen_t len, const std::string& what);
// The address of a Unix socket at `path` (throws if too long).
sockaddr_un unix_address(const std::string& path);
// TCP on 127.0.0.1 (tcp-loopback, tcp-relay): a TCP_NODELAY socket connected to `port`
// (`what` names the peer in errors); a listener on port 0 and the port it got.
int connect_loopback(std::uint16_t port, const std::string& what);
int listen_loopback(std::uint16_t& port);
void tcp_no_delay(int fd);

// A private, page-aligned buffer whose pages are touched up front (generation and reception
// buffers of the copying transports; not timed).
class buffer {
public:
    explicit buffer(std::size_t n);
    ~buffer();
    buffer(const buffer&) = delete;
    buffer& operator=(const buffer&) = delete;
    std::byte* data() const noexcept { return p_; }
    std::size_t size() const noexcept { return n_; }
    std::span<std::byte> span() const noexcept { return {p_, n_}; }

private:
    std::byte* p_ = nullptr;
    std::size_t n_ = 0;
};

// Transports that are two byte streams (or one duplex one) between the processes: messages are
// framed by their fixed size (the consumer knows payload and count), large ones travel in as
// many read()/write() calls as the kernel wants. The producer fills a private buffer and writes
// it (the kernel copies it into its buffers), the consumer reads into a private buffer (the
// kernel copies it out) and digests it there.
class fd_stream_transport : public transport {
public:
    side_result produce(const run_spec&) override;
    side_result consume(const run_spec&) override;
    side_result ping(const run_spec&) override;
    side_result pong(const run_spec&) override;

protected:
    struct conn {
        int in = -1;   // bytes from the peer
        int out = -1;  // bytes to the peer (may be the same descriptor as `in`)
        conn() = default;
        conn(const conn&) = delete;
        conn& operator=(const conn&) = delete;
        conn(conn&& o) noexcept : in(o.in), out(o.out) { o.in = o.out = -1; }
        ~conn();
    };
    // The consumer / pong side: set up, call spec.ready(), then wait for the peer. `duplex`:
    // both directions (latency); otherwise only `in` is needed.
    virtual conn accept_side(const run_spec& spec, bool duplex) = 0;
    // The producer / ping side (started once the other side is ready): only `out` without
    // duplex.
    virtual conn connect_side(const run_spec& spec, bool duplex) = 0;

private:
    // Latency: accept_side or connect_side with both directions, non-blocking for busy waits.
    conn duplex_side(const run_spec& spec, bool accepting);
};

}  // namespace shmchan_bench
