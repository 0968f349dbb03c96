#include "plan.hpp"

#include "harness.hpp"
#include "options.hpp"
#include "proc_stats.hpp"
#include "registry.hpp"
#include "spawn.hpp"
#include "support.hpp"

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <map>

namespace shmchan_bench {

using steady = std::chrono::steady_clock;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

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

}  // namespace

int run_suite(const options& o, const std::vector<std::string>& argv) {
    if (o.pin) (void)pin_cpus();  // before any round: a run that cannot pin says so at once
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
    if (std::any_of(o.readers.begin(), o.readers.end(), [](std::size_t n) { return n > 1; })) {
        std::string with, without;
        for (auto& s : ts)
            if (s.readers == 1) {
                std::string& list = s.t->fan_out() ? with : without;
                list += (list.empty() ? "" : ", ") + s.name;
            }
        std::printf("several readers (throughput only): %s; not run with several readers (one consumer only): %s\n",
                    with.empty() ? "none" : with.c_str(), without.empty() ? "none" : without.c_str());
    }
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
               {"readers", o.readers},
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

}  // namespace shmchan_bench
