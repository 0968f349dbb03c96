// shmchan_bench: every transport side by side, between two real processes, in interleaved
// rounds (see docs/benchmarks.md). The harness starts both sides of each run as this binary
// again (`_side ROLE ...`, posix_spawn): the consumer (or pong) first, the producer (or ping)
// once the first said "ready" on fd 3; each prints its side_result there as one JSON line.
// The harness checks messages, bytes and checksums of every run against the pattern, kills a
// run that exceeds its time limit, and reports medians of the rounds with their spread.
//
// Where things are: registry.cpp (the transports), options.cpp (the command line), plan.cpp
// (what runs when), harness.cpp (one run: sides, checks), spawn.cpp (side processes), side.cpp
// (the child), proc_stats.cpp (/proc counters, probes), engine_daemon.cpp (the engine daemon),
// tcp_relay.cpp (the relay daemon), report*.cpp and plots.cpp (the results), one file per
// transport.
#include "engine_daemon.hpp"
#include "harness.hpp"
#include "options.hpp"
#include "plan.hpp"
#include "spawn.hpp"

#include <shmchan/testkit/bytes.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

using namespace shmchan_bench;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    try {
        const std::string first = argc >= 2 ? argv[1] : "";
        if (first == "_side") return side_main(argc, argv);
        if (first == "_relay") {
            if (argc == 3) return relay_daemon_main(std::atoi(argv[2]), false);
            if (argc == 4 && std::string_view(argv[3]) == "splice") return relay_daemon_main(std::atoi(argv[2]), true);
            return 2;
        }
        if (first == "_engine") return engine_daemon_main(argc, argv);
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
    } catch (const shmchan::testkit::bad_byte_count& e) {
        std::fprintf(stderr, "shmchan bench: %s\n%s", e.what(), usage_text);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmchan bench: %s\n", e.what());
        return 1;
    }
}
