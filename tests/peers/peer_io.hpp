// The peers' side of the tests' line protocol: one line per event on stdout, flushed at once
// so that the test reading it follows along, and flags read from the command line.
#pragma once

#include <csignal>
#include <cstdio>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "../support/streams.hpp"

namespace shmchan::peers {

// One line, whole even when several threads report (load_peer).
inline void say(const std::string& line) {
    static std::mutex mu;
    std::lock_guard lk(mu);
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

// The value after `flag`, or `def`.
inline std::string arg_after(const std::vector<std::string>& a, const std::string& flag, const std::string& def = {}) {
    for (std::size_t i = 0; i + 1 < a.size(); ++i)
        if (a[i] == flag) return a[i + 1];
    return def;
}
inline bool has(const std::vector<std::string>& a, const std::string& flag) {
    for (auto& s : a)
        if (s == flag) return true;
    return false;
}

// "ok", the errc's name, or "other".
inline const char* name(std::error_code e) { return test::errc_name(e); }

// Until the test kills this process.
[[noreturn]] inline void sleep_forever() {
    for (;;) ::pause();
}

}  // namespace shmchan::peers
