// Whether to claim a loan's cache lines before handing it out (channel_options::loan_claim).
//
// Claiming (zeroing with full-line stores, shmchan/memory.hpp) made loans ~3x faster to fill
// when the reader's core is far away (another CCX; the lines must be fetched first) and
// 25-50% slower when it is near (the zeroing is then an extra pass). Where the two cores sit
// is not known to a program and can change while it runs (a VM's vCPUs moved between the
// host's cores mid-run here), so the writer measures: the time from handing out a loan to its
// commit, per byte, with and without claiming. Each way's cost is the least of its last four
// samples (a preempted or page-faulting fill only ever takes longer, and must not decide); the
// writer uses the cheaper way and tries the other one every `explore_every` loans to notice
// when that changes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>


namespace shmchan::shm {

class claim_chooser {
public:
    static constexpr std::uint32_t explore_every = 32;
    static constexpr unsigned window = 4;

    // For the next loan: claim it or not.
    bool next() noexcept {
        ++count_;
        if (seen_[0] < 2 || seen_[1] < 2) return mode_ = seen_[1] <= seen_[0];  // learn both
        const bool best = claiming();
        return mode_ = (count_ % explore_every == 0) ? !best : best;
    }
    // The loan handed out by the last next() took `ticks` from loan to commit for `bytes`.
    void took(std::uint64_t ticks, std::size_t bytes) noexcept {
        if (!bytes) return;
        const unsigned m = mode_ ? 1 : 0;
        samples_[m][seen_[m] % window] = double(ticks) / double(bytes);
        ++seen_[m];
    }
    bool claiming() const noexcept { return cost(true) < cost(false); }  // the current preference
    double cost(bool claimed) const noexcept {
        const auto& s = samples_[claimed ? 1 : 0];
        return *std::min_element(std::begin(s), std::end(s));
    }

private:
    static constexpr double none = std::numeric_limits<double>::infinity();
    double samples_[2][window] = {{none, none, none, none}, {none, none, none, none}};  // ticks per byte
    std::uint32_t seen_[2] = {0, 0};
    std::uint32_t count_ = 0;
    bool mode_ = false;
};

// A cheap monotonic tick count for the measurements above (rdtsc on x86-64: ~10 ns, where a
// clock_gettime would cost ~3% of filling a 16 KiB loan).
inline std::uint64_t ticks() noexcept;

}  // namespace shmchan::shm

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <x86intrin.h>
inline std::uint64_t shmchan::shm::ticks() noexcept { return __rdtsc(); }
#else
#include <chrono>
inline std::uint64_t shmchan::shm::ticks() noexcept {
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}
#endif
