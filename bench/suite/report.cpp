// The report: medians of the rounds with their spread, ratios to the in-process ceiling and
// to the Unix socket, the targets of issue 4; stdout, results.json, results.csv, runs.csv,
// results.md, and gnuplot plots. Also --verify.
#include "harness.hpp"
#include "support.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <set>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace shmchan_bench {

std::string cell_label(const cell& c) {
    if (c.k == kind::throughput) return "throughput " + human_size(c.payload);
    return std::string("latency ") + (c.busy ? "busy " : "sleep ") + human_size(c.payload);
}

std::string hex64(std::uint64_t v) {
    char b[20];
    std::snprintf(b, sizeof b, "%016" PRIx64, v);
    return b;
}

namespace {

using json = nlohmann::ordered_json;

const char* kind_name(kind k) { return k == kind::throughput ? "throughput" : "latency"; }
const char* mode_name(const cell& c) { return c.k == kind::throughput ? "-" : c.busy ? "busy" : "sleep"; }

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
std::string fmt_rate(double v) {  // messages/s
    if (std::isnan(v)) return "-";
    char b[32];
    if (v >= 1e6) std::snprintf(b, sizeof b, "%.2f M", v / 1e6);
    else if (v >= 1e3) std::snprintf(b, sizeof b, "%.1f k", v / 1e3);
    else std::snprintf(b, sizeof b, "%.0f", v);
    return b;
}
std::string fmt_us(double v) {
    if (std::isnan(v)) return "-";
    char b[32];
    if (v < 10) std::snprintf(b, sizeof b, "%.2f", v);
    else if (v < 1000) std::snprintf(b, sizeof b, "%.1f", v);
    else std::snprintf(b, sizeof b, "%.0f", v);
    return b;
}
std::string fmt_mib(long kib) { return kib ? fmt("%.0f", double(kib) / 1024) : "-"; }
std::string fmt_rss(const summary& s, bool one_process) {
    std::string r = one_process ? fmt_mib(s.rss_tx) + " (one)" : fmt_mib(s.rss_tx) + " / " + fmt_mib(s.rss_rx);
    if (s.rss_daemon) r += " + " + fmt_mib(s.rss_daemon);
    return r;
}

// A plain-text table and the same as markdown.
struct table {
    std::vector<std::string> head;
    std::vector<std::vector<std::string>> rows;
    std::string text() const {
        std::vector<std::size_t> w(head.size());
        auto width = [](const std::string& s) {  // UTF-8 aware enough for "µ" and "–"
            std::size_t n = 0;
            for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
            return n;
        };
        for (std::size_t i = 0; i < head.size(); ++i) w[i] = width(head[i]);
        for (const auto& r : rows)
            for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], width(r[i]));
        std::string out;
        auto line = [&](const std::vector<std::string>& r) {
            for (std::size_t i = 0; i < r.size(); ++i) {
                const std::size_t pad = w[i] - width(r[i]);
                if (i <= 1) out += r[i] + std::string(pad, ' ');  // left: payload, transport
                else out += std::string(pad, ' ') + r[i];
                out += i + 1 < r.size() ? "  " : "\n";
            }
        };
        line(head);
        for (const auto& r : rows) line(r);
        return out;
    }
    std::string markdown() const {
        std::string out = "|";
        for (const auto& h : head) out += " " + h + " |";
        out += "\n|";
        for (std::size_t i = 0; i < head.size(); ++i) out += i <= 1 ? " --- |" : " ---: |";
        out += "\n";
        for (const auto& r : rows) {
            out += "|";
            for (const auto& c : r) out += " " + c + " |";
            out += "\n";
        }
        return out;
    }
};

// Compact views for documents: one row per transport, one column per payload.
std::string pivot(const std::vector<summary>& sum, const std::vector<cell>& cells, const std::vector<transport_info>& ts,
                  const std::function<bool(const cell&)>& which, const std::function<std::string(const summary&)>& show) {
    std::vector<cell> cols;
    for (const auto& c : cells)
        if (which(c)) cols.push_back(c);
    if (cols.empty()) return {};
    table t;
    t.head = {"transport"};
    for (const auto& c : cols) t.head.push_back(human_size(c.payload));
    for (const auto& tr : ts) {
        std::vector<std::string> row{tr.name};
        bool any = false;
        for (const auto& c : cols) {
            const summary* s = find(sum, c, tr.name);
            if (s && s->has_value()) {
                row.push_back(show(*s));
                any = true;
            } else {
                row.push_back(!s ? "-" : s->status == "skipped" ? "skipped" : s->status == "failed" ? "failed"
                                  : s->status == "incomplete" ? "(time limit)" : "-");
            }
        }
        if (any) t.rows.push_back(row);
    }
    std::string md = t.markdown();
    // the markdown() helper left-aligns the first two columns; here only the first
    const auto first_nl = md.find('\n');
    const auto second_nl = md.find('\n', first_nl + 1);
    std::string sep = "|";
    for (std::size_t i = 0; i < t.head.size(); ++i) sep += i == 0 ? " --- |" : " ---: |";
    return md.substr(0, first_nl + 1) + sep + md.substr(second_nl);
}

bool is_ceiling(const std::vector<transport_info>& ts, const std::string& name) {
    for (const auto& t : ts)
        if (t.name == name) return t.ceiling;
    return false;
}

table throughput_table(const std::vector<summary>& sum, const std::vector<cell>& cells,
                       const std::vector<transport_info>& ts) {
    table t;
    t.head = {"payload", "transport", "GB/s", "msg/s", "GB/s min–max", "of ceiling", "x unix", "peak RSS MiB tx/rx", "others", "runs"};
    for (const auto& c : cells) {
        if (c.k != kind::throughput) continue;
        for (const auto& tr : ts) {
            const summary* s = find(sum, c, tr.name);
            if (!s || !s->ok) continue;
            t.rows.push_back({human_size(c.payload), tr.name + (s->failed ? " (!)" : ""), fmt("%.3f", s->gbps),
                              fmt_rate(s->msgs), fmt("%.3f", s->gbps_min) + "–" + fmt("%.3f", s->gbps_max),
                              fmt("%.2f", s->vs_ceiling), fmt("%.2fx", s->vs_unix), fmt_rss(*s, is_ceiling(ts, tr.name)),
                              fmt("%.2f", s->others), std::to_string(s->ok)});
        }
    }
    return t;
}

table latency_table(const std::vector<summary>& sum, const std::vector<cell>& cells,
                    const std::vector<transport_info>& ts, bool busy) {
    table t;
    t.head = {"payload", "transport", "p50 µs", "p99 µs", "p50 min–max", "p99 min–max", "x ceiling", "x unix", "others", "runs"};
    for (const auto& c : cells) {
        if (c.k != kind::latency || c.busy != busy) continue;
        for (const auto& tr : ts) {
            const summary* s = find(sum, c, tr.name);
            if (!s || !s->ok) continue;
            t.rows.push_back({human_size(c.payload), tr.name + (s->failed ? " (!)" : ""), fmt_us(s->p50), fmt_us(s->p99),
                              fmt_us(s->p50_min) + "–" + fmt_us(s->p50_max), fmt_us(s->p99_min) + "–" + fmt_us(s->p99_max),
                              fmt("%.2fx", s->vs_ceiling), fmt("%.2fx", s->vs_unix), fmt("%.2f", s->others),
                              std::to_string(s->ok)});
        }
    }
    return t;
}

// Transports or figures that were not measured, grouped by reason.
std::vector<std::string> not_measured(const std::vector<summary>& sum, const std::vector<transport_info>& ts) {
    std::vector<std::string> out;
    for (const auto& tr : ts) {
        std::vector<std::pair<std::string, std::vector<std::string>>> groups;  // "SKIPPED: why" -> figures
        std::size_t total = 0;
        for (const auto& s : sum) {
            if (s.transport != tr.name) continue;
            ++total;
            if (s.status == "ok") continue;
            const std::string key = (s.status == "skipped" ? "SKIPPED: " : s.status == "incomplete" ? "NO FIGURE: " : "FAILED: ") + s.reason;
            auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == key; });
            if (it == groups.end()) groups.push_back({key, {cell_label(s.c)}});
            else it->second.push_back(cell_label(s.c));
        }
        for (const auto& [key, figs] : groups) {
            std::string which;
            if (figs.size() == total) which = "all figures";
            else
                for (const auto& f : figs) which += (which.empty() ? "" : ", ") + f;
            out.push_back(tr.name + " (" + which + "): " + key);
        }
    }
    return out;
}

std::vector<std::string> target_lines(const std::vector<summary>& sum, const std::vector<cell>& cells) {
    std::vector<std::string> out;
    auto verdict = [](bool met) { return met ? "MET" : "MISSED"; };
    auto get = [&](const cell& c, const std::string& t) -> const summary* {
        const summary* s = find(sum, c, t);
        return s && s->has_value() ? s : nullptr;
    };
    auto why_not = [&](const cell& c, const std::string& t) {
        const summary* s = find(sum, c, t);
        if (!s) return t + " not run";
        return t + " " + s->status + (s->reason.empty() ? "" : ": " + s->reason);
    };
    for (const char* shm : {"shmchan-loan", "shmchan-write"}) {
        // 1. shm >= iceoryx at >= 64 KiB
        std::string l = std::string("target ") + shm + " >= iceoryx throughput at >= 64 KiB:";
        bool any = false, all = true;
        std::string missing;
        for (const auto& c : cells) {
            if (c.k != kind::throughput || c.payload < 64 * KiB) continue;
            const summary *a = get(c, shm), *b = get(c, "iceoryx");
            if (!a || !b) {
                if (missing.empty()) missing = !b ? why_not(c, "iceoryx") : why_not(c, shm);
                continue;
            }
            any = true;
            all = all && a->gbps >= b->gbps;
            l += " " + human_size(c.payload) + " " + fmt("%.2fx", a->gbps / b->gbps);
        }
        out.push_back(any ? l + "  " + verdict(all) : l + " n/a (" + missing + ")");
        // 2. >= 3x the Unix socket at 1 MiB
        const cell mib{kind::throughput, MiB, false};
        if (const summary* a = get(mib, shm); a && !std::isnan(a->vs_unix))
            out.push_back(std::string("target ") + shm + " >= 3x unix-socket at 1 MiB: " + fmt("%.2fx", a->vs_unix) + "  " + verdict(a->vs_unix >= 3));
        else
            out.push_back(std::string("target ") + shm + " >= 3x unix-socket at 1 MiB: n/a (no 1 MiB figures for both)");
        // 3. >= 80% of the ceiling at >= 1 MiB
        l = std::string("target ") + shm + " >= 80% of the in-process ceiling at >= 1 MiB:";
        any = false;
        all = true;
        for (const auto& c : cells) {
            if (c.k != kind::throughput || c.payload < MiB) continue;
            const summary* a = get(c, shm);
            if (!a || std::isnan(a->vs_ceiling)) continue;
            any = true;
            all = all && a->vs_ceiling >= 0.8;
            l += " " + human_size(c.payload) + " " + fmt("%.0f%%", 100 * a->vs_ceiling);
        }
        out.push_back(any ? l + "  " + verdict(all) : l + " n/a");
        // 4. 64 B p50 busy latency <= iceoryx
        const cell lat{kind::latency, 64, true};
        const summary *a = get(lat, shm), *b = get(lat, "iceoryx");
        l = std::string("target ") + shm + " 64 B p50 busy-wait latency <= iceoryx:";
        if (a && b)
            out.push_back(l + " " + fmt_us(a->p50) + " vs " + fmt_us(b->p50) + " µs  " + verdict(a->p50 <= b->p50));
        else
            out.push_back(l + " n/a (" + (!b ? why_not(lat, "iceoryx") : why_not(lat, shm)) + ")");
    }
    return out;
}

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch == '\n' ? ' ' : ch);
    return q + "\"";
}
std::string csv_num(double v) { return std::isnan(v) ? "" : fmt("%.6g", v); }

json side_to_json(const side_record& s) {
    return {{"present", s.present},
            {"messages", s.r.messages},
            {"bytes", s.r.bytes},
            {"checksum", hex64(s.r.checksum)},
            {"start_ns", s.r.start_ns},
            {"end_ns", s.r.end_ns},
            {"error", s.r.error},
            {"peak_rss_kib", s.peak_rss_kib},
            {"cpu_user_s", s.cpu_user_s},
            {"cpu_sys_s", s.cpu_sys_s},
            {"vcsw", s.vcsw},
            {"ivcsw", s.ivcsw}};
}

json num(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

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

void write_report(const machine_info& m, const report_options& o, const std::vector<transport_info>& transports,
                  const std::vector<cell>& cells, const std::vector<run_record>& runs, const nlohmann::json& options_json) {
    const auto sum = summarize(transports, cells, runs);
    const bool any_thr = std::any_of(cells.begin(), cells.end(), [](const cell& c) { return c.k == kind::throughput; });
    const bool any_lat = std::any_of(cells.begin(), cells.end(), [](const cell& c) { return c.k == kind::latency; });

    std::ostringstream txt, md;
    txt << "\ntransports:\n";
    for (const auto& t : transports) txt << "  " << t.name << ": " << t.description << "\n";
    txt << "\nmethod: producer and consumer are two processes (the ceiling: two threads of one), started\n"
           "fresh for every run; the producer fills every byte of every payload, the consumer checksums\n"
           "every byte; messages, bytes and checksum of every run are checked. Figures are medians of\n"
           "the rounds (" << o.rounds << "), interleaved with rotating order; min–max is the spread of the rounds.\n"
           "Each run first moves warm-up messages (a lap of the transport's buffers, bounded by the run's\n"
           "length), untimed. Throughput: first timed message begun to last message digested. Latency:\n"
           "one-way = round trip / 2, each way including the fill and the checksum of the payload. Peak RSS: VmHWM of each process (tx = producer/ping, rx =\n"
           "consumer/pong, + the transport's daemon); kernel socket buffers are not in it. others: CPUs\n"
           "kept busy by other processes of the machine during the run (median; noise on a shared host).\n";
    md << "| transport | what moves the bytes |\n| --- | --- |\n";
    for (const auto& t : transports) md << "| " << t.name << " | " << t.description << " |\n";
    if (any_thr) {
        const table t = throughput_table(sum, cells, transports);
        txt << "\nthroughput (GB/s = 1e9 bytes/s; of ceiling = fraction of inprocess; x unix = multiple of unix-socket):\n" << t.text();
        md << "\n### Throughput\n\n" << t.markdown();
    }
    if (any_lat) {
        for (bool busy : {true, false}) {
            const table t = latency_table(sum, cells, transports, busy);
            txt << "\nlatency, one-way, " << (busy ? "busy-wait (spinning on non-blocking calls)" : "sleeping waits (blocking calls)")
                << ", µs (x = multiple of the ceiling's / unix-socket's p50):\n" << t.text();
            md << "\n### Latency, " << (busy ? "busy-wait" : "sleeping waits") << " (one-way, µs)\n\n" << t.markdown();
        }
    }
    const auto missing = not_measured(sum, transports);
    if (!missing.empty()) {
        txt << "\nnot measured:\n";
        md << "\n### Not measured\n\n";
        for (const auto& l : missing) {
            txt << "  " << l << "\n";
            md << "- " << l << "\n";
        }
    }
    const auto targets = target_lines(sum, cells);
    txt << "\n";
    md << "\n### Targets\n\n";
    for (const auto& l : targets) {
        txt << l << "\n";
        md << "- " << l << "\n";
    }
    std::fputs(txt.str().c_str(), stdout);

    // results.md: compact views first, then the full tables
    {
        std::ofstream f(o.out_dir + "/results.md");
        f << "Machine: " << m.nproc << " CPUs, " << m.cpu_model << ", " << m.kernel << ". Date: " << m.date_utc
          << ". Command: `" << m.command << "`.\n\n";
        if (!m.line_rtt_ns.empty()) {
            f << "Placement probe (CPU 0 <-> CPU 1 cache-line round trip, before the run and after each round; ~100 ns: "
                 "near, 400+ ns: far):";
            for (double ns : m.line_rtt_ns) f << " " << fmt("%.0f", ns);
            f << " ns.\n\n";
        }
        auto thr = [](const cell& c) { return c.k == kind::throughput; };
        f << "### Throughput, GB/s (median of rounds)\n\n"
          << pivot(sum, cells, transports, thr, [](const summary& s) { return fmt("%.2f", s.gbps); });
        f << "\n### Throughput, messages/s\n\n"
          << pivot(sum, cells, transports, thr, [](const summary& s) { return fmt_rate(s.msgs); });
        f << "\n### Throughput as a fraction of the in-process ceiling\n\n"
          << pivot(sum, cells, transports, thr, [](const summary& s) { return fmt("%.2f", s.vs_ceiling); });
        f << "\n### Throughput, spread of the rounds (min–max GB/s)\n\n"
          << pivot(sum, cells, transports, thr, [](const summary& s) { return fmt("%.2f", s.gbps_min) + "–" + fmt("%.2f", s.gbps_max); });
        f << "\n### Peak RSS, MiB (producer / consumer, + daemon)\n\n"
          << pivot(sum, cells, transports, thr, [&](const summary& s) { return fmt_rss(s, is_ceiling(transports, s.transport)); });
        for (bool busy : {true, false}) {
            auto lat = [busy](const cell& c) { return c.k == kind::latency && c.busy == busy; };
            f << "\n### One-way latency, " << (busy ? "busy-wait" : "sleeping waits") << ", p50 / p99 µs\n\n"
              << pivot(sum, cells, transports, lat, [](const summary& s) { return fmt_us(s.p50) + " / " + fmt_us(s.p99); });
        }
        f << "\n## Full tables\n\n" << md.str();
    }
    // results.csv: one row per figure and transport
    {
        std::ofstream f(o.out_dir + "/results.csv");
        f << "kind,mode,payload,transport,status,reason,runs_ok,runs_failed,messages_per_run,bytes_per_run,"
             "gbps_median,gbps_min,gbps_max,gbps_q1,gbps_q3,msgs_per_s_median,p50_us_median,p50_us_min,p50_us_max,"
             "p99_us_median,p99_us_min,p99_us_max,ratio_to_ceiling,ratio_to_unix_socket,peak_rss_kib_tx,"
             "peak_rss_kib_rx,daemon_peak_rss_kib,daemon_cpu_s_median,other_cpus_median\n";
        for (const auto& s : sum)
            f << kind_name(s.c.k) << ',' << mode_name(s.c) << ',' << s.c.payload << ',' << s.transport << ','
              << s.status << ',' << csv_field(s.reason) << ',' << s.ok << ',' << s.failed << ',' << s.messages << ','
              << s.bytes << ',' << csv_num(s.gbps) << ',' << csv_num(s.gbps_min) << ',' << csv_num(s.gbps_max) << ','
              << csv_num(s.gbps_q1) << ',' << csv_num(s.gbps_q3) << ',' << csv_num(s.msgs) << ',' << csv_num(s.p50)
              << ',' << csv_num(s.p50_min) << ',' << csv_num(s.p50_max) << ',' << csv_num(s.p99) << ','
              << csv_num(s.p99_min) << ',' << csv_num(s.p99_max) << ',' << csv_num(s.vs_ceiling) << ','
              << csv_num(s.vs_unix) << ',' << s.rss_tx << ',' << s.rss_rx << ',' << s.rss_daemon << ','
              << csv_num(s.daemon_cpu) << ',' << csv_num(s.others) << '\n';
    }
    // runs.csv: every run, pilots (round 0) included
    {
        std::ofstream f(o.out_dir + "/runs.csv");
        f << "round,kind,mode,payload,transport,status,messages,warmup,expected_bytes,expected_checksum,tx_bytes,"
             "tx_checksum,rx_bytes,rx_checksum,secs,gbps,msgs_per_s,samples,p50_us,p99_us,mean_us,max_us,"
             "tx_peak_rss_kib,rx_peak_rss_kib,tx_cpu_s,rx_cpu_s,daemon_cpu_s,daemon_peak_rss_kib,other_cpus,wall_s,reason\n";
        for (const auto& r : runs)
            f << r.round << ',' << kind_name(r.c.k) << ',' << mode_name(r.c) << ',' << r.c.payload << ',' << r.transport
              << ',' << r.status << ',' << r.messages << ',' << r.warmup << ',' << r.expected_bytes << ',' << hex64(r.expected_checksum)
              << ',' << r.tx.r.bytes << ',' << hex64(r.tx.r.checksum) << ',' << r.rx.r.bytes << ','
              << hex64(r.rx.r.checksum) << ',' << csv_num(r.secs) << ',' << csv_num(r.gbps) << ','
              << csv_num(r.msgs_per_s) << ',' << r.samples << ',' << csv_num(r.p50_us) << ',' << csv_num(r.p99_us)
              << ',' << csv_num(r.mean_us) << ',' << csv_num(r.max_us) << ',' << r.tx.peak_rss_kib << ','
              << r.rx.peak_rss_kib << ',' << csv_num(r.tx.cpu_user_s + r.tx.cpu_sys_s) << ','
              << csv_num(r.rx.cpu_user_s + r.rx.cpu_sys_s) << ',' << csv_num(r.daemon_cpu_s) << ','
              << r.daemon_rss_kib << ',' << csv_num(r.others) << ',' << csv_num(r.wall_s) << ','
              << csv_field(r.reason) << '\n';
    }
    // results.json: everything, for --verify and for other tools
    {
        json j;
        j["tool"] = "shmchan_bench";
        j["format"] = 1;
        j["machine"] = {{"nproc", m.nproc},       {"cpu_model", m.cpu_model}, {"kernel", m.kernel},
                        {"hostname", m.hostname}, {"date_utc", m.date_utc},   {"command", m.command},
                        {"line_rtt_ns", m.line_rtt_ns}};
        j["options"] = options_json;
        j["transports"] = json::array();
        for (const auto& t : transports)
            j["transports"].push_back({{"name", t.name}, {"description", t.description}, {"ceiling", t.ceiling}});
        j["figures"] = json::array();
        for (const auto& c : cells)
            j["figures"].push_back({{"kind", kind_name(c.k)}, {"mode", mode_name(c)}, {"payload", c.payload}});
        j["runs"] = json::array();
        for (const auto& r : runs)
            j["runs"].push_back({{"transport", r.transport},
                                 {"kind", kind_name(r.c.k)},
                                 {"mode", mode_name(r.c)},
                                 {"payload", r.c.payload},
                                 {"round", r.round},
                                 {"messages", r.messages},
                                 {"planned", r.planned},
                                 {"warmup", r.warmup},
                                 {"status", r.status},
                                 {"reason", r.reason},
                                 {"expected", {{"bytes", r.expected_bytes}, {"checksum", hex64(r.expected_checksum)}}},
                                 {"tx", side_to_json(r.tx)},
                                 {"rx", side_to_json(r.rx)},
                                 {"secs", r.secs},
                                 {"gbps", r.gbps},
                                 {"msgs_per_s", r.msgs_per_s},
                                 {"samples", r.samples},
                                 {"p50_us", r.p50_us},
                                 {"p99_us", r.p99_us},
                                 {"mean_us", r.mean_us},
                                 {"max_us", r.max_us},
                                 {"daemon_cpu_s", r.daemon_cpu_s},
                                 {"daemon_peak_rss_kib", r.daemon_rss_kib},
                                 {"other_cpus", r.others},
                                 {"wall_s", r.wall_s}});
        j["summary"] = json::array();
        for (const auto& s : sum)
            j["summary"].push_back({{"transport", s.transport},
                                    {"kind", kind_name(s.c.k)},
                                    {"mode", mode_name(s.c)},
                                    {"payload", s.c.payload},
                                    {"status", s.status},
                                    {"reason", s.reason},
                                    {"runs_ok", s.ok},
                                    {"runs_failed", s.failed},
                                    {"messages_per_run", s.messages},
                                    {"gbps", {{"median", num(s.gbps)}, {"min", num(s.gbps_min)}, {"max", num(s.gbps_max)}, {"q1", num(s.gbps_q1)}, {"q3", num(s.gbps_q3)}}},
                                    {"msgs_per_s", num(s.msgs)},
                                    {"p50_us", {{"median", num(s.p50)}, {"min", num(s.p50_min)}, {"max", num(s.p50_max)}}},
                                    {"p99_us", {{"median", num(s.p99)}, {"min", num(s.p99_min)}, {"max", num(s.p99_max)}}},
                                    {"ratio_to_ceiling", num(s.vs_ceiling)},
                                    {"ratio_to_unix_socket", num(s.vs_unix)},
                                    {"peak_rss_kib", {{"tx", s.rss_tx}, {"rx", s.rss_rx}, {"daemon", s.rss_daemon}}}});
        j["targets"] = target_lines(sum, cells);
        std::ofstream f(o.out_dir + "/results.json");
        f << j.dump(1) << '\n';
    }
    // Plots: one line per transport, against payload size.
    {
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
}

int report_again(const std::string& path, report_options o) {
    nlohmann::json j;
    try {
        std::ifstream f(path);
        if (!f) {
            std::fprintf(stderr, "shmchan bench: cannot read %s\n", path.c_str());
            return 1;
        }
        j = nlohmann::json::parse(f);
        machine_info m;
        const auto& mj = j.at("machine");
        m.nproc = mj.at("nproc");
        m.cpu_model = mj.at("cpu_model");
        m.kernel = mj.at("kernel");
        m.hostname = mj.value("hostname", "");
        m.date_utc = mj.at("date_utc");
        m.command = mj.at("command");
        if (mj.contains("line_rtt_ns")) m.line_rtt_ns = mj.at("line_rtt_ns").get<std::vector<double>>();
        std::vector<transport_info> ts;
        for (const auto& t : j.at("transports")) ts.push_back({t.at("name"), t.at("description"), t.at("ceiling")});
        auto cell_of = [](const nlohmann::json& x) {
            cell c;
            c.k = x.at("kind") == "throughput" ? kind::throughput : kind::latency;
            c.payload = x.at("payload");
            c.busy = x.at("mode") == "busy";
            return c;
        };
        std::vector<cell> cells;
        for (const auto& f : j.at("figures")) cells.push_back(cell_of(f));
        auto side_of = [](const nlohmann::json& x) {
            side_record s;
            s.present = x.at("present");
            s.r.messages = x.at("messages");
            s.r.bytes = x.at("bytes");
            s.r.checksum = std::stoull(x.at("checksum").get<std::string>(), nullptr, 16);
            s.r.start_ns = x.at("start_ns");
            s.r.end_ns = x.at("end_ns");
            s.r.error = x.at("error");
            s.peak_rss_kib = x.at("peak_rss_kib");
            s.cpu_user_s = x.at("cpu_user_s");
            s.cpu_sys_s = x.at("cpu_sys_s");
            s.vcsw = x.at("vcsw");
            s.ivcsw = x.at("ivcsw");
            return s;
        };
        std::vector<run_record> runs;
        for (const auto& x : j.at("runs")) {
            run_record r;
            r.transport = x.at("transport");
            r.c = cell_of(x);
            r.round = x.at("round");
            r.messages = x.at("messages");
            r.planned = x.value("planned", r.messages);
            r.warmup = x.value("warmup", std::uint64_t{0});
            r.status = x.at("status");
            r.reason = x.at("reason");
            r.expected_bytes = x.at("expected").at("bytes");
            r.expected_checksum = std::stoull(x.at("expected").at("checksum").get<std::string>(), nullptr, 16);
            r.tx = side_of(x.at("tx"));
            r.rx = side_of(x.at("rx"));
            r.secs = x.at("secs");
            r.gbps = x.at("gbps");
            r.msgs_per_s = x.at("msgs_per_s");
            r.samples = x.at("samples");
            r.p50_us = x.at("p50_us");
            r.p99_us = x.at("p99_us");
            r.mean_us = x.at("mean_us");
            r.max_us = x.at("max_us");
            r.daemon_cpu_s = x.at("daemon_cpu_s");
            r.daemon_rss_kib = x.at("daemon_peak_rss_kib");
            r.others = x.at("other_cpus");
            r.wall_s = x.at("wall_s");
            runs.push_back(std::move(r));
        }
        o.rounds = j.at("options").at("rounds");
        write_report(m, o, ts, cells, runs, j.at("options"));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmchan bench: %s: %s\n", path.c_str(), e.what());
        return 1;
    }
    return 0;
}

int verify_results(const std::string& path) {
    nlohmann::json j;
    try {
        std::ifstream f(path);
        if (!f) {
            std::printf("verify: cannot read %s\n", path.c_str());
            return 1;
        }
        j = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
        std::printf("verify: %s is not JSON: %s\n", path.c_str(), e.what());
        return 1;
    }
    int bad = 0;
    auto complain = [&](const std::string& s) {
        std::printf("verify: %s\n", s.c_str());
        ++bad;
    };
    std::map<std::uint64_t, std::uint64_t> cache;
    auto expected = [&](std::uint64_t bytes) {
        auto it = cache.find(bytes);
        if (it != cache.end()) return it->second;
        return cache[bytes] = pattern_checksum(1, bytes);
    };
    try {
        const auto& runs = j.at("runs");
        const auto& figures = j.at("figures");
        for (const auto& t : j.at("transports")) {
            const std::string name = t.at("name");
            int ok = 0, skipped = 0;
            std::set<std::string> reasons;
            std::set<std::string> covered;
            for (const auto& r : runs) {
                if (r.at("transport") != name) continue;
                const std::string fig = r.at("kind").get<std::string>() + " " + r.at("mode").get<std::string>() + " " +
                                        std::to_string(r.at("payload").get<std::uint64_t>());
                const std::string where = name + " " + fig + " round " + std::to_string(r.at("round").get<int>());
                const std::string status = r.at("status");
                if (status == "skipped") {
                    if (r.at("reason").get<std::string>().empty()) complain(where + ": skipped without a reason");
                    reasons.insert(r.at("reason").get<std::string>());
                    ++skipped;
                    covered.insert(fig);
                    continue;
                }
                if (status != "ok") {
                    complain(where + ": " + status + ": " + r.at("reason").get<std::string>());
                    covered.insert(fig);
                    continue;
                }
                const std::uint64_t payload = r.at("payload"), messages = r.at("messages");
                const std::uint64_t bytes = payload * messages;
                const std::string want = hex64(expected(bytes));
                if (messages == 0) complain(where + ": no messages");
                for (const char* side : {"tx", "rx"}) {
                    const auto& s = r.at(side);
                    if (!s.at("present").get<bool>()) complain(where + ": " + side + " reported nothing");
                    if (s.at("messages").get<std::uint64_t>() != messages)
                        complain(where + ": " + side + " moved " + std::to_string(s.at("messages").get<std::uint64_t>()) + " of " + std::to_string(messages) + " messages");
                    if (s.at("bytes").get<std::uint64_t>() != bytes)
                        complain(where + ": " + side + " moved " + std::to_string(s.at("bytes").get<std::uint64_t>()) + " of " + std::to_string(bytes) + " bytes");
                    if (s.at("checksum").get<std::string>() != want)
                        complain(where + ": " + side + " checksum " + s.at("checksum").get<std::string>() + ", the pattern's is " + want);
                }
                if (r.at("expected").at("checksum").get<std::string>() != want) complain(where + ": wrong expected checksum recorded");
                ++ok;
                covered.insert(fig);
            }
            for (const auto& f : figures) {
                const std::string fig = f.at("kind").get<std::string>() + " " + f.at("mode").get<std::string>() + " " +
                                        std::to_string(f.at("payload").get<std::uint64_t>());
                if (!covered.count(fig)) complain(name + " " + fig + ": no run and no reason (left out)");
            }
            if (ok) std::printf("verify: %-14s %d run(s) moved exactly their bytes, checksums match%s\n", name.c_str(), ok,
                                skipped ? " (some figures skipped)" : "");
            else if (skipped) std::printf("verify: %-14s skipped: %s\n", name.c_str(), reasons.begin()->c_str());
        }
    } catch (const std::exception& e) {
        complain(std::string("malformed results: ") + e.what());
    }
    if (bad) {
        std::printf("verify: %d problem(s) in %s\n", bad, path.c_str());
        return 1;
    }
    std::printf("verify: %s: every transport moved exactly its bytes or was skipped with a reason\n", path.c_str());
    return 0;
}

}  // namespace shmchan_bench
