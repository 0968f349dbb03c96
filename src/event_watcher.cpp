// The process's event-fd watcher: threads ("shards") of up to 127 ends each, started on the
// first event_fd(). Each sleeps in one futex_waitv on its own control word and on the wait
// line of every end it serves. See event_watcher.hpp for what an end is told, and when.
#include "event_watcher.hpp"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "end_state.hpp"
#include "shmchan/error.hpp"
#include "shmchan/shm/ring.hpp"
#include "shmchan/shm/wait.hpp"
#include "waiting.hpp"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449  // x86-64 and the generic table, Linux 5.16
#endif

namespace shmchan::detail {

using shm::end_state;

struct watched_end {
    shm::wait_line* line = nullptr;
    std::function<std::uint64_t()> index;
    std::function<bool()> peer_final;
    std::function<bool()> fate;  // the peer's end is final or its holder dead (one fcntl)
    int efd = -1;
    // SYNC: arm() stores seen_at (relaxed), then bumps arms (seq_cst, a release); the watcher
    // loads arms (seq_cst, an acquire), then seen_at: a new count comes with its position.
    std::atomic<std::uint32_t> arms{1};  // arm() calls; 1: armed from the start
    std::atomic<std::uint64_t> seen_at{~std::uint64_t{0}};
    std::atomic<std::uint32_t> handled{0};  // the arm count last answered (the watcher writes)
    // The watcher thread's alone.
    std::uint32_t seq = 0;  // the line's seq at the last look: the futex value to sleep on
    std::uint32_t arms_now = 0;
    bool armed = false;
    bool announced = false;  // counted in line->waiting
    bool rmw_asked = false;  // the line's wakers were asked for the RMW form (shm/wake.hpp)
    bool told = false;       // a final state was signalled while not armed (once)
    clock::time_point next_fate{};
    // Guarded by the shard's mutex.
    bool leaving = false, left = false;
};

namespace {

constexpr std::size_t waitv_max = 128;  // FUTEX_WAITV_MAX
// Liveness checks due this close to a wake-up are done in it: many armed ends share wake-ups.
constexpr nanoseconds fate_coalesce = poll_interval;
// Without futex_waitv (Linux before 5.16), or with SHMCHAN_NO_FUTEX_WAITV=1: the watcher polls
// armed ends this often, and ends that are not armed every poll_interval (for state changes).
constexpr nanoseconds fallback_poll = std::chrono::milliseconds(2);

futex_waitv word(std::atomic<std::uint32_t>& w, std::uint32_t expected) {
    futex_waitv v{};
    v.val = expected;
    v.uaddr = reinterpret_cast<std::uintptr_t>(&w);
    v.flags = FUTEX_32;  // shared: the lines live in segments mapped by other processes
    return v;
}

// One sleep until a word changes, or `until`. False when the kernel cannot (no futex_waitv).
bool wait_any(std::vector<futex_waitv>& words, clock::time_point until) {
    timespec ts{};
    timespec* at = nullptr;
    if (until != clock::time_point::max()) {  // absolute; steady_clock is CLOCK_MONOTONIC
        const auto ns = std::chrono::duration_cast<nanoseconds>(until.time_since_epoch()).count();
        ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        at = &ts;
    }
    if (::syscall(SYS_futex_waitv, words.data(), static_cast<unsigned>(words.size()), 0, at, CLOCK_MONOTONIC) >= 0)
        return true;
    // EAGAIN (a word changed), ETIMEDOUT and EINTR: go and look again. Anything else (ENOSYS,
    // or EINVAL from a kernel that knows the call but not these flags) would repeat at once.
    return errno == EAGAIN || errno == ETIMEDOUT || errno == EINTR;
}

void signal(watched_end& e) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(e.efd, &one, sizeof one);
}

void retire(watched_end& e) {
    if (e.announced) shm::finish_sleep(*e.line);
    e.announced = false;
}

// First look at an end: is it armed, and which seq to sleep on. The watcher announces itself
// on the line of an armed end, so the peer's next publish wakes it; it stays announced until
// the end is signalled (or leaves), and announces again only after a wake-up on that line.
// True when the sleeper's barrier is due before the last looks: only on the first announcement
// on a line, which also asks its wakers for the read-modify-write form, so that the watcher,
// which sleeps once per message when messages come one at a time, pays no membarrier per sleep.
bool prepare(watched_end& e, bool announce) {
    // SYNC: seq_cst, with sleeping_ (run) against arm()'s seq_cst bump and load of sleeping_.
    e.arms_now = e.arms.load(std::memory_order_seq_cst);
    e.armed = e.arms_now != e.handled.load(std::memory_order_relaxed);
    // SYNC: acquire pairs with the peer's bump of seq after a state change (notify_always):
    // a state stored before the bump is seen by check() below.
    const std::uint32_t seq = e.line->seq.load(std::memory_order_acquire);
    if (!e.armed || !announce) {
        retire(e);
        e.seq = seq;
        return false;
    }
    if (e.announced && seq == e.seq) return false;  // no wake on this line since it announced
    retire(e);
    const bool first = !e.rmw_asked;
    if (first && rmw_wakes_on()) {
        shm::ask_rmw_wake(*e.line);  // seen by every waker once the barrier returns
        e.rmw_asked = true;
    }
    e.seq = shm::announce_sleep(*e.line);
    e.announced = true;
    return first;
}

bool peer_final(const watched_end& e) { return e.peer_final(); }

// The last look: signals the end when its index moved from where it was armed, or the peer's
// fate is known. False when the watcher sleeps on the end's line (e.seq).
bool check(watched_end& e, clock::time_point now) {
    if (!e.armed) {
        if (e.told) return true;
        // Not armed: a state change woke us (or nothing did). Final states only: no lock test.
        if (!peer_final(e)) return false;
        e.told = true;
        signal(e);
        return true;
    }
    // SYNC: acquire pairs with the peer's release store of the index (commit / release).
    bool fire = e.index() != e.seen_at.load(std::memory_order_relaxed) ||
                peer_final(e);
    // Armed again after a death was told, the end may not have seen it yet (its own checks
    // are rate-limited too): it is told again at the next check, not at once.
    if (!fire && now + fate_coalesce >= e.next_fate) {
        e.next_fate = now + fate_check_interval;
        fire = e.fate();
    }
    if (!fire) return false;
    e.handled.store(e.arms_now, std::memory_order_relaxed);  // disarmed
    retire(e);
    // From now on not armed: sleep on the line for state changes (same SYNC as in prepare).
    // Both looks come before the signal: a state change after them wakes us on the line and
    // is signalled again. Taken after it, a change between the signal and the looks (the
    // program already drained the fd and moved on) was taken as told and never signalled.
    e.armed = false;
    e.seq = e.line->seq.load(std::memory_order_acquire);
    e.told = peer_final(e);
    signal(e);
    return e.told;
}

}  // namespace

class watcher_shard {
public:
    static constexpr std::size_t capacity = waitv_max - 1;  // one word is the control word
    std::size_t load = 0;  // ends placed here (guarded by the process watcher's mutex)

    void start() {  // throws std::system_error
        std::thread t([this] { run(); });
        ::pthread_setname_np(t.native_handle(), "shmchan-watch");
        t.detach();  // shards live as long as the process
    }
    void add(watched_end* e) {
        std::lock_guard l(m_);
        ends_.push_back(e);
        kick();
    }
    // Returns once the thread holds no reference to `e` (nor to its segment).
    void remove(watched_end* e) {
        std::unique_lock l(m_);
        e->leaving = true;
        kick();
        cv_.wait(l, [e] { return e->left; });
    }
    // An end was armed: wake the thread if it sleeps (else it sees the new count).
    void armed() noexcept {
        if (sleeping_.load(std::memory_order_seq_cst)) kick();
    }

private:
    // SYNC: the bump is seq_cst; the thread reads ctl_ under m_ before its looks, so a kick
    // after that read makes its futex_waitv return at once.
    void kick() noexcept {
        ctl_.fetch_add(1, std::memory_order_seq_cst);
        shm::futex_wake_all(ctl_);
    }
    void run();

    std::mutex m_;
    std::condition_variable cv_;
    std::vector<watched_end*> ends_;
    std::atomic<std::uint32_t> ctl_{0};       // futex word: add, remove, and arm() wake the thread
    std::atomic<bool> sleeping_{false};
};

void watcher_shard::run() {
    static const bool no_waitv = [] {
        const char* v = std::getenv("SHMCHAN_NO_FUTEX_WAITV");
        return v && *v == '1';
    }();
    bool waitv = !no_waitv;
    bool long_ok = true;  // membarrier works here (see deadline::next_sleep)
    std::vector<watched_end*> mine;
    std::vector<futex_waitv> words;
    for (;;) {
        std::uint32_t ctl;
        {
            std::lock_guard l(m_);
            const auto gone = std::erase_if(ends_, [](watched_end* e) {
                if (!e->leaving) return false;
                retire(*e);  // the last touches of its segment
                if (e->rmw_asked) shm::drop_rmw_wake(*e->line);
                e->left = true;
                return true;
            });
            if (gone) cv_.notify_all();
            mine = ends_;
            ctl = ctl_.load(std::memory_order_seq_cst);
        }
        sleeping_.store(true, std::memory_order_seq_cst);
        bool fresh = false;
        for (watched_end* e : mine) fresh |= prepare(*e, waitv);
        if (fresh) long_ok = shm::sleeper_barrier();  // once per line: see prepare()
        const auto now = clock::now();
        auto until = clock::time_point::max();
        words.assign(1, word(ctl_, ctl));
        for (watched_end* e : mine) {
            if (check(*e, now)) continue;
            if (e->armed) {
                until = std::min(until, e->next_fate);
                // Without membarrier a publish may miss the announcement: look every 1 ms.
                if (!waitv || !long_ok) until = std::min(until, now + (waitv ? nanoseconds(1ms) : fallback_poll));
            } else if (!waitv) {
                until = std::min(until, now + poll_interval);
            }
            words.push_back(word(e->line->seq, e->seq));
        }
        if (waitv && !wait_any(words, until)) waitv = false;  // from now on, poll
        else if (!waitv)
            shm::futex_wait(ctl_, ctl, until == clock::time_point::max() ? nanoseconds(std::chrono::hours(1)) : until - clock::now());
        sleeping_.store(false, std::memory_order_relaxed);
    }
}

namespace {

// The shards of this process. A forked child starts with none (it has no threads): the
// parent's are left alone, and the ends it inherited no longer reach them (event_watcher::stop).
class process_watcher {
public:
    static process_watcher& get() {
        static std::atomic<process_watcher*> current{nullptr};
        static const int at_fork = ::pthread_atfork(nullptr, nullptr, [] { current.store(nullptr); });
        (void)at_fork;
        process_watcher* p = current.load(std::memory_order_acquire);
        if (p) return *p;
        auto* fresh = new process_watcher;  // never deleted: shards live as long as the process
        if (current.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return *fresh;
        delete fresh;
        return *p;
    }

    watcher_shard* join(watched_end* e) {
        std::lock_guard l(m_);
        watcher_shard* s = nullptr;
        for (auto& sh : shards_)
            if (sh->load < watcher_shard::capacity) {
                s = sh.get();
                break;
            }
        if (!s) {
            shards_.reserve(shards_.size() + 1);  // no throw once the thread runs
            auto sh = std::make_unique<watcher_shard>();
            try {
                sh->start();
            } catch (const std::system_error& x) {
                throw error(errc::system_error, std::string("event_fd: cannot start the watcher thread: ") + x.what());
            }
            s = sh.get();
            shards_.push_back(std::move(sh));
        }
        s->add(e);
        ++s->load;
        return s;
    }
    void leave(watcher_shard* s, watched_end* e) {
        s->remove(e);
        std::lock_guard l(m_);
        --s->load;
    }

private:
    std::mutex m_;
    std::vector<std::unique_ptr<watcher_shard>> shards_;
};

}  // namespace

event_watcher::event_watcher() = default;
event_watcher::~event_watcher() { stop(); }

int event_watcher::start(shm::wait_line& w, std::function<std::uint64_t()> index,
                         std::function<bool()> peer_final, std::function<bool()> fate) {
    if (end_) return end_->efd;
    auto e = std::make_unique<watched_end>();
    e->line = &w;
    e->index = std::move(index);
    e->peer_final = std::move(peer_final);
    e->fate = std::move(fate);
    e->efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->efd < 0) throw error(errc::system_error, std::string("event_fd: eventfd failed: ") + std::strerror(errno));
    try {
        shard_ = process_watcher::get().join(e.get());
    } catch (...) {  // nothing kept: the next call tries again
        ::close(e->efd);
        throw;
    }
    pid_ = ::getpid();
    end_ = std::move(e);
    return end_->efd;
}

void event_watcher::arm(std::uint64_t seen) noexcept {
    watched_end* e = end_.get();
    if (!e) return;
    // Already armed at this position: the watcher has it, or is signalling it right now.
    if (e->seen_at.load(std::memory_order_relaxed) == seen &&
        e->arms.load(std::memory_order_relaxed) != e->handled.load(std::memory_order_relaxed))
        return;
    e->seen_at.store(seen, std::memory_order_relaxed);
    e->arms.fetch_add(1, std::memory_order_seq_cst);  // SYNC: with prepare() (see there)
    shard_->armed();
}

void event_watcher::stop() noexcept {
    if (!end_) return;
    if (pid_ == ::getpid()) process_watcher::get().leave(shard_, end_.get());
    ::close(end_->efd);
    end_.reset();
    shard_ = nullptr;
}

}  // namespace shmchan::detail
