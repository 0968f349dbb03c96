// The plots: one line per transport against payload size (throughput, its fraction of the
// ceiling, latency busy and sleeping), as .dat files and a gnuplot script, drawn when gnuplot runs.
#include "report_data.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <set>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace shmchan_bench {
namespace {

// Colours and point types by transport, the same in every plot.
std::string style_of(const std::string& name, std::size_t index) {
    static const std::vector<std::pair<std::string, std::string>> known = {
        {"inprocess", "lc rgb '#000000' pt 1"},      {"shmchan-loan", "lc rgb '#d62728' pt 7"},
        {"shmchan-write", "lc rgb '#ff7f0e' pt 5"},  {"iceoryx", "lc rgb '#1f77b4' pt 9"},
        {"engine-socket", "lc rgb '#9467bd' pt 11"}, {"zeromq-ipc", "lc rgb '#8c564b' pt 13"},
        {"unix-socket", "lc rgb '#2ca02c' pt 2"},    {"pipe", "lc rgb '#e377c2' pt 3"},
        {"tcp-loopback", "lc rgb '#7f7f7f' pt 4"},   {"boost-mq", "lc rgb '#17becf' pt 6"},
        {"shmchan-loan-noclaim", "lc rgb '#f7b6d2' pt 8"}};
    for (const auto& [n, s] : known)
        if (n == name) return s;
    return "lc " + std::to_string(index + 1) + " pt " + std::to_string(index + 1);
}

struct plot_series {
    std::string name;
    std::size_t index;
    std::map<std::size_t, double> main, dashed;  // payload -> value (dashed: p99)
};

// Writes NAME.dat (payload, one column per series; then the dashed columns) and returns the
// gnuplot commands that draw it.
std::string plot_block(const std::string& dir, const std::string& name, const std::string& title,
                       const std::string& ylabel, bool logy, const std::vector<plot_series>& series,
                       const std::set<std::size_t>& payloads) {
    std::vector<const plot_series*> used;
    for (const auto& s : series)
        if (!s.main.empty()) used.push_back(&s);
    if (used.empty()) return {};
    std::ofstream dat(dir + "/" + name + ".dat");
    dat << "payload";
    for (const auto* s : used) dat << ' ' << s->name;
    for (const auto* s : used) dat << ' ' << s->name << "-p99";
    dat << '\n';
    for (std::size_t p : payloads) {
        dat << p;
        for (const auto* s : used) {
            auto it = s->main.find(p);
            dat << ' ' << (it == s->main.end() ? std::string("NaN") : fmt("%.6g", it->second));
        }
        for (const auto* s : used) {
            auto it = s->dashed.find(p);
            dat << ' ' << (it == s->dashed.end() ? std::string("NaN") : fmt("%.6g", it->second));
        }
        dat << '\n';
    }
    std::string tics;
    for (std::size_t p : payloads) {
        std::string label = human_size(p);
        label.erase(std::remove(label.begin(), label.end(), ' '), label.end());
        tics += (tics.empty() ? "" : ", ") + std::string("\"") + label + "\" " + std::to_string(p);
    }
    std::string plot = "plot ";
    for (std::size_t i = 0; i < used.size(); ++i)
        plot += (i ? ", \\\n     " : "") + std::string("'") + name + ".dat' using 1:" + std::to_string(i + 2) +
                " with linespoints lw 2 " + style_of(used[i]->name, used[i]->index) + " title '" + used[i]->name + "'";
    for (std::size_t i = 0; i < used.size(); ++i)
        if (!used[i]->dashed.empty())
            plot += ", \\\n     '" + name + ".dat' using 1:" + std::to_string(used.size() + i + 2) +
                    " with lines lw 1 dt 2 " + style_of(used[i]->name, used[i]->index) + " notitle";
    std::string g;
    g += "set title \"" + title + "\"\n";
    g += "set xlabel 'payload (bytes, log scale)'\nset ylabel '" + ylabel + "'\n";
    g += "unset logscale\nset logscale x 2\n";
    g += logy ? "set logscale y 10\nset format y '%g'\n" : "set format y '%g'\n";
    g += "set xtics (" + tics + ")\n";
    g += "set xrange [" + std::to_string(double(*payloads.begin()) / 1.5) + ":" +
         std::to_string(double(*payloads.rbegin()) * 1.5) + "]\n";
    for (const char* term : {"png", "svg"}) {
        if (std::string(term) == "png")
            g += "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size 1100,650 font ',10' } else { set terminal png size 1100,650 }\n";
        else
            g += "set terminal svg size 1100,650 dynamic font 'sans,11'\n";
        g += "set output '" + name + "." + term + "'\n" + plot + "\nset output\n";
    }
    return g + "\n";
}

void run_gnuplot(const report_options& o, const std::string& script) {
    const std::string log = o.out_dir + "/plot.log";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addchdir_np(&fa, o.out_dir.c_str());
    posix_spawn_file_actions_addopen(&fa, 1, "plot.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> argv{const_cast<char*>(o.gnuplot.c_str()), const_cast<char*>(script.c_str()), nullptr};
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, o.gnuplot.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        std::printf("plots: not drawn: cannot run %s (%s; apt install gnuplot-nox); the script is %s/%s\n",
                    o.gnuplot.c_str(), std::strerror(rc), o.out_dir.c_str(), script.c_str());
        return;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        std::printf("plots: %s/{throughput,throughput_vs_ceiling,latency_busy,latency_sleep}.{png,svg}\n", o.out_dir.c_str());
    else
        std::printf("plots: gnuplot failed (%s); see %s\n", WIFEXITED(status) ? ("exit " + std::to_string(WEXITSTATUS(status))).c_str() : "signal", log.c_str());
}

}  // namespace

void write_plots(const machine_info& m, const report_options& o, const std::vector<transport_info>& transports,
                 const std::vector<summary>& sum) {
    std::vector<plot_series> thr, ratio, busy, sleep;
    std::set<std::size_t> thr_sizes, lat_sizes;
    for (std::size_t i = 0; i < transports.size(); ++i) {
        const auto& name = transports[i].name;
        plot_series a{name, i, {}, {}}, b = a, c = a, d = a;
        for (const auto& s : sum) {
            if (s.transport != name || !s.has_value()) continue;
            if (s.c.k == kind::throughput) {
                thr_sizes.insert(s.c.payload);
                a.main[s.c.payload] = s.gbps;
                if (!std::isnan(s.vs_ceiling)) b.main[s.c.payload] = s.vs_ceiling;
            } else {
                lat_sizes.insert(s.c.payload);
                auto& t = s.c.busy ? c : d;
                t.main[s.c.payload] = s.p50;
                t.dashed[s.c.payload] = s.p99;
            }
        }
        thr.push_back(a);
        ratio.push_back(b);
        busy.push_back(c);
        sleep.push_back(d);
    }
    std::string g = "# shmchan bench plots: gnuplot plot.gp (in this directory)\n"
                    "set datafile missing 'NaN'\nset grid\nset key outside right top\n"
                    "set pointsize 1.2\n\n";
    const std::string when = " (" + m.date_utc + ", " + std::to_string(m.nproc) + " CPUs)";
    g += plot_block(o.out_dir, "throughput", "Throughput between two processes, median of rounds" + when, "GB/s", true, thr, thr_sizes);
    g += plot_block(o.out_dir, "throughput_vs_ceiling", "Throughput as a fraction of the in-process ceiling" + when, "fraction of ceiling", false, ratio, thr_sizes);
    g += plot_block(o.out_dir, "latency_busy", "One-way latency, busy-wait: p50 (solid), p99 (dashed)" + when, "µs", true, busy, lat_sizes);
    g += plot_block(o.out_dir, "latency_sleep", "One-way latency, sleeping waits: p50 (solid), p99 (dashed)" + when, "µs", true, sleep, lat_sizes);
    {
        std::ofstream f(o.out_dir + "/plot.gp");
        f << g;
    }
    if (o.plots) run_gnuplot(o, "plot.gp");
}

}  // namespace shmchan_bench
