#include "iceoryx_roudi.hpp"

#include <iceoryx_posh/iceoryx_posh_types.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace shmchan_bench {

std::uint64_t queue_depth(std::size_t payload) {
    return std::clamp<std::uint64_t>(32 * MiB / std::max<std::size_t>(payload, 1), 4,
                                     iox::MAX_SUBSCRIBER_QUEUE_CAPACITY);
}

// True when something accepts on the Unix socket at `path` (a stale socket file is refused).
bool socket_answers(const char* path) {
    for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
        const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
        const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
        const int err = errno;
        ::close(fd);
        if (rc == 0) return true;
        if (err != EPROTOTYPE) return false;
    }
    return false;
}

namespace {

// True when a process holds the flock on `path` (iceoryx's FileLock).
bool lock_held(const char* path) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);  // drops our lock, if we got it
    return held;
}

bool path_exists(const std::string& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0;
}

}  // namespace

// The sockets of a runtime whose process was killed; nothing while one is in use.
void remove_runtime_files(const std::string& name) {
    const std::string sock = "/tmp/" + name, lock = sock + ".lock";
    if (path_exists(sock) && !socket_answers(sock.c_str())) ::unlink(sock.c_str());
    if (path_exists(lock) && !lock_held(lock.c_str())) ::unlink(lock.c_str());
}

std::string roudi_daemon::ensure(std::size_t payload) {
    const std::size_t chunk = pool_chunk(payload);
    if (roudi_pid_ > 0 && !alive()) {
        const std::string why = "iceoryx: RouDi died (log: " + log_tail() + ")";
        stop_roudi();
        return why;
    }
    if (roudi_pid_ > 0 && pools_.count(chunk)) return {};

    std::map<std::size_t, std::uint64_t> pools = pools_;
    for (std::size_t p : default_payloads) pools.emplace(pool_chunk(p), queue_depth(p) + pool_spare);
    pools.emplace(chunk, queue_depth(payload) + pool_spare);
    if (roudi_pid_ > 0) stop_roudi();  // a new size: restart with one pool more

    const std::string roudi = find_program(env_or("SHMCHAN_IOX_ROUDI", "iox-roudi"));
    if (roudi.empty()) {
        if (const char* env = std::getenv("SHMCHAN_IOX_ROUDI"); env && *env)
            return std::string("iceoryx: $SHMCHAN_IOX_ROUDI=") + env + " is not executable";
        return "iceoryx: iox-roudi not found on PATH (Debian package `iceoryx`; or set $SHMCHAN_IOX_ROUDI)";
    }
    if (std::string other = foreign_roudi(); !other.empty())
        return "iceoryx: another RouDi is already running (" + other +
               "); RouDi 2.0 is one per host, so it is left alone";
    std::uint64_t data_bytes = 0;
    for (auto [size, count] : pools) data_bytes += count * (size + chunk_header_bytes);
    struct statvfs vfs;
    if (::statvfs("/dev/shm", &vfs) == 0) {
        const std::uint64_t avail = std::uint64_t(vfs.f_bavail) * vfs.f_frsize;
        const std::uint64_t need = data_bytes + mgmt_segment_bytes + 16 * MiB;
        if (avail < need)
            return "iceoryx: /dev/shm has " + std::to_string(avail / MiB) + " MiB free, RouDi's pools need " +
                   std::to_string(need / MiB) + " MiB";
    }

    // RouDi outlives the run's scratch_dir (the harness removes it after each run): its
    // config and log go to a directory of ours.
    char dir[] = "/tmp/shmchan-iox-XXXXXX";
    if (!::mkdtemp(dir)) return std::string("iceoryx: mkdtemp: ") + std::strerror(errno);
    dir_ = dir;
    config_path_ = dir_ + "/roudi.toml";
    log_path_ = dir_ + "/roudi.log";
    std::ostringstream cfg;
    cfg << "# shmchan_bench (bench/suite/iceoryx.cpp): one pool per payload size\n"
           "[general]\nversion = 1\n\n[[segment]]\n";
    for (auto [size, count] : pools) cfg << "\n[[segment.mempool]]\nsize = " << size << "\ncount = " << count << "\n";
    try {
        write_file(config_path_, cfg.str());
    } catch (const std::exception& e) {
        return std::string("iceoryx: ") + e.what();
    }
    if (const group* g = ::getgrgid(::getegid())) data_segment_ = std::string("/dev/shm/") + g->gr_name;
    if (std::string err = start_roudi(roudi); !err.empty()) {
        stop_roudi();
        return err;
    }
    pools_ = std::move(pools);
    return {};
}

// A RouDi that is not ours, described; empty if there is none.
std::string roudi_daemon::foreign_roudi() const {
    if (DIR* d = ::opendir("/proc")) {
        std::string found;
        while (dirent* e = ::readdir(d)) {
            char* end = nullptr;
            const long pid = std::strtol(e->d_name, &end, 10);
            if (pid <= 0 || *end) continue;
            std::ifstream comm(std::string("/proc/") + e->d_name + "/comm");
            std::string c;
            if (std::getline(comm, c) && c == "iox-roudi") {
                found = "iox-roudi pid " + std::to_string(pid);
                break;
            }
        }
        ::closedir(d);
        if (!found.empty()) return found;
    }
    for (const char* l : roudi_lock_files)
        if (lock_held(l)) return std::string(l) + " is locked";
    if (socket_answers(roudi_socket)) return std::string(roudi_socket) + " answers";
    return {};
}

std::string roudi_daemon::start_roudi(const std::string& roudi) {
    const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log < 0) return "iceoryx: cannot create " + log_path_ + ": " + std::strerror(errno);
    const pid_t parent = ::getpid();
    const char* argv[] = {roudi.c_str(), "-c", config_path_.c_str(), "-l", "warning", "-m", "on", "-k", "2", nullptr};
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(log);
        return std::string("iceoryx: fork: ") + std::strerror(errno);
    }
    if (pid == 0) {  // async-signal-safe calls only, until exec
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(127);
        sigset_t none;  // RouDi must see SIGTERM whatever the harness blocks or ignores
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
        const int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) ::dup2(devnull, 0);
        ::dup2(log, 1);
        ::dup2(log, 2);
        ::syscall(SYS_close_range, 3u, ~0u, 0u);
        ::execv(roudi.c_str(), const_cast<char* const*>(argv));
        ::_exit(127);
    }
    ::close(log);
    roudi_pid_ = pid;
    started_ = true;

    const auto t0 = clock_type::now();
    for (;;) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            roudi_pid_ = -1;
            const std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                                      : "was killed by signal " + std::to_string(WTERMSIG(status));
            return "iceoryx: iox-roudi " + how + " before it was ready (log: " + log_tail() + ")";
        }
        if (read_log().find(roudi_ready_line) != std::string::npos) break;
        if (clock_type::now() - t0 > roudi_start_timeout)
            return "iceoryx: iox-roudi not ready within " + std::to_string(roudi_start_timeout.count()) +
                   " s (log: " + log_tail() + ")";
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!wait_until([] { return socket_answers(roudi_socket); }, std::chrono::seconds(5)))
        return std::string("iceoryx: iox-roudi said it was ready, but ") + roudi_socket + " does not answer";
    if (std::getenv("SHMCHAN_IOX_VERBOSE"))
        std::fprintf(stderr, "iceoryx: RouDi (pid %d) ready after %.0f ms\n", static_cast<int>(pid),
                     std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    return {};
}

// Stops our RouDi, if any, and removes whatever it left.
void roudi_daemon::stop_roudi() {
    if (roudi_pid_ > 0) {
        ::kill(roudi_pid_, SIGTERM);
        if (!reap(roudi_stop_timeout)) {
            std::fprintf(stderr, "iceoryx: RouDi (pid %d) still there %lld s after SIGTERM: SIGKILL\n",
                         static_cast<int>(roudi_pid_), static_cast<long long>(roudi_stop_timeout.count()));
            ::kill(roudi_pid_, SIGKILL);
            reap(std::chrono::seconds(5));
        }
        roudi_pid_ = -1;
    }
    if (started_) {
        // RouDi removes these on a clean exit; what is left is stale and ours (prepare()
        // made sure that no other RouDi was running).
        std::vector<std::string> left = {mgmt_segment, roudi_socket};
        for (const char* l : roudi_lock_files) left.emplace_back(l);
        if (!data_segment_.empty()) left.push_back(data_segment_);
        for (const auto& p : left)
            if (::unlink(p.c_str()) == 0) std::fprintf(stderr, "iceoryx: removed %s, left by RouDi\n", p.c_str());
        started_ = false;
    }
    if (!dir_.empty()) {
        ::unlink(config_path_.c_str());
        ::unlink(log_path_.c_str());
        ::rmdir(dir_.c_str());
        dir_.clear();
    }
    pools_.clear();
}

// Reaps RouDi if it has exited (stop_roudi() still removes its files).
bool roudi_daemon::alive() {
    if (roudi_pid_ <= 0) return false;
    if (::waitpid(roudi_pid_, nullptr, WNOHANG) == 0) return true;
    roudi_pid_ = -1;
    return false;
}

bool roudi_daemon::reap(clock_type::duration limit) {
    const auto deadline = clock_type::now() + limit;
    for (;;) {
        const pid_t r = ::waitpid(roudi_pid_, nullptr, WNOHANG);
        if (r == roudi_pid_ || (r < 0 && errno == ECHILD)) return true;
        if (clock_type::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

std::string roudi_daemon::read_log() const {
    std::ifstream f(log_path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
// The end of RouDi's log on one line, without its colour codes.
std::string roudi_daemon::log_tail() const {
    const std::string s = read_log();
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\x1b') {
            while (i < s.size() && s[i] != 'm') ++i;
            continue;
        }
        out += (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
    }
    if (out.size() > 300) out = "..." + out.substr(out.size() - 300);
    return out.empty() ? "(empty)" : out;
}


}  // namespace shmchan_bench
