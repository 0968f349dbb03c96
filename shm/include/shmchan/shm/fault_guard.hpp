// SIGBUS on a mapped segment as a flag rather than death. Whoever holds the segment file can
// ftruncate it; touching a page past the new end raises SIGBUS, whose default action kills
// the process. A process-wide handler (installed on the first guard_mapping) replaces a
// guarded mapping that faults with anonymous zero pages, marks it faulted and returns, so the
// faulting access retries on the zero pages. Users check faulted() on their slow paths and
// treat the mapping as corrupt: its contents are gone. SIGBUS anywhere else goes to the
// handler that was there before (or kills, as the default action does).
//
// The handler works only while it is installed: a library that replaces the SIGBUS handler
// later without chaining turns truncation back into death.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shmchan::shm {

// A registration of one mapping; empty by default (faulted() is then false).
class guard_token {
public:
    guard_token() = default;
    // The mapping was replaced by zero pages after a SIGBUS (its file was truncated).
    bool faulted() const noexcept {
        // SYNC: acquire pairs with the handler's release store after its mmap (any thread).
        return flag_ && flag_->load(std::memory_order_acquire) != 0;
    }
    explicit operator bool() const noexcept { return flag_ != nullptr; }

private:
    friend guard_token guard_mapping(void* base, std::size_t len);
    friend void unguard(guard_token& t) noexcept;
    std::atomic<std::uint32_t>* flag_ = nullptr;  // the table slot's fault state
    void* slot_ = nullptr;
};

// Guards [base, base + len), a MAP_SHARED mapping of a file others may truncate. Installs the
// handler on first use. Throws shm::error(system_error) if it cannot be installed or the
// table (65,536 mappings, above the kernel's default map count) is full.
guard_token guard_mapping(void* base, std::size_t len);
// Forgets the mapping; call before unmapping it. Idempotent; `t` becomes empty.
void unguard(guard_token& t) noexcept;
inline bool faulted(const guard_token& t) noexcept { return t.faulted(); }

}  // namespace shmchan::shm
