// A Unix-domain stream socket bound to a path in the run's scratch directory.
#include "support.hpp"

#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace shmchan_bench {
namespace {

constexpr int socket_buffer = 4 << 20;  // SO_SNDBUF / SO_RCVBUF asked for on both ends

sockaddr_un address_of(const run_spec& spec) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string path = spec.scratch_dir + "/unix.sock";
    if (path.size() >= sizeof a.sun_path) fail("socket path too long: " + path);
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

void size_buffers(int fd) {
    for (int opt : {SO_SNDBUF, SO_RCVBUF})
        if (::setsockopt(fd, SOL_SOCKET, opt, &socket_buffer, sizeof socket_buffer) != 0)
            fail_errno("setsockopt SO_SNDBUF/SO_RCVBUF");
}

class unix_socket final : public fd_stream_transport {
public:
    std::string name() const override { return "unix-socket"; }
    std::string describe() const override {
        return "AF_UNIX SOCK_STREAM, 4 MiB SO_SNDBUF/SO_RCVBUF asked for; producer fills a private "
               "buffer and write()s it (kernel copy in), consumer read()s into a private buffer "
               "(kernel copy out): 2 copies, >= 2 syscalls per message; busy-wait = O_NONBLOCK "
               "read()/write() retried at once";
    }

protected:
    conn accept_side(const run_spec& spec, bool) override {
        const sockaddr_un a = address_of(spec);
        const int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0) fail_errno("socket");
        conn listener;
        listener.in = l;
        if (::bind(l, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) fail_errno("bind");
        if (::listen(l, 1) != 0) fail_errno("listen");
        spec.ready();
        const int fd = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) fail_errno("accept");
        ::unlink(a.sun_path);
        conn c;
        c.in = c.out = fd;
        size_buffers(fd);
        return c;
    }
    conn connect_side(const run_spec& spec, bool) override {
        const sockaddr_un a = address_of(spec);
        conn c;
        c.in = c.out = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c.in < 0) fail_errno("socket");
        size_buffers(c.in);
        if (::connect(c.in, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) fail_errno("connect");
        return c;
    }
};

}  // namespace

std::unique_ptr<transport> make_unix_socket() { return std::make_unique<unix_socket>(); }

}  // namespace shmchan_bench
