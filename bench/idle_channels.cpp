// The CPU cost of idle channels whose readers have event fds (issue 10, item 8): N channels in
// this process, event_fd() on every reader, nothing written; then the process's CPU time per
// second of wall time (getrusage) and its thread count (/proc/self/status) over S seconds.
//   armed: each reader drained to would_block after event_fd() (as an event loop leaves it)
//   idle:  event_fd() only (the initial "maybe" is signalled and never cleared or re-armed)
// Usage: shmchan_idle_bench [--channels N] [--seconds S] [--variant armed|idle|both]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "shmchan/shmchan.hpp"

namespace {

double cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto s = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
    return s(u.ru_utime) + s(u.ru_stime);
}

int threads() {
    std::ifstream f("/proc/self/status");
    for (std::string line; std::getline(f, line);)
        if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
    return -1;
}

void run(const char* variant, int n, double seconds) {
    const bool arm = std::strcmp(variant, "armed") == 0;
    std::vector<shmchan::channel> chans;
    chans.reserve(static_cast<std::size_t>(n));
    shmchan::channel_options o;
    o.capacity = 4096;  // the smallest ring: the cost measured is the watchers', not memory
    const int threads_before = threads();
    for (int i = 0; i < n; ++i) {
        chans.push_back(shmchan::create_channel(o));
        (void)chans.back().reader.event_fd();
        if (arm)
            while (chans.back().reader.try_next().error() != shmchan::errc::would_block) {
            }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the watchers settle
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const double c1 = cpu_seconds();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-6s channels=%-5d cpu=%6.2f%% of a core  threads=%d (before: %d)\n", variant, n,
                100.0 * (c1 - c0) / wall, threads(), threads_before);
    std::fflush(stdout);
    for (auto& c : chans) c.writer.abort("bench done");
}

}  // namespace

int main(int argc, char** argv) {
    int n = 1000;
    double seconds = 10;
    std::string variant = "both";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--channels") n = std::atoi(argv[i + 1]);
        else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
        else if (a == "--variant") variant = argv[i + 1];
        else {
            std::fprintf(stderr, "usage: %s [--channels N] [--seconds S] [--variant armed|idle|both]\n", argv[0]);
            return 2;
        }
    }
    if (variant == "both" || variant == "idle") run("idle", n, seconds);
    if (variant == "both" || variant == "armed") run("armed", n, seconds);
    return 0;
}
