// Reading a results.json back: --report (the tables, CSV, JSON and plots again) and --verify.
#include "harness.hpp"

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

namespace shmchan_bench {

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
            s.r.cpu_s = x.value("cpu_s", 0.0);
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
            r.readers = x.value("readers", std::size_t{1});
            if (x.contains("rx_more"))
                for (const auto& y : x.at("rx_more")) r.rx_more.push_back(side_of(y));
            r.tx_cpu_ns_per_byte = x.value("tx_cpu_ns_per_byte", 0.0);
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
    auto expected = [](std::uint64_t bytes) { return expected_stream_checksum(bytes); };
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
                std::vector<std::pair<std::string, const nlohmann::json*>> sides = {{"tx", &r.at("tx")}, {"rx", &r.at("rx")}};
                if (r.contains("rx_more"))
                    for (std::size_t i = 0; i < r.at("rx_more").size(); ++i)
                        sides.push_back({"rx " + std::to_string(i + 2), &r.at("rx_more").at(i)});
                for (const auto& [side, sp] : sides) {
                    const auto& s = *sp;
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
