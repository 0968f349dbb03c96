// stream_checksum: the same value however the stream is cut, equal to the plain serial
// definition (the vector lanes are an optimisation, not a different checksum), and sensitive to
// order and to any single changed byte.
#include <shmchan/testkit/checksum.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <vector>

namespace {

// The definition, one 64-bit little-endian word at a time (tail bytes as a short word).
std::uint64_t serial_checksum(const std::vector<std::byte>& s) {
    std::uint64_t a = 0, b = 0;
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        std::uint64_t w = 0;
        for (unsigned k = 0; k < 8; ++k) w |= std::uint64_t(std::to_integer<std::uint8_t>(s[i + k])) << (8 * k);
        a += w;
        b += a;
    }
    if (i < s.size()) {
        std::uint64_t w = 0;
        for (unsigned k = 0; i + k < s.size(); ++k) w |= std::uint64_t(std::to_integer<std::uint8_t>(s[i + k])) << (8 * k);
        a += w;
        b += a;
    }
    return b ^ (a * 0x9E3779B97F4A7C15ULL) ^ (std::uint64_t(s.size()) * 0xC2B2AE3D27D4EB4FULL);
}

std::vector<std::byte> random_bytes(std::size_t n, std::mt19937_64& rng) {
    std::vector<std::byte> v(n);
    for (auto& b : v) b = std::byte(rng());
    return v;
}

std::uint64_t cut_randomly(const std::vector<std::byte>& s, std::mt19937_64& rng, std::size_t max_piece) {
    shmchan::stream_checksum c;
    for (std::size_t off = 0; off < s.size();) {
        const std::size_t n = std::min<std::size_t>(s.size() - off, rng() % (max_piece + 1));
        c.update(std::span(s.data() + off, n));
        off += n;
    }
    return c.value();
}

}  // namespace

TEST_CASE("checksum: equal to the serial definition for any cut of the stream", "[checksum]") {
    std::mt19937_64 rng(42);
    for (std::size_t n : {0u, 1u, 7u, 8u, 63u, 64u, 65u, 127u, 128u, 1000u, 4096u, 100003u}) {
        const auto s = random_bytes(n, rng);
        const std::uint64_t want = serial_checksum(s);
        shmchan::stream_checksum whole;
        whole.update(s);
        INFO("size " << n);
        CHECK(whole.value() == want);
        CHECK(whole.bytes() == n);
        for (std::size_t piece : {1u, 9u, 70u, 1000u}) CHECK(cut_randomly(s, rng, piece) == want);
    }
}

TEST_CASE("checksum: a changed byte, a swap of two words or a missing byte changes it", "[checksum]") {
    std::mt19937_64 rng(7);
    const auto s = random_bytes(10000, rng);
    shmchan::stream_checksum base;
    base.update(s);
    for (std::size_t at : {0u, 5u, 64u, 511u, 9999u}) {
        auto t = s;
        t[at] ^= std::byte{0x10};
        shmchan::stream_checksum c;
        c.update(t);
        CHECK(c.value() != base.value());
    }
    auto swapped = s;  // two different 8-byte words exchanged: the sums a stay equal, b does not
    std::swap_ranges(swapped.begin() + 64, swapped.begin() + 72, swapped.begin() + 4096);
    REQUIRE(swapped != s);
    shmchan::stream_checksum c;
    c.update(swapped);
    CHECK(c.value() != base.value());
    shmchan::stream_checksum shorter;
    shorter.update(std::span(s.data(), s.size() - 1));
    CHECK(shorter.value() != base.value());
}

TEST_CASE("checksum: fill_pattern is a stream, however it is cut", "[checksum]") {
    std::vector<std::byte> whole(5000), parts(5000);
    shmchan::fill_pattern(whole, 123);
    std::mt19937_64 rng(3);
    for (std::size_t off = 0; off < parts.size();) {
        const std::size_t n = std::min<std::size_t>(parts.size() - off, rng() % 100);
        shmchan::fill_pattern(std::span(parts.data() + off, n), 123 + off);
        off += n;
    }
    CHECK(whole == parts);
}
