// Cross-process throughput, side by side in interleaved rounds:
//   shmchan-loan / shmchan-write   a channel in shared memory (zero-copy loans / write() copies)
//   unix-socket                    a Unix-domain stream socket, the baseline
//   shmchan-loan-nomb / -write-nomb  the same two with SHMCHAN_NO_MEMBARRIER=1 in both
//                                  processes: every publish does the locked RMW again, as
//                                  before the data-path change (the producer runs in a child)
//   engine-shm     a channel created through an iii engine (shmchan::engine, embedded in the
//                  producer process, or in its own process with --engine-in process) by a
//                  shmchan::worker; both ends attach by shared memory
//   engine-socket  the same channel, both ends forced onto the engine's WebSocket channel
//                  socket: producer -> engine socket -> ring -> engine socket -> consumer
//   node-socket    a Node producer with the stock iii SDK (bench/node_producer.mjs) creating
//                  the channel and writing through the engine's socket; the C++ consumer
//                  attaches by shared memory (skipped, with the reason, without node or SDK)
//
// Producer and consumer are separate processes: the consumer is this binary started again
// with posix_spawn and the hidden sub-command "_consumer"; it gets the reader ref as JSON
// (shmchan) or the other end of a socketpair as fd 3 (socket). In every transport the producer
// generates every byte with fill_pattern and the consumer checksums every byte it receives;
// the harness checks byte count and checksum after each run and exits 1 on any mismatch.
//
// A run is timed in the harness from the consumer's "ready" (its end opened) to the
// consumer's report (it has seen the end of the stream), so process start-up is not counted.
#include <shmchan/engine.hpp>
#include <shmchan/shmchan.hpp>
#include <shmchan/shm/wait.hpp>
#include <shmchan/worker.hpp>
#include <shmchan/testkit/checksum.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <memory>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <span>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

#ifndef SHMCHAN_BENCH_NODE_SCRIPT
#define SHMCHAN_BENCH_NODE_SCRIPT "bench/node_producer.mjs"
#endif
#ifndef SHMCHAN_BENCH_NODE_MODULES
#define SHMCHAN_BENCH_NODE_MODULES "tests/interop/node_modules"
#endif

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::size_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;
constexpr std::size_t small_chunk = 4 * KiB;  // below this, runs default to fewer bytes
constexpr int socket_fd = 3;                  // where the consumer finds its socket end
constexpr int node_timeout_ms = 30000;        // for the Node producer's answers

[[noreturn]] void die(const char* fmt, ...) {
    std::va_list ap;
    va_start(ap, fmt);
    std::fputs("shmchan_xproc_bench: FAILED: ", stderr);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
    va_end(ap);
    std::exit(1);
}

[[noreturn]] void die_errno(const char* what) { die("%s: %s", what, std::strerror(errno)); }

std::uint64_t parse_bytes(const std::string& s) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (errno || end == s.c_str()) throw std::invalid_argument("not a byte count: " + s);
    const std::string suf(end);
    if (suf == "K" || suf == "k" || suf == "KiB") v <<= 10;
    else if (suf == "M" || suf == "MiB") v <<= 20;
    else if (suf == "G" || suf == "GiB") v <<= 30;
    else if (!suf.empty()) throw std::invalid_argument("unknown size suffix in " + s);
    return v;
}

std::string human(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB"};
    int u = 0;
    while (bytes >= 1024 && bytes % 1024 == 0 && u < 3) {
        bytes /= 1024;
        ++u;
    }
    return std::to_string(bytes) + " " + units[u];
}

// --- transports ---------------------------------------------------------------------------------

enum class transport { loan, copy, socket, loan_nomb, copy_nomb, engine_shm, engine_socket, node_socket };
constexpr transport all_transports[] = {transport::loan,       transport::copy,
                                        transport::socket,     transport::loan_nomb,
                                        transport::copy_nomb,  transport::engine_shm,
                                        transport::engine_socket, transport::node_socket};
constexpr std::size_t n_transports = std::size(all_transports);

struct transport_names {
    const char* name;
    const char* alias;
};
transport_names names_of(transport t) {
    switch (t) {
        case transport::loan: return {"shmchan-loan", "loan"};
        case transport::copy: return {"shmchan-write", "write"};
        case transport::socket: return {"unix-socket", "socket"};
        case transport::loan_nomb: return {"shmchan-loan-nomb", "loan-nomb"};
        case transport::copy_nomb: return {"shmchan-write-nomb", "write-nomb"};
        case transport::engine_shm: return {"engine-shm", "engine-shm"};
        case transport::engine_socket: return {"engine-socket", "engine-socket"};
        case transport::node_socket: return {"node-socket", "node-socket"};
    }
    return {"?", "?"};
}
const char* name_of(transport t) { return names_of(t).name; }
transport transport_named(const std::string& s) {
    for (transport t : all_transports)
        if (s == names_of(t).name || s == names_of(t).alias) return t;
    throw std::invalid_argument("unknown transport " + s +
                                " (loan, write, socket, loan-nomb, write-nomb, engine-shm, "
                                "engine-socket, node-socket)");
}
// Each record costs a system call or more (write(), a WebSocket frame): small chunks get
// 1/16 of the bytes so that a run stays around a second.
bool per_record_syscalls(transport t) {
    return t == transport::socket || t == transport::engine_socket || t == transport::node_socket;
}
bool without_membarrier(transport t) { return t == transport::loan_nomb || t == transport::copy_nomb; }
transport core_of(transport t) {
    if (t == transport::loan_nomb) return transport::loan;
    if (t == transport::copy_nomb) return transport::copy;
    return t;
}
bool needs_engine(transport t) {
    return t == transport::engine_shm || t == transport::engine_socket || t == transport::node_socket;
}

void pin_to(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) die_errno("sched_setaffinity");
}

bool write_all(int fd, const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

// This binary, by its real path (under valgrind /proc/self/exe would be the tool).
std::string self_path() {
    char buf[4096];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) die_errno("readlink /proc/self/exe");
    return std::string(buf, static_cast<std::size_t>(n));
}

// One line from a child's stdout pipe ("" at EOF). With a timeout (ms >= 0), `timed_out`
// tells a silent child from one that closed the pipe.
std::string read_line(int fd, int timeout_ms = -1, bool* timed_out = nullptr) {
    std::string line;
    char c;
    const auto deadline = clock_type::now() + std::chrono::milliseconds(timeout_ms);
    if (timed_out) *timed_out = false;
    for (;;) {
        if (timeout_ms >= 0) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
            pollfd p{fd, POLLIN, 0};
            const int r = ::poll(&p, 1, static_cast<int>(std::max<long long>(0, left.count())));
            if (r < 0 && errno == EINTR) continue;
            if (r == 0) {
                if (timed_out) *timed_out = true;
                return line;
            }
        }
        const ssize_t r = ::read(fd, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0 || c == '\n') return line;
        line += c;
    }
}

struct spawned {
    pid_t pid = -1;
    int out = -1;  // its stdout
    int in = -1;   // its stdin, when asked for
};

// Starts `argv` with stdout (and optionally stdin) on pipes; `sock` becomes its fd 3.
// `path_search`: argv[0] is looked up in PATH. Returns pid -1 and errno-like `err` if the
// program could not be started.
spawned spawn_child(const std::vector<std::string>& args, bool with_stdin, int sock, char** envp,
                    bool path_search, int* err = nullptr) {
    int out[2], in[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0) die_errno("pipe2");
    if (with_stdin && ::pipe2(in, O_CLOEXEC) != 0) die_errno("pipe2");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (with_stdin) posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    if (sock >= 0) posix_spawn_file_actions_adddup2(&fa, sock, socket_fd);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    spawned s;
    const int rc = path_search ? ::posix_spawnp(&s.pid, argv[0], &fa, nullptr, argv.data(), envp)
                               : ::posix_spawn(&s.pid, argv[0], &fa, nullptr, argv.data(), envp);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (with_stdin) ::close(in[0]);
    if (rc != 0) {
        ::close(out[0]);
        if (with_stdin) ::close(in[1]);
        if (!err) die("posix_spawn %s: %s", argv[0], std::strerror(rc));
        *err = rc;
        s.pid = -1;
        return s;
    }
    s.out = out[0];
    s.in = with_stdin ? in[1] : -1;
    return s;
}

// The environment plus SHMCHAN_NO_MEMBARRIER=1 (for the -nomb transports' processes).
std::vector<char*> env_without_membarrier() {
    static std::string off = "SHMCHAN_NO_MEMBARRIER=1";
    std::vector<char*> env;
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "SHMCHAN_NO_MEMBARRIER=", 22) != 0) env.push_back(*e);
    env.push_back(off.data());
    env.push_back(nullptr);
    return env;
}

// User and system CPU seconds of another process so far (/proc/PID/stat, clock ticks).
struct cpu_times {
    double user = 0, sys = 0;
};
cpu_times process_cpu(pid_t pid) {
    cpu_times t;
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    std::FILE* f = std::fopen(path.c_str(), "re");
    if (!f) return t;
    char buf[1024];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* p = std::strrchr(buf, ')');  // the command may contain spaces
    unsigned long long ut = 0, st = 0;
    if (p && std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2) {
        const double hz = double(::sysconf(_SC_CLK_TCK));
        t.user = double(ut) / hz;
        t.sys = double(st) / hz;
    }
    return t;
}

// --- consumer process ---------------------------------------------------------------------------

void report(const shmchan::stream_checksum& sum) {
    std::printf("%" PRIu64 " %016" PRIx64 "\n", sum.bytes(), sum.value());
    std::fflush(stdout);
}

void say_ready() {
    // Whether this process publishes without a locked instruction (membarrier registered).
    std::printf("ready mb=%d\n", shmchan::shm::fast_wake() ? 1 : 0);
    std::fflush(stdout);
}

// argv: _consumer TRANSPORT CPU SPIN REF_JSON|- ENGINE_URL|-
int run_consumer(int argc, char** argv) {
    if (argc != 7) die("usage: _consumer TRANSPORT CPU SPIN REF ENGINE");
    const transport t = transport_named(argv[2]);
    pin_to(std::atoi(argv[3]));
    shmchan::stream_checksum sum;
    if (t == transport::socket) {
        // Large blocks: the consumer side of the socket is as cheap as it can be made.
        std::vector<std::byte> buf(MiB);
        say_ready();
        for (;;) {
            const ssize_t n = ::read(socket_fd, buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) die_errno("consumer: read(socket)");
            if (n == 0) break;
            sum.update(std::span(buf.data(), static_cast<std::size_t>(n)));
        }
        report(sum);
        return 0;
    }
    shmchan::channel_options opt;
    opt.spin_us = static_cast<std::uint32_t>(std::strtoul(argv[4], nullptr, 10));
    if (t == transport::engine_socket) {
        opt.via = shmchan::transport::socket;  // through the engine's channel socket
        opt.engine = argv[6];
    } else {
        opt.via = shmchan::transport::shm;  // the ring itself, whoever created the channel
    }
    shmchan::reader r = shmchan::open_reader(shmchan::channel_ref::parse(argv[5]), opt);
    say_ready();
    for (;;) {
        shmchan::item it = r.next();
        if (it.is_chunk()) {
            sum.update(it.data());
        } else if (it.is_end()) {
            break;
        } else if (it.is_error()) {
            die("consumer: %s after %" PRIu64 " bytes %s", it.error().message().c_str(),
                sum.bytes(), r.abort_reason().c_str());
        }
    }
    report(sum);
    return 0;
}

// --- an engine in its own process (--engine-in process) -----------------------------------------

// argv: _engine. Prints "url URL", serves until stdin closes.
int run_engine_process() {
    shmchan::engine_options eo;
    eo.port = 0;
    shmchan::engine eng(eo);
    std::printf("url %s\n", eng.url().c_str());
    std::fflush(stdout);
    char c;
    for (;;) {
        const ssize_t r = ::read(0, &c, 1);
        if (r == 0 || (r < 0 && errno != EINTR)) break;
    }
    eng.stop();
    return 0;
}

// --- producer side ------------------------------------------------------------------------------

struct options {
    std::vector<std::size_t> sizes{64, 4 * KiB, 64 * KiB, MiB};
    std::vector<transport> transports{all_transports, all_transports + n_transports};
    int rounds = 5;
    std::uint64_t bytes = 0;  // per run; 0: default by chunk size
    bool quick = false;
    bool pin = false;
    bool verbose = false;
    std::size_t capacity = shmchan::channel_options{}.capacity;
    std::uint32_t spin = shmchan::channel_options{}.spin_us;
    int sockbuf = static_cast<int>(4 * MiB);
    double max_others = -1;  // < 0: keep every run
    bool engine_process = false;  // the engine in its own process instead of the producer's
    std::string node = "node";
    std::string node_script = SHMCHAN_BENCH_NODE_SCRIPT;
    std::string node_modules = SHMCHAN_BENCH_NODE_MODULES;
};

// Bytes of one run: ~1 s on an idle 2-core machine.
std::uint64_t bytes_for(const options& o, std::size_t chunk, transport t) {
    std::uint64_t b = o.bytes;
    if (!b) {
        b = chunk < small_chunk ? 256 * MiB : GiB;
        if (chunk < small_chunk && per_record_syscalls(t)) b /= 16;
        // Through the engine a frame costs two TCP hops and the engine's handling (~30 us
        // of CPU at 4 KiB): 1/16 below 64 KiB as well.
        if (chunk >= small_chunk && chunk < 64 * KiB &&
            (t == transport::engine_socket || t == transport::node_socket))
            b /= 16;
        // The stock SDK's writer is slower still (ws masks every byte in JavaScript unless
        // the optional bufferutil addon is installed): a quarter of that.
        if (t == transport::node_socket) b /= 4;
        if (o.quick) b /= 16;
    }
    return std::max<std::uint64_t>(b / chunk, 1) * chunk;  // whole chunks: records/s is exact
}

struct run_result {
    double secs = 0;
    double prod_cpu = 0, cons_cpu = 0, eng_cpu = 0;  // user + system seconds
    double prod_sys = 0, cons_sys = 0, eng_sys = 0;
    long vcsw = 0;      // voluntary context switches of producer and consumer (sleeps)
    double others = 0;  // CPUs kept busy by other processes (noise)
    double rt_ns = 0;   // cache-line round trip between the two CPUs just before the run
};

// Busy CPU seconds of the whole machine so far, from /proc/stat.
double machine_busy() {
    std::FILE* f = std::fopen("/proc/stat", "re");
    if (!f) return 0;
    unsigned long long v[8] = {};  // user nice system idle iowait irq softirq steal
    double busy = 0;
    if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                    &v[4], &v[5], &v[6], &v[7]) == 8)
        busy = double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / double(::sysconf(_SC_CLK_TCK));
    std::fclose(f);
    return busy;
}

double tv_secs(const timeval& tv) { return double(tv.tv_sec) + double(tv.tv_usec) * 1e-6; }

// The checksum every consumer must report for a stream of `bytes` bytes. It does not depend
// on how the stream is cut into chunks, so one value per length serves every transport.
std::uint64_t expected_checksum(std::uint64_t bytes) {
    static std::map<std::uint64_t, std::uint64_t> cache;
    if (auto it = cache.find(bytes); it != cache.end()) return it->second;
    shmchan::stream_checksum sum;
    std::vector<std::byte> buf(MiB);
    for (std::uint64_t off = 0; off < bytes; off += buf.size()) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), bytes - off));
        shmchan::fill_pattern(std::span(buf.data(), n), off);
        sum.update(std::span(buf.data(), n));
    }
    return cache[bytes] = sum.value();
}

struct cpu_pair {
    int producer = -1, consumer = -1;
};

cpu_pair pick_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) die_errno("sched_getaffinity");
    cpu_pair p;
    for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (!CPU_ISSET(c, &set)) continue;
        if (p.producer < 0) p.producer = c;
        else if (p.consumer < 0) p.consumer = c;
    }
    if (p.consumer < 0) die("--pin needs two CPUs in the affinity mask");
    return p;
}

// Where the host runs our two vCPUs, measured: two threads, one on each of the first two
// CPUs we may use, bounce a cache line 20000 times; the mean round trip in ns. On the machine
// of docs/benchmarks-xproc.md it is ~110 ns when the two vCPUs share a cache and 400-650 ns when
// they do not, and the host moves them between the two placements over time: the large-chunk
// shared-memory figures follow it (writing lines the other core has read gets 2x slower).
double line_round_trip_ns() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    int cpu[2] = {-1, -1};
    for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; ++c)
        if (CPU_ISSET(c, &set)) cpu[k++] = c;
    if (cpu[1] < 0) return 0;
    struct alignas(64) line {
        std::atomic<long> v{0};
    };
    static line ball;
    static std::atomic<bool> stop;
    constexpr long n = 20000;  // round trips; fewer if 50 ms pass first (a busy machine)
    ball.v.store(0);
    stop.store(false);
    double ns = 0;
    std::thread other([&] {
        pin_to(cpu[1]);
        for (long i = 1; i < 2 * n; i += 2) {
            while (ball.v.load(std::memory_order_acquire) != i)
                if (stop.load(std::memory_order_relaxed)) return;
            ball.v.store(i + 1, std::memory_order_release);
        }
    });
    std::thread me([&] {
        pin_to(cpu[0]);
        const auto t0 = clock_type::now();
        const auto give_up = t0 + std::chrono::milliseconds(50);
        long done = 0;
        for (long i = 0; i < 2 * n; i += 2, ++done) {
            ball.v.store(i + 1, std::memory_order_release);
            while (ball.v.load(std::memory_order_acquire) != i + 2) shmchan::shm::cpu_relax();
            if ((done & 255) == 255 && clock_type::now() > give_up) {
                ++done;
                break;
            }
        }
        ns = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / double(done);
        stop.store(true, std::memory_order_relaxed);
    });
    me.join();
    other.join();
    return ns;
}
constexpr double near_placement_ns = 250;  // below: the two vCPUs share a cache

std::size_t capacity_for(const options& o, std::size_t chunk) {
    // Raise the ring only when a chunk could not be one record (a record is <= half the ring).
    return std::max(o.capacity, 2 * std::bit_ceil(chunk + 16));
}
// engine::channels::create's buffer_size counts 64 KiB frames: the ring is
// bit_ceil(buffer_size * 64 KiB), at least 256 KiB, at most 64 MiB.
std::size_t engine_buffer_size(const options& o, std::size_t chunk) {
    return std::clamp<std::size_t>(capacity_for(o, chunk) >> 16, 1, 1024);
}

// The engine, its worker (which creates channels for engine-shm and engine-socket), and the
// Node producer, alive for the whole harness run.
struct engine_side {
    std::unique_ptr<shmchan::engine> embedded;
    spawned proc;  // --engine-in process
    std::string url;
    std::unique_ptr<shmchan::worker> worker;
    // node-socket
    spawned node;
    std::string node_version, node_skip;

    // CPU seconds the engine has used so far. Embedded: every thread of this process but the
    // calling one (engine threads; the worker's and end watchers' threads are idle here).
    cpu_times engine_cpu() const {
        if (proc.pid > 0) return process_cpu(proc.pid);
        rusage self{}, me{};
        ::getrusage(RUSAGE_SELF, &self);
        ::getrusage(RUSAGE_THREAD, &me);
        cpu_times t;
        t.user = tv_secs(self.ru_utime) - tv_secs(me.ru_utime);
        t.sys = tv_secs(self.ru_stime) - tv_secs(me.ru_stime);
        return t;
    }
};

spawned start_consumer(const options& o, transport t, const cpu_pair& cpus, const std::string& ref,
                       const std::string& url, int sock, char** envp) {
    static const std::string self = self_path();
    spawned c = spawn_child({self, "_consumer", name_of(t), std::to_string(cpus.consumer),
                             std::to_string(o.spin), ref, url.empty() ? "-" : url},
                            false, sock, envp, false);
    const std::string ready = read_line(c.out);
    if (ready.rfind("ready", 0) != 0) die("%s consumer did not start", name_of(t));
    // The -nomb transports must really run without membarrier, the others with it (when the
    // kernel has it): a consumer that says otherwise would make the comparison meaningless.
    const bool mb = ready.find("mb=1") != std::string::npos;
    if (without_membarrier(t) && mb) die("%s consumer still uses membarrier", name_of(t));
    return c;
}

run_result finish(transport t, std::size_t chunk, std::uint64_t total, spawned& consumer,
                  const std::string& result) {
    int status = 0;
    rusage cru{};
    ::close(consumer.out);
    if (::wait4(consumer.pid, &status, 0, &cru) != consumer.pid) die_errno("wait4");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("%s consumer exited abnormally (status 0x%x)", name_of(t), status);
    unsigned long long got_bytes = 0, got_sum = 0;
    if (std::sscanf(result.c_str(), "%llu %llx", &got_bytes, &got_sum) != 2)
        die("%s consumer reported \"%s\"", name_of(t), result.c_str());
    const std::uint64_t want = expected_checksum(total);
    if (got_bytes != total || got_sum != want)
        die("%s, %zu-byte chunks: consumer received %llu bytes with checksum %016llx, producer "
            "sent %" PRIu64 " bytes with checksum %016" PRIx64,
            name_of(t), chunk, got_bytes, got_sum, total, want);
    run_result r;
    r.cons_cpu = tv_secs(cru.ru_utime) + tv_secs(cru.ru_stime);
    r.cons_sys = tv_secs(cru.ru_stime);
    r.vcsw = cru.ru_nvcsw;
    return r;
}

// One run of a C++ producer in this process: plain shmchan, the Unix socket, or a channel
// created through the engine.
run_result run_here(const options& o, transport t, std::size_t chunk, std::uint64_t total,
                    const cpu_pair& cpus, engine_side* es) {
    const bool plain_shm = t == transport::loan || t == transport::copy;
    const bool via_engine = t == transport::engine_shm || t == transport::engine_socket;
    shmchan::channel ch;
    shmchan::writer w;  // the producer's end
    std::string ref = "-";
    if (plain_shm) {
        shmchan::channel_options opt;
        opt.capacity = capacity_for(o, chunk);
        opt.spin_us = o.spin;
        ch = shmchan::create_channel(opt);
        w = std::move(ch.writer);
        ref = ch.reader_ref.dump();
    } else if (via_engine) {
        // The engine creates the channel (engine::channels::create); the producer opens the
        // writer ref it returned, by shared memory or through the engine's socket, before
        // the clock starts (the worker's own lazy ends would open on the first write).
        ch = es->worker->create_channel(engine_buffer_size(o, chunk));
        shmchan::channel_options wo;
        wo.via = t == transport::engine_socket ? shmchan::transport::socket : shmchan::transport::shm;
        wo.engine = es->url;
        wo.spin_us = o.spin;
        w = shmchan::open_writer(ch.writer_ref, wo);
        ref = ch.reader_ref.dump();
    }
    int sv[2] = {-1, -1};
    if (t == transport::socket) {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die_errno("socketpair");
        for (int fd : sv)
            for (int opt : {SO_SNDBUF, SO_RCVBUF})
                if (::setsockopt(fd, SOL_SOCKET, opt, &o.sockbuf, sizeof o.sockbuf) != 0)
                    die_errno("setsockopt");
    }
    spawned consumer = start_consumer(o, t, cpus, ref, es ? es->url : "", sv[1], environ);
    if (sv[1] >= 0) ::close(sv[1]);

    // loan-style producers generate in place; the others into a private buffer first.
    const bool in_place = t == transport::loan || t == transport::engine_shm;
    std::vector<std::byte> scratch(in_place ? 0 : chunk);
    rusage ru0{}, ru1{};
    cpu_times e0, e1;
    ::getrusage(RUSAGE_THREAD, &ru0);
    if (es) e0 = es->engine_cpu();
    const double m0 = machine_busy();
    const auto t0 = clock_type::now();
    for (std::uint64_t off = 0; off < total;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, total - off));
        if (in_place) {
            shmchan::loan l = w.get_loan(n);
            if (!l) die("get_loan: %s", l.error().message().c_str());
            shmchan::fill_pattern(l.data(), off);  // generated in place: no copy at all
            l.commit();
        } else {
            const std::span<std::byte> s(scratch.data(), n);
            shmchan::fill_pattern(s, off);
            if (t == transport::socket) {
                if (!write_all(sv[0], s.data(), n)) die_errno("write(socket)");  // one write() per chunk
            } else if (auto e = w.write(s)) {
                die("write: %s", e.message().c_str());
            }
        }
        off += n;
    }
    if (t == transport::socket) {
        ::close(sv[0]);  // EOF for the consumer
    } else if (auto e = w.close()) {
        die("close: %s", e.message().c_str());
    }
    const std::string result = read_line(consumer.out);
    const auto t1 = clock_type::now();
    const double m1 = machine_busy();
    if (es) e1 = es->engine_cpu();
    ::getrusage(RUSAGE_THREAD, &ru1);

    run_result r = finish(t, chunk, total, consumer, result);
    r.secs = std::chrono::duration<double>(t1 - t0).count();
    r.prod_cpu = tv_secs(ru1.ru_utime) - tv_secs(ru0.ru_utime) + tv_secs(ru1.ru_stime) -
                 tv_secs(ru0.ru_stime);
    r.prod_sys = tv_secs(ru1.ru_stime) - tv_secs(ru0.ru_stime);
    r.vcsw += ru1.ru_nvcsw - ru0.ru_nvcsw;
    if (es && via_engine) {  // (clamped: thread and process times are sampled separately)
        r.eng_cpu = std::max(0.0, (e1.user - e0.user) + (e1.sys - e0.sys));
        r.eng_sys = std::max(0.0, e1.sys - e0.sys);
    }
    // Jiffy resolution (10 ms): meaningful for runs of a second, rough for short ones.
    r.others = std::max(0.0, (m1 - m0 - r.prod_cpu - r.cons_cpu - r.eng_cpu) / r.secs);
    return r;
}

// The -nomb transports: the producer is this binary again (_producer), started with
// SHMCHAN_NO_MEMBARRIER=1, which its consumer inherits; it prints its run_result.
run_result run_in_child(const options& o, transport t, std::size_t chunk, std::uint64_t total,
                        const cpu_pair& cpus) {
    static const std::string self = self_path();
    auto env = env_without_membarrier();
    spawned p = spawn_child({self, "_producer", names_of(core_of(t)).alias, std::to_string(chunk),
                             std::to_string(total), std::to_string(cpus.consumer),
                             std::to_string(o.capacity), std::to_string(o.spin)},
                            false, -1, env.data(), false);
    const std::string line = read_line(p.out);
    ::close(p.out);
    int status = 0;
    if (::waitpid(p.pid, &status, 0) != p.pid) die_errno("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("%s: the producer process failed (status 0x%x)", name_of(t), status);
    run_result r;
    int mb = -1;
    if (std::sscanf(line.c_str(), "%lf %lf %lf %lf %lf %ld %lf mb=%d", &r.secs, &r.prod_cpu, &r.prod_sys,
                    &r.cons_cpu, &r.cons_sys, &r.vcsw, &r.others, &mb) != 8)
        die("%s: the producer process reported \"%s\"", name_of(t), line.c_str());
    if (mb != 0) die("%s: the producer process still uses membarrier", name_of(t));
    return r;
}

// argv: _producer TRANSPORT CHUNK TOTAL CONSUMER_CPU CAPACITY SPIN
int run_producer_child(int argc, char** argv) {
    if (argc != 8) die("usage: _producer TRANSPORT CHUNK TOTAL CPU CAPACITY SPIN");
    const transport t = transport_named(argv[2]);
    if (t != transport::loan && t != transport::copy) die("_producer runs loan or write only");
    options o;
    o.capacity = std::strtoull(argv[6], nullptr, 10);
    o.spin = static_cast<std::uint32_t>(std::strtoul(argv[7], nullptr, 10));
    cpu_pair cpus;
    cpus.consumer = std::atoi(argv[5]);
    const std::size_t chunk = std::strtoull(argv[3], nullptr, 10);
    const std::uint64_t total = std::strtoull(argv[4], nullptr, 10);
    expected_checksum(total);
    const run_result r = run_here(o, t, chunk, total, cpus, nullptr);
    std::printf("%.9f %.6f %.6f %.6f %.6f %ld %.6f mb=%d\n", r.secs, r.prod_cpu, r.prod_sys, r.cons_cpu,
                r.cons_sys, r.vcsw, r.others, shmchan::shm::fast_wake() ? 1 : 0);
    return 0;
}

// node-socket: one run of the Node producer (kept running between runs, like the C++
// producer, so its JIT is warm), the C++ consumer by shared memory.
run_result run_node(const options& o, std::size_t chunk, std::uint64_t total, const cpu_pair& cpus,
                    engine_side& es) {
    const transport t = transport::node_socket;
    auto node_says = [&](const char* want) {
        for (;;) {
            bool timed_out = false;
            std::string line = read_line(es.node.out, node_timeout_ms, &timed_out);
            if (timed_out) die("node-socket: the Node producer did not answer \"%s\" in time", want);
            if (line.empty()) die("node-socket: the Node producer exited (see its stderr above)");
            if (line.rfind("error ", 0) == 0) die("node-socket: the Node producer failed: %s", line.c_str() + 6);
            if (line.rfind(want, 0) == 0) return line.substr(std::strlen(want));
        }
    };
    auto tell = [&](const std::string& line) {
        if (!write_all(es.node.in, line.data(), line.size())) die_errno("node-socket: write to the Node producer");
    };
    tell("run " + std::to_string(chunk) + " " + std::to_string(total) + " " +
         std::to_string(engine_buffer_size(o, chunk)) + "\n");
    const std::string ref = node_says("ref ");
    spawned consumer = start_consumer(o, t, cpus, ref, es.url, -1, environ);

    const cpu_times e0 = es.engine_cpu();
    const double m0 = machine_busy();
    const auto t0 = clock_type::now();
    tell("go\n");
    const std::string result = read_line(consumer.out);
    const auto t1 = clock_type::now();
    const double m1 = machine_busy();
    const cpu_times e1 = es.engine_cpu();
    const std::string done = node_says("done ");

    run_result r = finish(t, chunk, total, consumer, result);
    double user_us = 0, sys_us = 0;
    long node_vcsw = 0;
    if (std::sscanf(done.c_str(), "%lf %lf %ld", &user_us, &sys_us, &node_vcsw) != 3)
        die("node-socket: the Node producer reported \"done %s\"", done.c_str());
    r.secs = std::chrono::duration<double>(t1 - t0).count();
    r.prod_cpu = (user_us + sys_us) * 1e-6;
    r.prod_sys = sys_us * 1e-6;
    r.vcsw += node_vcsw;
    r.eng_cpu = std::max(0.0, (e1.user - e0.user) + (e1.sys - e0.sys));
    r.eng_sys = std::max(0.0, e1.sys - e0.sys);
    r.others = std::max(0.0, (m1 - m0 - r.prod_cpu - r.cons_cpu - r.eng_cpu) / r.secs);
    return r;
}

run_result run_one(const options& o, transport t, std::size_t chunk, std::uint64_t total,
                   const cpu_pair& cpus, engine_side& es) {
    if (without_membarrier(t)) return run_in_child(o, t, chunk, total, cpus);
    if (t == transport::node_socket) return run_node(o, chunk, total, cpus, es);
    return run_here(o, t, chunk, total, cpus, needs_engine(t) ? &es : nullptr);
}

template <class F>
double median_of(const std::vector<run_result>& runs, F f) {
    std::vector<double> v;
    for (const auto& r : runs) v.push_back(f(r));
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

const char* usage_text =
    "usage: shmchan_xproc_bench [options]\n"
    "  --sizes LIST      chunk sizes, comma-separated (default 64,4K,64K,1M)\n"
    "  --transports LIST loan,write,socket,loan-nomb,write-nomb,engine-shm,engine-socket,\n"
    "                    node-socket (default all)\n"
    "  --rounds N        interleaved rounds per configuration (default 5)\n"
    "  --bytes BYTES     bytes per run (default 1G; chunks < 4K: 256M; 1/16 of that for the\n"
    "                    transports with a system call or frame per record (unix-socket,\n"
    "                    engine-socket, node-socket) below 4K, and for engine-socket and\n"
    "                    node-socket below 64K too; node-socket a quarter of all that)\n"
    "  --quick           smoke run: 2 rounds, 1/16 of the default bytes\n"
    "  --pin             pin producer and consumer to two different CPUs (the engine's\n"
    "                    threads are not pinned)\n"
    "  --capacity BYTES  shmchan ring capacity (default 4M; raised if a chunk needs it)\n"
    "  --spin US         shmchan busy-wait microseconds before sleeping (default 50)\n"
    "  --sockbuf BYTES   SO_SNDBUF/SO_RCVBUF requested for the socket (default 4M)\n"
    "  --max-others X    repeat (up to 4 times) a run during which other processes kept more\n"
    "                    than X CPUs busy (a shared machine); the last attempt is kept\n"
    "  --engine-in producer|process  where the engine runs: embedded in this (the producer's)\n"
    "                    process (default), or in a process of its own (this binary, _engine)\n"
    "  --node PATH       node executable for node-socket (default: node from PATH)\n"
    "  --node-modules DIR  where iii-sdk is installed (default: tests/interop/node_modules)\n"
    "  --verbose         print every run\n"
    "BYTES accepts K, M, G suffixes (powers of 1024).\n";

options parse_options(int argc, char** argv) {
    options o;
    auto split = [](const std::string& s) {
        std::vector<std::string> out;
        std::size_t start = 0;
        for (std::size_t i = 0; i <= s.size(); ++i)
            if (i == s.size() || s[i] == ',') {
                if (i > start) out.push_back(s.substr(start, i - start));
                start = i + 1;
            }
        return out;
    };
    int rounds = -1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
            return argv[++i];
        };
        if (a == "--sizes") {
            o.sizes.clear();
            for (const auto& s : split(value())) o.sizes.push_back(parse_bytes(s));
        } else if (a == "--transports") {
            o.transports.clear();
            for (const auto& s : split(value())) o.transports.push_back(transport_named(s));
        } else if (a == "--rounds") rounds = std::stoi(value());
        else if (a == "--bytes") o.bytes = parse_bytes(value());
        else if (a == "--quick") o.quick = true;
        else if (a == "--pin") o.pin = true;
        else if (a == "--verbose") o.verbose = true;
        else if (a == "--capacity") o.capacity = parse_bytes(value());
        else if (a == "--spin") o.spin = static_cast<std::uint32_t>(std::stoul(value()));
        else if (a == "--sockbuf") o.sockbuf = static_cast<int>(parse_bytes(value()));
        else if (a == "--max-others") o.max_others = std::stod(value());
        else if (a == "--engine-in") {
            const std::string v = value();
            if (v != "producer" && v != "process")
                throw std::invalid_argument("--engine-in takes producer or process");
            o.engine_process = v == "process";
        } else if (a == "--node") o.node = value();
        else if (a == "--node-modules") o.node_modules = value();
        else if (a == "-h" || a == "--help") {
            std::fputs(usage_text, stdout);
            std::exit(0);
        } else throw std::invalid_argument("unknown option " + a);
    }
    o.rounds = rounds > 0 ? rounds : o.quick ? 2 : 5;
    if (o.sizes.empty() || o.transports.empty()) throw std::invalid_argument("nothing to run");
    for (std::size_t s : o.sizes)
        if (s == 0) throw std::invalid_argument("chunk sizes must be positive");
    return o;
}

// Starts the engine (and its worker) if a transport needs it, and the Node producer if
// node-socket is asked for; records why node-socket cannot run instead of failing.
void start_engine_side(const options& o, engine_side& es) {
    if (std::none_of(o.transports.begin(), o.transports.end(), needs_engine)) return;
    if (o.engine_process) {
        static const std::string self = self_path();
        es.proc = spawn_child({self, "_engine"}, true, -1, environ, false);
        const std::string line = read_line(es.proc.out, 15000);
        if (line.rfind("url ", 0) != 0) die("the engine process did not start");
        es.url = line.substr(4);
    } else {
        shmchan::engine_options eo;
        eo.port = 0;  // any free port on 127.0.0.1
        es.embedded = std::make_unique<shmchan::engine>(eo);
        es.url = es.embedded->url();
    }
    es.worker = std::make_unique<shmchan::worker>(es.url);

    if (std::find(o.transports.begin(), o.transports.end(), transport::node_socket) == o.transports.end())
        return;
    struct stat st{};
    if (::stat(o.node_script.c_str(), &st) != 0) {
        es.node_skip = "the Node producer script " + o.node_script + " is missing";
        return;
    }
    // OTel off: the SDK would otherwise keep a telemetry socket to the engine busy.
    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "OTEL_ENABLED=", 13) != 0) env_store.emplace_back(*e);
    env_store.emplace_back("OTEL_ENABLED=false");
    std::vector<char*> env;
    for (auto& e : env_store) env.push_back(e.data());
    env.push_back(nullptr);
    int err = 0;
    es.node = spawn_child({o.node, o.node_script, o.node_modules, es.url}, true, -1, env.data(), true, &err);
    if (es.node.pid < 0) {
        es.node_skip = "cannot run " + o.node + ": " + std::strerror(err);
        return;
    }
    bool timed_out = false;
    const std::string hello = read_line(es.node.out, node_timeout_ms, &timed_out);
    if (hello.rfind("ok ", 0) == 0) {
        es.node_version = hello.substr(3);
        return;
    }
    es.node_skip = hello.rfind("skip ", 0) == 0 ? hello.substr(5)
                   : timed_out                  ? o.node + " did not start within 30 s"
                                                : o.node + " exited without starting (" + hello + ")";
    ::close(es.node.in);
    ::close(es.node.out);
    if (timed_out) ::kill(es.node.pid, SIGKILL);
    ::waitpid(es.node.pid, nullptr, 0);
    es.node = {};
}

void stop_engine_side(engine_side& es) {
    for (spawned* p : {&es.node, &es.proc}) {
        if (p->pid <= 0) continue;
        ::close(p->in);  // EOF: the child shuts down
        ::close(p->out);
        ::waitpid(p->pid, nullptr, 0);
        *p = {};
    }
    es.worker.reset();
    es.embedded.reset();
}

int run_producer(options o) {
    engine_side es;
    start_engine_side(o, es);  // before pinning: the engine's threads may use every CPU
    const auto node_at = std::find(o.transports.begin(), o.transports.end(), transport::node_socket);
    const bool node_skipped = node_at != o.transports.end() && !es.node_skip.empty();
    if (node_skipped) o.transports.erase(node_at);

    cpu_pair cpus;
    if (o.pin) {
        cpus = pick_cpus();
        pin_to(cpus.producer);
        if (es.node.pid > 0) {  // the Node producer's main thread, like the C++ producer's
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpus.producer, &set);
            ::sched_setaffinity(es.node.pid, sizeof set, &set);
        }
    }
    int sndbuf = 0, rcvbuf = 0;
    {  // what the kernel makes of the requested socket buffers
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die_errno("socketpair");
        ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &o.sockbuf, sizeof o.sockbuf);
        ::setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &o.sockbuf, sizeof o.sockbuf);
        socklen_t len = sizeof sndbuf;
        ::getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
        len = sizeof rcvbuf;
        ::getsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len);
        ::close(sv[0]);
        ::close(sv[1]);
    }
    std::printf("shmchan_xproc_bench: %d interleaved round(s); producer and consumer are separate "
                "processes (posix_spawn)\n",
                o.rounds);
    if (o.pin)
        std::printf("pinned: yes (producer on CPU %d, consumer on CPU %d)\n", cpus.producer,
                    cpus.consumer);
    else
        std::printf("pinned: no (the scheduler places producer and consumer)\n");
    std::printf("shmchan: ring capacity %s (raised to fit a chunk if needed), spin %u us; "
                "loan = get_loan(n) + fill in place + commit, write = fill a buffer + "
                "writer.write(); membarrier in this process: %s\n",
                human(o.capacity).c_str(), o.spin, shmchan::shm::fast_wake() ? "yes" : "no");
    std::printf("unix-socket: SOCK_STREAM socketpair, SO_SNDBUF %s / SO_RCVBUF %s requested, "
                "kernel reports %d / %d; the producer issues one write() per chunk (for 64 B: "
                "one write() per 64-byte record), the consumer reads in 1 MiB blocks\n",
                human(static_cast<std::uint64_t>(o.sockbuf)).c_str(),
                human(static_cast<std::uint64_t>(o.sockbuf)).c_str(), sndbuf, rcvbuf);
    const bool any_nomb = std::any_of(o.transports.begin(), o.transports.end(), without_membarrier);
    if (any_nomb)
        std::printf("*-nomb: producer (a child of this process) and consumer run with "
                    "SHMCHAN_NO_MEMBARRIER=1: a locked RMW after every publish, as before the "
                    "data-path change\n");
    if (!es.url.empty()) {
        std::printf("engine: %s at %s (%s); channels created through it by engine::channels::create "
                    "(buffer_size %zu = %s ring for chunks up to 2 MiB)\n",
                    es.proc.pid > 0 ? "shmchan::engine in its own process" : "shmchan::engine embedded in the producer process",
                    es.url.c_str(),
                    es.proc.pid > 0 ? "'eng' CPU = that process" : "2 threads of its own; 'eng' CPU = this process's threads other than the producer's",
                    engine_buffer_size(o, 64), human(capacity_for(o, 64)).c_str());
        std::printf("engine-shm: shmchan::worker.create_channel, then open_writer / open_reader of "
                    "the refs with via=shm; the producer fills loans in place\n");
        std::printf("engine-socket: the same, with via=socket for both ends: producer -> WebSocket "
                    "-> engine -> ring -> engine -> WebSocket -> consumer; the producer fills a "
                    "buffer and writer.write()s it (frames of up to 1 MiB)\n");
    }
    if (node_skipped)
        std::printf("node-socket: SKIPPED: %s\n", es.node_skip.c_str());
    else if (es.node.pid > 0)
        std::printf("node-socket: Node producer (iii-sdk %s), one process for all runs: "
                    "createChannel through the engine, fill_pattern in WebAssembly, "
                    "stream.write() per chunk with backpressure (the SDK sends 64 KiB frames), "
                    "close(); the C++ consumer attaches by shared memory\n",
                    es.node_version.c_str());
    std::printf("every byte generated with fill_pattern by the producer and checksummed by the "
                "consumer; byte count and checksum verified after each run\n\n");
    std::fflush(stdout);

    std::map<std::pair<std::size_t, transport>, std::vector<run_result>> results;
    int retries = 0;
    for (int round = 0; round < o.rounds; ++round) {
        for (std::size_t chunk : o.sizes) {
            for (transport t : o.transports) {
                const std::uint64_t total = bytes_for(o, chunk, t);
                expected_checksum(total);  // computed before the run, never inside a timing
                double rt = line_round_trip_ns();
                run_result r = run_one(o, t, chunk, total, cpus, es);
                // On a shared machine a run that competed with other processes for the CPUs
                // measures the neighbours; --max-others repeats it (a few times at most).
                for (int retry = 0; o.max_others >= 0 && r.others > o.max_others && retry < 4;
                     ++retry) {
                    ++retries;
                    rt = line_round_trip_ns();
                    r = run_one(o, t, chunk, total, cpus, es);
                }
                r.rt_ns = rt;
                results[{chunk, t}].push_back(r);
                if (o.verbose)
                    std::printf("round %d  %-18s %8s  %7.3f GB/s  %8.3f Mrec/s  %.3f s  "
                                "cpu p/e/c %.2f/%.2f/%.2f s (sys %.2f/%.2f/%.2f)  vcsw %ld  others %.2f  "
                                "rt %.0f ns\n",
                                round + 1, name_of(t), human(chunk).c_str(),
                                double(total) / r.secs / 1e9,
                                double(total / chunk) / r.secs / 1e6, r.secs, r.prod_cpu,
                                r.eng_cpu, r.cons_cpu, r.prod_sys, r.eng_sys, r.cons_sys, r.vcsw,
                                r.others, r.rt_ns);
            }
        }
        if (!o.verbose) std::fprintf(stderr, "round %d/%d done\n", round + 1, o.rounds);
        std::fflush(stdout);
    }
    stop_engine_side(es);

    std::printf("%-18s %8s %9s %9s %10s %17s %9s %16s %10s %8s %6s %6s\n", "transport", "chunk",
                "bytes/run", "GB/s", "Mrec/s", "GB/s min-max", "vs socket", "cpu s p/e/c",
                "sys% p/c", "vcsw/run", "others", "rt ns");
    std::map<std::pair<std::size_t, transport>, double> gbps_med, mrec_med, ratio_med;
    for (std::size_t chunk : o.sizes) {
        double socket_gbps = 0;
        if (auto it = results.find({chunk, transport::socket}); it != results.end()) {
            const double total = double(bytes_for(o, chunk, transport::socket));
            socket_gbps = median_of(it->second, [&](const run_result& r) { return total / r.secs / 1e9; });
        }
        for (transport t : o.transports) {
            const std::uint64_t total = bytes_for(o, chunk, t);
            const double records = double(total / chunk);
            auto gbps = [&](const run_result& r) { return double(total) / r.secs / 1e9; };
            const auto& runs = results[{chunk, t}];
            const double med = median_of(runs, gbps);
            double lo = 1e300, hi = 0;
            for (const auto& r : runs) {
                lo = std::min(lo, gbps(r));
                hi = std::max(hi, gbps(r));
            }
            const double mrec = median_of(runs, [&](const run_result& r) {
                return records / r.secs / 1e6;
            });
            const double ratio = socket_gbps > 0 ? med / socket_gbps : 0;
            char ratio_s[16] = "-", spread[40];
            if (socket_gbps > 0) std::snprintf(ratio_s, sizeof ratio_s, "%.2fx", ratio);
            std::snprintf(spread, sizeof spread, "%.3f-%.3f", lo, hi);
            const double pc = median_of(runs, [](const run_result& r) { return r.prod_cpu; });
            const double ec = median_of(runs, [](const run_result& r) { return r.eng_cpu; });
            const double cc = median_of(runs, [](const run_result& r) { return r.cons_cpu; });
            const double ps = median_of(runs, [](const run_result& r) { return r.prod_sys; });
            const double cs = median_of(runs, [](const run_result& r) { return r.cons_sys; });
            const double vcsw = median_of(runs, [](const run_result& r) { return double(r.vcsw); });
            const double others = median_of(runs, [](const run_result& r) { return r.others; });
            const double rt = median_of(runs, [](const run_result& r) { return r.rt_ns; });
            char cpu_s[40], sys_s[32];
            if (needs_engine(t)) std::snprintf(cpu_s, sizeof cpu_s, "%.2f/%.2f/%.2f", pc, ec, cc);
            else std::snprintf(cpu_s, sizeof cpu_s, "%.2f/-/%.2f", pc, cc);
            std::snprintf(sys_s, sizeof sys_s, "%.0f/%.0f", pc > 0 ? 100 * ps / pc : 0.0,
                          cc > 0 ? 100 * cs / cc : 0.0);
            std::printf("%-18s %8s %9s %9.3f %10.3f %17s %9s %16s %10s %8.0f %6.2f %6.0f\n",
                        name_of(t), human(chunk).c_str(), human(total).c_str(), med, mrec, spread,
                        ratio_s, cpu_s, sys_s, vcsw, others, rt);
            gbps_med[{chunk, t}] = med;
            mrec_med[{chunk, t}] = mrec;
            ratio_med[{chunk, t}] = ratio;
        }
    }
    if (node_skipped)
        std::printf("%-18s %8s  SKIPPED: %s\n", name_of(transport::node_socket), "all", es.node_skip.c_str());
    std::printf("\n(median of %d rounds; cpu = user+system seconds of the producer (thread; for "
                "node-socket the Node process), of the engine (e), and of the whole consumer "
                "process; vcsw = voluntary context switches, i.e. sleeps, of producer and "
                "consumer; others = CPUs kept busy by other processes during the run; rt = "
                "cache-line round trip between the two CPUs measured before the run)\n",
                o.rounds);
    if (o.max_others >= 0)
        std::printf("(--max-others %.2f: %d run(s) repeated because other processes kept more "
                    "CPU busy than that)\n",
                    o.max_others, retries);

    auto has = [&](std::size_t chunk, transport t) { return gbps_med.count({chunk, t}) != 0; };
    auto verdict = [](bool met) { return met ? "MET" : "MISSED"; };
    const transport shm_kinds[] = {transport::loan, transport::copy, transport::engine_shm};
    if (std::any_of(std::begin(shm_kinds), std::end(shm_kinds), [&](transport t) { return has(64, t); })) {
        std::printf("target >= 10 M 64-byte records/s through shmchan:");
        for (transport t : shm_kinds)
            if (has(64, t))
                std::printf("  %s %.2f M/s %s", name_of(t), mrec_med[{64, t}], verdict(mrec_med[{64, t}] >= 10));
        std::printf("\n");
    }
    if (has(MiB, transport::socket)) {
        std::printf("target >= 2x unix-socket throughput at 1 MiB chunks:");
        for (transport t : shm_kinds)
            if (has(MiB, t))
                std::printf("  %s %.2fx %s", name_of(t), ratio_med[{MiB, t}], verdict(ratio_med[{MiB, t}] >= 2));
        std::printf("\n");
    }
    if (has(MiB, transport::engine_socket) || has(MiB, transport::node_socket) || node_skipped) {
        std::printf("target socket path >= 1 GB/s at 1 MiB chunks:");
        for (transport t : {transport::engine_socket, transport::node_socket})
            if (has(MiB, t))
                std::printf("  %s %.3f GB/s %s", name_of(t), gbps_med[{MiB, t}], verdict(gbps_med[{MiB, t}] >= 1));
        if (node_skipped) std::printf("  node-socket SKIPPED");
        std::printf("\n");
    }
    auto versus = [&](const char* what, transport a, transport b) {
        bool any = false;
        for (std::size_t chunk : o.sizes)
            if (has(chunk, a) && has(chunk, b) && gbps_med[{chunk, b}] > 0) {
                if (!any) std::printf("%s:", what);
                any = true;
                std::printf("  %s %.2fx", human(chunk).c_str(), gbps_med[{chunk, a}] / gbps_med[{chunk, b}]);
            }
        if (any) std::printf("\n");
    };
    versus("engine-shm / shmchan-loan (same producer code, channel from the engine)",
           transport::engine_shm, transport::loan);
    versus("shmchan-loan / shmchan-loan-nomb (membarrier vs a locked RMW per publish)", transport::loan,
           transport::loan_nomb);
    versus("shmchan-write / shmchan-write-nomb", transport::copy, transport::copy_nomb);

    // The same medians split by where the host ran the two vCPUs during each run.
    bool header = false;
    for (std::size_t chunk : o.sizes) {
        for (transport t : o.transports) {
            if (t == transport::socket) continue;
            const auto& runs = results[{chunk, t}];
            const auto& sock = results[{chunk, transport::socket}];
            const double total = double(bytes_for(o, chunk, t));
            const double stotal = double(bytes_for(o, chunk, transport::socket));
            std::vector<run_result> near, far, snear, sfar;
            for (const auto& r : runs) (r.rt_ns < near_placement_ns ? near : far).push_back(r);
            for (const auto& r : sock) (r.rt_ns < near_placement_ns ? snear : sfar).push_back(r);
            if (near.empty() || far.empty()) continue;  // one placement only: nothing to split
            if (!header) {
                std::printf("by placement (rt < %.0f ns: the vCPUs share a cache; median GB/s, runs, "
                            "ratio to unix-socket runs of the same placement):\n",
                            near_placement_ns);
                header = true;
            }
            auto med = [](const std::vector<run_result>& v, double bytes) {
                return v.empty() ? 0.0 : median_of(v, [&](const run_result& r) { return bytes / r.secs / 1e9; });
            };
            const double a = med(near, total), b = med(far, total);
            const double sa = med(snear, stotal), sb = med(sfar, stotal);
            char ra[16] = "-", rb[16] = "-";
            if (sa > 0) std::snprintf(ra, sizeof ra, "%.2fx", a / sa);
            if (sb > 0) std::snprintf(rb, sizeof rb, "%.2fx", b / sb);
            std::printf("  %-18s %8s  near %7.3f (%zu, %s)   far %7.3f (%zu, %s)\n", name_of(t),
                        human(chunk).c_str(), a, near.size(), ra, b, far.size(), rb);
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);  // a dead consumer shows up as an error, not a signal
    try {
        if (argc >= 2 && std::string(argv[1]) == "_consumer") return run_consumer(argc, argv);
        if (argc >= 2 && std::string(argv[1]) == "_producer") return run_producer_child(argc, argv);
        if (argc >= 2 && std::string(argv[1]) == "_engine") return run_engine_process();
        return run_producer(parse_options(argc, argv));
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "shmchan_xproc_bench: %s\n%s", e.what(), usage_text);
        return 2;
    } catch (const std::exception& e) {
        die("%s", e.what());
    }
}
