#include "end_state.hpp"
#include "shm_ends.hpp"

#include <pthread.h>
#include <unistd.h>

#include <vector>

#include "shmchan/error.hpp"
#include "shmchan/shm/wait.hpp"

namespace shmchan::detail {

using shm::end_state;

std::atomic<std::uint32_t> fork_generation{0};

namespace {
void forked_child() noexcept { fork_generation.fetch_add(1, std::memory_order_relaxed); }
// Registered when this file is linked in, which every program using ends does (claim() is here).
[[maybe_unused]] const bool atfork_registered = ::pthread_atfork(nullptr, nullptr, forked_child) == 0;
}  // namespace

std::error_code claim(const shm::segment& seg, end_ref end, shm::slot_lock& lock,
                      const std::function<std::error_code()>& before_active) {
    shm::slot_lock l = seg.lock(end.slot);
    if (!l) return errc::already_claimed;
    auto expected = static_cast<std::uint32_t>(end_state::unclaimed);
    // Under the lock only a claim (which locks first) moves an end off unclaimed, so the CAS
    // below succeeds unless the segment lies; the hook never touches an end already taken.
    if (before_active) {
        if (end.state.load(std::memory_order_acquire) != expected) return errc::already_claimed;
        if (auto e = before_active()) return e;
    }
    if (!end.state.compare_exchange_strong(expected, static_cast<std::uint32_t>(end_state::active),
                                           std::memory_order_acq_rel))
        return errc::already_claimed;
    end.who.start_time.store(shm::self_start_time(), std::memory_order_relaxed);
    end.who.pid.store(::getpid(), std::memory_order_release);
    lock = std::move(l);
    return {};
}

// SYNC: seq_cst exchange then seq_cst loads, on every end: of several ends finishing at the
// same time, at least the last to exchange sees all the others as final, so the name is always
// removed.
void finish_end(shm::segment& seg, end_ref mine, end_state final_state, shm::wait_line& wake) {
    mine.state.exchange(static_cast<std::uint32_t>(final_state), std::memory_order_seq_cst);
    shm::notify_always(wake);
    if (all_ends_done(seg, std::memory_order_seq_cst)) seg.unlink();
}

bool final_or_dead(const shm::segment& seg, end_ref end, std::memory_order mo) {
    const end_state p = load_state(end.state, mo);
    return p == end_state::closed || p == end_state::aborted || (p == end_state::active && !seg.held(end.slot));
}

bool all_ends_done(const shm::segment& seg, std::memory_order mo) {
    if (!final_or_dead(seg, writer_end(seg.control()), mo)) return false;
    for (std::size_t i = 0; i < seg.geometry().readers; ++i)
        if (!final_or_dead(seg, reader_end(seg, i), mo)) return false;
    return true;
}

std::function<bool()> writer_fate(const shm::segment& seg) {
    return [&seg] { return final_or_dead(seg, writer_end(seg.control())); };
}

creator_guard::~creator_guard() {
    const auto unclaimed = static_cast<std::uint32_t>(end_state::unclaimed);
    const std::size_t n = seg_->geometry().readers;
    std::vector<end_ref> ends{writer_end(seg_->control())};
    for (std::size_t i = 0; i < n; ++i) ends.push_back(reader_end(*seg_, i));
    for (const end_ref& e : ends)
        if (e.state.load(std::memory_order_acquire) != unclaimed) return;
    // Holding every end's lock, no claim can be under way (a claim locks before its CAS).
    std::vector<shm::slot_lock> locks;
    for (const end_ref& e : ends) {
        locks.push_back(seg_->lock(e.slot));
        if (!locks.back()) return;
    }
    for (const end_ref& e : ends) {
        auto expected = unclaimed;
        // The writer first: when its CAS fails, someone claimed it after all (not possible
        // under its lock, but the segment is shared memory).
        if (!e.state.compare_exchange_strong(expected, static_cast<std::uint32_t>(end_state::closed),
                                             std::memory_order_acq_rel) &&
            &e == &ends.front())
            return;
    }
    seg_->unlink();
}

}  // namespace shmchan::detail
