// The end-state protocol of a channel segment: claiming an end, finishing it, and telling
// whether the peer's end is final or its holder dead. Reasoning (states, who unlinks) is in
// docs/architecture.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <system_error>

#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/ring.hpp"
#include "shmchan/shm/segment.hpp"

namespace shmchan::detail {

inline shm::end_state load_state(const std::atomic<std::uint32_t>& s,
                                 std::memory_order mo = std::memory_order_acquire) {
    return static_cast<shm::end_state>(s.load(mo));
}

// The process recorded as holding an end has died (reads /proc: slow path only).
bool owner_dead(const shm::owner& who);

// Claims an end by CAS unclaimed -> active, then records who holds it. errc::already_claimed
// when someone has it.
std::error_code claim(std::atomic<std::uint32_t>& state, shm::owner& who);

// Moves our end to a final state, wakes the peer, and removes the segment's name once neither
// end can ever use it again (the peer finished, or died).
void finish_end(shm::segment& seg, std::atomic<std::uint32_t>& mine, shm::end_state final_state,
                const std::atomic<std::uint32_t>& peer, const shm::owner& peer_who, shm::wait_line& wake);

// The peer's fate is known: it finished its end, or died.
bool peer_final_or_dead(const std::atomic<std::uint32_t>& peer_state, const shm::owner& peer);
std::function<bool()> peer_fate(const std::atomic<std::uint32_t>& peer_state, const shm::owner& peer);

}  // namespace shmchan::detail
