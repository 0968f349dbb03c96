#include "shmchan/shm/fault_guard.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <string>
#include <sys/mman.h>

#include "shmchan/shm/error.hpp"
#include "shmchan/shm/wait.hpp"  // cpu_relax

namespace shmchan::shm {

namespace {

// Fault states of a slot.
constexpr std::uint32_t intact = 0, remapping = 1, remapped = 2, remap_failed = 3;

// One guarded mapping. The handler may read a slot while normal code changes it, so base and
// len are published under a sequence lock (`seq` odd while they change); the handler takes
// them only from a stable, even `seq`. Only atomics: the handler may not take locks.
struct slot {
    std::atomic<std::uint32_t> taken{0};  // owned by a registration (normal code only)
    std::atomic<std::uint32_t> seq{0};
    std::atomic<std::uintptr_t> base{0};
    std::atomic<std::size_t> len{0};      // 0: nothing guarded here
    std::atomic<std::uint32_t> fault{intact};
};

// Chunks are allocated on demand and never freed, so the handler never reads freed memory.
constexpr std::size_t chunk_slots = 1024, max_chunks = 64;
std::atomic<slot*> chunks[max_chunks];

struct sigaction previous;  // written once, before our handler can run

// Hands the signal to whatever handled it before us; with nothing there, the default action.
void chain(int sig, siginfo_t* info, void* ctx) {
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) return previous.sa_sigaction(sig, info, ctx);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        return previous.sa_handler(sig);
    }
    // SIG_IGN cannot stop a fault either (the kernel forces the default), so both mean: die.
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
    // A fault recurs when we return, and now kills with the true address in the core; a
    // signal sent by kill() does not, so send it again (blocked here: delivered on return).
    if (info->si_code <= 0) raise(sig);
}

// The slot guarding `addr`, if any, and its range as validated (async-signal-safe: atomics only).
slot* find(std::uintptr_t addr, std::uintptr_t& base, std::size_t& len) noexcept {
    for (auto& c : chunks) {
        slot* ch = c.load(std::memory_order_acquire);
        if (!ch) break;  // chunks fill in order
        for (std::size_t i = 0; i < chunk_slots; ++i) {
            slot& s = ch[i];
            // SYNC: seqlock read; acquire on seq pairs with guard_mapping's release store of
            // the even seq, the acquire fence with its release fence after the odd one.
            const std::uint32_t s1 = s.seq.load(std::memory_order_acquire);
            if (s1 & 1) continue;
            const std::uintptr_t b = s.base.load(std::memory_order_relaxed);
            const std::size_t l = s.len.load(std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (s.seq.load(std::memory_order_relaxed) != s1) continue;
            if (l && addr >= b && addr - b < l) {
                base = b;
                len = l;
                return &s;
            }
        }
    }
    return nullptr;
}

void on_sigbus(int sig, siginfo_t* info, void* ctx) {
    const int saved_errno = errno;
    std::uintptr_t base = 0;
    std::size_t len = 0;
    slot* s = find(reinterpret_cast<std::uintptr_t>(info->si_addr), base, len);
    std::uint32_t st = intact;
    if (s && s->fault.compare_exchange_strong(st, remapping, std::memory_order_acq_rel)) {
        // Zero pages over the whole mapping, so no other access to it can fault again; the
        // contents are lost either way. NORESERVE: a 1 TiB ring must not need 1 TiB of commit.
        void* p = mmap(reinterpret_cast<void*>(base), len, PROT_READ | PROT_WRITE,
                       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        // SYNC: release pairs with faulted()'s acquire and with the spin below.
        st = p == MAP_FAILED ? remap_failed : remapped;
        s->fault.store(st, std::memory_order_release);
    } else if (s) {
        // Another thread faulted on it too and is remapping: wait for it (never long).
        while ((st = s->fault.load(std::memory_order_acquire)) == remapping) cpu_relax();
    }
    errno = saved_errno;
    if (s && st == remapped) return;  // the access retries on the zero pages
    chain(sig, info, ctx);
}

void install() {
    struct sigaction sa{};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    // The old action is read first: our handler may run (in another thread) as soon as it is set.
    if (sigaction(SIGBUS, nullptr, &previous) != 0 || sigaction(SIGBUS, &sa, nullptr) != 0)
        throw error(fault::system_error,
                    std::string("cannot install the SIGBUS handler: ") + std::strerror(errno));
}

}  // namespace

guard_token guard_mapping(void* base, std::size_t len) {
    static std::once_flag once;
    std::call_once(once, install);
    for (auto& c : chunks) {
        slot* ch = c.load(std::memory_order_acquire);
        if (!ch) {
            auto* fresh = new slot[chunk_slots];
            // SYNC: release publishes the zeroed slots to find() and to other registrations.
            if (c.compare_exchange_strong(ch, fresh, std::memory_order_acq_rel)) ch = fresh;
            else delete[] fresh;  // another thread added this chunk first; `ch` is theirs
        }
        for (std::size_t i = 0; i < chunk_slots; ++i) {
            slot& s = ch[i];
            std::uint32_t free = 0;
            if (s.taken.load(std::memory_order_relaxed) != 0 ||
                !s.taken.compare_exchange_strong(free, 1, std::memory_order_acquire))
                continue;
            // SYNC: seqlock write (one writer: the slot's owner); pairs with find().
            const std::uint32_t q = s.seq.load(std::memory_order_relaxed);
            s.seq.store(q + 1, std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_release);
            s.fault.store(intact, std::memory_order_relaxed);
            s.base.store(reinterpret_cast<std::uintptr_t>(base), std::memory_order_relaxed);
            s.len.store(len, std::memory_order_relaxed);
            s.seq.store(q + 2, std::memory_order_release);
            guard_token t;
            t.flag_ = &s.fault;
            t.slot_ = &s;
            return t;
        }
    }
    throw error(fault::system_error, "too many mapped segments in this process");
}

void unguard(guard_token& t) noexcept {
    if (!t.slot_) return;
    slot& s = *static_cast<slot*>(t.slot_);
    // A handler still remapping it would map over whatever comes next at this address.
    while (s.fault.load(std::memory_order_acquire) == remapping) cpu_relax();
    const std::uint32_t q = s.seq.load(std::memory_order_relaxed);
    s.seq.store(q + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.len.store(0, std::memory_order_relaxed);
    s.base.store(0, std::memory_order_relaxed);
    s.seq.store(q + 2, std::memory_order_release);
    // SYNC: release pairs with the acquire CAS of the next registration of this slot.
    s.taken.store(0, std::memory_order_release);
    t = guard_token{};
}

}  // namespace shmchan::shm
