#include "shmchan/testkit/bytes.hpp"
#include "shmchan/testkit/checksum.hpp"
#include "shmchan/testkit/io.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <unistd.h>
#include <vector>

namespace shmchan::testkit {

std::uint64_t expected_checksum(std::uint64_t n) {
    stream_checksum sum;
    std::vector<std::byte> buf(std::size_t{1} << 20);
    for (std::uint64_t off = 0; off < n; off += buf.size()) {
        const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), n - off));
        fill_pattern(std::span(buf.data(), k), off);
        sum.update(std::span(buf.data(), k));
    }
    return sum.value();
}

std::uint64_t parse_bytes(const std::string& s) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (errno || end == s.c_str()) throw bad_byte_count("not a byte count: " + s);
    const std::string suf(end);
    if (suf == "K" || suf == "k" || suf == "KiB") v <<= 10;
    else if (suf == "M" || suf == "MiB") v <<= 20;
    else if (suf == "G" || suf == "GiB") v <<= 30;
    else if (!suf.empty() && suf != "B") throw bad_byte_count("unknown size suffix in " + s);
    return v;
}

std::string human(double bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        ++u;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f %s", bytes, units[u]);
    return buf;
}

std::string human_size(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB"};
    int u = 0;
    while (bytes >= 1024 && bytes % 1024 == 0 && u < 3) {
        bytes /= 1024;
        ++u;
    }
    return std::to_string(bytes) + " " + units[u];
}

bool write_all(int fd, const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

}  // namespace shmchan::testkit
