// The end-state protocol of a channel segment: claiming an end, finishing it, and telling
// whether the peer's end is final or its holder dead. Liveness is the kernel's: an end's
// holder keeps an open-file-description lock on the end's byte of the segment file, dropped
// by the kernel when the holder dies (segment::lock / held). Reasoning (states, who unlinks)
// is in docs/architecture.md.
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

// One end of a segment as the protocol sees it: its state word, display owner and lock byte.
struct end_ref {
    std::atomic<std::uint32_t>& state;
    shm::owner& who;
    shm::lock_slot slot;
};
inline end_ref writer_end(shm::control_block* cb) { return {cb->producer.state, cb->producer.who, shm::lock_slot::writer}; }
// Reader i. \pre i < the segment's validated reader count.
inline end_ref reader_end(const shm::segment& seg, std::size_t i) {
    shm::consumer_line& l = seg.reader(i);
    return {l.state, l.who, shm::reader_slot(i)};
}

// Claims an end: takes its lock (errc::already_claimed when a live process holds it), then
// CAS unclaimed -> active (already_claimed when it was ever claimed), then records the pid for
// display. The lock is taken first, so an active end is unlocked only once its holder died.
// `before_active`, when given, runs under the lock once the end is seen unclaimed and before it
// is published active: a joining reader takes its place there, so that whoever sees it active
// (the writer's readers()) knows every record written from then on reaches it. Its error
// aborts the claim (the end stays unclaimed).
std::error_code claim(const shm::segment& seg, end_ref end, shm::slot_lock& lock,
                      const std::function<std::error_code()>& before_active = {});

// Moves our end to a final state, wakes the others (on `wake`), and removes the segment's name
// once no end can ever use it again (every other end finished, or died).
void finish_end(shm::segment& seg, end_ref mine, shm::end_state final_state, shm::wait_line& wake);

// An end's fate is known: it finished, or its holder died.
bool final_or_dead(const shm::segment& seg, end_ref end,
                   std::memory_order mo = std::memory_order_acquire);
// Every end of the segment (the writer and each reader) is final or dead.
bool all_ends_done(const shm::segment& seg, std::memory_order mo = std::memory_order_acquire);
// For a reader's event fd: the writer's fate.
std::function<bool()> writer_fate(const shm::segment& seg);

// Ends belong to the process that claimed them. This counts forks (pthread_atfork, registered
// in end_state.cpp): an end whose generation differs was claimed by an ancestor, and is inert
// here. Inline: every call of an end reads it.
extern std::atomic<std::uint32_t> fork_generation;
inline std::uint32_t process_generation() noexcept { return fork_generation.load(std::memory_order_relaxed); }

}  // namespace shmchan::detail
