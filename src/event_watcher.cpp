#include "event_watcher.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include "shmchan/error.hpp"
#include "shmchan/shm/wait.hpp"
#include "waiting.hpp"

namespace shmchan::detail {

int event_watcher::start(shm::wait_line& w, const std::atomic<std::uint64_t>& index, std::function<bool()> fate) {
    if (efd_ >= 0) return efd_;
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) throw error(errc::system_error, "eventfd failed");
    // Armed from the start: whatever is there already is worth a look.
    arms_.store(1, std::memory_order_relaxed);
    seen_.store(~std::uint64_t{0}, std::memory_order_relaxed);
    thread_ = std::thread([this, &w, &index, fate = std::move(fate)] { run(w, index, fate); });
    return efd_;
}

void event_watcher::arm(std::uint64_t seen) noexcept {
    if (efd_ < 0) return;
    seen_.store(seen, std::memory_order_relaxed);
    arms_.fetch_add(1, std::memory_order_seq_cst);
    if (idle_.load(std::memory_order_seq_cst)) shm::futex_wake_all(arms_);
}

void event_watcher::stop(shm::wait_line& w) {
    if (thread_.joinable()) {
        stop_.store(true, std::memory_order_seq_cst);
        arms_.fetch_add(1, std::memory_order_seq_cst);
        shm::futex_wake_all(arms_);
        shm::notify_always(w);
        thread_.join();
    }
    if (efd_ >= 0) ::close(efd_);
    efd_ = -1;
}

void event_watcher::abandon() noexcept {
    if (thread_.joinable()) thread_.detach();
    if (efd_ >= 0) ::close(efd_);
    efd_ = -1;
}

void event_watcher::run(shm::wait_line& w, const std::atomic<std::uint64_t>& index,
                        const std::function<bool()>& fate) {
    std::uint32_t handled = 0;                    // the arm last answered
    std::uint64_t signalled = ~std::uint64_t{0};  // the index at the last signal
    bool told = false;                            // the fate was signalled
    auto signal = [&](std::uint64_t at) {
        signalled = at;
        const std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(efd_, &one, sizeof one);
    };
    while (!stop_.load(std::memory_order_acquire)) {
        const std::uint32_t arms = arms_.load(std::memory_order_seq_cst);
        if (arms == handled) {  // not armed: sleep privately (Dekker with arm() over idle_)
            idle_.store(true, std::memory_order_seq_cst);
            if (arms_.load(std::memory_order_seq_cst) == handled)
                shm::futex_wait(arms_, handled, poll_interval);
            idle_.store(false, std::memory_order_relaxed);
            if (arms_.load(std::memory_order_acquire) == handled) {  // the poll interval passed
                const std::uint64_t now = index.load(std::memory_order_acquire);
                if (now != signalled) signal(now);
                else if (!told && fate()) told = true, signal(now);
            }
            continue;
        }
        const std::uint64_t seen = seen_.load(std::memory_order_relaxed);
        std::uint64_t now = 0;
        bool fire = false;
        sleep_once(w, deadline::none(), [&] {
            now = index.load(std::memory_order_acquire);
            fire = now != seen;
            if (!fire && !told && fate()) fire = told = true;  // reads /proc: at most per wake-up
            return fire || stop_.load(std::memory_order_acquire);
        });
        if (fire) {
            handled = arms;
            signal(now);
        }
    }
}

}  // namespace shmchan::detail
