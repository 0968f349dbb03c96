// Environment variables that replace a default for A/B runs of the benchmarks
// (docs/benchmarks.md, "How to run it"). Callers read each once, into a static.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>

namespace shmchan::detail {

// The decimal number in `name`; nothing when it is unset, empty or negative.
inline std::optional<std::uint64_t> env_number(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) return std::nullopt;
    const long long n = std::strtoll(v, nullptr, 10);
    if (n < 0) return std::nullopt;
    return static_cast<std::uint64_t>(n);
}

// Whether `name` is exactly "0": a default that is on, turned off for an A/B run.
inline bool env_off(const char* name) {
    const char* v = std::getenv(name);
    return v && v[0] == '0' && v[1] == '\0';
}

}  // namespace shmchan::detail
