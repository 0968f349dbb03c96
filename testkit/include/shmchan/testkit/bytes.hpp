// Byte counts on command lines and in output, written alike by the CLI, the benchmarks and the
// test tools.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace shmchan::testkit {

// A byte count that parse_bytes cannot read; callers report it as a usage error.
struct bad_byte_count : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// "4096", "64B", "4K" / "4k" / "4KiB", "16M" / "16MiB", "2G" / "2GiB" (powers of 1024).
// Throws bad_byte_count on anything else.
std::uint64_t parse_bytes(const std::string& s);

// Rounded, for rates and progress: "1.5 MiB" (one decimal, B to TiB).
std::string human(double bytes);

// Exact, for sizes that are labels: "64 B", "4 KiB", "16 MiB"; a size that is no whole number
// of the next unit stays in the smaller one ("1536 B").
std::string human_size(std::uint64_t bytes);

}  // namespace shmchan::testkit
