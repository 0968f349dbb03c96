#include "harness.hpp"

#include "options.hpp"
#include "proc_stats.hpp"
#include "registry.hpp"
#include "spawn.hpp"
#include "support.hpp"

#include <algorithm>
#include <map>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace shmchan_bench {

using steady = std::chrono::steady_clock;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool parse_side(const std::string& line, side_record& s) {
    try {
        const json j = json::parse(line);
        s.r.messages = j.at("messages").get<std::uint64_t>();
        s.r.bytes = j.at("bytes").get<std::uint64_t>();
        s.r.checksum = std::stoull(j.at("checksum").get<std::string>(), nullptr, 16);
        s.r.start_ns = j.at("start_ns").get<std::int64_t>();
        s.r.end_ns = j.at("end_ns").get<std::int64_t>();
        s.r.error = j.at("error").get<std::string>();
        s.r.rtt_ns = j.at("rtt_ns").get<std::vector<std::int64_t>>();
        s.r.cpu_s = j.value("cpu_s", 0.0);
        s.peak_rss_kib = j.at("peak_rss_kib").get<long>();
        s.cpu_user_s = j.at("cpu_user_s").get<double>();
        s.cpu_sys_s = j.at("cpu_sys_s").get<double>();
        s.vcsw = j.at("vcsw").get<long>();
        s.ivcsw = j.at("ivcsw").get<long>();
        s.present = true;
        return true;
    } catch (const std::exception& e) {
        s.r.error = std::string("unreadable result from the child: ") + e.what();
        return false;
    }
}

double percentile(std::vector<double>& sorted, double q) {  // nearest rank
    if (sorted.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::ceil(q * double(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

std::uint64_t expected_stream_checksum(std::uint64_t bytes) {
    static std::map<std::uint64_t, std::uint64_t> cache;
    if (auto it = cache.find(bytes); it != cache.end()) return it->second;
    return cache[bytes] = pattern_checksum(1, bytes);
}

harness::harness(const options& o) : o_(o) {
    char tmpl[] = "/tmp/shmchan-bench-XXXXXX";
    if (!::mkdtemp(tmpl)) fail_errno("mkdtemp");
    root_ = tmpl;
    // Every reader count of a transport shares its object (and so its daemon); several readers
    // only for the transports with fan-out.
    for (const std::size_t n : o.readers)
        for (const auto& e : registry())
            if (std::find(o.transports.begin(), o.transports.end(), e.name) != o.transports.end()) {
                std::shared_ptr<transport> t;
                for (const auto& s : ts_)
                    if (s.base == e.name) t = s.t;
                if (!t) t = std::shared_ptr<transport>(e.make());
                if (n > 1 && !t->fan_out()) continue;  // run_suite names those left out
                ts_.push_back({name_with_readers(e.name, n), t, {}, {}, e.name, n, {}});
                // --ab: the same transport again, its sides with the variables added, in the
                // same rounds (an A/B of an environment knob that no host noise between two
                // runs can fake). The engine-* transports start an engine with them for the
                // B variant (run_spec::env); other daemons are shared and keep the harness's.
                if (!o.ab_env.empty()) {
                    std::string tag;
                    for (const auto& v : o.ab_env) tag += (tag.empty() ? "@" : "+") + v;
                    ts_.push_back({name_with_readers(e.name + tag, n), t, {}, {}, e.name, n, o.ab_env});
                }
            }
}

// A side's environment: its transport's variables, then --ab's for the B variant.
static std::vector<std::string> side_env(const transport_state& ts) {
    std::vector<std::string> env = ts.t->side_environment();
    env.insert(env.end(), ts.env.begin(), ts.env.end());
    return env;
}

std::string name_with_readers(const std::string& base, std::size_t readers) {
    return readers == 1 ? base : base + "-x" + std::to_string(readers);
}
harness::~harness() {
    teardown();
    std::error_code ec;
    if (!o_.keep_scratch) fs::remove_all(root_, ec);
}
void harness::teardown() {
    for (auto& s : ts_) {
        if (s.readers != 1 && std::any_of(ts_.begin(), ts_.end(), [&](const transport_state& o) { return o.readers == 1 && o.t == s.t; }))
            continue;  // torn down with its one-reader state
        try {
            s.t->teardown();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "shmchan_bench: %s teardown: %s\n", s.name.c_str(), e.what());
        }
    }
}

namespace {

// Warm-up before the timed messages: a lap of the buffers every transport may have (the
// shmchan ring, a queue's slots: max(4 MiB, 4 x payload), plus a quarter), so that first-touch
// page faults, connection set-up and cold caches are not in the figures (on the VM of
// docs/benchmarks.md a page fault costs up to 30 us under load). For throughput the consumer
// may lag the producer by a whole buffer, so the producer warms up for two laps and a quarter:
// when the clock starts, the consumer has finished its first. Bounded by the run's own length,
// so slow transports do not spend minutes warming up.
std::uint64_t warmup_for(const cell& c, std::uint64_t timed, double per_msg) {
    const double buffers = double(std::max<std::size_t>(4 * MiB, 4 * c.payload));
    const double lap = 1.25 * buffers;
    if (c.k == kind::throughput) {
        const auto n = static_cast<std::uint64_t>(std::ceil((lap + buffers) / double(c.payload)));
        return std::min<std::uint64_t>(n, std::max<std::uint64_t>(timed, 1));
    }
    // Latency: a whole lap matters for small payloads (a fresh page every 51 round trips of
    // 64 B costs shmchan a 20-50 us fault on this VM); the warm-up may take up to ~0.9 s by
    // the round-trip time known so far (else 7.5 x the timed ones, sized for ~0.12 s).
    const auto n = static_cast<std::uint64_t>(std::ceil(lap / double(c.payload + 16)));
    const auto budget = per_msg > 0 ? static_cast<std::uint64_t>(0.9 / per_msg) : timed * 15 / 2;
    return std::max<std::uint64_t>(std::min<std::uint64_t>(n, budget), 20);
}

}  // namespace

run_record harness::run(transport_state& ts, const cell& c, std::uint64_t timed, int round, double per_msg) {
    run_record rec;
    rec.transport = ts.name;
    rec.readers = ts.readers;
    rec.c = c;
    rec.round = round;
    rec.warmup = warmup_for(c, timed, per_msg);
    rec.messages = rec.planned = timed + rec.warmup;
    const int n = ++counter_;
    run_spec spec;
    spec.payload = c.payload;
    spec.latency = c.k == kind::latency;
    spec.messages = rec.messages;
    spec.warmup = rec.warmup;
    if (spec.latency) spec.time_limit_ns = static_cast<std::int64_t>(o_.latency_limit * 1e9);
    spec.busy_wait = c.busy;
    spec.endpoint = "shmchan-bench-" + std::to_string(::getpid()) + "-" + std::to_string(n);
    spec.scratch_dir = root_ + "/run-" + std::to_string(n);
    spec.readers = ts.readers;
    spec.env = ts.env;
    if (::mkdir(spec.scratch_dir.c_str(), 0700) != 0) fail_errno("mkdir " + spec.scratch_dir);

    const auto t0 = steady::now();
    std::string why;
    try {
        if (ts.readers > 1 && spec.latency) why = "several readers: throughput only (latency is measured with one)";
        else if (ts.readers > 1 && !ts.t->fan_out()) why = "no fan-out: this transport feeds one consumer";
        else why = ts.t->prepare(spec);
    } catch (const std::exception& e) {
        rec.status = "failed";
        rec.reason = std::string("prepare: ") + e.what();
    }
    if (rec.status.empty() && !why.empty()) {
        rec.status = "skipped";
        rec.reason = why;
    }
    if (rec.status.empty()) {
        const auto daemons = ts.t->daemon_pids();
        double d0 = 0, d1 = 0;
        for (int pid : daemons) d0 += process_cpu_s(pid);
        const double m0 = machine_busy_s(), s0 = self_cpu_s();
        const auto deadline = steady::now() + std::chrono::milliseconds(static_cast<long long>(o_.timeout * 1000));
        try {
            if (ts.t->in_one_process()) run_pair(ts, spec, rec, deadline);
            else run_two(ts, spec, rec, deadline);
        } catch (const std::exception& e) {
            rec.status = "failed";
            rec.reason = e.what();
        }
        const double wall = std::chrono::duration<double>(steady::now() - t0).count();
        for (int pid : daemons) {
            d1 += process_cpu_s(pid);
            rec.daemon_rss_kib = std::max(rec.daemon_rss_kib, vm_hwm_kib("/proc/" + std::to_string(pid) + "/status"));
        }
        rec.daemon_cpu_s = std::max(0.0, d1 - d0);
        const double children = rec.tx.cpu_user_s + rec.tx.cpu_sys_s +
                                (ts.t->in_one_process() ? 0 : rec.rx.cpu_user_s + rec.rx.cpu_sys_s);
        double more = 0;
        for (const auto& x : rec.rx_more) more += x.cpu_user_s + x.cpu_sys_s;
        rec.others = std::max(0.0, (machine_busy_s() - m0 - children - more - rec.daemon_cpu_s - (self_cpu_s() - s0)) / wall);
        if (rec.status.empty()) evaluate(rec, spec);
    }
    try {
        ts.t->cleanup(spec);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmchan_bench: %s cleanup: %s\n", ts.name.c_str(), e.what());
    }
    rec.wall_s = std::chrono::duration<double>(steady::now() - t0).count();
    std::error_code ec;
    if (!o_.keep_scratch) fs::remove_all(spec.scratch_dir, ec);
    return rec;
}

void harness::run_two(transport_state& ts, const run_spec& spec, run_record& rec, steady::time_point deadline) {
    const std::string accept_role = spec.latency ? "pong" : "consume";
    const std::string connect_role = spec.latency ? "ping" : "produce";
    // The accepting sides (several consumers with readers > 1), each started once the one
    // before it is ready; then the connecting side.
    const std::size_t n_acc = spec.latency ? 1 : std::max<std::size_t>(spec.readers, 1);
    std::vector<side_proc> acc(n_acc);
    side_proc b;
    rec.rx_more.assign(n_acc - 1, side_record{});
    auto rx_of = [&](std::size_t i) -> side_record& { return i == 0 ? rec.rx : rec.rx_more[i - 1]; };
    auto role_of = [&](std::size_t i) { return n_acc == 1 ? accept_role : accept_role + " " + std::to_string(i + 1); };
    auto finish = [&](const std::string& why) {
        if (!why.empty()) {
            rec.status = "failed";
            rec.reason = why;
        }
        for (auto& a : acc) kill_side(a);
        kill_side(b);
        for (auto& a : acc) reap(a, std::chrono::milliseconds(0));
        reap(b, std::chrono::milliseconds(0));
    };
    for (std::size_t i = 0; i < n_acc; ++i) {
        run_spec si = spec;
        si.reader_index = i;
        side_proc& a = acc[i];
        a = spawn_side(accept_role, ts.base, si, side_env(ts));
        if (o_.pin) pin_side(a, false);
        wait_for({&a}, deadline, [&] { return said_ready(a) || results_in(a) > 0 || a.eof; });
        if (g_interrupted) return finish("interrupted");
        if (!said_ready(a)) {
            if (results_in(a) > 0) parse_side(a.lines.back(), rx_of(i));
            reap(a, std::chrono::milliseconds(2000));
            const std::string role = role_of(i);
            std::string why = !rx_of(i).r.error.empty() ? role + ": " + rx_of(i).r.error
                              : a.eof ? role + " ended before it was ready (" + exit_text(a.status) + ")"
                                      : role + " not ready after " + std::to_string(int(o_.timeout)) + " s (killed)";
            if (const auto tail = log_tail(a.log); !tail.empty()) why += " [log: " + tail + "]";
            return finish(why);
        }
    }
    b = spawn_side(connect_role, ts.base, spec, side_env(ts));
    if (o_.pin) pin_side(b, true);
    std::vector<side_proc*> all;
    for (auto& a : acc) all.push_back(&a);
    all.push_back(&b);
    // Every result; once one side has failed or died, the others get a short grace.
    auto done = [&] {
        return std::all_of(all.begin(), all.end(), [](const side_proc* s) { return results_in(*s) > 0 || s->eof; });
    };
    bool ok = wait_for(all, deadline, [&] {
        if (done()) return true;
        return std::any_of(all.begin(), all.end(), [](const side_proc* s) { return s->eof && results_in(*s) == 0; });
    });
    if (ok && !done()) ok = wait_for(all, std::min(deadline, steady::now() + std::chrono::seconds(3)), done);
    if (g_interrupted) return finish("interrupted");
    const bool timed_out = !ok;
    if (timed_out)
        for (auto* s : all) kill_side(*s);
    for (auto* s : all) reap(*s, std::chrono::milliseconds(5000));
    std::vector<std::pair<side_proc*, side_record*>> sides = {{&b, &rec.tx}};
    for (std::size_t i = 0; i < n_acc; ++i) {
        acc[i].role = role_of(i);
        sides.push_back({&acc[i], &rx_of(i)});
    }
    for (auto [s, r] : sides)
        for (const auto& l : s->lines)
            if (!l.empty() && l[0] == '{') parse_side(l, *r);
    std::string why;
    for (auto [s, r] : sides) {
        std::string w;
        if (r->present && !r->r.error.empty()) w = s->role + ": " + r->r.error;
        else if (!r->present && timed_out) w = s->role + ": no result within " + std::to_string(int(o_.timeout)) + " s (killed)";
        else if (!r->present) w = s->role + ": ended without a result (" + exit_text(s->status) + ")";
        if (w.empty()) continue;
        if (const auto tail = log_tail(s->log); !tail.empty() && !r->present) w += " [log: " + tail + "]";
        why += (why.empty() ? "" : "; ") + w;
    }
    if (timed_out && why.empty()) why = "timed out";
    finish(why);
}

void harness::run_pair(transport_state& ts, const run_spec& spec, run_record& rec, steady::time_point deadline) {
    side_proc p = spawn_side("pair", ts.base, spec, side_env(ts));
    const bool ok = wait_for({&p}, deadline, [&] { return results_in(p) >= 2 || p.eof; });
    if (!ok) kill_side(p);
    reap(p, std::chrono::milliseconds(5000));
    std::vector<std::string> results;
    for (const auto& l : p.lines)
        if (!l.empty() && l[0] == '{') results.push_back(l);
    if (results.size() >= 1) parse_side(results[0], rec.tx);
    if (results.size() >= 2) parse_side(results[1], rec.rx);
    std::string why;
    if (g_interrupted) why = "interrupted";
    else if (!ok) why = "no result within " + std::to_string(int(o_.timeout)) + " s (killed)";
    else if (results.size() < 2) why = "ended without a result (" + exit_text(p.status) + ") [log: " + log_tail(p.log) + "]";
    for (auto* r : {&rec.tx, &rec.rx})
        if (r->present && !r->r.error.empty()) why += (why.empty() ? "" : "; ") + r->r.error;
    if (!why.empty()) {
        rec.status = "failed";
        rec.reason = why;
    }
}

void harness::evaluate(run_record& rec, const run_spec& spec) {
    // A latency run may end early (time limit): then both sides must agree on how many round
    // trips were made, and everything else is checked against that count.
    std::uint64_t moved = spec.messages;
    if (spec.latency && spec.time_limit_ns && rec.tx.r.messages < spec.messages) moved = rec.tx.r.messages;
    rec.messages = moved;
    rec.expected_bytes = std::uint64_t(spec.payload) * moved;
    rec.expected_checksum = expected_stream_checksum(rec.expected_bytes);
    std::string bad;
    auto check = [&](const char* who, const side_record& s) {
        if (s.r.messages != moved)
            bad += std::string(who) + " reported " + std::to_string(s.r.messages) + " messages; ";
        if (s.r.bytes != rec.expected_bytes)
            bad += std::string(who) + " reported " + std::to_string(s.r.bytes) + " bytes; ";
        if (s.r.checksum != rec.expected_checksum) bad += std::string(who) + " checksum " + hex64(s.r.checksum) + "; ";
    };
    check(spec.latency ? "ping (echoes received)" : "producer", rec.tx);
    check(spec.latency ? "pong (received)" : rec.rx_more.empty() ? "consumer" : "consumer 1", rec.rx);
    for (std::size_t i = 0; i < rec.rx_more.size(); ++i)
        check(("consumer " + std::to_string(i + 2)).c_str(), rec.rx_more[i]);
    if (spec.latency && rec.tx.r.rtt_ns.size() != moved) bad += "wrong number of round-trip samples; ";
    if (!bad.empty()) {
        rec.status = "failed";
        rec.reason = "MISMATCH: " + bad + "expected " + std::to_string(rec.expected_bytes) + " bytes, checksum " +
                     hex64(rec.expected_checksum);
        return;
    }
    if (!spec.latency) {
        std::int64_t last = rec.rx.r.end_ns;
        for (const auto& x : rec.rx_more) last = std::max(last, x.r.end_ns);
        const std::int64_t ns = last - rec.tx.r.start_ns;
        if (ns <= 0 || rec.tx.r.start_ns == 0) {
            rec.status = "failed";
            rec.reason = "impossible timestamps (consumer end before producer start)";
            return;
        }
        const std::uint64_t timed = spec.messages - spec.warmup;
        rec.secs = double(ns) * 1e-9;
        const double written = double(timed * spec.payload);
        rec.gbps = written * double(1 + rec.rx_more.size()) / rec.secs * 1e-9;  // delivered
        rec.tx_cpu_ns_per_byte = written > 0 ? rec.tx.r.cpu_s * 1e9 / written : 0;
        rec.msgs_per_s = double(timed) / rec.secs;
    } else {
        // The warm-up round trips are dropped.
        const auto& rtt = rec.tx.r.rtt_ns;
        const std::size_t skip = std::min<std::size_t>(spec.warmup, rtt.size());
        std::vector<double> one_way;
        for (std::size_t i = skip; i < rtt.size(); ++i) one_way.push_back(double(rtt[i]) / 2e3);
        std::sort(one_way.begin(), one_way.end());
        rec.samples = one_way.size();
        rec.p50_us = percentile(one_way, 0.50);
        rec.p99_us = percentile(one_way, 0.99);
        rec.max_us = one_way.empty() ? 0 : one_way.back();
        double sum = 0;
        for (double v : one_way) sum += v;
        rec.mean_us = one_way.empty() ? 0 : sum / double(one_way.size());
        rec.secs = double(rec.tx.r.end_ns - rec.tx.r.start_ns) * 1e-9;
    }
    rec.tx.r.rtt_ns.clear();  // summarized; not kept
    rec.status = "ok";
}

}  // namespace shmchan_bench
