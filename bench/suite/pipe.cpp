// Pipes: named FIFOs in the run's scratch directory (the two sides are started separately),
// one per direction, enlarged to the system's pipe-max-size.
#include "support.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace shmchan_bench {
namespace {

int pipe_max_size() {
    try {
        return std::stoi(read_file("/proc/sys/fs/pipe-max-size"));
    } catch (const std::exception&) {
        return 1 << 20;
    }
}

// Opens one end of a FIFO and enlarges its pipe (best effort: an unprivileged process may be
// refused more than pipe-max-size).
int open_fifo(const std::string& path, int flags) {
    for (;;) {
        const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
        if (fd >= 0) {
            (void)::fcntl(fd, F_SETPIPE_SZ, pipe_max_size());
            return fd;
        }
        if (errno != EINTR) fail_errno("open " + path);
    }
}

class pipe_transport final : public fd_stream_transport {
public:
    std::string name() const override { return "pipe"; }
    std::string describe() const override {
        return "named FIFOs, F_SETPIPE_SZ = pipe-max-size (1 MiB here); producer write()s a "
               "private buffer (kernel copy into pipe pages), consumer read()s into a private "
               "buffer (copy out): 2 copies, >= 2 syscalls per message; busy-wait = O_NONBLOCK "
               "read()/write() retried at once";
    }

protected:
    // Opening a FIFO blocks until its other end is opened: both sides open "a" first, then "b".
    conn accept_side(const run_spec& spec, bool duplex) override {
        const std::string a = spec.scratch_dir + "/fifo.a", b = spec.scratch_dir + "/fifo.b";
        if (::mkfifo(a.c_str(), 0600) != 0) fail_errno("mkfifo " + a);
        if (duplex && ::mkfifo(b.c_str(), 0600) != 0) fail_errno("mkfifo " + b);
        spec.ready();
        conn c;
        c.in = open_fifo(a, O_RDONLY);
        if (duplex) c.out = open_fifo(b, O_WRONLY);
        return c;
    }
    conn connect_side(const run_spec& spec, bool duplex) override {
        const std::string a = spec.scratch_dir + "/fifo.a", b = spec.scratch_dir + "/fifo.b";
        conn c;
        c.out = open_fifo(a, O_WRONLY);
        if (duplex) c.in = open_fifo(b, O_RDONLY);
        return c;
    }
};

}  // namespace

std::unique_ptr<transport> make_pipe() { return std::make_unique<pipe_transport>(); }

}  // namespace shmchan_bench
