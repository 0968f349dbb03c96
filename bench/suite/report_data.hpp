// What the report files share: the summary of one figure of one transport over its rounds
// (report_data.cpp), and the plots drawn from the summaries (plots.cpp).
#pragma once

#include "harness.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace shmchan_bench {

struct summary {
    cell c;
    std::string transport;
    std::string status;  // ok, skipped, failed
    std::string reason;
    int ok = 0, failed = 0;
    std::uint64_t messages = 0, bytes = 0;  // per run (median)
    double gbps = NAN, gbps_min = NAN, gbps_max = NAN, gbps_q1 = NAN, gbps_q3 = NAN, msgs = NAN;
    double p50 = NAN, p50_min = NAN, p50_max = NAN, p99 = NAN, p99_min = NAN, p99_max = NAN;
    double vs_ceiling = NAN, vs_unix = NAN;
    long rss_tx = 0, rss_rx = 0, rss_daemon = 0;
    double daemon_cpu = NAN, others = NAN;
    bool has_value() const { return !std::isnan(c.k == kind::throughput ? gbps : p50); }
    double value() const { return c.k == kind::throughput ? gbps : p50; }
};

// Medians, spreads and ratios (to the ceiling, to the Unix socket) of every figure of every
// transport; pilots and skipped or failed runs are not figures.
std::vector<summary> summarize(const std::vector<transport_info>& transports, const std::vector<cell>& cells,
                               const std::vector<run_record>& runs);
const summary* find(const std::vector<summary>& v, const cell& c, const std::string& t);
// printf-style of one number, "-" for NaN.
std::string fmt(const char* f, double v);

// NAME.dat and plot.gp in o.out_dir, and the PNG/SVG plots when o.plots (gnuplot).
void write_plots(const machine_info& m, const report_options& o, const std::vector<transport_info>& transports,
                 const std::vector<summary>& sum);

}  // namespace shmchan_bench
