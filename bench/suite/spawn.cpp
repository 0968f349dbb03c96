#include "spawn.hpp"

#include "support.hpp"
#include "shmchan/testkit/cpus.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace shmchan_bench {

using steady = std::chrono::steady_clock;

volatile std::sig_atomic_t g_interrupted = 0;

namespace {

constexpr int max_tracked = 8;
volatile pid_t g_children[max_tracked] = {};

void track(pid_t pid) {
    for (auto& c : g_children)
        if (c == 0) {
            c = pid;
            return;
        }
}
void untrack(pid_t pid) {
    for (auto& c : g_children)
        if (c == pid) c = 0;
}


int high_fd(int fd) {  // keep pipes clear of 0-3, which the child's file actions rewire
    const int h = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (h < 0) fail_errno("fcntl F_DUPFD_CLOEXEC");
    ::close(fd);
    return h;
}

// This process's environment with `extra` ("NAME=value") added, replacing the same names.
std::vector<std::string> environment_with(const std::vector<std::string>& extra) {
    std::vector<std::string> out;
    for (char** e = environ; *e; ++e) {
        const std::string v = *e;
        const auto named = [&](const std::string& x) { return v.compare(0, x.find('=') + 1, x, 0, x.find('=') + 1) == 0; };
        if (std::none_of(extra.begin(), extra.end(), named)) out.push_back(v);
    }
    out.insert(out.end(), extra.begin(), extra.end());
    return out;
}

// Reads what is there (the fd polled readable); splits lines.
void pump(side_proc& s) {
    char buf[65536];
    const ssize_t n = ::read(s.fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        s.eof = true;
        return;
    }
    s.pending.append(buf, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = s.pending.find('\n')) != std::string::npos;) {
        s.lines.push_back(s.pending.substr(0, nl));
        s.pending.erase(0, nl + 1);
    }
}

}  // namespace

extern "C" void on_signal(int) {
    g_interrupted = 1;
    for (auto& c : g_children)
        if (c > 0) ::kill(c, SIGKILL);
}

side_proc spawn_side(const std::string& role, const std::string& name, const run_spec& spec,
                     const std::vector<std::string>& env) {
    side_proc s;
    s.role = role;
    s.log = spec.scratch_dir + "/" + role + (spec.reader_index ? std::to_string(spec.reader_index) : "") + ".log";
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) fail_errno("pipe2");
    p[0] = high_fd(p[0]);
    p[1] = high_fd(p[1]);
    const std::string self = self_exe();
    std::vector<std::string> args = {self,
                                     "_side",
                                     role,
                                     name,
                                     std::to_string(spec.payload),
                                     std::to_string(spec.messages),
                                     std::to_string(spec.warmup),
                                     std::to_string(spec.time_limit_ns),
                                     spec.latency ? "1" : "0",
                                     spec.busy_wait ? "1" : "0",
                                     spec.endpoint,
                                     spec.scratch_dir,
                                     std::to_string(::getpid()),
                                     std::to_string(spec.readers),
                                     std::to_string(spec.reader_index)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], result_fd);
    posix_spawn_file_actions_addopen(&fa, 1, s.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> vars = environment_with(env);
    std::vector<char*> envp;
    for (auto& v : vars) envp.push_back(v.data());
    envp.push_back(nullptr);
    const int rc = ::posix_spawn(&s.pid, self.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    if (rc != 0) {
        ::close(p[0]);
        errno = rc;
        fail_errno("posix_spawn " + self);
    }
    track(s.pid);
    s.fd = p[0];
    return s;
}

std::vector<int> pin_cpus() {
    std::vector<int> cpus = shmchan::testkit::allowed_cpus();
    if (cpus.size() < 2)
        throw std::runtime_error("--pin needs 2 or more CPUs to run on; this process may use " +
                                 std::to_string(cpus.size()) + " (taskset or a cpuset limits it)");
    return cpus;
}

void pin_side(const side_proc& s, bool producer) {
    // The CPUs the harness may use (taskset), not the machine's: the first for the producer.
    const std::vector<int> cpus = pin_cpus();
    cpu_set_t set;
    CPU_ZERO(&set);
    if (producer)
        CPU_SET(cpus.front(), &set);
    else
        for (std::size_t i = 1; i < cpus.size(); ++i) CPU_SET(cpus[i], &set);
    if (::sched_setaffinity(s.pid, sizeof set, &set) != 0) fail_errno("sched_setaffinity (--pin)");
}

// Waits until `done()` or the deadline, reading from every side's pipe.
bool wait_for(std::vector<side_proc*> sides, steady::time_point deadline, const std::function<bool()>& done) {
    while (!done()) {
        if (g_interrupted) return false;
        std::vector<pollfd> p;
        std::vector<side_proc*> who;
        for (auto* s : sides)
            if (!s->eof) {
                p.push_back({s->fd, POLLIN, 0});
                who.push_back(s);
            }
        if (p.empty()) return done();
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
        if (left <= 0) return false;
        const int r = ::poll(p.data(), p.size(), static_cast<int>(std::min<long long>(left, 200)));
        if (r < 0 && errno != EINTR) fail_errno("poll");
        for (std::size_t i = 0; r > 0 && i < p.size(); ++i)
            if (p[i].revents) pump(*who[i]);
    }
    return true;
}

std::size_t results_in(const side_proc& s) {
    return static_cast<std::size_t>(std::count_if(s.lines.begin(), s.lines.end(),
                                                  [](const std::string& l) { return !l.empty() && l[0] == '{'; }));
}
bool said_ready(const side_proc& s) { return std::find(s.lines.begin(), s.lines.end(), "ready") != s.lines.end(); }

// Reaps a side, killing it if it does not exit within `grace`.
void reap(side_proc& s, std::chrono::milliseconds grace) {
    if (s.pid <= 0 || s.reaped) return;
    const auto deadline = steady::now() + grace;
    for (;;) {
        const pid_t r = ::waitpid(s.pid, &s.status, WNOHANG);
        if (r == s.pid || (r < 0 && errno != EINTR)) break;
        if (steady::now() >= deadline || g_interrupted) {
            ::kill(s.pid, SIGKILL);
            while (::waitpid(s.pid, &s.status, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    s.reaped = true;
    untrack(s.pid);
    if (s.fd >= 0) ::close(s.fd);
    s.fd = -1;
}

void kill_side(side_proc& s) {
    if (s.pid > 0 && !s.reaped) ::kill(s.pid, SIGKILL);
}

std::string exit_text(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return "ended";
}

std::string log_tail(const std::string& path) {
    std::ifstream f(path);
    std::vector<std::string> lines;
    std::string l;
    while (std::getline(f, l))
        if (!l.empty()) lines.push_back(l);
    std::string out;
    for (std::size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i)
        out += (out.empty() ? "" : " / ") + lines[i].substr(0, 300);
    return out;
}

}  // namespace shmchan_bench
