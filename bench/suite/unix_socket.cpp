// A Unix-domain stream socket bound to a path in the run's scratch directory.
#include "support.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace shmchan_bench {
namespace {

constexpr int socket_buffer = 4 << 20;  // SO_SNDBUF / SO_RCVBUF asked for on both ends

sockaddr_un address_of(const run_spec& spec) { return unix_address(spec.scratch_dir + "/unix.sock"); }

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
        conn listener;
        listener.in = stream_socket(AF_UNIX);
        bind_listen(listener.in, reinterpret_cast<const sockaddr*>(&a), sizeof a, a.sun_path);
        spec.ready();
        conn c;
        c.in = c.out = accept_one(listener.in);
        ::unlink(a.sun_path);
        size_buffers(c.in);
        return c;
    }
    conn connect_side(const run_spec& spec, bool) override {
        const sockaddr_un a = address_of(spec);
        conn c;
        c.in = c.out = stream_socket(AF_UNIX);
        size_buffers(c.in);
        connect_to(c.in, reinterpret_cast<const sockaddr*>(&a), sizeof a, a.sun_path);
        return c;
    }
};

}  // namespace

std::unique_ptr<transport> make_unix_socket() { return std::make_unique<unix_socket>(); }

}  // namespace shmchan_bench
