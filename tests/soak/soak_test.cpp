// shmchan_soak: channels opened and closed continuously through an engine for a bounded time,
// with descriptors, memory, segments and throughput measured before, during and after.
//
// Processes: this one (the client: creates channels, writes, reads, triggers), an engine
// (`shmchan engine`, port 0, a short channel TTL) and two workers (this program again, with
// --worker) that read the streams handed to them, one through shared memory, one through the
// engine's socket. Lanes (threads here, scenarios.cpp) run a fixed rotation of scenarios; every
// byte read is checked. Passing criteria are printed at the start and checked at the end; exit 0
// only if all hold. ctest runs it for SHMCHAN_SOAK_SECONDS (label soak).
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <pthread.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "scenarios.hpp"
#include "support/engine_process.hpp"
#include "support/proc_stats.hpp"
#include "support/process.hpp"
#include "support/streams.hpp"

namespace {

using namespace std::chrono_literals;
using namespace shmchan;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;
using test::proc_sample;
using test::sample_process;

const char* usage_text =
    "usage: shmchan_soak [--seconds N] [--lanes N] [--size BYTES] [--interval SECONDS]\n"
    "                    [--rss-bound MIB] [--throughput-factor F]\n"
    "  channels opened and closed continuously through an engine for N seconds (default 20;\n"
    "  SHMCHAN_SOAK_SECONDS overrides), with descriptors, memory, segments and throughput\n"
    "  measured; exit 0 if every criterion printed at the start holds\n";

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

double mib(long kib) { return double(kib) / 1024.0; }

// The worker processes of the soak: FUNCTION_ID reads the stream behind input.reader (all of
// it, or input.stop_after bytes) and answers bytes, checksum, error and reason.
int worker_main(const std::string& url, const std::string& function_id) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread: sigwait below takes them
    {
        worker w(url);
        w.register_function(function_id, [](invocation& call) {
            const std::uint64_t stop_after = call.input().value("stop_after", 0ull);
            const test::read_result r = test::read_stream(call.reader("reader"), 30s, stop_after);
            return json{{"bytes", r.bytes}, {"sum", r.sum}, {"stopped", r.stopped},
                        {"error", r.error ? test::errc_name(r.error) : ""}, {"reason", r.reason}};
        });
        std::this_thread::sleep_for(100ms);  // the registration is on its way
        std::puts("READY");
        std::fflush(stdout);
        int sig = 0;
        sigwait(&set, &sig);
    }
    return 0;
}

soak::options parse_options(const std::vector<std::string>& args) {
    soak::options opt;
    for (std::size_t i = 0; i < args.size(); ++i) {
        auto num = [&](const char* flag) {
            if (i + 1 >= args.size()) throw usage_error(std::string(flag) + " needs a value");
            return std::stod(args[++i]);
        };
        if (args[i] == "--seconds") opt.seconds = num("--seconds");
        else if (args[i] == "--lanes") opt.lanes = static_cast<int>(num("--lanes"));
        else if (args[i] == "--size") opt.size = static_cast<std::uint64_t>(num("--size"));
        else if (args[i] == "--interval") opt.interval = num("--interval");
        else if (args[i] == "--rss-bound") opt.rss_bound_mib = num("--rss-bound");
        else if (args[i] == "--throughput-factor") opt.throughput_factor = num("--throughput-factor");
        else throw usage_error("unexpected argument " + args[i]);
    }
    if (const char* env = std::getenv("SHMCHAN_SOAK_SECONDS"); env && *env) opt.seconds = std::stod(env);
    if (opt.seconds <= 0 || opt.lanes < 1 || opt.size < 1024) throw usage_error("bad option values");
    if (opt.interval <= 0) opt.interval = std::clamp(opt.seconds / (test::sanitized ? 8 : 12), 1.0, 10.0);
    return opt;
}

struct watched {
    const char* name;
    pid_t pid;
    proc_sample before, warm, after, peak;
};

struct interval_stat {
    double t, mib_s, ch_s;
};

// Lets the lanes run for opt.seconds, printing a line per interval: the stats of each interval
// (the first is warm-up, it sets `warm`), the peaks in `procs`.
std::vector<interval_stat> run_intervals(soak::state& s, std::vector<watched>& procs) {
    const soak::options& opt = s.opt;
    std::vector<std::thread> lanes;
    const auto t0 = clock_type::now();
    for (int i = 0; i < opt.lanes; ++i) lanes.emplace_back([&s, i] { soak::lane(s, i); });

    std::vector<interval_stat> stats;
    std::uint64_t last_bytes = 0, last_channels = 0;
    auto last_t = t0;
    const auto end = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(opt.seconds));
    for (int k = 1;; ++k) {
        const auto next = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(opt.interval * k));
        if (next > end + 100ms) break;
        std::this_thread::sleep_until(next);
        const auto now = clock_type::now();
        const double dt = std::chrono::duration<double>(now - last_t).count();
        const std::uint64_t b = s.bytes.load(), c = s.channels.load();
        stats.push_back({std::chrono::duration<double>(now - t0).count(), double(b - last_bytes) / dt / 1048576.0,
                         double(c - last_channels) / dt});
        last_bytes = b;
        last_channels = c;
        last_t = now;
        std::string line;
        char tmp[160];
        std::snprintf(tmp, sizeof tmp, "soak [%6.1f s] %8" PRIu64 " channels %7.1f/s %8.1f MiB/s  segments %3zu  failures %" PRIu64 " ",
                      stats.back().t, c, stats.back().ch_s, stats.back().mib_s, s.segments_left(), s.failures.load());
        line = tmp;
        for (auto& p : procs) {
            const proc_sample x = sample_process(p.pid);
            p.peak.fds = std::max(p.peak.fds, x.fds);
            p.peak.threads = std::max(p.peak.threads, x.threads);
            p.peak.rss_kib = std::max(p.peak.rss_kib, x.rss_kib);
            if (k == 1) p.warm = x;
            std::snprintf(tmp, sizeof tmp, " | %s fds %d rss %.1f MiB thr %d", p.name, x.fds, mib(x.rss_kib), x.threads);
            line += tmp;
        }
        std::printf("%s%s\n", line.c_str(), k == 1 ? "  (warm-up)" : "");
        std::fflush(stdout);
    }
    s.stop = true;
    for (auto& t : lanes) t.join();
    const double ran = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::printf("soak: ran %.1f s: %" PRIu64 " channels (%.1f/s), %.1f MiB checked, %" PRIu64 " failures\n", ran,
                s.channels.load(), double(s.channels.load()) / ran, double(s.bytes.load()) / 1048576.0, s.failures.load());
    return stats;
}

// What the run did and what it left; the problems found (none: it passed).
std::vector<std::string> report(soak::state& s, std::vector<watched>& procs, const std::vector<interval_stat>& stats,
                                std::size_t left, long engine_left) {
    const soak::options& opt = s.opt;
    std::vector<std::string> problems;
    std::string per;
    for (int i = 0; i < soak::scenario_count; ++i)
        per += std::string(i ? ", " : "") + soak::scenario_names[i] + " " + std::to_string(s.per_scenario[i].load());
    std::string outcomes;
    for (auto& [k, n] : s.early_close_outcomes) outcomes += (outcomes.empty() ? "" : ", ") + k + " " + std::to_string(n);
    std::printf("soak: per scenario: %s\nsoak: fn-early-close, what the writer saw: %s\n", per.c_str(), outcomes.c_str());
    for (auto& f : s.failure_log) std::printf("soak: failure: %s\n", f.c_str());
    if (s.failures) problems.push_back(std::to_string(s.failures.load()) + " scenario failures");
    if (s.channels == 0) problems.push_back("no channel completed");

    std::printf("soak: segments of this run: %" PRIu64 " created, %zu left in /dev/shm; engine channels left: %ld\n",
                s.created, left, engine_left);
    if (left) problems.push_back(std::to_string(left) + " segments of this run left in /dev/shm");
    if (engine_left != 0) problems.push_back("the engine still lists " + std::to_string(engine_left) + " channels");
    for (auto& p : procs) {
        const double growth = mib(p.after.rss_kib - p.warm.rss_kib);
        std::printf("soak: %-13s fds %d -> %d (peak %d)  rss %.1f -> %.1f (after warm-up) -> %.1f MiB (peak %.1f, hwm %.1f)"
                    "  growth after warm-up %+.1f MiB  threads %d -> %d (peak %d)  segment mappings %d\n",
                    p.name, p.before.fds, p.after.fds, p.peak.fds, mib(p.before.rss_kib), mib(p.warm.rss_kib),
                    mib(p.after.rss_kib), mib(p.peak.rss_kib), mib(p.after.hwm_kib), growth, p.before.threads,
                    p.after.threads, p.peak.threads, p.after.shm_maps);
        if (p.after.fds != p.before.fds)
            problems.push_back(std::string(p.name) + " fds " + std::to_string(p.before.fds) + " -> " + std::to_string(p.after.fds));
        if (p.after.shm_maps != 0)
            problems.push_back(std::string(p.name) + " still maps " + std::to_string(p.after.shm_maps) + " segments");
        if (!test::sanitized && growth > opt.rss_bound_mib)
            problems.push_back(std::string(p.name) + " RSS grew " + std::to_string(growth) + " MiB after warm-up");
    }

    // Throughput after warm-up (the last interval may be cut short by the end: it counts too).
    std::vector<double> tp;
    for (std::size_t i = 1; i < stats.size(); ++i) tp.push_back(stats[i].mib_s);
    if (!tp.empty()) {
        std::vector<double> sorted = tp;
        std::sort(sorted.begin(), sorted.end());
        const double median = sorted[sorted.size() / 2];
        std::printf("soak: throughput after warm-up over %zu intervals: min %.1f, median %.1f, max %.1f MiB/s "
                    "(min/median %.2f; bound 1/%.0f)\n",
                    tp.size(), sorted.front(), median, sorted.back(), median > 0 ? sorted.front() / median : 0.0,
                    opt.throughput_factor);
        if (sorted.front() < median / opt.throughput_factor)
            problems.push_back("an interval moved less than 1/" + std::to_string(int(opt.throughput_factor)) + " of the median");
    }
    return problems;
}

int run_soak(const soak::options& opt) {
    test::raise_fd_limit();
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);

    std::printf("soak: %.0f s, %d lanes, %" PRIu64 " bytes per channel, intervals of %.1f s (the first is warm-up), "
                "fd limit %llu%s\n",
                opt.seconds, opt.lanes, opt.size, opt.interval, static_cast<unsigned long long>(rl.rlim_cur),
                test::sanitized ? ", sanitizer build" : "");
    std::printf("soak: passes if no scenario fails; descriptors of every process back to their count before "
                "the run, exactly; no segment of this run left in /dev/shm and none mapped; RSS growth after "
                "warm-up <= %.0f MiB per process%s; every interval after warm-up moves at least 1/%.0f of the "
                "median; the engine and workers exit 0 on SIGTERM\n",
                opt.rss_bound_mib, test::sanitized ? " (reported, not checked: the sanitizer's allocator keeps freed memory)" : "",
                opt.throughput_factor);
    std::fflush(stdout);

    soak::state s;
    s.opt = opt;
    s.full_sum = test::pattern_sum(opt.size);
    s.half_sum = test::pattern_sum(opt.size / 2);

    char ttl[32];
    std::snprintf(ttl, sizeof ttl, "%g", opt.ttl);
    test::engine_process eng({"--channel-ttl", ttl});
    s.url = eng.url;
    struct named_child {
        std::string name;
        test::child proc;
    };
    auto worker_process = [&](const char* name, const char* function, const char* via) {
        return named_child{name, test::child::spawn({"/proc/self/exe", "--worker", s.url, function}, false, false,
                                                    {std::string("SHMCHAN_TRANSPORT=") + via})};
    };
    named_child w_shm = worker_process("worker-shm", soak::shm_function, "shm");
    named_child w_sock = worker_process("worker-socket", soak::socket_function, "socket");
    for (auto* w : {&w_shm, &w_sock})
        if (w->proc.read_line(30s) != "READY") {
            std::fprintf(stderr, "soak: %s did not start\n", w->name.c_str());
            return 1;
        }
    std::optional<worker> caller(std::in_place, s.url);
    s.caller = &*caller;

    std::vector<watched> procs = {{"client", ::getpid(), {}, {}, {}, {}},
                                  {"engine", eng.proc.pid(), {}, {}, {}, {}},
                                  {"worker-shm", w_shm.proc.pid(), {}, {}, {}, {}},
                                  {"worker-socket", w_sock.proc.pid(), {}, {}, {}, {}}};
    std::this_thread::sleep_for(200ms);
    for (auto& p : procs) p.before = p.peak = sample_process(p.pid);

    const std::vector<interval_stat> stats = run_intervals(s, procs);

    // Quiesce: unused channels expire after the TTL; the engine drops finished ones at its
    // next sweep; then every process should be back where it started.
    const auto settle_until = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                                      std::chrono::duration<double>(opt.ttl + 10));
    auto settled = [&] {
        if (s.segments_left() != 0 || test::engine_channels(eng.port) != 0) return false;
        for (auto& p : procs) {
            const proc_sample x = sample_process(p.pid);
            if (x.shm_maps != 0 || x.fds != p.before.fds) return false;
        }
        return true;
    };
    while (!settled() && clock_type::now() < settle_until) std::this_thread::sleep_for(100ms);
    for (auto& p : procs) p.after = sample_process(p.pid);
    const std::size_t left = s.segments_left();
    const long engine_left = test::engine_channels(eng.port);

    std::vector<std::string> problems = report(s, procs, stats, left, engine_left);

    caller.reset();  // disconnect before the engine stops
    for (auto [name, proc] : {std::pair{"worker-shm", &w_shm.proc}, std::pair{"worker-socket", &w_sock.proc},
                              std::pair{"engine", &eng.proc}}) {
        proc->kill(SIGTERM);
        const int st = proc->wait(30s);  // 128 + signal when killed by one; -1 after 30 s, killed
        std::printf("soak: %s exited with %d\n", name, st);
        if (st != 0) problems.push_back(std::string(name) + " exited with " + std::to_string(st));
    }
    for (auto& p : problems) std::printf("soak: FAIL: %s\n", p.c_str());
    std::printf("soak: %s\n", problems.empty() ? "PASS" : "FAIL");
    return problems.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && args[0] == "--worker") {
        if (args.size() != 3) {
            std::fprintf(stderr, "usage: shmchan_soak --worker URL FUNCTION_ID\n");
            return 2;
        }
        return worker_main(args[1], args[2]);
    }
    try {
        return run_soak(parse_options(args));
    } catch (const usage_error& e) {
        std::fprintf(stderr, "shmchan_soak: %s\n%s", e.what(), usage_text);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmchan_soak: %s\n", e.what());
        return 1;
    }
}
