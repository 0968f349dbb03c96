#include "end_state.hpp"

#include <unistd.h>

#include "shmchan/error.hpp"
#include "shmchan/shm/wait.hpp"

namespace shmchan::detail {

using shm::end_state;

bool owner_dead(const shm::owner& who) {
    return !shm::process_alive(who.pid.load(std::memory_order_relaxed),
                               who.start_time.load(std::memory_order_relaxed));
}

std::error_code claim(std::atomic<std::uint32_t>& state, shm::owner& who) {
    auto expected = static_cast<std::uint32_t>(end_state::unclaimed);
    if (!state.compare_exchange_strong(expected, static_cast<std::uint32_t>(end_state::active),
                                       std::memory_order_acq_rel))
        return errc::already_claimed;
    // Until pid is stored it reads 0, which liveness checks treat as alive.
    who.start_time.store(shm::self_start_time(), std::memory_order_relaxed);
    who.pid.store(::getpid(), std::memory_order_release);
    return {};
}

// SYNC: seq_cst exchange then seq_cst load, on both ends: at least one of two ends finishing
// at the same time sees the other as final, so the name is always removed.
void finish_end(shm::segment& seg, std::atomic<std::uint32_t>& mine, end_state final_state,
                const std::atomic<std::uint32_t>& peer, const shm::owner& peer_who, shm::wait_line& wake) {
    mine.exchange(static_cast<std::uint32_t>(final_state), std::memory_order_seq_cst);
    shm::notify_always(wake);
    const end_state p = load_state(peer, std::memory_order_seq_cst);
    if (p == end_state::closed || p == end_state::aborted ||
        (p == end_state::active && owner_dead(peer_who)))
        seg.unlink();
}

bool peer_final_or_dead(const std::atomic<std::uint32_t>& peer_state, const shm::owner& peer) {
    const end_state p = load_state(peer_state);
    return p == end_state::closed || p == end_state::aborted || (p == end_state::active && owner_dead(peer));
}

std::function<bool()> peer_fate(const std::atomic<std::uint32_t>& peer_state, const shm::owner& peer) {
    return [&peer_state, &peer] { return peer_final_or_dead(peer_state, peer); };
}

}  // namespace shmchan::detail
