// Cross-process throughput: shmchan with zero-copy loans, shmchan with writer.write() copies,
// and a Unix-domain stream socket, run side by side in interleaved rounds.
//
// Producer and consumer are separate processes: the consumer is this binary started again
// with posix_spawn and the hidden sub-command "_consumer"; it gets the reader ref as JSON
// (shmchan) or the other end of a socketpair as fd 3 (socket). In every transport the producer
// generates every byte with fill_pattern and the consumer checksums every byte it receives;
// the producer checks byte count and checksum after each run and exits 1 on any mismatch.
//
// A run is timed in the producer from the consumer's "ready" (its end opened) to the
// consumer's report (it has seen the end of the stream), so process start-up is not counted.
#include <shmchan/shmchan.hpp>

#include <algorithm>
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
#include <sched.h>
#include <spawn.h>
#include <span>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::size_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;
constexpr std::size_t small_chunk = 4 * KiB;  // below this, runs default to fewer bytes
constexpr int socket_fd = 3;                  // where the consumer finds its socket end

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

enum class transport { loan, copy, socket };
constexpr transport all_transports[] = {transport::loan, transport::copy, transport::socket};

const char* name_of(transport t) {
    switch (t) {
        case transport::loan: return "shmchan-loan";
        case transport::copy: return "shmchan-write";
        case transport::socket: return "unix-socket";
    }
    return "?";
}
transport transport_named(const std::string& s) {
    for (transport t : all_transports) {
        const std::string full = name_of(t);
        if (s == full || s == full.substr(full.find('-') + 1)) return t;  // "loan", "socket"
    }
    throw std::invalid_argument("unknown transport " + s + " (loan, write, socket)");
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

// One line from the consumer's stdout pipe ("" at EOF).
std::string read_line(int fd) {
    std::string line;
    char c;
    for (;;) {
        const ssize_t r = ::read(fd, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0 || c == '\n') return line;
        line += c;
    }
}

// --- consumer process ---------------------------------------------------------------------------

void report(const shmchan::stream_checksum& sum) {
    std::printf("%" PRIu64 " %016" PRIx64 "\n", sum.bytes(), sum.value());
    std::fflush(stdout);
}

// argv: _consumer TRANSPORT CPU SPIN REF_JSON|-
int run_consumer(int argc, char** argv) {
    if (argc != 6) die("usage: _consumer TRANSPORT CPU SPIN REF");
    const transport t = transport_named(argv[2]);
    pin_to(std::atoi(argv[3]));
    shmchan::stream_checksum sum;
    if (t == transport::socket) {
        // Large blocks: the consumer side of the socket is as cheap as it can be made.
        std::vector<std::byte> buf(MiB);
        std::puts("ready");
        std::fflush(stdout);
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
    shmchan::reader r = shmchan::open_reader(shmchan::channel_ref::parse(argv[5]), opt);
    std::puts("ready");
    std::fflush(stdout);
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

// --- producer side ------------------------------------------------------------------------------

struct options {
    std::vector<std::size_t> sizes{64, 4 * KiB, 64 * KiB, MiB};
    std::vector<transport> transports{all_transports, all_transports + 3};
    int rounds = 5;
    std::uint64_t bytes = 0;  // per run; 0: default by chunk size
    bool quick = false;
    bool pin = false;
    bool verbose = false;
    std::size_t capacity = shmchan::channel_options{}.capacity;
    std::uint32_t spin = shmchan::channel_options{}.spin_us;
    int sockbuf = static_cast<int>(4 * MiB);
    double max_others = -1;  // < 0: keep every run
};

// Bytes of one run: ~1 s on an idle 2-core machine. Small chunks over the socket cost one
// write() each, some 20x slower than through the ring, so they get 1/16 of the bytes.
std::uint64_t bytes_for(const options& o, std::size_t chunk, transport t) {
    std::uint64_t b = o.bytes;
    if (!b) {
        b = chunk < small_chunk ? 256 * MiB : GiB;
        if (chunk < small_chunk && t == transport::socket) b /= 16;
        if (o.quick) b /= 16;
    }
    return std::max<std::uint64_t>(b / chunk, 1) * chunk;  // whole chunks: records/s is exact
}

struct run_result {
    double secs = 0;
    double prod_cpu = 0, cons_cpu = 0;  // user + system seconds
    double prod_sys = 0, cons_sys = 0;
    long vcsw = 0;                      // voluntary context switches, both sides (sleeps)
    double others = 0;                  // CPUs kept busy by other processes (noise)
};

// Busy and total CPU seconds of the whole machine so far, from /proc/stat.
struct machine_cpu {
    double busy = 0;
};
machine_cpu read_machine_cpu() {
    machine_cpu m;
    std::FILE* f = std::fopen("/proc/stat", "re");
    if (!f) return m;
    unsigned long long v[8] = {};  // user nice system idle iowait irq softirq steal
    if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                    &v[4], &v[5], &v[6], &v[7]) == 8)
        m.busy = double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / double(::sysconf(_SC_CLK_TCK));
    std::fclose(f);
    return m;
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

std::size_t capacity_for(const options& o, std::size_t chunk) {
    // Raise the ring only when a chunk could not be one record (a record is <= half the ring).
    return std::max(o.capacity, 2 * std::bit_ceil(chunk + 16));
}

run_result run_one(const options& o, transport t, std::size_t chunk, std::uint64_t total,
                   cpu_pair cpus) {
    const bool shm = t != transport::socket;
    shmchan::channel ch;
    std::string ref = "-";
    if (shm) {
        shmchan::channel_options opt;
        opt.capacity = capacity_for(o, chunk);
        opt.spin_us = o.spin;
        ch = shmchan::create_channel(opt);
        ref = ch.reader_ref.dump();
    }
    int sv[2] = {-1, -1};
    if (!shm) {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die_errno("socketpair");
        for (int fd : sv)
            for (int opt : {SO_SNDBUF, SO_RCVBUF})
                if (::setsockopt(fd, SOL_SOCKET, opt, &o.sockbuf, sizeof o.sockbuf) != 0)
                    die_errno("setsockopt");
    }
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) die_errno("pipe2");

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (!shm) posix_spawn_file_actions_adddup2(&fa, sv[1], socket_fd);
    static const std::string self = self_path();
    std::string sub = "_consumer", tname = name_of(t),
                cpu = std::to_string(cpus.consumer), spin = std::to_string(o.spin);
    char* argv[] = {const_cast<char*>(self.c_str()), sub.data(), tname.data(), cpu.data(), spin.data(), ref.data(),
                    nullptr};
    pid_t child = 0;
    if (int rc = ::posix_spawn(&child, self.c_str(), &fa, nullptr, argv, environ); rc != 0)
        die("posix_spawn: %s", std::strerror(rc));
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (!shm) ::close(sv[1]);
    if (read_line(out[0]) != "ready") die("%s consumer did not start", name_of(t));

    std::vector<std::byte> scratch(t == transport::loan ? 0 : chunk);
    rusage ru0{}, ru1{};
    ::getrusage(RUSAGE_THREAD, &ru0);
    const machine_cpu m0 = read_machine_cpu();
    const auto t0 = clock_type::now();
    for (std::uint64_t off = 0; off < total;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, total - off));
        if (t == transport::loan) {
            shmchan::loan l = ch.writer.get_loan(n);
            if (!l) die("get_loan: %s", l.error().message().c_str());
            shmchan::fill_pattern(l.data(), off);  // generated in place: no copy at all
            l.commit();
        } else {
            const std::span<std::byte> s(scratch.data(), n);
            shmchan::fill_pattern(s, off);
            if (t == transport::copy) {
                if (auto e = ch.writer.write(s)) die("write: %s", e.message().c_str());
            } else if (!write_all(sv[0], s.data(), n)) {  // one write() per chunk / record
                die_errno("write(socket)");
            }
        }
        off += n;
    }
    if (shm) {
        if (auto e = ch.writer.close()) die("close: %s", e.message().c_str());
    } else {
        ::close(sv[0]);  // EOF for the consumer
    }
    const std::string result = read_line(out[0]);
    const auto t1 = clock_type::now();
    const machine_cpu m1 = read_machine_cpu();
    ::getrusage(RUSAGE_THREAD, &ru1);
    ::close(out[0]);

    int status = 0;
    rusage cru{};
    if (::wait4(child, &status, 0, &cru) != child) die_errno("wait4");
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
    r.secs = std::chrono::duration<double>(t1 - t0).count();
    r.prod_cpu = tv_secs(ru1.ru_utime) - tv_secs(ru0.ru_utime) + tv_secs(ru1.ru_stime) -
                 tv_secs(ru0.ru_stime);
    r.prod_sys = tv_secs(ru1.ru_stime) - tv_secs(ru0.ru_stime);
    r.cons_cpu = tv_secs(cru.ru_utime) + tv_secs(cru.ru_stime);
    r.cons_sys = tv_secs(cru.ru_stime);
    r.vcsw = (ru1.ru_nvcsw - ru0.ru_nvcsw) + cru.ru_nvcsw;
    // Jiffy resolution (10 ms): meaningful for runs of a second, rough for short ones.
    r.others = std::max(0.0, (m1.busy - m0.busy - r.prod_cpu - r.cons_cpu) / r.secs);
    return r;
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
    "  --transports LIST loan,write,socket (default all)\n"
    "  --rounds N        interleaved rounds per configuration (default 5)\n"
    "  --bytes BYTES     bytes per run (default 1G; chunks < 4K: 256M, 16M over the socket)\n"
    "  --quick           smoke run: 2 rounds, 1/16 of the default bytes\n"
    "  --pin             pin producer and consumer to two different CPUs\n"
    "  --capacity BYTES  shmchan ring capacity (default 4M; raised if a chunk needs it)\n"
    "  --spin US         shmchan busy-wait microseconds before sleeping (default 50)\n"
    "  --sockbuf BYTES   SO_SNDBUF/SO_RCVBUF requested for the socket (default 4M)\n"
    "  --max-others X    repeat (up to 4 times) a run during which other processes kept more\n"
    "                    than X CPUs busy (a shared machine); the last attempt is kept\n"
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

int run_producer(const options& o) {
    cpu_pair cpus;
    if (o.pin) {
        cpus = pick_cpus();
        pin_to(cpus.producer);
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
    std::printf("shmchan: ring capacity %s (raised to fit a chunk if needed), spin %u; "
                "loan = get_loan(n) + fill in place + commit, write = fill a buffer + "
                "writer.write()\n",
                human(o.capacity).c_str(), o.spin);
    std::printf("unix-socket: SOCK_STREAM socketpair, SO_SNDBUF %s / SO_RCVBUF %s requested, "
                "kernel reports %d / %d; the producer issues one write() per chunk (for 64 B: "
                "one write() per 64-byte record), the consumer reads in 1 MiB blocks\n",
                human(static_cast<std::uint64_t>(o.sockbuf)).c_str(),
                human(static_cast<std::uint64_t>(o.sockbuf)).c_str(), sndbuf, rcvbuf);
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
                run_result r = run_one(o, t, chunk, total, cpus);
                // On a shared machine a run that competed with other processes for the CPUs
                // measures the neighbours; --max-others repeats it (a few times at most).
                for (int retry = 0; o.max_others >= 0 && r.others > o.max_others && retry < 4;
                     ++retry) {
                    ++retries;
                    r = run_one(o, t, chunk, total, cpus);
                }
                results[{chunk, t}].push_back(r);
                if (o.verbose)
                    std::printf("round %d  %-13s %8s  %7.3f GB/s  %8.3f Mrec/s  %.3f s  "
                                "cpu p/c %.2f/%.2f s (sys %.2f/%.2f)  vcsw %ld  others %.2f\n",
                                round + 1, name_of(t), human(chunk).c_str(),
                                double(total) / r.secs / 1e9,
                                double(total / chunk) / r.secs / 1e6, r.secs, r.prod_cpu,
                                r.cons_cpu, r.prod_sys, r.cons_sys, r.vcsw, r.others);
            }
        }
        if (!o.verbose) {
            std::fprintf(stderr, "round %d/%d done\n", round + 1, o.rounds);
        }
        std::fflush(stdout);
    }

    std::printf("%-13s %8s %9s %9s %10s %17s %9s %13s %9s %8s %6s\n", "transport", "chunk",
                "bytes/run", "GB/s", "Mrec/s", "GB/s min-max", "vs socket", "cpu s p/c",
                "sys% p/c", "vcsw/run", "others");
    std::map<std::size_t, double> loan_mrec, loan_ratio, copy_mrec, copy_ratio;
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
            const double cc = median_of(runs, [](const run_result& r) { return r.cons_cpu; });
            const double ps = median_of(runs, [](const run_result& r) { return r.prod_sys; });
            const double cs = median_of(runs, [](const run_result& r) { return r.cons_sys; });
            const double vcsw = median_of(runs, [](const run_result& r) { return double(r.vcsw); });
            const double others = median_of(runs, [](const run_result& r) { return r.others; });
            char cpu_s[32], sys_s[32];
            std::snprintf(cpu_s, sizeof cpu_s, "%.2f/%.2f", pc, cc);
            std::snprintf(sys_s, sizeof sys_s, "%.0f/%.0f", pc > 0 ? 100 * ps / pc : 0.0,
                          cc > 0 ? 100 * cs / cc : 0.0);
            std::printf("%-13s %8s %9s %9.3f %10.3f %17s %9s %13s %9s %8.0f %6.2f\n",
                        name_of(t), human(chunk).c_str(), human(total).c_str(), med, mrec, spread,
                        ratio_s, cpu_s, sys_s, vcsw, others);
            if (t == transport::loan) loan_mrec[chunk] = mrec, loan_ratio[chunk] = ratio;
            if (t == transport::copy) copy_mrec[chunk] = mrec, copy_ratio[chunk] = ratio;
        }
    }
    std::printf("\n(median of %d rounds; cpu = user+system seconds of the producer thread during "
                "the run and of the whole consumer process; vcsw = voluntary context switches, "
                "i.e. sleeps, of both; others = CPUs kept busy by other processes during the run)\n",
                o.rounds);
    if (o.max_others >= 0)
        std::printf("(--max-others %.2f: %d run(s) repeated because other processes kept more "
                    "CPU busy than that)\n",
                    o.max_others, retries);

    auto verdict = [](bool met) { return met ? "MET" : "MISSED"; };
    if (loan_mrec.count(64) || copy_mrec.count(64)) {
        std::printf("target >= 10 M 64-byte records/s through shmchan:");
        if (loan_mrec.count(64))
            std::printf("  loan %.2f M/s %s", loan_mrec[64], verdict(loan_mrec[64] >= 10));
        if (copy_mrec.count(64))
            std::printf("  write %.2f M/s %s", copy_mrec[64], verdict(copy_mrec[64] >= 10));
        std::printf("\n");
    }
    if (loan_ratio[MiB] > 0 || copy_ratio[MiB] > 0) {
        std::printf("target >= 2x unix-socket throughput at 1 MiB chunks:");
        if (loan_ratio[MiB] > 0)
            std::printf("  loan %.2fx %s", loan_ratio[MiB], verdict(loan_ratio[MiB] >= 2));
        if (copy_ratio[MiB] > 0)
            std::printf("  write %.2fx %s", copy_ratio[MiB], verdict(copy_ratio[MiB] >= 2));
        std::printf("\n");
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);  // a dead consumer shows up as an error, not a signal
    try {
        if (argc >= 2 && std::string(argv[1]) == "_consumer") return run_consumer(argc, argv);
        return run_producer(parse_options(argc, argv));
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "shmchan_xproc_bench: %s\n%s", e.what(), usage_text);
        return 2;
    } catch (const std::exception& e) {
        die("%s", e.what());
    }
}
