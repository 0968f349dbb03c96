// The "several readers" view of a run with --readers: for each transport with fan-out, payload
// and reader count, the bytes delivered per second and what feeding N readers costs the
// producer per byte written (its CPU in the timed part, and wall time), as a multiple of one
// reader's (issue 11's target: at most 1.2x for 4 readers). Medians of the rounds.
#include "harness.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>

namespace shmchan_bench {
namespace {

double median(std::vector<double> v) {
    if (v.empty()) return std::nan("");
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string base_of(const run_record& r) {
    const std::string suffix = "-x" + std::to_string(r.readers);
    if (r.readers > 1 && r.transport.size() > suffix.size() &&
        r.transport.compare(r.transport.size() - suffix.size(), suffix.size(), suffix) == 0)
        return r.transport.substr(0, r.transport.size() - suffix.size());
    return r.transport;
}

std::string fmt(const char* f, double v) {
    if (std::isnan(v)) return "-";
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

}  // namespace

readers_view readers_report(const std::vector<run_record>& runs) {
    readers_view out;
    out.j = nlohmann::json::array();
    // Transports that ran (or tried) with several readers.
    std::vector<std::string> bases;
    for (const auto& r : runs)
        if (r.readers > 1 && r.c.k == kind::throughput && r.status != "skipped" &&
            std::find(bases.begin(), bases.end(), base_of(r)) == bases.end())
            bases.push_back(base_of(r));
    if (bases.empty()) return out;
    struct figs {
        std::vector<double> gbps, cpu, wall;
        int failed = 0;
    };
    std::map<std::tuple<std::string, std::size_t, std::size_t>, figs> m;  // base, payload, readers
    for (const auto& r : runs) {
        if (r.c.k != kind::throughput || r.round == 0 || r.status == "skipped") continue;
        if (std::find(bases.begin(), bases.end(), base_of(r)) == bases.end()) continue;
        auto& f = m[{base_of(r), r.c.payload, r.readers}];
        if (r.status != "ok") {
            ++f.failed;
            continue;
        }
        f.gbps.push_back(r.gbps);
        f.cpu.push_back(r.tx_cpu_ns_per_byte);
        f.wall.push_back(double(r.readers) / r.gbps);  // ns per byte written
    }
    std::ostringstream txt, md;
    char line[256];
    std::snprintf(line, sizeof line, "  %-18s %9s %7s %14s %14s %8s %14s %8s\n", "transport", "payload", "readers",
                  "delivered GB/s", "tx CPU ns/B", "x 1 rd", "wall ns/B", "x 1 rd");
    txt << "\nseveral readers (GB/s = bytes delivered, N x written, per second; tx CPU and wall: the producer's\n"
           "per byte written, in the timed part; x 1 rd = multiple of the same transport with one reader):\n"
        << line;
    md << "| transport | payload | readers | delivered GB/s | producer CPU ns/B written | x 1 reader | wall ns/B written | x 1 reader |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& b : bases) {
        for (const auto& [k, f] : m) {
            if (std::get<0>(k) != b) continue;
            const auto one = m.find({b, std::get<1>(k), 1});
            const double g = median(f.gbps), cpu = median(f.cpu), wall = median(f.wall);
            const double cpu1 = one != m.end() ? median(one->second.cpu) : std::nan("");
            const double wall1 = one != m.end() ? median(one->second.wall) : std::nan("");
            const double xc = cpu / cpu1, xw = wall / wall1;
            const std::string size = human_size(std::get<1>(k));
            const std::string failed = f.failed ? " (" + std::to_string(f.failed) + " failed)" : "";
            std::snprintf(line, sizeof line, "  %-18s %9s %7zu %14s %14s %8s %14s %8s%s\n", b.c_str(), size.c_str(),
                          std::get<2>(k), fmt("%.3f", g).c_str(), fmt("%.3f", cpu).c_str(), fmt("%.2f", xc).c_str(),
                          fmt("%.3f", wall).c_str(), fmt("%.2f", xw).c_str(), failed.c_str());
            txt << line;
            md << "| " << b << " | " << size << " | " << std::get<2>(k) << " | " << fmt("%.3f", g) << " | "
               << fmt("%.3f", cpu) << " | " << fmt("%.2f", xc) << " | " << fmt("%.3f", wall) << " | " << fmt("%.2f", xw)
               << failed << " |\n";
            auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
            out.j.push_back({{"transport", b},
                             {"payload", std::get<1>(k)},
                             {"readers", std::get<2>(k)},
                             {"runs_ok", f.gbps.size()},
                             {"runs_failed", f.failed},
                             {"delivered_gbps", num(g)},
                             {"producer_cpu_ns_per_byte", num(cpu)},
                             {"producer_cpu_ratio_to_one_reader", num(xc)},
                             {"producer_wall_ns_per_byte", num(wall)},
                             {"producer_wall_ratio_to_one_reader", num(xw)}});
        }
    }
    out.text = txt.str();
    out.markdown = md.str();
    return out;
}

}  // namespace shmchan_bench
