// The items a reader keeps alive when it may hold several (channel_options::max_held > 1):
// they are released in any order, from any thread, and the transport gets back the longest
// released prefix (in delivery order) at once. One lock, taken once per item and per release.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>

namespace shmchan::detail {

class held_items {
public:
    explicit held_items(std::size_t max) : max_(max ? max : 1) {}

    bool enabled() const noexcept { return max_ > 1; }

    // True when max() items are alive (next() must refuse another).
    bool full() {
        std::lock_guard g(mu_);
        return live_.size() >= max_;
    }
    // Records a delivered item; `cookie` is what the transport needs back to free it and every
    // item before it (the shared-memory reader: the ring position after the record). Returns
    // the item's token.
    std::uint64_t add(std::uint64_t cookie) {
        std::lock_guard g(mu_);
        live_.push_back({next_, cookie, false});
        return next_++;
    }
    // Marks `token` released (twice, or unknown: nothing). When that completes a released
    // prefix, calls free_to(cookie of its last item) with the lock held, so that frees happen
    // in delivery order whichever thread releases.
    template <class F>
    void release(std::uint64_t token, F&& free_to) {
        std::lock_guard g(mu_);
        if (live_.empty() || token < live_.front().token) return;
        const std::uint64_t i = token - live_.front().token;
        if (i >= live_.size() || live_[i].released) return;
        live_[i].released = true;
        bool any = false;
        std::uint64_t last = 0;
        while (!live_.empty() && live_.front().released) {
            last = live_.front().cookie;
            any = true;
            live_.pop_front();
        }
        if (any) free_to(last);
    }
    // For a transport that must not run concurrently with a release.
    std::mutex& lock() noexcept { return mu_; }
    // Items delivered and not released yet.
    std::size_t alive() {
        std::lock_guard g(mu_);
        return live_.size();
    }

private:
    struct entry {
        std::uint64_t token;
        std::uint64_t cookie;
        bool released;
    };
    std::mutex mu_;
    std::deque<entry> live_;
    std::uint64_t next_ = 1;
    const std::size_t max_;
};

}  // namespace shmchan::detail
