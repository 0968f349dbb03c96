#include "report_data.hpp"

#include <algorithm>
#include <cstdio>

namespace shmchan_bench {
namespace {

double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
double quantile(std::vector<double> v, double q) {  // linear interpolation
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const double pos = q * double(v.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}
double minimum(const std::vector<double>& v) { return v.empty() ? NAN : *std::min_element(v.begin(), v.end()); }
double maximum(const std::vector<double>& v) { return v.empty() ? NAN : *std::max_element(v.begin(), v.end()); }


}  // namespace

std::vector<summary> summarize(const std::vector<transport_info>& transports, const std::vector<cell>& cells,
                               const std::vector<run_record>& runs) {
    std::vector<summary> out;
    for (const auto& c : cells) {
        for (const auto& t : transports) {
            summary s;
            s.c = c;
            s.transport = t.name;
            std::vector<double> g, m, p50, p99, dc, oth, msgs;
            bool seen = false;
            for (const auto& r : runs) {
                if (r.transport != t.name || r.c != c) continue;
                seen = true;
                if (r.status == "skipped") {
                    s.status = "skipped";
                    s.reason = r.reason;
                    continue;
                }
                if (r.status == "failed") {
                    ++s.failed;
                    if (s.reason.empty()) s.reason = (r.round == 0 ? "pilot: " : "round " + std::to_string(r.round) + ": ") + r.reason;
                    continue;
                }
                if (r.round == 0) continue;  // pilots are not figures
                if (c.k == kind::latency && r.samples == 0) continue;  // stopped during warm-up
                ++s.ok;
                g.push_back(r.gbps);
                m.push_back(r.msgs_per_s);
                p50.push_back(r.p50_us);
                p99.push_back(r.p99_us);
                dc.push_back(r.daemon_cpu_s);
                oth.push_back(r.others);
                msgs.push_back(double(r.messages - r.warmup));
                s.rss_tx = std::max(s.rss_tx, r.tx.peak_rss_kib);
                s.rss_rx = std::max(s.rss_rx, r.rx.peak_rss_kib);
                s.rss_daemon = std::max(s.rss_daemon, r.daemon_rss_kib);
            }
            if (!seen) {
                s.status = "failed";
                s.reason = "not run (interrupted)";
            } else if (s.status.empty()) {
                s.status = s.failed ? "failed" : "ok";
            }
            if (s.status == "ok" && s.ok == 0 && c.k == kind::latency) {
                s.status = "incomplete";
                s.reason = "no run got past its warm-up within --latency-limit (busy-waiting on a loaded machine)";
            }
            if (s.ok) {
                s.messages = static_cast<std::uint64_t>(median(msgs));
                s.bytes = s.messages * c.payload;
                if (c.k == kind::throughput) {
                    s.gbps = median(g);
                    s.gbps_min = minimum(g);
                    s.gbps_max = maximum(g);
                    s.gbps_q1 = quantile(g, 0.25);
                    s.gbps_q3 = quantile(g, 0.75);
                    s.msgs = median(m);
                } else {
                    s.p50 = median(p50);
                    s.p50_min = minimum(p50);
                    s.p50_max = maximum(p50);
                    s.p99 = median(p99);
                    s.p99_min = minimum(p99);
                    s.p99_max = maximum(p99);
                }
                s.daemon_cpu = median(dc);
                s.others = median(oth);
            }
            out.push_back(s);
        }
    }
    // Ratios: throughput as a fraction of the ceiling and as a multiple of the Unix socket;
    // latency as a multiple of the ceiling's and of the Unix socket's (lower is better).
    for (auto& s : out) {
        for (const auto& o : out) {
            if (o.c != s.c || !o.has_value() || !s.has_value()) continue;
            if (o.transport == "inprocess") s.vs_ceiling = s.value() / o.value();
            if (o.transport == "unix-socket") s.vs_unix = s.value() / o.value();
        }
    }
    return out;
}

const summary* find(const std::vector<summary>& v, const cell& c, const std::string& t) {
    for (const auto& s : v)
        if (s.c == c && s.transport == t) return &s;
    return nullptr;
}

std::string fmt(const char* f, double v) {
    if (std::isnan(v)) return "-";
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

}  // namespace shmchan_bench
