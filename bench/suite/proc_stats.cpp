#include "proc_stats.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <thread>
#include <unistd.h>

namespace shmchan_bench {

using steady = std::chrono::steady_clock;

long vm_hwm_kib(const std::string& status_path) {
    std::ifstream f(status_path);
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return 0;
}

double machine_busy_s() {
    std::FILE* f = std::fopen("/proc/stat", "re");
    if (!f) return 0;
    unsigned long long v[8] = {};
    double busy = 0;
    if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                    &v[6], &v[7]) == 8)
        busy = double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / double(::sysconf(_SC_CLK_TCK));
    std::fclose(f);
    return busy;
}

double process_cpu_s(int pid) {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
    if (!f) return 0;
    char buf[1024];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* p = std::strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (p && std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
        return double(ut + st) / double(::sysconf(_SC_CLK_TCK));
    return 0;
}

double self_cpu_s() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

namespace {

std::string utc_now() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char b[64];
    std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return b;
}

}  // namespace

machine_info probe_machine(const std::vector<std::string>& argv) {
    machine_info m;
    m.nproc = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("model name", 0) == 0) {
            m.cpu_model = line.substr(line.find(':') + 2);
            break;
        }
    utsname u{};
    if (::uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    m.hostname = host;
    m.date_utc = utc_now();
    for (const auto& a : argv) m.command += (m.command.empty() ? "" : " ") + a;
    return m;
}

// The placement probe (see machine_info::line_rtt_ns): two threads pinned to CPUs 0 and 1
// bounce one cache line; the median of 15 batches of 2000 round trips. 0 when fewer than 2 CPUs
// or pinning is refused, or when the harness may not run on both (taskset).
double line_round_trip_ns() {
    if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) return 0;
    // The harness's own affinity (taskset), given back afterwards: its sides inherit it.
    cpu_set_t mine;
    if (::pthread_getaffinity_np(::pthread_self(), sizeof mine, &mine) != 0) return 0;
    if (!CPU_ISSET(0, &mine) || !CPU_ISSET(1, &mine)) return 0;
    alignas(64) std::atomic<std::uint64_t> ball{0};
    std::atomic<bool> pinned_ok{true};
    auto pin = [&](int cpu) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) != 0) pinned_ok = false;
    };
    constexpr std::uint64_t batch = 2000, batches = 15;
    std::thread echo([&] {
        pin(1);
        for (std::uint64_t i = 0; i < batch * batches; ++i) {
            while (ball.load(std::memory_order_acquire) != 2 * i + 1)
                if (!pinned_ok.load(std::memory_order_relaxed)) return;
            ball.store(2 * i + 2, std::memory_order_release);
        }
    });
    pin(0);
    std::vector<double> ns;
    for (std::uint64_t b = 0; b < batches && pinned_ok; ++b) {
        const auto t0 = steady::now();
        for (std::uint64_t i = b * batch; i < (b + 1) * batch; ++i) {
            ball.store(2 * i + 1, std::memory_order_release);
            while (ball.load(std::memory_order_acquire) != 2 * i + 2)
                if (!pinned_ok.load(std::memory_order_relaxed)) break;
        }
        ns.push_back(std::chrono::duration<double, std::nano>(steady::now() - t0).count() / double(batch));
    }
    echo.join();
    ::pthread_setaffinity_np(::pthread_self(), sizeof mine, &mine);  // where it ran before
    if (!pinned_ok || ns.empty()) return 0;
    std::sort(ns.begin(), ns.end());
    return ns[ns.size() / 2];
}


}  // namespace shmchan_bench
