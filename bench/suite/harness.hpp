// The harness's records of runs, the harness that makes them (harness.cpp: one run of one
// transport, its side processes, the checks) and the report made from them (report*.cpp,
// plots.cpp: the table, CSV, JSON and plots). plan.cpp decides what runs when.
#pragma once

#include "transport.hpp"

#include <shmchan/testkit/bytes.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <map>
#include <string>
#include <vector>

namespace shmchan_bench {

enum class kind { throughput, latency };

// One figure of the report: throughput at a payload, or latency at a payload with busy or
// sleeping waits.
struct cell {
    kind k = kind::throughput;
    std::size_t payload = 0;
    bool busy = false;  // latency only
    auto operator<=>(const cell&) const = default;
};
std::string cell_label(const cell& c);  // "throughput 64 B", "latency busy 1 MiB"
using shmchan::testkit::human_size;  // "64 B", "4 KiB", "16 MiB"

// What one side (process or thread) reported, plus what the harness knows about its process.
struct side_record {
    bool present = false;  // a result arrived
    side_result r;
    long peak_rss_kib = 0;  // VmHWM of the process at its end
    double cpu_user_s = 0, cpu_sys_s = 0;  // the whole process, set-up included
    long vcsw = 0, ivcsw = 0;
};

struct run_record {
    std::string transport;
    cell c;
    int round = 0;  // 0: a pilot (sizing and warm-up, not in the figures)
    std::uint64_t messages = 0;  // moved, warm-up included
    std::uint64_t planned = 0;   // asked for (latency runs may stop early at their time limit)
    std::uint64_t warmup = 0;    // the first ones, not timed
    std::string status;  // "ok", "skipped", "failed"
    std::string reason;  // why skipped or failed
    side_record tx, rx;  // producer / consumer (the first one), or ping / pong
    std::size_t readers = 1;           // consumer processes (throughput), each given every message
    std::vector<side_record> rx_more;  // consumers 2..readers
    std::uint64_t expected_bytes = 0, expected_checksum = 0;
    // throughput: first message begun (producer) to last message digested (the last consumer);
    // gbps: bytes delivered, i.e. readers x bytes written, per second
    double secs = 0, gbps = 0, msgs_per_s = 0;
    double tx_cpu_ns_per_byte = 0;  // throughput: the producer's CPU (timed part) per byte written
    // latency: one-way = round trip / 2, after dropping warm-up round trips
    std::size_t samples = 0;
    double p50_us = 0, p99_us = 0, mean_us = 0, max_us = 0;
    double daemon_cpu_s = 0;  // the transport's daemons during the run
    long daemon_rss_kib = 0;
    double others = 0;  // CPUs kept busy by other processes of the machine during the run
    double wall_s = 0;  // the whole run as the harness saw it (spawns included)
};

struct machine_info {
    int nproc = 0;
    std::string cpu_model, kernel, date_utc, command, hostname;
    // Core-to-core cache-line round trip (ns, median of a ping-pong between CPU 0 and CPU 1)
    // before the pilots and after each round: on a VM the host may place the two vCPUs near
    // (~100 ns) or far (~400-650 ns) apart, and that alone moves large-payload figures ~2x.
    std::vector<double> line_rtt_ns;
};

struct transport_info {
    std::string name, description;
    bool ceiling = false;
};

struct report_options {
    std::string out_dir;
    bool plots = true;
    std::string gnuplot = "gnuplot";
    int rounds = 0;
    bool quick = false;
    double time_per_run = 0;
};

// Medians, spreads, ratios; then stdout table, results.json, results.csv, runs.csv,
// results.md, *.dat + plot.gp and the PNG/SVG plots. Returns the notes about plotting (e.g.
// gnuplot missing), already printed.
void write_report(const machine_info& m, const report_options& o, const std::vector<transport_info>& transports,
                  const std::vector<cell>& cells, const std::vector<run_record>& runs, const nlohmann::json& options_json);

// The several-readers view (report_readers.cpp): empty unless some run had readers > 1.
struct readers_view {
    std::string text, markdown;
    nlohmann::json j;
};
readers_view readers_report(const std::vector<run_record>& runs);

// --verify FILE: every transport either moved exactly its bytes with matching checksums in every
// run or is skipped with a reason. Returns the exit status.
int verify_results(const std::string& path);

// --report FILE: the tables, CSV, JSON and plots again from a results.json (into o.out_dir).
int report_again(const std::string& path, report_options o);

// The checksum every side must report for `bytes` bytes of the suite's stream (fill_stream);
// computed once per length.
std::uint64_t expected_stream_checksum(std::uint64_t bytes);

// "%016x", as checksums appear in results and messages.
std::string hex64(std::uint64_t v);

struct transport_state {
    std::string name;  // as reported: the transport's, with "-xN" for N readers
    std::shared_ptr<transport> t;  // shared by the reader counts of one transport (one daemon)
    std::map<cell, std::string> skipped;  // reason: later rounds are not tried again
    std::map<cell, std::string> failed;
    std::string base;  // the registry's name (what the side processes make)
    std::size_t readers = 1;
    std::vector<std::string> env;  // --ab: "NAME=value" added to its sides' environment
};
// "shmchan-loan-x4": a transport's name in the report for `readers` consumers (as is for 1).
std::string name_with_readers(const std::string& base, std::size_t readers);

struct options;

class harness {
public:
    explicit harness(const options& o);
    ~harness();
    // Stops every transport's daemons (also done by the destructor).
    void teardown();
    std::vector<transport_state>& transports() { return ts_; }
    const std::string& scratch_root() const { return root_; }

    // `timed` messages (round trips) after a warm-up (warmup_for); `per_msg`: the seconds one
    // takes, as far as known (0: not yet).
    run_record run(transport_state& ts, const cell& c, std::uint64_t timed, int round, double per_msg = 0);

private:
    void run_two(transport_state& ts, const run_spec& spec, run_record& rec, std::chrono::steady_clock::time_point deadline);
    void run_pair(transport_state& ts, const run_spec& spec, run_record& rec, std::chrono::steady_clock::time_point deadline);
    void evaluate(run_record& rec, const run_spec& spec);

    const options& o_;
    std::string root_;
    std::vector<transport_state> ts_;
    int counter_ = 0;
};

}  // namespace shmchan_bench
