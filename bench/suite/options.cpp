#include "options.hpp"

#include "registry.hpp"
#include "support.hpp"

#include <shmchan/testkit/bytes.hpp>

#include <algorithm>

namespace shmchan_bench {

const char* usage_text =
    "usage: shmchan bench [options]        (or shmchan_bench [options])\n"
    "  Every transport between two processes, side by side in interleaved rounds: throughput\n"
    "  (GB/s, messages/s) and one-way latency (round trip / 2, p50 and p99, busy-wait and\n"
    "  sleeping waits), peak memory of each side; a table on stdout, results.json, results.csv,\n"
    "  runs.csv, results.md and PNG/SVG plots (gnuplot) in --out.\n"
    "  --quick              small sizes (64 B, 4 KiB, 1 MiB), 1 round, few messages (~1 min)\n"
    "  --transports LIST    comma-separated (default all): inprocess, shmchan-loan, shmchan-write,\n"
    "                       shmchan-loan-noclaim, shmchan-loan-nomb, shmchan-write-nomb, shmchan-separate,\n"
    "                       iceoryx,\n"
    "                       engine-shm, engine-socket, engine-socket-shm, engine-shm-socket,\n"
    "                       engine-socket-unbatched, engine-shm-socket-unbatched (A/B runs of the\n"
    "                       engine's batching, SHMCHAN_ENGINE_BATCH=0; only when named),\n"
    "                       node-socket, zeromq-ipc, unix-socket, pipe,\n"
    "                       tcp-loopback, tcp-relay (TCP through a bare relay process, the\n"
    "                       baseline for engine-socket), tcp-splice-relay (the same relay\n"
    "                       splicing, no copy in the relay), boost-mq (the ceiling, inprocess,\n"
    "                       is always added)\n"
    "  --sizes LIST         throughput payloads (default 64,256,1K,4K,16K,64K,256K,1M,4M,16M)\n"
    "  --latency-sizes LIST latency payloads (default 64,4K,64K,1M)\n"
    "  --readers LIST       consumer processes per throughput run, each receiving every message\n"
    "                       (default 1; --quick 1,2); for N > 1 only transports with fan-out run\n"
    "                       (shmchan-loan/-write: one channel with N readers; shmchan-separate: N\n"
    "                       channels; iceoryx: N subscribers), shown as NAME-xN; GB/s is then the\n"
    "                       bytes delivered (N x written) per second\n"
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
    "  --pin                the producing (ping) side on the first CPU this process may use, the\n"
    "                       consuming sides on the others (an engine or broker stays unpinned):\n"
    "                       keeps readers off the writer's core on a small machine; needs 2 or\n"
    "                       more CPUs\n"
    "  --ab NAME=VALUE[,..] run each transport twice per round, the second time (shown as\n"
    "                       TRANSPORT@NAME=VALUE) with these variables in its side processes'\n"
    "                       environment: an A/B of a knob in the same rounds (the engine-*\n"
    "                       transports' B variants run through a second engine daemon that\n"
    "                       has them too; other daemons keep the harness's environment)\n"
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

namespace {

using shmchan::testkit::parse_bytes;

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

}  // namespace

options parse_options(const std::vector<std::string>& args) {
    options o;
    std::string transports, sizes, lat_sizes, readers;
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
        else if (a == "--readers") readers = value();
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
        else if (a == "--pin") o.pin = true;
        else if (a == "--ab") {
            for (const auto& v : split(value())) {
                if (v.find('=') == std::string::npos || v.front() == '=')
                    throw usage_error("--ab: expected NAME=value[,NAME=value...], got " + v);
                o.ab_env.push_back(v);
            }
        }
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
        // The unbatched twins are for A/B runs of the engine's bridge only: named, not default.
        for (const auto& e : reg)
            if (!e.name.ends_with("-unbatched")) wanted.push_back(e.name);
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
    if (!readers.empty()) {
        o.readers.clear();
        for (const auto& x : split(readers)) {
            std::size_t used = 0;
            int n = 0;
            try {
                n = std::stoi(x, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != x.size() || n < 1 || n > 64) throw usage_error("--readers: 1 to 64, not " + x);
            o.readers.push_back(static_cast<std::size_t>(n));
        }
        std::sort(o.readers.begin(), o.readers.end());
        o.readers.erase(std::unique(o.readers.begin(), o.readers.end()), o.readers.end());
    } else if (o.quick) {
        o.readers = {1, 2};
    }
    o.rounds = rounds > 0 ? rounds : o.quick ? 1 : 5;
    o.timeout = timeout > 0 ? timeout : o.quick ? 30 : 60;
    if (!latency_limit_set) o.latency_limit = o.quick || o.messages ? 0 : 1.5;
    if (o.time_per_run <= 0) throw usage_error("--time-per-run must be positive");
    if (!o.throughput && !o.latency) throw usage_error("nothing to run");
    return o;
}

}  // namespace shmchan_bench
