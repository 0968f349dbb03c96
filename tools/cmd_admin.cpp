// shmchan engine, ls, gc and bench.
#include "cli.hpp"

#include <shmchan/shmchan.hpp>
#include <shmchan/engine.hpp>
#include <shmchan/worker.hpp>
#include <shmchan/testkit/bytes.hpp>
#include <shmchan/testkit/checksum.hpp>
#include <shmchan/testkit/io.hpp>

#include <algorithm>
#include <memory>
#include <thread>

#include <pthread.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <optional>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;


extern char** environ;

namespace shmchan_cli {

int cmd_engine(std::vector<std::string> args) {
    shmchan::engine_options opt;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--listen" && i + 1 < args.size()) {
            const std::string hp = args[++i];
            const auto colon = hp.rfind(':');
            if (colon == std::string::npos) throw usage_error("engine: --listen takes HOST:PORT");
            opt.host = hp.substr(0, colon);
            if (opt.host.size() > 2 && opt.host.front() == '[' && opt.host.back() == ']')  // [::1]:port
                opt.host = opt.host.substr(1, opt.host.size() - 2);
            const unsigned long port = std::strtoul(hp.c_str() + colon + 1, nullptr, 10);
            if (port > 65535) throw usage_error("engine: port out of range in " + hp);
            opt.port = static_cast<std::uint16_t>(port);
        } else if (args[i] == "--channel-ttl" && i + 1 < args.size()) {
            opt.channel_ttl = std::chrono::milliseconds(
                static_cast<long long>(std::stod(args[++i]) * 1000));
        } else if (args[i] == "--invocation-timeout" && i + 1 < args.size()) {
            opt.invocation_timeout = std::chrono::milliseconds(
                static_cast<long long>(std::stod(args[++i]) * 1000));
        } else if (args[i] == "--verbose") {
            opt.verbose = true;
        } else if (args[i] == "--tls-cert" && i + 1 < args.size()) {
            opt.tls_cert_file = args[++i];
        } else if (args[i] == "--tls-key" && i + 1 < args.size()) {
            opt.tls_key_file = args[++i];
        } else if (args[i] == "--tls-ca" && i + 1 < args.size()) {
            opt.tls_ca_file = args[++i];
        } else {
            throw usage_error("engine: unexpected argument " + args[i]);
        }
    }
    // Signals are taken by this thread (sigwait), never by the engine's threads.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    shmchan::engine eng(opt);
    std::printf("shmchan engine: listening on %s\n", eng.url().c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "shmchan engine: stopping (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    eng.stop();
    return 0;
}

const char* state_name(shmchan::end_info::state s) {
    switch (s) {
        case shmchan::end_info::state::unclaimed: return "unclaimed";
        case shmchan::end_info::state::active: return "active";
        case shmchan::end_info::state::closed: return "closed";
        case shmchan::end_info::state::aborted: return "aborted";
        case shmchan::end_info::state::dead: return "dead";
    }
    return "?";
}

std::string end_text(const shmchan::end_info& e) {
    std::string t = state_name(e.st);
    if (e.pid) t += " pid " + std::to_string(e.pid);
    return t;
}

void print_segment(const shmchan::segment_entry& s) {
    if (!s.readable) {
        std::printf("%s  (%s)\n", s.name.c_str(), s.problem.c_str());
        return;
    }
    const auto& i = s.info;
    const double fill = i.capacity ? double(i.committed - i.released) / double(i.capacity) : 0;
    std::printf("%s  capacity %s  moved %s  fill %.0f%%  writer %s  reader %s  creator pid %d%s%s\n",
                i.channel_id.c_str(), human(double(i.capacity)).c_str(), human(double(i.released)).c_str(),
                100 * fill, end_text(i.writer).c_str(), end_text(i.reader).c_str(), i.creator_pid,
                i.creator_alive ? "" : " (gone)", s.orphaned ? "  ORPHANED" : "");
    if (i.readers.size() > 1 || i.overflow != shmchan::channel_options::overflow_policy::block) {
        std::printf("  %zu readers, overflow %s\n", i.readers.size(),
                    i.overflow == shmchan::channel_options::overflow_policy::block ? "block" : "drop-oldest");
        for (std::size_t r = 0; r < i.readers.size(); ++r) {
            const auto& ri = i.readers[r];
            std::printf("  reader %zu  %s  at %s  lag %s\n", r, end_text(ri.end).c_str(),
                        human(double(ri.released)).c_str(),
                        human(double(i.committed >= ri.released ? i.committed - ri.released : 0)).c_str());
        }
    }
}

int cmd_ls(const std::vector<std::string>& args) {
    if (!args.empty()) throw usage_error("ls takes no arguments");
    const auto all = shmchan::list_segments();
    for (const auto& s : all) print_segment(s);
    std::printf("%zu channel segment(s) in %s\n", all.size(), shmchan::segment_directory().c_str());
    return 0;
}

int cmd_gc(const std::vector<std::string>& args) {
    bool dry = false;
    std::chrono::seconds min_age(10);
    std::vector<std::string> only;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--dry-run") dry = true;
        else if (args[i] == "--min-age" && i + 1 < args.size()) min_age = std::chrono::seconds(std::stoll(args[++i]));
        else if (!args[i].empty() && args[i][0] != '-') only.push_back(args[i]);
        else throw usage_error("gc: unexpected argument " + args[i]);
    }
    const auto removed = only.empty() ? shmchan::collect_garbage(dry, min_age)
                                      : shmchan::collect_garbage(only, dry, min_age);
    for (const auto& s : removed) {
        std::printf("%s ", dry ? "would remove" : "removed");
        print_segment(s);
    }
    std::printf("%s %zu segment(s)\n", dry ? "would remove" : "removed", removed.size());
    return 0;
}

// `shmchan bench ARGS`: execs the suite (shmchan_bench) with the same arguments, from next to
// this binary (an installation) or from the build tree it was built in.
int cmd_bench(const std::vector<std::string>& args) {
    std::vector<std::string> candidates;
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        std::string dir(self, static_cast<std::size_t>(n));
        dir.erase(dir.rfind('/') + 1);
        candidates.push_back(dir + "shmchan_bench");
    }
#ifdef SHMCHAN_BENCH_SUITE
    candidates.push_back(SHMCHAN_BENCH_SUITE);
#endif
    for (const auto& path : candidates) {
        if (::access(path.c_str(), X_OK) != 0) continue;
        std::vector<char*> argv{const_cast<char*>(path.c_str())};
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::setenv("SHMCHAN_BENCH_COMMAND", "shmchan bench", 1);  // how the report names the command
        ::execv(path.c_str(), argv.data());
        std::fprintf(stderr, "shmchan bench: cannot run %s: %s\n", path.c_str(), std::strerror(errno));
        return 1;
    }
    std::string looked;
    for (const auto& c : candidates) looked += (looked.empty() ? "" : ", ") + c;
    std::fprintf(stderr, "shmchan bench: the benchmark suite is not built (looked for %s); build with "
                         "-DSHMCHAN_BUILD_BENCH=ON\n", looked.c_str());
    return 1;
}

}  // namespace shmchan_cli
