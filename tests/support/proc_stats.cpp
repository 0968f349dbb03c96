#include "proc_stats.hpp"

#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <string>
#include <unistd.h>

namespace shmchan::test {

proc_sample sample_process(pid_t pid) {
    proc_sample s;
    const std::string base = "/proc/" + std::to_string(pid);
    if (DIR* d = ::opendir((base + "/fd").c_str())) {
        s.fds = 0;
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') ++s.fds;
        ::closedir(d);
        if (pid == ::getpid()) --s.fds;  // the directory we were reading
    }
    std::ifstream st(base + "/status");
    for (std::string line; std::getline(st, line);) {
        auto num = [&](const char* key) { return std::strtol(line.c_str() + std::strlen(key), nullptr, 10); };
        if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = num("VmRSS:");
        else if (line.rfind("VmHWM:", 0) == 0) s.hwm_kib = num("VmHWM:");
        else if (line.rfind("Threads:", 0) == 0) s.threads = static_cast<int>(num("Threads:"));
    }
    std::ifstream maps(base + "/maps");
    s.shm_maps = 0;
    for (std::string line; std::getline(maps, line);) s.shm_maps += line.find("/dev/shm/shmchan-") != std::string::npos;
    return s;
}

long minor_faults() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

long faults_writing_pages(void* p, std::size_t n) {
    const long before = minor_faults();
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    for (std::size_t off = 0; off < n; off += page) static_cast<volatile unsigned char*>(p)[off] = 1;
    return minor_faults() - before;
}

rlim_t raise_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    ::getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur;
}

}  // namespace shmchan::test
