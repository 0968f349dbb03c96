// shmchan_bench: every transport side by side, between two real processes, in interleaved
// rounds (see docs/benchmarks.md). The harness starts both sides of each run as this binary
// again (`_side ROLE ...`, posix_spawn): the consumer (or pong) first, the producer (or ping)
// once the first said "ready" on fd 3; each prints its side_result there as one JSON line.
// The harness checks messages, bytes and checksums of every run against the pattern, kills a
// run that exceeds its time limit, and reports medians of the rounds with their spread.
#include "harness.hpp"
#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <sstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

#ifndef SHMCHAN_BENCH_ICEORYX_MISSING
#define SHMCHAN_BENCH_ICEORYX_MISSING "not built"
#endif
#ifndef SHMCHAN_BENCH_ZEROMQ_MISSING
#define SHMCHAN_BENCH_ZEROMQ_MISSING "not built"
#endif

namespace shmchan_bench {
int engine_daemon_main(int parent_pid);  // engine_socket.cpp
}

namespace {

using namespace shmchan_bench;
using steady = std::chrono::steady_clock;
namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int result_fd = 3;  // where a side child writes "ready" and its result

// --- the transports -----------------------------------------------------------------------------

// A transport this build cannot run: every run is skipped with the reason.
class unavailable final : public transport {
public:
    unavailable(std::string n, std::string why) : name_(std::move(n)), why_(std::move(why)) {}
    std::string name() const override { return name_; }
    std::string describe() const override { return "(not run: " + why_ + ")"; }
    std::string prepare(const run_spec&) override { return why_; }
    side_result produce(const run_spec&) override { fail(why_); }
    side_result consume(const run_spec&) override { fail(why_); }
    side_result ping(const run_spec&) override { fail(why_); }
    side_result pong(const run_spec&) override { fail(why_); }

private:
    std::string name_, why_;
};

struct entry {
    std::string name;
    std::function<std::unique_ptr<transport>()> make;
};

// In the report's order: the ceiling first, then shmchan, the competitors, the baselines.
std::vector<entry> registry() {
    std::vector<entry> r;
    r.push_back({"inprocess", make_inprocess});
    r.push_back({"shmchan-loan", make_shmchan_loan});
    r.push_back({"shmchan-write", make_shmchan_write});
    r.push_back({"shmchan-loan-noclaim", make_shmchan_loan_noclaim});
#ifdef SHMCHAN_BENCH_HAVE_ICEORYX
    r.push_back({"iceoryx", make_iceoryx});
#else
    r.push_back({"iceoryx", [] { return std::make_unique<unavailable>("iceoryx", SHMCHAN_BENCH_ICEORYX_MISSING); }});
#endif
    r.push_back({"engine-socket", make_engine_socket});
#ifdef SHMCHAN_BENCH_HAVE_ZEROMQ
    r.push_back({"zeromq-ipc", make_zeromq});
#else
    r.push_back({"zeromq-ipc", [] { return std::make_unique<unavailable>("zeromq-ipc", SHMCHAN_BENCH_ZEROMQ_MISSING); }});
#endif
    r.push_back({"unix-socket", make_unix_socket});
    r.push_back({"pipe", make_pipe});
    r.push_back({"tcp-loopback", make_tcp_loopback});
    r.push_back({"boost-mq", make_message_queue});
    return r;
}

const std::map<std::string, std::string>& aliases() {
    static const std::map<std::string, std::string> a = {
        {"ceiling", "inprocess"}, {"loan", "shmchan-loan"},   {"write", "shmchan-write"},
        {"shm", "shmchan-loan"},  {"engine", "engine-socket"}, {"zmq", "zeromq-ipc"},
        {"zeromq", "zeromq-ipc"}, {"unix", "unix-socket"},     {"tcp", "tcp-loopback"},
        {"mq", "boost-mq"},       {"message-queue", "boost-mq"}, {"iox", "iceoryx"},
        {"noclaim", "shmchan-loan-noclaim"}};
    return a;
}

// --- the child: one side of a run ---------------------------------------------------------------

long vm_hwm_kib(const std::string& status_path) {
    std::ifstream f(status_path);
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return 0;
}

std::string hex64(std::uint64_t v) {
    char b[20];
    std::snprintf(b, sizeof b, "%016" PRIx64, v);
    return b;
}

json side_json(const std::string& role, const side_result& r) {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    json j = {{"role", role},
              {"messages", r.messages},
              {"bytes", r.bytes},
              {"checksum", hex64(r.checksum)},
              {"start_ns", r.start_ns},
              {"end_ns", r.end_ns},
              {"error", r.error},
              {"rtt_ns", r.rtt_ns},
              // Peak RSS of this process image. (ru_maxrss would also count the harness's
              // pages: posix_spawn's child shares the harness's memory until exec, and Linux
              // carries that high-water mark over.)
              {"peak_rss_kib", vm_hwm_kib("/proc/self/status")},
              {"cpu_user_s", double(ru.ru_utime.tv_sec) + double(ru.ru_utime.tv_usec) * 1e-6},
              {"cpu_sys_s", double(ru.ru_stime.tv_sec) + double(ru.ru_stime.tv_usec) * 1e-6},
              {"vcsw", ru.ru_nvcsw},
              {"ivcsw", ru.ru_nivcsw}};
    return j;
}

void emit(const std::string& line) { write_exact(result_fd, line.data(), line.size(), false); }

side_result guarded(const std::function<side_result()>& f) {
    try {
        return f();
    } catch (const std::exception& e) {
        side_result r;
        r.error = e.what();
        if (r.error.empty()) r.error = "exception";
        return r;
    }
}

// argv: _side ROLE TRANSPORT PAYLOAD MESSAGES WARMUP TIME_LIMIT_NS LATENCY BUSY ENDPOINT SCRATCH
//        PARENT_PID
int side_main(int argc, char** argv) {
    if (argc != 13) {
        std::fprintf(stderr, "usage: _side ROLE TRANSPORT PAYLOAD MESSAGES WARMUP TIME_LIMIT_NS LATENCY BUSY "
                             "ENDPOINT SCRATCH PARENT\n");
        return 2;
    }
    if (!die_with_parent(std::atoi(argv[12]))) return 3;
    const std::string role = argv[2], name = argv[3];
    std::unique_ptr<transport> t;
    for (auto& e : registry())
        if (e.name == name) t = e.make();
    if (!t) {
        std::fprintf(stderr, "unknown transport %s\n", name.c_str());
        return 2;
    }
    run_spec spec;
    spec.payload = std::strtoull(argv[4], nullptr, 10);
    spec.messages = std::strtoull(argv[5], nullptr, 10);
    spec.warmup = std::strtoull(argv[6], nullptr, 10);
    spec.time_limit_ns = std::strtoll(argv[7], nullptr, 10);
    spec.latency = std::atoi(argv[8]) != 0;
    spec.busy_wait = std::atoi(argv[9]) != 0;
    spec.endpoint = argv[10];
    spec.scratch_dir = argv[11];
    std::atomic<bool> said_ready{false};
    spec.ready = [&] {
        if (!said_ready.exchange(true)) emit("ready\n");
    };

    if (role == "produce" || role == "consume" || role == "ping" || role == "pong") {
        const side_result r = guarded([&]() -> side_result {
            if (role == "produce") return t->produce(spec);
            if (role == "consume") return t->consume(spec);
            if (role == "ping") return t->ping(spec);
            return t->pong(spec);
        });
        emit(side_json(role, r).dump() + "\n");
        return 0;
    }
    if (role == "pair") {  // both sides as two threads of this process (the ceiling)
        enum : int { waiting, ready, gone };
        std::atomic<int> state{waiting};
        run_spec accept_spec = spec;
        accept_spec.ready = [&] {
            state.store(ready);
            state.notify_all();
        };
        side_result rx, tx;
        std::thread other([&] {
            rx = guarded([&] { return spec.latency ? t->pong(accept_spec) : t->consume(accept_spec); });
            int w = waiting;
            state.compare_exchange_strong(w, gone);
            state.notify_all();
        });
        for (int s = state.load(); s == waiting; s = state.load()) state.wait(s);
        if (state.load() == ready) {
            tx = guarded([&] { return spec.latency ? t->ping(spec) : t->produce(spec); });
        } else {
            tx.error = "not started: the other side failed before it was ready";
        }
        other.join();
        emit(side_json(spec.latency ? "ping" : "produce", tx).dump() + "\n" +
             side_json(spec.latency ? "pong" : "consume", rx).dump() + "\n");
        return 0;
    }
    std::fprintf(stderr, "unknown role %s\n", role.c_str());
    return 2;
}

// --- the harness: options ---------------------------------------------------------------------

struct options {
    std::vector<std::string> transports;  // registry names, in registry order
    std::vector<std::size_t> sizes, latency_sizes;
    int rounds = 0;
    bool quick = false;
    bool throughput = true, latency = true;
    std::string out_dir = "bench-out";
    bool plots = true;
    std::string gnuplot = "gnuplot";
    double time_per_run = 0.15;  // seconds a throughput run should take (latency: 0.8x)
    double timeout = 0;          // per run, seconds
    std::uint64_t max_bytes = std::uint64_t{2} << 30;  // per throughput run
    bool keep_scratch = false;
    std::uint64_t messages = 0;  // > 0: this many per run, no pilots
    double latency_limit = 0;    // seconds a ping side may run (0: none; default 1.5, --quick none)
};

const char* usage_text =
    "usage: shmchan bench [options]        (or shmchan_bench [options])\n"
    "  Every transport between two processes, side by side in interleaved rounds: throughput\n"
    "  (GB/s, messages/s) and one-way latency (round trip / 2, p50 and p99, busy-wait and\n"
    "  sleeping waits), peak memory of each side; a table on stdout, results.json, results.csv,\n"
    "  runs.csv, results.md and PNG/SVG plots (gnuplot) in --out.\n"
    "  --quick              small sizes (64 B, 4 KiB, 1 MiB), 1 round, few messages (~1 min)\n"
    "  --transports LIST    comma-separated (default all): inprocess, shmchan-loan, shmchan-write,\n"
    "                       shmchan-loan-noclaim, iceoryx, engine-socket, zeromq-ipc, unix-socket,\n"
    "                       pipe, tcp-loopback,\n"
    "                       boost-mq (the ceiling, inprocess, is always added)\n"
    "  --sizes LIST         throughput payloads (default 64,256,1K,4K,16K,64K,256K,1M,4M,16M)\n"
    "  --latency-sizes LIST latency payloads (default 64,4K,64K,1M)\n"
    "  --rounds N           interleaved rounds (default 5; --quick 1)\n"
    "  --time-per-run S     seconds one throughput run should take (default 0.15; latency 0.8x),\n"
    "                       sized by pilot runs of each transport and payload before the\n"
    "                       rounds, and by each round for the next\n"
    "  --max-bytes BYTES    at most this much per throughput run (default 2G)\n"
    "  --no-throughput, --no-latency\n"
    "  --timeout S          a run taking longer is killed and reported as failed (default 60; --quick 30)\n"
    "  --out DIR            where results go (default ./bench-out)\n"
    "  --no-plots           do not run gnuplot (plot.gp and the .dat files are still written)\n"
    "  --gnuplot PATH       gnuplot executable (default: gnuplot from PATH)\n"
    "  --keep-scratch       keep each run's scratch directory (sockets, refs, child logs)\n"
    "  --messages N         exactly N messages (round trips) per run, no pilots\n"
    "  --latency-limit S    a latency run stops starting round trips after S seconds (default\n"
    "                       1.5; 0: none, as with --quick and --messages); busy-waiting on a\n"
    "                       loaded 2-CPU machine can otherwise take minutes\n"
    "  --list               the transports and what each does\n"
    "  --verify FILE        check a results.json: every transport moved exactly its bytes with\n"
    "                       matching checksums, or was skipped with a reason (exit 0), else exit 1\n"
    "  --report FILE [--out DIR] [--no-plots]  tables, CSV, JSON and plots again from a results.json\n"
    "BYTES accept K, M, G suffixes (powers of 1024). Exit status: 0 when every run that ran\n"
    "moved exactly its bytes, 1 on any failure or mismatch, 2 on usage errors, 130 interrupted.\n";

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::uint64_t parse_bytes(const std::string& s) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (errno || end == s.c_str()) throw usage_error("not a byte count: " + s);
    const std::string suf(end);
    if (suf == "K" || suf == "k" || suf == "KiB") v <<= 10;
    else if (suf == "M" || suf == "MiB") v <<= 20;
    else if (suf == "G" || suf == "GiB") v <<= 30;
    else if (!suf.empty() && suf != "B") throw usage_error("unknown size suffix in " + s);
    return v;
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i)
        if (i == s.size() || s[i] == ',') {
            if (i > start) out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    return out;
}

std::vector<std::size_t> parse_sizes(const std::string& s) {
    std::vector<std::size_t> v;
    for (const auto& x : split(s)) {
        const auto b = parse_bytes(x);
        if (b == 0) throw usage_error("payload sizes must be positive");
        v.push_back(static_cast<std::size_t>(b));
    }
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}

options parse_options(const std::vector<std::string>& args) {
    options o;
    std::string transports, sizes, lat_sizes;
    int rounds = -1;
    double timeout = -1;
    bool latency_limit_set = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= args.size()) throw usage_error(a + " needs a value");
            return args[++i];
        };
        auto number = [&](const std::string& v) {
            try {
                return std::stod(v);
            } catch (const std::exception&) {
                throw usage_error(a + ": not a number: " + v);
            }
        };
        if (a == "--quick") o.quick = true;
        else if (a == "--transports") transports = value();
        else if (a == "--sizes") sizes = value();
        else if (a == "--latency-sizes") lat_sizes = value();
        else if (a == "--rounds") rounds = static_cast<int>(number(value()));
        else if (a == "--time-per-run") o.time_per_run = number(value());
        else if (a == "--max-bytes") o.max_bytes = parse_bytes(value());
        else if (a == "--no-throughput") o.throughput = false;
        else if (a == "--no-latency") o.latency = false;
        else if (a == "--timeout") timeout = number(value());
        else if (a == "--out") o.out_dir = value();
        else if (a == "--no-plots") o.plots = false;
        else if (a == "--gnuplot") o.gnuplot = value();
        else if (a == "--keep-scratch") o.keep_scratch = true;
        else if (a == "--messages") o.messages = parse_bytes(value());
        else if (a == "--latency-limit") {
            o.latency_limit = number(value());
            latency_limit_set = true;
        }
        else throw usage_error("unknown option " + a);
    }
    const auto reg = registry();
    std::vector<std::string> wanted;
    if (transports.empty()) {
        for (const auto& e : reg) wanted.push_back(e.name);
    } else {
        wanted.push_back("inprocess");  // the ceiling every ratio refers to
        for (auto n : split(transports)) {
            if (auto it = aliases().find(n); it != aliases().end()) n = it->second;
            if (std::none_of(reg.begin(), reg.end(), [&](const entry& e) { return e.name == n; }))
                throw usage_error("unknown transport " + n + " (see --list)");
            wanted.push_back(n);
        }
    }
    for (const auto& e : reg)
        if (std::find(wanted.begin(), wanted.end(), e.name) != wanted.end()) o.transports.push_back(e.name);
    o.sizes = !sizes.empty() ? parse_sizes(sizes)
              : o.quick      ? std::vector<std::size_t>{64, 4 * KiB, MiB}
                             : std::vector<std::size_t>{64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB, 16 * MiB};
    o.latency_sizes = !lat_sizes.empty() ? parse_sizes(lat_sizes)
                      : o.quick          ? std::vector<std::size_t>{64, MiB}
                                         : std::vector<std::size_t>{64, 4 * KiB, 64 * KiB, MiB};
    o.rounds = rounds > 0 ? rounds : o.quick ? 1 : 5;
    o.timeout = timeout > 0 ? timeout : o.quick ? 30 : 60;
    if (!latency_limit_set) o.latency_limit = o.quick || o.messages ? 0 : 1.5;
    if (o.time_per_run <= 0) throw usage_error("--time-per-run must be positive");
    if (!o.throughput && !o.latency) throw usage_error("nothing to run");
    return o;
}

// --- the harness: processes ---------------------------------------------------------------------

volatile std::sig_atomic_t g_interrupted = 0;
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

extern "C" void on_signal(int) {
    g_interrupted = 1;
    for (auto& c : g_children)
        if (c > 0) ::kill(c, SIGKILL);
}

// One side child: its result pipe, lines read so far, how it ended.
struct side_proc {
    std::string role;
    pid_t pid = -1;
    int fd = -1;
    std::string pending;
    std::vector<std::string> lines;
    bool eof = false;
    bool reaped = false;
    int status = 0;
    std::string log;
};

int high_fd(int fd) {  // keep pipes clear of 0-3, which the child's file actions rewire
    const int h = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (h < 0) fail_errno("fcntl F_DUPFD_CLOEXEC");
    ::close(fd);
    return h;
}

side_proc spawn_side(const std::string& role, const std::string& name, const run_spec& spec) {
    side_proc s;
    s.role = role;
    s.log = spec.scratch_dir + "/" + role + ".log";
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
                                     std::to_string(::getpid())};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], result_fd);
    posix_spawn_file_actions_addopen(&fa, 1, s.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    const int rc = ::posix_spawn(&s.pid, self.c_str(), &fa, nullptr, argv.data(), environ);
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

// --- the harness: machine counters -----------------------------------------------------------

double machine_busy_s() {
    std::FILE* f = std::fopen("/proc/stat", "re");
    if (!f) return 0;
    unsigned long long v[8] = {};
    double busy = 0;
    if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                    &v[6], &v[7]) == 8)
        busy = double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / double(::sysconf(_SC_CLK_TCK));
    std::fclose(f);
    return busy;
}

double process_cpu_s(int pid) {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
    if (!f) return 0;
    char buf[1024];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* p = std::strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (p && std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
        return double(ut + st) / double(::sysconf(_SC_CLK_TCK));
    return 0;
}

double self_cpu_s() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

// --- the harness: runs --------------------------------------------------------------------------

std::uint64_t expected_checksum(std::uint64_t bytes) {
    static std::map<std::uint64_t, std::uint64_t> cache;
    if (auto it = cache.find(bytes); it != cache.end()) return it->second;
    return cache[bytes] = pattern_checksum(1, bytes);
}

bool parse_side(const std::string& line, side_record& s) {
    try {
        const json j = json::parse(line);
        s.r.messages = j.at("messages").get<std::uint64_t>();
        s.r.bytes = j.at("bytes").get<std::uint64_t>();
        s.r.checksum = std::stoull(j.at("checksum").get<std::string>(), nullptr, 16);
        s.r.start_ns = j.at("start_ns").get<std::int64_t>();
        s.r.end_ns = j.at("end_ns").get<std::int64_t>();
        s.r.error = j.at("error").get<std::string>();
        s.r.rtt_ns = j.at("rtt_ns").get<std::vector<std::int64_t>>();
        s.peak_rss_kib = j.at("peak_rss_kib").get<long>();
        s.cpu_user_s = j.at("cpu_user_s").get<double>();
        s.cpu_sys_s = j.at("cpu_sys_s").get<double>();
        s.vcsw = j.at("vcsw").get<long>();
        s.ivcsw = j.at("ivcsw").get<long>();
        s.present = true;
        return true;
    } catch (const std::exception& e) {
        s.r.error = std::string("unreadable result from the child: ") + e.what();
        return false;
    }
}

double percentile(std::vector<double>& sorted, double q) {  // nearest rank
    if (sorted.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::ceil(q * double(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

struct transport_state {
    std::string name;
    std::unique_ptr<transport> t;
    std::map<cell, std::string> skipped;  // reason: later rounds are not tried again
    std::map<cell, std::string> failed;
};

class harness {
public:
    explicit harness(const options& o) : o_(o) {
        char tmpl[] = "/tmp/shmchan-bench-XXXXXX";
        if (!::mkdtemp(tmpl)) fail_errno("mkdtemp");
        root_ = tmpl;
        for (const auto& e : registry())
            if (std::find(o.transports.begin(), o.transports.end(), e.name) != o.transports.end())
                ts_.push_back({e.name, e.make(), {}, {}});
    }
    ~harness() {
        teardown();
        std::error_code ec;
        if (!o_.keep_scratch) fs::remove_all(root_, ec);
    }
    void teardown() {
        for (auto& s : ts_) {
            try {
                s.t->teardown();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "shmchan_bench: %s teardown: %s\n", s.name.c_str(), e.what());
            }
        }
    }
    std::vector<transport_state>& transports() { return ts_; }
    const std::string& scratch_root() const { return root_; }

    // `timed` messages (round trips) after a warm-up (warmup_for); `per_msg`: the seconds one
    // takes, as far as known (0: not yet).
    run_record run(transport_state& ts, const cell& c, std::uint64_t timed, int round, double per_msg = 0);

private:
    void run_two(transport_state& ts, const run_spec& spec, run_record& rec, steady::time_point deadline);
    void run_pair(transport_state& ts, const run_spec& spec, run_record& rec, steady::time_point deadline);
    void evaluate(run_record& rec, const run_spec& spec);

    const options& o_;
    std::string root_;
    std::vector<transport_state> ts_;
    int counter_ = 0;
};

// Warm-up before the timed messages: a lap of the buffers every transport may have (the
// shmchan ring, a queue's slots: max(4 MiB, 4 x payload), plus a quarter), so that first-touch
// page faults, connection set-up and cold caches are not in the figures (on the VM of
// docs/benchmarks.md a page fault costs up to 30 us under load). For throughput the consumer
// may lag the producer by a whole buffer, so the producer warms up for two laps and a quarter:
// when the clock starts, the consumer has finished its first. Bounded by the run's own length,
// so slow transports do not spend minutes warming up.
std::uint64_t warmup_for(const cell& c, std::uint64_t timed, double per_msg) {
    const double buffers = double(std::max<std::size_t>(4 * MiB, 4 * c.payload));
    const double lap = 1.25 * buffers;
    if (c.k == kind::throughput) {
        const auto n = static_cast<std::uint64_t>(std::ceil((lap + buffers) / double(c.payload)));
        return std::min<std::uint64_t>(n, std::max<std::uint64_t>(timed, 1));
    }
    // Latency: a whole lap matters for small payloads (a fresh page every 51 round trips of
    // 64 B costs shmchan a 20-50 us fault on this VM); the warm-up may take up to ~0.9 s by
    // the round-trip time known so far (else 7.5 x the timed ones, sized for ~0.12 s).
    const auto n = static_cast<std::uint64_t>(std::ceil(lap / double(c.payload + 16)));
    const auto budget = per_msg > 0 ? static_cast<std::uint64_t>(0.9 / per_msg) : timed * 15 / 2;
    return std::max<std::uint64_t>(std::min<std::uint64_t>(n, budget), 20);
}

run_record harness::run(transport_state& ts, const cell& c, std::uint64_t timed, int round, double per_msg) {
    run_record rec;
    rec.transport = ts.name;
    rec.c = c;
    rec.round = round;
    rec.warmup = warmup_for(c, timed, per_msg);
    rec.messages = rec.planned = timed + rec.warmup;
    const int n = ++counter_;
    run_spec spec;
    spec.payload = c.payload;
    spec.latency = c.k == kind::latency;
    spec.messages = rec.messages;
    spec.warmup = rec.warmup;
    if (spec.latency) spec.time_limit_ns = static_cast<std::int64_t>(o_.latency_limit * 1e9);
    spec.busy_wait = c.busy;
    spec.endpoint = "shmchan-bench-" + std::to_string(::getpid()) + "-" + std::to_string(n);
    spec.scratch_dir = root_ + "/run-" + std::to_string(n);
    if (::mkdir(spec.scratch_dir.c_str(), 0700) != 0) fail_errno("mkdir " + spec.scratch_dir);

    const auto t0 = steady::now();
    std::string why;
    try {
        why = ts.t->prepare(spec);
    } catch (const std::exception& e) {
        rec.status = "failed";
        rec.reason = std::string("prepare: ") + e.what();
    }
    if (rec.status.empty() && !why.empty()) {
        rec.status = "skipped";
        rec.reason = why;
    }
    if (rec.status.empty()) {
        const auto daemons = ts.t->daemon_pids();
        double d0 = 0, d1 = 0;
        for (int pid : daemons) d0 += process_cpu_s(pid);
        const double m0 = machine_busy_s(), s0 = self_cpu_s();
        const auto deadline = steady::now() + std::chrono::milliseconds(static_cast<long long>(o_.timeout * 1000));
        try {
            if (ts.t->in_one_process()) run_pair(ts, spec, rec, deadline);
            else run_two(ts, spec, rec, deadline);
        } catch (const std::exception& e) {
            rec.status = "failed";
            rec.reason = e.what();
        }
        const double wall = std::chrono::duration<double>(steady::now() - t0).count();
        for (int pid : daemons) {
            d1 += process_cpu_s(pid);
            rec.daemon_rss_kib = std::max(rec.daemon_rss_kib, vm_hwm_kib("/proc/" + std::to_string(pid) + "/status"));
        }
        rec.daemon_cpu_s = std::max(0.0, d1 - d0);
        const double children = rec.tx.cpu_user_s + rec.tx.cpu_sys_s +
                                (ts.t->in_one_process() ? 0 : rec.rx.cpu_user_s + rec.rx.cpu_sys_s);
        rec.others = std::max(0.0, (machine_busy_s() - m0 - children - rec.daemon_cpu_s - (self_cpu_s() - s0)) / wall);
        if (rec.status.empty()) evaluate(rec, spec);
    }
    try {
        ts.t->cleanup(spec);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmchan_bench: %s cleanup: %s\n", ts.name.c_str(), e.what());
    }
    rec.wall_s = std::chrono::duration<double>(steady::now() - t0).count();
    std::error_code ec;
    if (!o_.keep_scratch) fs::remove_all(spec.scratch_dir, ec);
    return rec;
}

void harness::run_two(transport_state& ts, const run_spec& spec, run_record& rec, steady::time_point deadline) {
    const std::string accept_role = spec.latency ? "pong" : "consume";
    const std::string connect_role = spec.latency ? "ping" : "produce";
    side_proc a = spawn_side(accept_role, ts.name, spec), b;
    auto finish = [&](const std::string& why) {
        if (!why.empty()) {
            rec.status = "failed";
            rec.reason = why;
        }
        kill_side(a);
        kill_side(b);
        reap(a, std::chrono::milliseconds(0));
        reap(b, std::chrono::milliseconds(0));
    };
    // The accepting side first, until it is ready (or has failed before that).
    wait_for({&a}, deadline, [&] { return said_ready(a) || results_in(a) > 0 || a.eof; });
    if (g_interrupted) return finish("interrupted");
    if (!said_ready(a)) {
        if (results_in(a) > 0) parse_side(a.lines.back(), rec.rx);
        reap(a, std::chrono::milliseconds(2000));
        std::string why = !rec.rx.r.error.empty() ? accept_role + ": " + rec.rx.r.error
                          : a.eof ? accept_role + " ended before it was ready (" + exit_text(a.status) + ")"
                                  : accept_role + " not ready after " + std::to_string(int(o_.timeout)) + " s (killed)";
        if (const auto tail = log_tail(a.log); !tail.empty()) why += " [log: " + tail + "]";
        return finish(why);
    }
    b = spawn_side(connect_role, ts.name, spec);
    // Both results; once one side has failed or died, the other gets a short grace.
    auto done = [&] { return (results_in(a) > 0 || a.eof) && (results_in(b) > 0 || b.eof); };
    bool ok = wait_for({&a, &b}, deadline, [&] {
        if (done()) return true;
        const bool a_bad = a.eof && results_in(a) == 0, b_bad = b.eof && results_in(b) == 0;
        return a_bad || b_bad;
    });
    if (ok && !done()) ok = wait_for({&a, &b}, std::min(deadline, steady::now() + std::chrono::seconds(3)), done);
    if (g_interrupted) return finish("interrupted");
    const bool timed_out = !ok;
    if (timed_out) {
        kill_side(a);
        kill_side(b);
    }
    reap(a, std::chrono::milliseconds(5000));
    reap(b, std::chrono::milliseconds(5000));
    for (auto [s, r] : {std::pair{&b, &rec.tx}, std::pair{&a, &rec.rx}})
        for (const auto& l : s->lines)
            if (!l.empty() && l[0] == '{') parse_side(l, *r);
    std::string why;
    for (auto [s, r] : {std::pair{&b, &rec.tx}, std::pair{&a, &rec.rx}}) {
        std::string w;
        if (r->present && !r->r.error.empty()) w = s->role + ": " + r->r.error;
        else if (!r->present && timed_out) w = s->role + ": no result within " + std::to_string(int(o_.timeout)) + " s (killed)";
        else if (!r->present) w = s->role + ": ended without a result (" + exit_text(s->status) + ")";
        if (w.empty()) continue;
        if (const auto tail = log_tail(s->log); !tail.empty() && !r->present) w += " [log: " + tail + "]";
        why += (why.empty() ? "" : "; ") + w;
    }
    if (timed_out && why.empty()) why = "timed out";
    finish(why);
}

void harness::run_pair(transport_state& ts, const run_spec& spec, run_record& rec, steady::time_point deadline) {
    side_proc p = spawn_side("pair", ts.name, spec);
    const bool ok = wait_for({&p}, deadline, [&] { return results_in(p) >= 2 || p.eof; });
    if (!ok) kill_side(p);
    reap(p, std::chrono::milliseconds(5000));
    std::vector<std::string> results;
    for (const auto& l : p.lines)
        if (!l.empty() && l[0] == '{') results.push_back(l);
    if (results.size() >= 1) parse_side(results[0], rec.tx);
    if (results.size() >= 2) parse_side(results[1], rec.rx);
    std::string why;
    if (g_interrupted) why = "interrupted";
    else if (!ok) why = "no result within " + std::to_string(int(o_.timeout)) + " s (killed)";
    else if (results.size() < 2) why = "ended without a result (" + exit_text(p.status) + ") [log: " + log_tail(p.log) + "]";
    for (auto* r : {&rec.tx, &rec.rx})
        if (r->present && !r->r.error.empty()) why += (why.empty() ? "" : "; ") + r->r.error;
    if (!why.empty()) {
        rec.status = "failed";
        rec.reason = why;
    }
}

void harness::evaluate(run_record& rec, const run_spec& spec) {
    // A latency run may end early (time limit): then both sides must agree on how many round
    // trips were made, and everything else is checked against that count.
    std::uint64_t moved = spec.messages;
    if (spec.latency && spec.time_limit_ns && rec.tx.r.messages < spec.messages) moved = rec.tx.r.messages;
    rec.messages = moved;
    rec.expected_bytes = std::uint64_t(spec.payload) * moved;
    rec.expected_checksum = expected_checksum(rec.expected_bytes);
    std::string bad;
    auto check = [&](const char* who, const side_record& s) {
        if (s.r.messages != moved)
            bad += std::string(who) + " reported " + std::to_string(s.r.messages) + " messages; ";
        if (s.r.bytes != rec.expected_bytes)
            bad += std::string(who) + " reported " + std::to_string(s.r.bytes) + " bytes; ";
        if (s.r.checksum != rec.expected_checksum) bad += std::string(who) + " checksum " + hex64(s.r.checksum) + "; ";
    };
    check(spec.latency ? "ping (echoes received)" : "producer", rec.tx);
    check(spec.latency ? "pong (received)" : "consumer", rec.rx);
    if (spec.latency && rec.tx.r.rtt_ns.size() != moved) bad += "wrong number of round-trip samples; ";
    if (!bad.empty()) {
        rec.status = "failed";
        rec.reason = "MISMATCH: " + bad + "expected " + std::to_string(rec.expected_bytes) + " bytes, checksum " +
                     hex64(rec.expected_checksum);
        return;
    }
    if (!spec.latency) {
        const std::int64_t ns = rec.rx.r.end_ns - rec.tx.r.start_ns;
        if (ns <= 0 || rec.tx.r.start_ns == 0) {
            rec.status = "failed";
            rec.reason = "impossible timestamps (consumer end before producer start)";
            return;
        }
        const std::uint64_t timed = spec.messages - spec.warmup;
        rec.secs = double(ns) * 1e-9;
        rec.gbps = double(timed * spec.payload) / rec.secs * 1e-9;
        rec.msgs_per_s = double(timed) / rec.secs;
    } else {
        // The warm-up round trips are dropped.
        const auto& rtt = rec.tx.r.rtt_ns;
        const std::size_t skip = std::min<std::size_t>(spec.warmup, rtt.size());
        std::vector<double> one_way;
        for (std::size_t i = skip; i < rtt.size(); ++i) one_way.push_back(double(rtt[i]) / 2e3);
        std::sort(one_way.begin(), one_way.end());
        rec.samples = one_way.size();
        rec.p50_us = percentile(one_way, 0.50);
        rec.p99_us = percentile(one_way, 0.99);
        rec.max_us = one_way.empty() ? 0 : one_way.back();
        double sum = 0;
        for (double v : one_way) sum += v;
        rec.mean_us = one_way.empty() ? 0 : sum / double(one_way.size());
        rec.secs = double(rec.tx.r.end_ns - rec.tx.r.start_ns) * 1e-9;
    }
    rec.tx.r.rtt_ns.clear();  // summarized; not kept
    rec.status = "ok";
}

// --- the harness: the plan -----------------------------------------------------------------------

std::uint64_t floor_pow2(double x) {
    if (x < 1) return 1;
    if (x > 9e18) x = 9e18;
    return std::bit_floor(static_cast<std::uint64_t>(x));
}

// Quick mode: fixed, small counts.
std::uint64_t quick_messages(const cell& c) {
    if (c.k == kind::throughput) return std::clamp<std::uint64_t>((4 * MiB) / c.payload, 16, 2000);
    return c.payload <= 64 * KiB ? 200 : 40;
}

std::string fmt_figure(const run_record& r) {
    char b[160];
    if (r.status != "ok") return r.status == "skipped" ? "skipped: " + r.reason : "FAILED: " + r.reason;
    if (r.c.k == kind::throughput)
        std::snprintf(b, sizeof b, "%8.3f GB/s %10.0f msg/s  (%" PRIu64 " + %" PRIu64 " warm-up msgs, %.2f s)",
                      r.gbps, r.msgs_per_s, r.messages - r.warmup, r.warmup, r.secs);
    else if (r.samples == 0)
        std::snprintf(b, sizeof b, "no timed round trips: the time limit came during the %" PRIu64 " warm-up ones",
                      r.warmup);
    else
        std::snprintf(b, sizeof b, "p50 %9.2f us  p99 %9.2f us  (%zu + %" PRIu64 " warm-up round trips%s)", r.p50_us,
                      r.p99_us, r.samples, r.warmup, r.messages < r.planned ? ", cut by the time limit" : "");
    return b;
}

std::string utc_now() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char b[64];
    std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return b;
}

machine_info probe_machine(const std::vector<std::string>& argv) {
    machine_info m;
    m.nproc = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("model name", 0) == 0) {
            m.cpu_model = line.substr(line.find(':') + 2);
            break;
        }
    utsname u{};
    if (::uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    m.hostname = host;
    m.date_utc = utc_now();
    for (const auto& a : argv) m.command += (m.command.empty() ? "" : " ") + a;
    return m;
}

// The placement probe (see machine_info::line_rtt_ns): two threads pinned to CPUs 0 and 1
// bounce one cache line; the median of 15 batches of 2000 round trips. 0 when fewer than 2 CPUs
// or pinning is refused.
double line_round_trip_ns() {
    if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) return 0;
    alignas(64) std::atomic<std::uint64_t> ball{0};
    std::atomic<bool> pinned_ok{true};
    auto pin = [&](int cpu) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) != 0) pinned_ok = false;
    };
    constexpr std::uint64_t batch = 2000, batches = 15;
    std::thread echo([&] {
        pin(1);
        for (std::uint64_t i = 0; i < batch * batches; ++i) {
            while (ball.load(std::memory_order_acquire) != 2 * i + 1)
                if (!pinned_ok.load(std::memory_order_relaxed)) return;
            ball.store(2 * i + 2, std::memory_order_release);
        }
    });
    pin(0);
    std::vector<double> ns;
    for (std::uint64_t b = 0; b < batches && pinned_ok; ++b) {
        const auto t0 = steady::now();
        for (std::uint64_t i = b * batch; i < (b + 1) * batch; ++i) {
            ball.store(2 * i + 1, std::memory_order_release);
            while (ball.load(std::memory_order_acquire) != 2 * i + 2)
                if (!pinned_ok.load(std::memory_order_relaxed)) break;
        }
        ns.push_back(std::chrono::duration<double, std::nano>(steady::now() - t0).count() / double(batch));
    }
    echo.join();
    cpu_set_t all;  // the harness itself runs anywhere again
    CPU_ZERO(&all);
    for (int c = 0; c < CPU_SETSIZE && c < ::sysconf(_SC_NPROCESSORS_ONLN); ++c) CPU_SET(c, &all);
    ::pthread_setaffinity_np(::pthread_self(), sizeof all, &all);
    if (!pinned_ok || ns.empty()) return 0;
    std::sort(ns.begin(), ns.end());
    return ns[ns.size() / 2];
}

int run_suite(const options& o, const std::vector<std::string>& argv) {
    machine_info m = probe_machine(argv);
    m.line_rtt_ns.push_back(line_round_trip_ns());
    std::vector<cell> cells;
    if (o.throughput)
        for (auto s : o.sizes) cells.push_back({kind::throughput, s, false});
    if (o.latency)
        for (bool busy : {true, false})
            for (auto s : o.latency_sizes) cells.push_back({kind::latency, s, busy});

    std::error_code ec;
    fs::create_directories(o.out_dir, ec);
    if (ec) throw usage_error("cannot create --out " + o.out_dir + ": " + ec.message());

    harness h(o);
    auto& ts = h.transports();
    std::vector<transport_info> infos;
    for (auto& s : ts) infos.push_back({s.name, s.t->describe(), s.t->in_one_process()});

    std::printf("shmchan bench: %zu transports, %zu figures, %d interleaved round(s)%s\n", ts.size(), cells.size(),
                o.rounds, o.quick ? " (quick)" : "");
    std::printf("machine: %d CPUs, %s, %s; %s\n", m.nproc, m.cpu_model.c_str(), m.kernel.c_str(), m.date_utc.c_str());
    std::printf("placement probe: CPU 0 <-> CPU 1 cache-line round trip %.0f ns (~100 near, ~400+ far)\n", m.line_rtt_ns[0]);
    std::fflush(stdout);

    std::vector<run_record> runs;
    const auto start = steady::now();
    bool any_failed = false;
    auto progress = [&](const run_record& r, const char* phase) {
        const double el = std::chrono::duration<double>(steady::now() - start).count();
        std::fprintf(stderr, "[%3d:%02d] %-8s %-22s %-14s %s\n", int(el) / 60, int(el) % 60, phase,
                     cell_label(r.c).c_str(), r.transport.c_str(), fmt_figure(r).c_str());
    };
    auto record = [&](transport_state& s, run_record r) {
        if (r.status == "skipped") s.skipped[r.c] = r.reason;
        if (r.status == "failed") {
            s.failed[r.c] = r.reason;
            any_failed = true;
        }
        runs.push_back(std::move(r));
    };
    auto runnable = [](const transport_state& s, const cell& c) { return !s.skipped.count(c) && !s.failed.count(c); };

    // How many messages each (figure, transport) run moves, and the seconds one took so far.
    std::map<std::pair<cell, std::string>, std::uint64_t> count;
    std::map<std::pair<cell, std::string>, double> per_msg_seen;
    if (o.quick || o.messages) {
        for (const auto& c : cells)
            for (auto& s : ts) count[{c, s.name}] = o.messages ? o.messages : quick_messages(c);
    } else {
        // Pilots: short runs, lengthened until they take a good part of --time-per-run, then
        // scaled to it. They also warm up each transport and payload; not in the figures.
        for (const auto& c : cells) {
            for (auto& s : ts) {
                if (g_interrupted) break;
                const double target = c.k == kind::throughput ? o.time_per_run : 0.8 * o.time_per_run;
                const std::uint64_t max_msgs = c.k == kind::throughput ? std::max<std::uint64_t>(o.max_bytes / c.payload, 1) : 20000;
                const std::uint64_t min_msgs = c.k == kind::throughput ? 8 : 200;
                std::uint64_t n = c.k == kind::throughput ? std::clamp<std::uint64_t>(MiB / c.payload, 4, 1000) : 20;
                for (int attempt = 0; attempt < 3; ++attempt) {
                    run_record r = h.run(s, c, n, 0, per_msg_seen[{c, s.name}]);
                    progress(r, "pilot");
                    const bool ok = r.status == "ok";
                    // the timed part only (the warm-up comes on top in every run alike);
                    // latency: the whole ping side, per round trip (it may have stopped early)
                    const double per_msg = !ok ? 0
                                           : c.k == kind::throughput ? std::max(r.secs, 1e-7) / double(n)
                                                                     : std::max(r.secs, 1e-7) / double(std::max<std::uint64_t>(r.messages, 1));
                    const double secs = per_msg * double(n);
                    record(s, std::move(r));
                    if (!ok) break;
                    per_msg_seen[{c, s.name}] = per_msg;
                    if (secs >= 0.25 * target || n >= max_msgs || attempt == 2) {
                        count[{c, s.name}] = std::clamp(floor_pow2(target / per_msg), min_msgs, max_msgs);
                        break;
                    }
                    const double grow = std::clamp(0.5 * target / std::max(secs, 1e-6), 2.0, 64.0);
                    n = std::min<std::uint64_t>(max_msgs, static_cast<std::uint64_t>(double(n) * grow));
                }
            }
        }
    }
    // The rounds: every figure, every transport in an order that rotates, so that slow
    // phases of a shared machine fall on all of them.
    for (int round = 1; round <= o.rounds && !g_interrupted; ++round) {
        for (std::size_t ci = 0; ci < cells.size() && !g_interrupted; ++ci) {
            const cell& c = cells[ci];
            for (std::size_t k = 0; k < ts.size() && !g_interrupted; ++k) {
                auto& s = ts[(k + ci + std::size_t(round)) % ts.size()];
                if (!runnable(s, c)) continue;
                auto& n = count[{c, s.name}];
                run_record r = h.run(s, c, n, round, per_msg_seen[{c, s.name}]);
                char phase[32];
                std::snprintf(phase, sizeof phase, "r%d/%d", round, o.rounds);
                progress(r, phase);
                // Later rounds: sized by this one, so every run takes about --time-per-run
                // even when the pilot misjudged it (powers of two: the same counts recur).
                if (!o.quick && !o.messages && r.status == "ok") {
                    const double secs = c.k == kind::throughput ? r.secs
                                                                : r.secs / double(std::max<std::uint64_t>(r.messages, 1)) * double(n);
                    const double target = c.k == kind::throughput ? o.time_per_run : 0.8 * o.time_per_run;
                    const std::uint64_t max_msgs = c.k == kind::throughput ? std::max<std::uint64_t>(o.max_bytes / c.payload, 1) : 20000;
                    const std::uint64_t min_msgs = c.k == kind::throughput ? 8 : 200;
                    if (secs > 0 && c.k == kind::latency) per_msg_seen[{c, s.name}] = secs / double(n);
                    if (secs > 0) n = std::clamp(floor_pow2(target * double(n) / secs), min_msgs, max_msgs);
                }
                record(s, std::move(r));
            }
        }
        if (!o.quick) {
            m.line_rtt_ns.push_back(line_round_trip_ns());
            std::fprintf(stderr, "placement probe after round %d: %.0f ns\n", round, m.line_rtt_ns.back());
        }
    }
    h.teardown();
    if (g_interrupted) std::fprintf(stderr, "shmchan_bench: interrupted; reporting what was measured\n");

    json oj = {{"quick", o.quick},
               {"rounds", o.rounds},
               {"sizes", o.sizes},
               {"latency_sizes", o.latency_sizes},
               {"time_per_run_s", o.time_per_run},
               {"max_bytes", o.max_bytes},
               {"timeout_s", o.timeout},
               {"transports", o.transports},
               {"throughput", o.throughput},
               {"latency", o.latency}};
    report_options ro;
    ro.out_dir = o.out_dir;
    ro.plots = o.plots;
    ro.gnuplot = o.gnuplot;
    ro.rounds = o.rounds;
    ro.quick = o.quick;
    ro.time_per_run = o.time_per_run;
    write_report(m, ro, infos, cells, runs, oj);
    const double el = std::chrono::duration<double>(steady::now() - start).count();
    std::printf("\n%zu runs in %.0f s; results in %s\n", runs.size(), el, o.out_dir.c_str());
    if (g_interrupted) return 130;
    if (any_failed) {
        std::printf("FAILED: at least one run failed or moved other bytes than it was given (see above)\n");
        return 1;
    }
    return 0;
}

int list_transports() {
    for (const auto& e : registry()) {
        auto t = e.make();
        std::printf("%-14s %s\n", e.name.c_str(), t->describe().c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    try {
        const std::string first = argc >= 2 ? argv[1] : "";
        if (first == "_side") return side_main(argc, argv);
        if (first == "_engine") return argc == 3 ? engine_daemon_main(std::atoi(argv[2])) : 2;
        std::vector<std::string> args(argv + 1, argv + argc);
        if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) {
            std::fputs(usage_text, stdout);
            return 0;
        }
        if (!args.empty() && args[0] == "--list") return list_transports();
        if (!args.empty() && args[0] == "--verify") {
            if (args.size() != 2) throw usage_error("--verify takes one file");
            return verify_results(args[1]);
        }
        if (!args.empty() && args[0] == "--report") {
            // --report FILE [--out DIR] [--no-plots] [--gnuplot PATH]
            if (args.size() < 2) throw usage_error("--report takes a results.json");
            report_options ro;
            ro.out_dir = "bench-out";
            for (std::size_t i = 2; i < args.size(); ++i) {
                if (args[i] == "--out" && i + 1 < args.size()) ro.out_dir = args[++i];
                else if (args[i] == "--no-plots") ro.plots = false;
                else if (args[i] == "--gnuplot" && i + 1 < args.size()) ro.gnuplot = args[++i];
                else throw usage_error("--report: unexpected " + args[i]);
            }
            std::error_code ec;
            fs::create_directories(ro.out_dir, ec);
            return report_again(args[1], ro);
        }
        struct sigaction sa{};
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
        std::vector<std::string> cmd(argv, argv + argc);
        if (const char* via = std::getenv("SHMCHAN_BENCH_COMMAND")) cmd[0] = via;  // "shmchan bench"
        return run_suite(parse_options(args), cmd);
    } catch (const usage_error& e) {
        std::fprintf(stderr, "shmchan bench: %s\n%s", e.what(), usage_text);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmchan bench: %s\n", e.what());
        return 1;
    }
}
