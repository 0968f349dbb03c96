// The harness's command line: what to run, how long, where the results go.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace shmchan_bench {

struct options {
    std::vector<std::string> transports;  // registry names, in registry order
    std::vector<std::size_t> sizes, latency_sizes;
    std::vector<std::size_t> readers = {1};  // consumer counts (throughput; fan-out transports)
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
    bool pin = false;                 // --pin: producer on CPU 0, consumers on the other CPUs
    std::vector<std::string> ab_env;  // --ab: each transport also runs with these "NAME=value"
    std::uint64_t messages = 0;  // > 0: this many per run, no pilots
    double latency_limit = 0;    // seconds a ping side may run (0: none; default 1.5, --quick none)
};

extern const char* usage_text;

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The options of a run (not --list, --verify, --report, which main() takes); throws usage_error.
options parse_options(const std::vector<std::string>& args);

}  // namespace shmchan_bench
