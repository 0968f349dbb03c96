#include "shmchan/shm/wait.hpp"

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <cstdlib>
#include <sys/syscall.h>
#include <unistd.h>

namespace shmchan::shm {

namespace {
std::uint32_t* futex_addr(std::atomic<std::uint32_t>& word) noexcept {
    // layout.hpp asserts that atomic<uint32_t> is a plain 32-bit word.
    return reinterpret_cast<std::uint32_t*>(&word);
}
}  // namespace

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::chrono::nanoseconds timeout) noexcept {
    if (timeout.count() <= 0) return;
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    // EAGAIN (value changed), EINTR and ETIMEDOUT all mean: go and look again.
    syscall(SYS_futex, futex_addr(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept {
    syscall(SYS_futex, futex_addr(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

namespace {
bool register_membarrier() noexcept {
    if (const char* off = std::getenv("SHMCHAN_NO_MEMBARRIER"); off && *off && *off != '0') return false;
    const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED)) return false;
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
}
const bool registered = register_membarrier();
}  // namespace

bool fast_wake() noexcept { return registered; }

bool sleeper_barrier() noexcept {
    return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0;
}

std::uint64_t process_start_time(pid_t pid) noexcept {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    std::FILE* f = std::fopen(path, "re");
    if (!f) return 0;
    char buf[1024];
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    const char* p = std::strrchr(buf, ')');
    if (!p) return 0;
    ++p;
    // Fields after ')': 3 state ... 22 starttime, i.e. the 20th token.
    char state = 0;
    unsigned long long start = 0;
    int field = 2;
    const char* tok = p;
    while (*tok) {
        while (*tok == ' ') ++tok;
        if (!*tok) break;
        ++field;
        if (field == 3) state = *tok;
        if (field == 22) {
            start = std::strtoull(tok, nullptr, 10);
            break;
        }
        while (*tok && *tok != ' ') ++tok;
    }
    if (state == 'Z' || state == 'X') return 0;  // a zombie is as good as gone
    return start;
}

std::uint64_t self_start_time() noexcept {
    static const std::uint64_t t = process_start_time(getpid());
    return t;
}

}  // namespace shmchan::shm
