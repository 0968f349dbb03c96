// The report: the summaries (report_data.cpp) as tables on stdout and in results.md, the targets
// of issue 4, results.json, results.csv and runs.csv; the plots are plots.cpp's, reading a
// results.json back results_json.cpp's.
#include "report_data.hpp"
#include "support.hpp"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

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
            {"ivcsw", s.ivcsw},
            {"cpu_s", s.r.cpu_s}};
}

json num(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

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
    const readers_view rv = readers_report(runs);
    if (!rv.text.empty()) {
        txt << rv.text;
        md << "\n### Several readers\n\n" << rv.markdown;
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
                                 {"readers", r.readers},
                                 {"rx_more", [&] {
                                      json a = json::array();
                                      for (const auto& x : r.rx_more) a.push_back(side_to_json(x));
                                      return a;
                                  }()},
                                 {"tx_cpu_ns_per_byte", r.tx_cpu_ns_per_byte},
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
        if (!rv.j.empty()) j["readers"] = rv.j;
        std::ofstream f(o.out_dir + "/results.json");
        f << j.dump(1) << '\n';
    }
    write_plots(m, o, transports, sum);
}

}  // namespace shmchan_bench
