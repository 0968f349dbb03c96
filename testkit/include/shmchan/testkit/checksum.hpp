// A fast, order-sensitive checksum of a byte stream, independent of how the stream is cut
// into chunks, and a matching generator of test data. Used by the demo, the tests and the
// benchmarks so that every transport is charged for touching every byte. Test data, not API:
// the library never uses it, so it lives in the (never installed) test kit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace shmchan {

// Fletcher-style sums over little-endian 64-bit words of the stream.
class stream_checksum {
public:
    void update(std::span<const std::byte> bytes) noexcept {
        const std::byte* p = bytes.data();
        std::size_t n = bytes.size();
        total_ += n;
        while (pending_ && n) {  // finish a word begun by the previous chunk
            word_ |= std::uint64_t(std::to_integer<std::uint8_t>(*p++)) << (8 * pending_);
            --n;
            if (++pending_ == 8) {
                mix(word_);
                word_ = 0;
                pending_ = 0;
            }
        }
        std::uint64_t a = a_, b = b_;
        // Eight words per step in eight independent lanes (four 2 x 64-bit vectors, SSE2/NEON),
        // folded back exactly: the serial sums are a' = a + sum w_j and b' = b + N*a +
        // sum (N - j) w_j; with S steps, word j = 8k + l of lane l weighs 8(S - k) - l. The
        // serial loop's a -> b dependency held it near 20 GB/s, below what the transports move.
        if (const std::size_t steps = n / 64) {
            using u64x2 [[gnu::vector_size(16)]] = std::uint64_t;
            u64x2 a0{}, a1{}, a2{}, a3{}, b0{}, b1{}, b2{}, b3{};
            for (std::size_t k = 0; k < steps; ++k, p += 64) {
                u64x2 w0, w1, w2, w3;
                std::memcpy(&w0, p, 16);
                std::memcpy(&w1, p + 16, 16);
                std::memcpy(&w2, p + 32, 16);
                std::memcpy(&w3, p + 48, 16);
                a0 += w0, a1 += w1, a2 += w2, a3 += w3;
                b0 += a0, b1 += a1, b2 += a2, b3 += a3;
            }
            const u64x2 la[4] = {a0, a1, a2, a3}, lb[4] = {b0, b1, b2, b3};
            std::uint64_t sa = 0, sb = 0;
            for (unsigned v = 0; v < 4; ++v)
                for (unsigned e = 0; e < 2; ++e) {
                    sa += la[v][e];
                    sb += 8 * lb[v][e] - std::uint64_t(2 * v + e) * la[v][e];
                }
            b += 8 * steps * a + sb;
            a += sa;
            n -= 64 * steps;
        }
        for (; n >= 8; n -= 8, p += 8) {
            std::uint64_t w;
            std::memcpy(&w, p, 8);
            a += w;
            b += a;
        }
        a_ = a;
        b_ = b;
        for (; n; --n) word_ |= std::uint64_t(std::to_integer<std::uint8_t>(*p++)) << (8 * pending_++);
    }
    std::uint64_t value() const noexcept {
        std::uint64_t a = a_, b = b_;
        if (pending_) {
            a += word_;
            b += a;
        }
        return b ^ (a * 0x9E3779B97F4A7C15ULL) ^ (total_ * 0xC2B2AE3D27D4EB4FULL);
    }
    std::uint64_t bytes() const noexcept { return total_; }

private:
    void mix(std::uint64_t w) noexcept {
        a_ += w;
        b_ += a_;
    }
    std::uint64_t a_ = 0, b_ = 0, word_ = 0, total_ = 0;
    unsigned pending_ = 0;
};

// Fills `out` with the bytes at stream positions [offset, offset + out.size()) of a fixed
// pseudo-random pattern (word i of the stream is a cheap mix of i).
inline void fill_pattern(std::span<std::byte> out, std::uint64_t offset) noexcept {
    std::byte* p = out.data();
    std::size_t n = out.size();
    auto word = [](std::uint64_t i) {
        std::uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL;
        x ^= x >> 31;
        return x * 0xD6E8FEB86659FD93ULL;
    };
    while (n && (offset & 7)) {
        *p++ = std::byte(word(offset >> 3) >> (8 * (offset & 7)));
        ++offset;
        --n;
    }
    std::uint64_t i = offset >> 3;
    for (; n >= 8; n -= 8, p += 8, ++i, offset += 8) {
        const std::uint64_t w = word(i);
        std::memcpy(p, &w, 8);
    }
    for (; n; --n, ++offset) *p++ = std::byte(word(offset >> 3) >> (8 * (offset & 7)));
}

}  // namespace shmchan

namespace shmchan::testkit {

// The checksum of the first `n` bytes of fill_pattern's stream (from offset 0): what a reader of
// a generated stream must report. Regenerates the stream, so callers keep it out of timings.
std::uint64_t expected_checksum(std::uint64_t n);

}  // namespace shmchan::testkit
