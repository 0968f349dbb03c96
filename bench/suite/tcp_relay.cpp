// The relay daemon of `tcp-relay` (this binary again, `_relay PARENT_PID [splice]`): the
// smallest process that can sit between two TCP ends, as the engine sits between two socket
// ends. It listens on 127.0.0.1, prints "port N", and serves one connection at a time: the
// producer's first two bytes name the consumer's port (big-endian), the relay connects there and
// then passes bytes both ways, blocking in poll(2) between them, until both directions have
// ended. No framing, no ring, no thread hop: what it costs is what any relay costs on this
// machine, the ceiling for the engine's socket-to-socket path. Two ways to pass bytes:
// - copy (tcp-relay): recv(2) into one 256 KiB buffer and send(2) from it, two copies per hop;
// - splice (tcp-splice-relay): splice(2) from the socket into a pipe and from the pipe into the
//   other socket; the kernel hands the received pages on by reference, no copy in the relay.
// Serves until its stdin closes.
#include "support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace shmchan_bench {
namespace {

constexpr std::size_t relay_buffer = std::size_t{256} << 10;

// How the relay passes bytes on: a buffer to copy through, or a pipe to splice through. The
// pipe is made per connection, so that bytes a failed run left in it never reach the next.
struct passage {
    std::vector<char> buf;
    int pipe_out = -1, pipe_in = -1;  // splice only: [read end, write end]

    explicit passage(bool splice) {
        if (!splice) {
            buf.resize(relay_buffer);
            return;
        }
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) fail_errno("pipe2");
        pipe_out = fds[0];
        pipe_in = fds[1];
        // One relay buffer's worth in flight, as the copying relay has.
        if (::fcntl(pipe_in, F_SETPIPE_SZ, static_cast<int>(relay_buffer)) < 0) {
            const int e = errno;
            close_pipe();
            errno = e;
            fail_errno("F_SETPIPE_SZ");
        }
    }
    ~passage() { close_pipe(); }
    passage(const passage&) = delete;
    passage& operator=(const passage&) = delete;

private:
    void close_pipe() noexcept {
        if (pipe_out >= 0) ::close(pipe_out);
        if (pipe_in >= 0) ::close(pipe_in);
        pipe_out = pipe_in = -1;
    }
};

// Splices what `from` has into the pipe and all of it on to `to`; the pipe is empty between
// calls, so both directions share it. false once `from` ended (then `to`'s sending side is shut).
bool splice_on(int from, int to, passage& p) {
    const ssize_t n = ::splice(from, nullptr, p.pipe_in, nullptr, relay_buffer, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
        ::shutdown(to, SHUT_WR);
        return false;
    }
    for (ssize_t left = n; left > 0;) {
        const ssize_t m = ::splice(p.pipe_out, nullptr, to, nullptr, static_cast<std::size_t>(left), SPLICE_F_MOVE);
        if (m < 0 && errno == EINTR) continue;
        if (m <= 0) fail_errno("splice into the socket");
        left -= m;
    }
    return true;
}

// Copies what `from` has to `to`; false once `from` ended (then `to`'s sending side is shut).
bool pass_on(int from, int to, passage& p) {
    if (p.pipe_in >= 0) return splice_on(from, to, p);
    std::vector<char>& buf = p.buf;
    const ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
        ::shutdown(to, SHUT_WR);
        return false;
    }
    write_exact(to, buf.data(), static_cast<std::size_t>(n), false);
    return true;
}

// One producer-consumer pair, both ways, until both directions ended or either broke.
void relay_one(int producer, bool splice) {
    passage buf(splice);
    std::uint8_t port_be[2];
    read_exact(producer, port_be, 2, false);
    const int consumer = connect_loopback(static_cast<std::uint16_t>(port_be[0] << 8 | port_be[1]), "the consumer");
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_consumer{consumer};  // also when a failed run throws
    tcp_no_delay(producer);
    bool up = true, down = true;  // producer -> consumer, consumer -> producer
    while (up || down) {
        pollfd p[2] = {{producer, static_cast<short>(up ? POLLIN : 0), 0},
                       {consumer, static_cast<short>(down ? POLLIN : 0), 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            fail_errno("poll");
        }
        if (up && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) up = pass_on(producer, consumer, buf);
        if (down && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) down = pass_on(consumer, producer, buf);
    }
}

}  // namespace

int relay_daemon_main(int parent_pid, bool splice) {
    if (!die_with_parent(parent_pid)) return 3;
    std::uint16_t port = 0;
    const int listener = listen_loopback(port);
    std::printf("port %u\n", unsigned{port});
    std::fflush(stdout);
    for (;;) {
        pollfd p[2] = {{listener, POLLIN, 0}, {0, POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            fail_errno("poll");
        }
        if (p[1].revents) return 0;  // the harness closed our stdin
        if (!(p[0].revents & POLLIN)) continue;
        const int producer = accept_one(listener);
        try {
            relay_one(producer, splice);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "relay: %s\n", e.what());  // that run fails; the next gets a fresh pair
        }
        ::close(producer);
    }
}

}  // namespace shmchan_bench
