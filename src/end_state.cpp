#include "end_state.hpp"
#include "shm_ends.hpp"

#include <pthread.h>
#include <unistd.h>

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

std::error_code claim(const shm::segment& seg, end_ref end, shm::slot_lock& lock) {
    shm::slot_lock l = seg.lock(end.slot);
    if (!l) return errc::already_claimed;
    auto expected = static_cast<std::uint32_t>(end_state::unclaimed);
    if (!end.state.compare_exchange_strong(expected, static_cast<std::uint32_t>(end_state::active),
                                           std::memory_order_acq_rel))
        return errc::already_claimed;
    end.who.start_time.store(shm::self_start_time(), std::memory_order_relaxed);
    end.who.pid.store(::getpid(), std::memory_order_release);
    lock = std::move(l);
    return {};
}

// SYNC: seq_cst exchange then seq_cst load, on both ends: at least one of two ends finishing
// at the same time sees the other as final, so the name is always removed.
void finish_end(shm::segment& seg, end_ref mine, end_state final_state, end_ref peer, shm::wait_line& wake) {
    mine.state.exchange(static_cast<std::uint32_t>(final_state), std::memory_order_seq_cst);
    shm::notify_always(wake);
    if (peer_final_or_dead(seg, peer, std::memory_order_seq_cst)) seg.unlink();
}

bool peer_final_or_dead(const shm::segment& seg, end_ref peer, std::memory_order mo) {
    const end_state p = load_state(peer.state, mo);
    return p == end_state::closed || p == end_state::aborted || (p == end_state::active && !seg.held(peer.slot));
}

std::function<bool()> peer_fate(const shm::segment& seg, end_ref peer) {
    return [&seg, peer] { return peer_final_or_dead(seg, peer); };
}

creator_guard::~creator_guard() {
    shm::control_block* cb = seg_->control();
    const auto unclaimed = static_cast<std::uint32_t>(end_state::unclaimed);
    if (cb->producer.state.load(std::memory_order_acquire) != unclaimed ||
        cb->consumer.state.load(std::memory_order_acquire) != unclaimed)
        return;
    // Holding both locks, no claim can be under way (a claim locks before its CAS).
    const shm::slot_lock w = seg_->lock(shm::lock_slot::writer);
    const shm::slot_lock r = seg_->lock(shm::lock_slot::reader);
    if (!w || !r) return;
    auto expected = unclaimed;
    if (!cb->producer.state.compare_exchange_strong(expected, static_cast<std::uint32_t>(end_state::closed),
                                                    std::memory_order_acq_rel))
        return;
    expected = unclaimed;
    cb->consumer.state.compare_exchange_strong(expected, static_cast<std::uint32_t>(end_state::closed),
                                               std::memory_order_acq_rel);
    seg_->unlink();
}

}  // namespace shmchan::detail
