#include "support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <chrono>
#include <csignal>
#include <fstream>
#include <poll.h>
#include <spawn.h>
#include <sstream>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace shmchan_bench {

void fail_errno(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

void write_file(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f << text;
        if (!f) fail("cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) fail_errno("rename " + tmp);
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("cannot read " + path);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

std::string self_exe() {
    char buf[4096];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) fail_errno("readlink /proc/self/exe");
    return std::string(buf, static_cast<std::size_t>(n));
}

std::string find_program(const std::string& name) {
    if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
    const char* path = std::getenv("PATH");
    std::stringstream ss(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    for (std::string dir; std::getline(ss, dir, ':');) {
        const std::string p = (dir.empty() ? "." : dir) + "/" + name;
        if (::access(p.c_str(), X_OK) == 0) return p;
    }
    return {};
}

std::string env_or(const char* var, const std::string& fallback) {
    const char* v = std::getenv(var);
    return v && *v ? v : fallback;
}

child_process spawn_self(const std::vector<std::string>& args) {
    std::vector<std::string> argv{self_exe()};
    argv.insert(argv.end(), args.begin(), args.end());
    return spawn_program(argv);
}

child_process spawn_program(const std::vector<std::string>& args) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) fail_errno("pipe2");
    const std::string& prog = args.at(0);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    child_process c;
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, prog.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    if (rc != 0) {
        ::close(in[1]);
        ::close(out[0]);
        errno = rc;
        fail_errno("posix_spawn " + prog);
    }
    c.pid = pid;
    c.to = in[1];
    c.from = out[0];
    return c;
}

void stop_child(child_process& c, int grace_ms) {
    if (c.to >= 0) ::close(c.to);
    if (c.from >= 0) ::close(c.from);
    c.to = c.from = -1;
    if (c.pid <= 0) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
    for (;;) {
        const pid_t r = ::waitpid(c.pid, nullptr, WNOHANG);
        if (r == c.pid || (r < 0 && errno != EINTR)) break;
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(c.pid, SIGKILL);
            ::waitpid(c.pid, nullptr, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    c.pid = -1;
}

std::string read_line_for(int fd, int timeout_ms) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return {};
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return {};
        char ch;
        const ssize_t n = ::read(fd, &ch, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return {};
        if (ch == '\n') return line;
        line += ch;
    }
}

bool die_with_parent(int parent_pid) {
    if (parent_pid == 0) return true;  // started by hand (debugging a side)
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    return ::getppid() == parent_pid;
}

void write_exact(int fd, const void* data, std::size_t n, bool spin) {
    const auto* p = static_cast<const char*>(data);
    while (n) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN && spin) continue;
            fail_errno("write");
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

void read_exact(int fd, void* data, std::size_t n, bool spin) {
    auto* p = static_cast<char*>(data);
    while (n) {
        const ssize_t r = ::read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN && spin) continue;
            fail_errno("read");
        }
        if (r == 0) fail("read: end of stream " + std::to_string(n) + " bytes before the end of a message");
        p += r;
        n -= static_cast<std::size_t>(r);
    }
}

bool read_message(int fd, void* data, std::size_t n, bool spin) {
    auto* p = static_cast<char*>(data);
    for (;;) {
        const ssize_t r = ::read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR || (errno == EAGAIN && spin)) continue;
            fail_errno("read");
        }
        if (r == 0) return false;
        read_exact(fd, p + r, n - static_cast<std::size_t>(r), spin);
        return true;
    }
}

void set_nonblocking(int fd) {
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) fail_errno("fcntl O_NONBLOCK");
}

buffer::buffer(std::size_t n) : n_(n) {
    const std::size_t len = std::max<std::size_t>(n, 1);
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail_errno("mmap " + std::to_string(len) + " bytes");
    p_ = static_cast<std::byte*>(p);
    std::memset(p_, 0, len);  // fault the pages in before the clock starts
}

buffer::~buffer() { ::munmap(p_, std::max<std::size_t>(n_, 1)); }

fd_stream_transport::conn::~conn() {
    if (out >= 0 && out != in) ::close(out);
    if (in >= 0) ::close(in);
}

int stream_socket(int family) {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail_errno("socket");
    return fd;
}

void bind_listen(int fd, const sockaddr* a, socklen_t len, const std::string& what) {
    if (::bind(fd, a, len) != 0) fail_errno("bind " + what);
    if (::listen(fd, 1) != 0) fail_errno("listen");
}

int accept_one(int listener) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) fail_errno("accept");
    return fd;
}

void connect_to(int fd, const sockaddr* a, socklen_t len, const std::string& what) {
    if (::connect(fd, a, len) != 0) fail_errno("connect " + what);
}

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) fail("socket path too long: " + path);
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

namespace {
sockaddr_in loopback_address(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
}
}  // namespace

void tcp_no_delay(int fd) {
    const int one = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail_errno("setsockopt TCP_NODELAY");
}

int connect_loopback(std::uint16_t port, const std::string& what) {
    const int fd = stream_socket(AF_INET);
    tcp_no_delay(fd);
    const sockaddr_in a = loopback_address(port);
    connect_to(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a, what);
    return fd;
}

int listen_loopback(std::uint16_t& port) {
    const int fd = stream_socket(AF_INET);
    sockaddr_in a = loopback_address(0);
    bind_listen(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a, "127.0.0.1:0");
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) fail_errno("getsockname");
    port = ntohs(a.sin_port);
    return fd;
}

side_result fd_stream_transport::produce(const run_spec& spec) {
    side_result r;
    buffer buf(spec.payload);
    {
        conn c = connect_side(spec, false);
        r = produce_loop(spec, [&](std::uint64_t i) {
            fill_payload(buf.span(), i);
            write_exact(c.out, buf.data(), buf.size(), false);
        });
    }  // closed: end of stream for the consumer
    generated(r, spec);
    return r;
}

side_result fd_stream_transport::consume(const run_spec& spec) {
    side_result r;
    buffer buf(spec.payload);
    digest d;
    conn c = accept_side(spec, false);
    // The clock starts with the first byte.
    consume_loop(
        spec, r, [&](std::uint64_t i) { read_exact(c.in, buf.data(), i == 0 ? 1 : buf.size(), false); },
        [&](std::uint64_t i) {
            if (i == 0) read_exact(c.in, buf.data() + 1, buf.size() - 1, false);
            d.update(buf.span());
        });
    finish(r, d);
    char extra;
    for (;;) {  // the producer must close now, with nothing more sent
        const ssize_t n = ::read(c.in, &extra, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail_errno("read after the last message");
        if (n > 0) fail("bytes after the last message");
        break;
    }
    return r;
}

fd_stream_transport::conn fd_stream_transport::duplex_side(const run_spec& spec, bool accepting) {
    conn c = accepting ? accept_side(spec, true) : connect_side(spec, true);
    if (spec.busy_wait) {
        set_nonblocking(c.in);
        if (c.out != c.in) set_nonblocking(c.out);
    }
    return c;
}

side_result fd_stream_transport::ping(const run_spec& spec) {
    side_result r;
    buffer out(spec.payload), in(spec.payload);
    digest d;
    conn c = duplex_side(spec, false);
    ping_loop(spec, r, [&](std::uint64_t i) {
        fill_payload(out.span(), i);
        write_exact(c.out, out.data(), out.size(), spec.busy_wait);
        read_exact(c.in, in.data(), in.size(), spec.busy_wait);
        d.update(in.span());
    });
    finish(r, d);
    return r;  // closing ends the exchange
}

side_result fd_stream_transport::pong(const run_spec& spec) {
    side_result r;
    buffer out(spec.payload), in(spec.payload);
    digest d;
    conn c = duplex_side(spec, true);
    pong_loop(
        spec, r, [&](std::uint64_t) { return read_message(c.in, in.data(), in.size(), spec.busy_wait); },
        [&](std::uint64_t i) {
            d.update(in.span());
            fill_payload(out.span(), i);
            write_exact(c.out, out.data(), out.size(), spec.busy_wait);
        });
    finish(r, d);
    return r;
}

}  // namespace shmchan_bench
