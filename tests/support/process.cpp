#include "process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace shmchan::test {

using clock_type = std::chrono::steady_clock;

child child::spawn(const std::vector<std::string>& argv, bool pipe_stdin, bool merge_stderr,
                   const std::vector<std::string>& extra_env) {
    int out[2], in[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    if (pipe_stdin && ::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (merge_stderr) posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    if (pipe_stdin) posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (char** e = environ; *e; ++e) envp.push_back(*e);
    for (auto& e : extra_env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    child c;
    int rc = posix_spawn(&c.pid_, argv[0].c_str(), &fa, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (pipe_stdin) ::close(in[0]);
    if (rc != 0) {
        ::close(out[0]);
        if (pipe_stdin) ::close(in[1]);
        throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
    }
    c.out_ = out[0];
    c.in_ = in[1];
    return c;
}

child::child(child&& o) noexcept
    : pid_(o.pid_), out_(o.out_), in_(o.in_), buf_(std::move(o.buf_)), reaped_(o.reaped_),
      status_(o.status_) {
    o.pid_ = -1;
    o.out_ = o.in_ = -1;
}

child::~child() {
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
    if (in_ >= 0) ::close(in_);
}

std::string child::read_line(std::chrono::milliseconds timeout) {
    const auto until = clock_type::now() + timeout;
    for (;;) {
        if (auto nl = buf_.find('\n'); nl != std::string::npos) {
            std::string line = buf_.substr(0, nl);
            buf_.erase(0, nl + 1);
            return line;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now());
        if (left.count() <= 0) return {};
        pollfd p{out_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char tmp[4096];
        ssize_t n = ::read(out_, tmp, sizeof tmp);
        if (n <= 0) {
            std::string rest = std::move(buf_);
            buf_.clear();
            return rest;
        }
        buf_.append(tmp, static_cast<std::size_t>(n));
    }
}

std::string child::read_all(std::chrono::milliseconds timeout) {
    const auto until = clock_type::now() + timeout;
    std::string all = std::move(buf_);
    buf_.clear();
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now());
        if (left.count() <= 0) return all;
        pollfd p{out_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char tmp[65536];
        ssize_t n = ::read(out_, tmp, sizeof tmp);
        if (n <= 0) return all;
        all.append(tmp, static_cast<std::size_t>(n));
    }
}

void child::write_stdin(const std::string& s) {
    const char* p = s.data();
    std::size_t n = s.size();
    while (n) {
        ssize_t w = ::write(in_, p, n);
        if (w <= 0) throw std::runtime_error("write to child stdin failed");
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

void child::close_stdin() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
}

void child::kill(int sig) { ::kill(pid_, sig); }

int child::wait(std::chrono::milliseconds timeout) {
    if (!reaped_) {
        const auto until = clock_type::now() + timeout;
        for (;;) {
            pid_t r = ::waitpid(pid_, &status_, WNOHANG);
            if (r == pid_) break;
            if (clock_type::now() >= until) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status_, 0);
                reaped_ = true;
                return -1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        reaped_ = true;
    }
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
    return -2;
}

std::string peer_path() { return SHMCHAN_TEST_PEER; }
std::string frame_peer_path() { return SHMCHAN_FRAME_PEER; }
std::string records_peer_path() { return SHMCHAN_RECORDS_PEER; }
std::string cli_path() { return SHMCHAN_CLI; }

std::vector<std::string> shm_segments() {
    std::vector<std::string> out;
    if (DIR* d = ::opendir("/dev/shm")) {
        while (dirent* e = ::readdir(d))
            if (std::strncmp(e->d_name, "shmchan-", 8) == 0) out.emplace_back(e->d_name);
        ::closedir(d);
    }
    return out;
}

}  // namespace shmchan::test

namespace shmchan::test {
bool segment_exists(const std::string& channel_id) {
    return ::access(("/dev/shm/shmchan-" + channel_id).c_str(), F_OK) == 0;
}
}  // namespace shmchan::test
