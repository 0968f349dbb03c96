// Writer and reader ends over a channel segment; creation and opening from refs.
// Protocol reasoning (states, wake-ups, who unlinks) is in docs/architecture.md.
#include "shmchan/channel.hpp"
#include "shmchan/memory.hpp"

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <bit>
#include <cstring>
#include <string>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>

#include "ends.hpp"
#include "ids.hpp"
#include "socket_ends.hpp"
#include "shmchan/shm/claim_chooser.hpp"
#include "shmchan/shm/ring.hpp"
#include "shmchan/shm/segment.hpp"
#include "shmchan/shm/wait.hpp"

namespace shmchan {
namespace detail {

using namespace shm;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Bound of every sleep: a waiting end re-checks its peer's liveness this often, so a dead
// peer is reported within a few of these (the issue asks for 250 ms).
constexpr nanoseconds poll_interval = 50ms;

// Busy-waiting for a time budget (not a count of `pause`, whose cost differs 10x between CPUs).
class spinner {
public:
    explicit spinner(nanoseconds budget) : until_(clock::now() + budget), zero_(budget <= 0ns) {}
    bool more() {
        if (zero_) return false;
        cpu_relax();
        return (++n_ & 15) != 0 || clock::now() < until_;
    }

private:
    clock::time_point until_;
    bool zero_;
    unsigned n_ = 0;
};

// The busy-wait budget of one end, learnt from the waits it met. A wait that ended soon after
// the end went to sleep paid a futex sleep, a wake-up syscall in the peer and a membarrier
// (48 us on the machine we measured) for a gap it could have spun through: the budget grows
// to cover such gaps (up to `max`) and falls back towards `base` when gaps are longer.
class spin_budget {
public:
    spin_budget(nanoseconds base, nanoseconds max)
        : base_(base), max_(std::max(base, max)), cur_(base) {}
    nanoseconds now() const { return cur_; }
    // A wait of `gap` (from the first miss to the data or room being there) just ended.
    void waited(nanoseconds gap) {
        if (base_ <= 0ns || max_ == base_) return;  // spinning off, or a fixed spin
        if (gap <= max_) cur_ = std::clamp(std::max(cur_, gap + gap / 4), base_, max_);
        else cur_ = std::max(base_, cur_ / 2);
    }

private:
    nanoseconds base_, max_, cur_;
};
// SHMCHAN_SPIN_MAX_US overrides spin_max_us (for A/B runs of the benchmarks).
inline spin_budget spin_of(const channel_options& o) {
    static const long env_max = [] {
        const char* v = std::getenv("SHMCHAN_SPIN_MAX_US");
        return v && *v ? std::strtol(v, nullptr, 10) : -1L;
    }();
    const long max_us = env_max >= 0 ? env_max : static_cast<long>(o.spin_max_us);
    return {std::chrono::microseconds(o.spin_us), std::chrono::microseconds(max_us)};
}

// Liveness checks read /proc: at most once per poll interval, on the slow path.
class liveness_timer {
public:
    bool due() {
        const auto now = clock::now();
        if (now < next_) return false;
        next_ = now + poll_interval;
        return true;
    }

private:
    clock::time_point next_{};
};

class deadline {
public:
    explicit deadline(nanoseconds t)
        : infinite_(t >= nanoseconds(std::chrono::hours(24 * 365))), immediate_(t <= 0ns),
          at_(infinite_ ? clock::time_point{} : clock::now() + t) {}
    bool passed() const { return !infinite_ && clock::now() >= at_; }
    // A zero timeout: look once, never spin (event loops call with 0 from their own thread).
    bool immediate() const { return immediate_; }
    // How long the next futex sleep may be: short when a wake might be missed (no membarrier).
    nanoseconds next_sleep(bool long_sleep_ok) const {
        const nanoseconds cap = long_sleep_ok ? poll_interval : nanoseconds(1ms);
        if (infinite_) return cap;
        return std::clamp<nanoseconds>(at_ - clock::now(), 0ns, cap);
    }

private:
    bool infinite_;
    bool immediate_;
    clock::time_point at_;
};

end_state load_state(const std::atomic<std::uint32_t>& s,
                     std::memory_order mo = std::memory_order_acquire) {
    return static_cast<end_state>(s.load(mo));
}

bool owner_dead(const owner& who) {
    return !process_alive(who.pid.load(std::memory_order_relaxed),
                          who.start_time.load(std::memory_order_relaxed));
}

// Claims an end by CAS unclaimed -> active, then records who holds it.
std::error_code claim(std::atomic<std::uint32_t>& state, owner& who) {
    auto expected = static_cast<std::uint32_t>(end_state::unclaimed);
    if (!state.compare_exchange_strong(expected, static_cast<std::uint32_t>(end_state::active),
                                       std::memory_order_acq_rel))
        return errc::already_claimed;
    // Until pid is stored it reads 0, which liveness checks treat as alive.
    who.start_time.store(self_start_time(), std::memory_order_relaxed);
    who.pid.store(::getpid(), std::memory_order_release);
    return {};
}

// Moves our end to a final state, wakes the peer, and removes the segment's name once neither
// end can ever use it again (the peer finished, or died).
// SYNC: seq_cst exchange then seq_cst load, on both ends: at least one of two ends finishing
// at the same time sees the other as final, so the name is always removed.
void finish_end(segment& seg, std::atomic<std::uint32_t>& mine, end_state final_state,
                const std::atomic<std::uint32_t>& peer, const owner& peer_who, wait_line& wake) {
    mine.exchange(static_cast<std::uint32_t>(final_state), std::memory_order_seq_cst);
    notify_always(wake);
    const end_state p = load_state(peer, std::memory_order_seq_cst);
    if (p == end_state::closed || p == end_state::aborted ||
        (p == end_state::active && owner_dead(peer_who)))
        seg.unlink();
}

// The thread behind an end's event fd. It makes the fd readable when the watched index (the
// writer's tail for a reader, the reader's head for a writer) moves away from where the end
// last found nothing, or when the peer's fate becomes known (once). It watches shared memory
// only while the end is armed, i.e. after the program drained the end to would_block (as the
// event_fd contract asks): while data flows and the program is busy with it, the watcher
// sleeps on a private word and costs nothing (no membarrier, no read of /proc per record). A
// program that polls again without draining is still signalled (progress or the peer's fate)
// within a poll interval.
class watcher {
public:
    int start(wait_line& w, const std::atomic<std::uint64_t>& index, std::function<bool()> fate) {
        if (efd_ >= 0) return efd_;
        efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (efd_ < 0) throw error(errc::system_error, "eventfd failed");
        // Armed from the start: whatever is there already is worth a look.
        arms_.store(1, std::memory_order_relaxed);
        seen_.store(~std::uint64_t{0}, std::memory_order_relaxed);
        thread_ = std::thread([this, &w, &index, fate = std::move(fate)] { run(w, index, fate); });
        return efd_;
    }
    // The end found nothing to do at `seen` (its own head for a reader, the head it last saw
    // for a writer).
    void arm(std::uint64_t seen) noexcept {
        if (efd_ < 0) return;
        seen_.store(seen, std::memory_order_relaxed);
        arms_.fetch_add(1, std::memory_order_seq_cst);
        if (idle_.load(std::memory_order_seq_cst)) futex_wake_all(arms_);
    }
    void stop(wait_line& w) {
        if (thread_.joinable()) {
            stop_.store(true, std::memory_order_seq_cst);
            arms_.fetch_add(1, std::memory_order_seq_cst);
            futex_wake_all(arms_);
            notify_always(w);
            thread_.join();
        }
        if (efd_ >= 0) ::close(efd_);
        efd_ = -1;
    }

private:
    void run(wait_line& w, const std::atomic<std::uint64_t>& index, const std::function<bool()>& fate) {
        std::uint32_t handled = 0;              // the arm last answered
        std::uint64_t signalled = ~std::uint64_t{0};  // the index at the last signal
        bool told = false;                      // the fate was signalled
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
                    futex_wait(arms_, handled, poll_interval);
                idle_.store(false, std::memory_order_relaxed);
                if (arms_.load(std::memory_order_acquire) == handled) {  // the poll interval passed
                    const std::uint64_t now = index.load(std::memory_order_acquire);
                    if (now != signalled) signal(now);
                    else if (!told && fate()) told = true, signal(now);
                }
                continue;
            }
            const std::uint64_t seen = seen_.load(std::memory_order_relaxed);
            bool long_ok;
            const std::uint32_t seq = prepare_sleep(w, long_ok);
            const std::uint64_t now = index.load(std::memory_order_acquire);
            bool fire = now != seen;
            if (!fire && !told && fate()) fire = told = true;  // reads /proc: at most per wake-up
            if (fire) {
                finish_sleep(w);
                handled = arms;
                signal(now);
                continue;
            }
            if (!stop_.load(std::memory_order_acquire))
                futex_wait(w.seq, seq, long_ok ? poll_interval : nanoseconds(1ms));
            finish_sleep(w);
        }
    }

    int efd_ = -1;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint32_t> arms_{0};  // arm() calls; the futex word of the idle watcher
    std::atomic<bool> idle_{false};
    std::atomic<std::uint64_t> seen_{0};
};

// The peer's fate is known: it finished its end, or died.
std::function<bool()> peer_fate(const std::atomic<std::uint32_t>& peer_state, const owner& peer) {
    return [&peer_state, &peer] {
        const end_state p = load_state(peer_state);
        return p == end_state::closed || p == end_state::aborted || (p == end_state::active && owner_dead(peer));
    };
}

// ---------------------------------------------------------------------------------------------
struct shm_writer final : writer_impl {
    std::shared_ptr<segment> seg;
    control_block* cb;
    ring_producer prod;
    spin_budget spin;
    loan_claim_setting claim_cfg;
    claim_chooser chooser;
    std::uint64_t loan_t0 = 0;  // ticks() when the timed loan was handed out
    std::size_t loan_n = 0;
    bool loan_timed = false;
    liveness_timer liveness;
    bool claimed = false;
    bool loan_out = false;
    std::error_code sticky;  // the reader is gone or the segment is corrupt: nothing more to do
    watcher space_watch;

    shm_writer(std::shared_ptr<segment> s, spin_budget spin_, loan_claim_setting claim)
        : seg(std::move(s)), cb(seg->control()), spin(spin_), claim_cfg(claim) {}

    std::error_code ensure_claimed() {
        if (claimed) return {};
        if (auto e = claim(cb->producer.state, cb->producer.who)) return e;
        claimed = true;
        prod = ring_producer(cb, seg->data());
        return {};
    }
    std::error_code ready() {
        if (sticky) return sticky;
        if (finished) return errc::closed;
        if (loan_out) return errc::invalid_argument;  // one claim at a time: commit the loan first
        return ensure_claimed();
    }
    // The reader's fate, checked on the slow path only (its state shares the head's line);
    // its liveness (a read of /proc) at most once per poll interval unless `now`.
    std::error_code peer_check(bool now = false) {
        const end_state r = load_state(cb->consumer.state);
        if (r == end_state::closed) return errc::peer_closed;
        if (r == end_state::active && (liveness.due() || now) && owner_dead(cb->consumer.who))
            return errc::peer_lost;
        return {};
    }
    std::error_code wait_space(std::size_t payload, const deadline& dl) {
        const auto t0 = clock::now();
        for (spinner sp(dl.immediate() ? 0ns : spin.now()); sp.more();)
            if (prod.can_claim(payload)) return spin.waited(clock::now() - t0), std::error_code{};
        for (;;) {
            if (auto e = peer_check()) return e;
            bool long_ok;
            const std::uint32_t seq = prepare_sleep(cb->space, long_ok);
            if (prod.can_claim(payload)) {
                finish_sleep(cb->space);
                spin.waited(clock::now() - t0);
                return {};
            }
            if (dl.passed()) {
                finish_sleep(cb->space);
                if (dl.immediate()) space_watch.arm(prod.head_seen());  // an event loop's try
                return errc::timeout;
            }
            futex_wait(cb->space.seq, seq, dl.next_sleep(long_ok));
            finish_sleep(cb->space);
        }
    }
    // Errors after which this end can do nothing more finish it at once, so the segment is
    // removed even if the program then exits without running destructors.
    std::error_code check_fatal(std::error_code e) {
        if (e == errc::peer_lost || e == errc::peer_closed || e == errc::corrupt) {
            sticky = e;
            loan_out = false;
            if (!finished) finish(end_state::closed);
            // Closed before, and the reader died since (wait_drained): no one else can remove it.
            else if (e == errc::peer_lost) seg->unlink();
        }
        return e;
    }
    // Claims room for one record, waiting as needed.
    std::byte* claim_record(std::size_t n, record_type type, const deadline& dl,
                            std::error_code& err) {
        for (;;) {
            ring_status st;
            if (std::byte* p = prod.try_claim(n, type, st)) return p;
            if (st != ring_status::full) {
                err = check_fatal(st == ring_status::too_large ? errc::too_large : errc::corrupt);
                return nullptr;
            }
            if ((err = check_fatal(wait_space(n, dl)))) return nullptr;
        }
    }
    std::error_code push(record_type type, const std::byte* src, std::size_t n, nanoseconds t) {
        deadline dl(t);
        std::error_code err;
        std::byte* p = claim_record(n, type, dl, err);
        if (!p) return err;
        if (n) std::memcpy(p, src, n);
        prod.commit(n);
        return {};
    }
    std::error_code write(std::span<const std::byte> bytes, nanoseconds t) override {
        if (auto e = ready()) return e;
        deadline dl(t);
        const std::byte* p = bytes.data();
        std::size_t left = bytes.size();
        while (left) {
            const std::size_t n = std::min(left, prod.max_payload());
            std::error_code err;
            std::byte* dst = claim_record(n, record_type::binary, dl, err);
            if (!dst) return err;
            copy_into_shared(dst, p, n);
            prod.commit(n);
            written += n;
            p += n;
            left -= n;
        }
        return {};
    }
    std::error_code try_write(std::span<const std::byte> bytes) override {
        if (auto e = ready()) return e;
        // Where the records would end, padding included, starting from the current tail.
        const std::size_t cap = prod.capacity(), maxp = prod.max_payload();
        std::uint64_t pos = prod.tail();
        for (std::size_t left = bytes.size(); left;) {
            const std::size_t n = std::min(left, maxp), rec = record_size(n);
            const std::size_t to_end = cap - (pos & (cap - 1));
            pos += (rec > to_end ? to_end : 0) + rec;
            left -= n;
        }
        const std::uint64_t need = pos - prod.tail();
        if (need > cap) return errc::too_large;
        if (need > cap - std::min<std::size_t>(prod.unread_bytes(), cap)) {
            if (auto e = check_fatal(peer_check())) return e;
            space_watch.arm(prod.head_seen());
            return errc::would_block;
        }
        return write(bytes, 0ns);  // fits: no record will wait
    }
    loan make_loan(std::size_t n, nanoseconds t) override {
        if (auto e = ready()) return failed_loan(e);
        if (n > prod.max_payload()) return failed_loan(errc::too_large);
        std::byte* p = nullptr;
        if (t == 0ns) {  // try_loan: no spinning, no waiting
            ring_status st;
            p = prod.try_claim(n, record_type::binary, st);
            if (!p) {
                std::error_code e = check_fatal(st == ring_status::corrupt
                                                    ? make_error_code(errc::corrupt)
                                                    : peer_check());
                if (e) return failed_loan(e);
                space_watch.arm(prod.head_seen());
                return failed_loan(errc::would_block);
            }
        } else {
            deadline dl(t);
            std::error_code err;
            p = claim_record(n, record_type::binary, dl, err);
            if (!p) return failed_loan(err);
        }
        loan_timed = false;
        if (n >= claim_cfg.min && claim_cfg.policy != channel_options::claim_policy::never) {
            // Adaptive: loans on the ring's first lap fault their pages in and would mislead it.
            const bool adaptive = claim_cfg.policy == channel_options::claim_policy::adaptive;
            const bool learning = adaptive && written >= capacity();
            const bool claim = !adaptive || (learning ? chooser.next() : chooser.claiming());
            if (learning) {
                loan_timed = true;
                loan_n = n;
                loan_t0 = ticks();
            }
            if (claim) claim_for_writing({p, n});
        }
        loan_out = true;
        return lend(p, n);
    }
    void commit_loan(std::size_t used) override {
        if (!loan_out) return;  // the loan was cancelled by close(), abort() or an error
        if (loan_timed) chooser.took(ticks() - loan_t0, loan_n);
        prod.commit(used);
        written += used;
        loan_out = false;
    }
    void abandon_loan() override { loan_out = false; }
    std::error_code send_message(std::string_view text, nanoseconds t) override {
        if (auto e = ready()) return e;
        if (text.size() > prod.max_payload()) return errc::too_large;
        return push(record_type::text, reinterpret_cast<const std::byte*>(text.data()), text.size(), t);
    }
    std::size_t max_record() const override { return cb->header.max_payload; }
    std::size_t capacity() const override { return cb->header.capacity; }
    std::error_code close(nanoseconds t) override {
        if (sticky) return sticky;
        if (finished) return errc::closed;
        loan_out = false;  // an uncommitted loan is abandoned by closing
        if (auto e = ensure_claimed()) return e;
        // A reader that is gone would never see the end: say so rather than succeed.
        if (auto e = check_fatal(peer_check(true))) return e;
        if (auto e = push(record_type::end, nullptr, 0, t)) return e;
        finish(end_state::closed);
        return {};
    }
    void abort(std::string_view reason) override {
        if (finished) return;  // also after a fatal error: the reader is gone
        loan_out = false;
        if (ensure_claimed()) return;  // someone else holds the writer end: not ours to abort
        const std::size_t n = std::min(reason.size(), reason_bytes - 1);
        std::memcpy(cb->header.abort_reason, reason.data(), n);
        cb->header.abort_reason[n] = '\0';
        // SYNC: release pairs with the reader's acquire load of abort_len before it reads the
        // reason; the aborted state is stored after it (seq_cst in finish_end).
        cb->header.abort_len.store(static_cast<std::uint32_t>(n), std::memory_order_release);
        finish(end_state::aborted);
    }
    void finish(end_state s) {
        finished = true;
        finish_end(*seg, cb->producer.state, s, cb->consumer.state, cb->consumer.who, cb->data);
    }
    std::error_code wait_drained(nanoseconds t) override {
        if (sticky) return sticky;
        if (!claimed) return {};
        deadline dl(t);
        for (;;) {
            if (prod.unread_bytes() == 0) return {};
            if (auto e = peer_check()) {
                // The reader releases the last record before it closes its end.
                if (prod.unread_bytes() == 0) return {};
                return check_fatal(e);
            }
            bool long_ok;
            const std::uint32_t seq = prepare_sleep(cb->space, long_ok);
            if (prod.unread_bytes() == 0) {
                finish_sleep(cb->space);
                return {};
            }
            if (dl.passed()) {
                finish_sleep(cb->space);
                return errc::timeout;
            }
            futex_wait(cb->space.seq, seq, dl.next_sleep(long_ok));
            finish_sleep(cb->space);
        }
    }
    // Signals when the head moves or the reader's fate changes.
    int event_fd() override {
        if (auto e = ensure_claimed()) throw error(static_cast<errc>(e.value()), "event_fd: cannot claim the writer end");
        return space_watch.start(cb->space, cb->consumer.head, peer_fate(cb->consumer.state, cb->consumer.who));
    }
    ~shm_writer() override {
        space_watch.stop(cb->space);
        if (claimed && !finished) abort("writer destroyed without close()");
    }
};

// ---------------------------------------------------------------------------------------------
struct shm_reader final : reader_impl {
    std::shared_ptr<segment> seg;
    control_block* cb;
    ring_consumer cons;
    spin_budget spin;
    bool claimed = false;
    bool finished = false;  // our end is final (end seen, sticky error, or closed)
    liveness_timer liveness;
    watcher data_watch;

    shm_reader(std::shared_ptr<segment> s, spin_budget spin_)
        : seg(std::move(s)), cb(seg->control()), spin(spin_) {}

    std::error_code ensure_claimed() {
        if (claimed) return {};
        if (auto e = claim(cb->consumer.state, cb->consumer.who)) return e;
        claimed = true;
        cons = ring_consumer(cb, seg->data());
        return {};
    }

    item make(item::kind k, std::span<const std::byte> d = {}, std::error_code e = {}) {
        if (k == item::kind::chunk || k == item::kind::message) return view(k, d);
        return bare(k, e);
    }
    void release_pending() override {
        if (!pending) return;
        pending = false;
        cons.release();
    }
    void finish() {
        if (finished) return;
        finished = true;
        finish_end(*seg, cb->consumer.state, end_state::closed, cb->producer.state,
                   cb->producer.who, cb->space);
    }
    item fail(std::error_code e) {
        sticky = e;
        finish();
        return make(item::kind::error, {}, e);
    }
    // Called with the ring found empty. Returns an error once the writer can add nothing more.
    std::error_code writer_gone(bool check_liveness) {
        const end_state w = load_state(cb->producer.state);
        if (w == end_state::active || w == end_state::unclaimed) {
            if (w == end_state::unclaimed || !check_liveness || !owner_dead(cb->producer.who))
                return {};
        }
        // Final or dead: everything it committed is visible now (SYNC: the acquire load of
        // the state above pairs with the writer's seq_cst exchange after its last commit).
        if (cons.readable()) return {};
        if (w == end_state::aborted) {
            const std::uint32_t n =
                std::min<std::uint32_t>(cb->header.abort_len.load(std::memory_order_acquire),
                                        reason_bytes - 1);
            reason.assign(cb->header.abort_reason, n);
            return errc::aborted;
        }
        if (w == end_state::closed) return errc::corrupt;  // closed without an end record
        return errc::peer_lost;
    }
    bool liveness_due() { return liveness.due(); }
    item deliver(const record_view& v) {
        switch (v.type) {
            case record_type::binary:
                bytes += v.size;
                return make(item::kind::chunk, {v.data, v.size});
            case record_type::text:
                return make(item::kind::message, {v.data, v.size});
            default:  // end
                cons.release();
                ended = true;
                finish();
                return make(item::kind::end);
        }
    }
    item next(nanoseconds t, bool block) override {
        release_pending();
        if (ended) return make(item::kind::end);
        if (sticky) return make(item::kind::error, {}, sticky);
        if (finished) return make(item::kind::error, {}, errc::closed);
        if (auto e = ensure_claimed()) return make(item::kind::error, {}, e);
        record_view v;
        ring_status st = cons.try_peek(v);
        if (st == ring_status::ok) return deliver(v);  // the fast path reads no clock
        deadline dl(t);
        const auto t0 = clock::now();
        spinner sp(block ? spin.now() : 0ns);
        for (;;) {
            if (st == ring_status::ok) {
                spin.waited(clock::now() - t0);
                return deliver(v);
            }
            if (st == ring_status::corrupt) return fail(errc::corrupt);
            if (!block) {
                if (auto e = writer_gone(liveness_due())) return fail(e);
                data_watch.arm(cons.head());
                return make(item::kind::error, {}, errc::would_block);
            }
            if (sp.more()) {
                st = cons.try_peek(v);
                continue;
            }
            bool long_ok;
            const std::uint32_t seq = prepare_sleep(cb->data, long_ok);
            if (cons.readable()) {
                finish_sleep(cb->data);
                st = cons.try_peek(v);
                continue;
            }
            if (auto e = writer_gone(liveness_due())) {
                finish_sleep(cb->data);
                return fail(e);
            }
            if (dl.passed()) {
                finish_sleep(cb->data);
                return make(item::kind::error, {}, errc::timeout);
            }
            futex_wait(cb->data.seq, seq, dl.next_sleep(long_ok));
            finish_sleep(cb->data);
            st = cons.try_peek(v);
        }
    }

    // Signals when the tail moves or the writer's fate changes.
    int event_fd() override {
        if (auto e = ensure_claimed()) throw error(static_cast<errc>(e.value()), "event_fd: cannot claim the reader end");
        return data_watch.start(cb->data, cb->producer.tail, peer_fate(cb->producer.state, cb->producer.who));
    }

    ~shm_reader() override {
        data_watch.stop(cb->data);
        if (claimed) {
            release_pending();
            finish();
        }
    }
};


}  // namespace detail

// --- loan ------------------------------------------------------------------------------------
loan::loan(loan&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)), data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)), error_(o.error_) {}
loan& loan::operator=(loan&& o) noexcept {
    if (this != &o) {
        abandon();
        owner_ = std::exchange(o.owner_, nullptr);
        data_ = std::exchange(o.data_, nullptr);
        size_ = std::exchange(o.size_, 0);
        error_ = o.error_;
    }
    return *this;
}
loan::~loan() { abandon(); }
void loan::commit(std::size_t used) noexcept {
    if (owner_) owner_->commit_loan(std::min(used, size_));
    owner_ = nullptr;
    data_ = nullptr;
    size_ = 0;
}
void loan::abandon() noexcept {
    if (owner_) owner_->abandon_loan();
    owner_ = nullptr;
    data_ = nullptr;
    size_ = 0;
}

// --- writer ----------------------------------------------------------------------------------
writer::writer() = default;
writer::writer(std::unique_ptr<detail::writer_impl> impl) noexcept : impl_(std::move(impl)) {}
writer::writer(writer&&) noexcept = default;
writer& writer::operator=(writer&&) noexcept = default;
writer::~writer() = default;

std::error_code writer::write(std::span<const std::byte> b, nanoseconds t) noexcept {
    return impl_ ? impl_->write(b, t) : errc::closed;
}
std::error_code writer::try_write(std::span<const std::byte> b) noexcept {
    return impl_ ? impl_->try_write(b) : errc::closed;
}
loan writer::get_loan(std::size_t n, nanoseconds t) noexcept {
    if (!impl_) {
        loan l;
        l.error_ = errc::closed;
        return l;
    }
    return impl_->make_loan(n, t);
}
loan writer::try_loan(std::size_t n) noexcept { return get_loan(n, nanoseconds::zero()); }
std::error_code writer::send_message(std::string_view text, nanoseconds t) noexcept {
    return impl_ ? impl_->send_message(text, t) : errc::closed;
}
std::error_code writer::close(nanoseconds t) noexcept { return impl_ ? impl_->close(t) : errc::closed; }
void writer::abort(std::string_view reason) noexcept {
    if (impl_) impl_->abort(reason);
}
std::error_code writer::wait_drained(nanoseconds t) noexcept {
    return impl_ ? impl_->wait_drained(t) : errc::closed;
}
int writer::event_fd() {
    if (!impl_) throw error(errc::closed, "event_fd on an empty writer");
    return impl_->event_fd();
}
std::size_t writer::max_record() const noexcept { return impl_ ? impl_->max_record() : 0; }
std::size_t writer::capacity() const noexcept { return impl_ ? impl_->capacity() : 0; }
std::uint64_t writer::bytes_written() const noexcept { return impl_ ? impl_->target()->written : 0; }
bool writer::is_open() const noexcept { return impl_ && !impl_->target()->finished; }

// --- item / reader ---------------------------------------------------------------------------
item::item(item&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)), token_(o.token_), kind_(o.kind_), data_(o.data_),
      error_(o.error_) {}
item& item::operator=(item&& o) noexcept {
    if (this != &o) {
        release();
        owner_ = std::exchange(o.owner_, nullptr);
        token_ = o.token_;
        kind_ = o.kind_;
        data_ = o.data_;
        error_ = o.error_;
    }
    return *this;
}
void item::release() noexcept {
    if (owner_) owner_->release_token(token_);
    owner_ = nullptr;
}

reader::reader() = default;
reader::reader(std::unique_ptr<detail::reader_impl> impl) noexcept : impl_(std::move(impl)) {}
reader::reader(reader&&) noexcept = default;
reader& reader::operator=(reader&&) noexcept = default;
reader::~reader() = default;

item reader::next(nanoseconds t) noexcept {
    if (!impl_) return detail::reader_impl::bare(item::kind::error, errc::closed);
    return impl_->next(t, true);
}
item reader::try_next() noexcept {
    if (!impl_) return detail::reader_impl::bare(item::kind::error, errc::closed);
    return impl_->next(nanoseconds::zero(), false);
}
item reader::next_binary(nanoseconds t) noexcept {
    for (;;) {
        item it = next(t);
        if (!it.is_message()) return it;
        if (impl_->target()->on_msg) impl_->target()->on_msg(it.text());
    }
}
void reader::on_message(std::function<void(std::string_view)> cb) {
    if (impl_) impl_->target()->on_msg = std::move(cb);
}
std::error_code reader::read_all(std::vector<std::byte>& out, nanoseconds t) noexcept {
    for (;;) {
        item it = next(t);
        switch (it.type()) {
            case item::kind::chunk:
                out.insert(out.end(), it.data().begin(), it.data().end());
                break;
            case item::kind::message:
                if (impl_->target()->on_msg) impl_->target()->on_msg(it.text());
                break;
            case item::kind::end: return {};
            case item::kind::error: return it.error();
        }
    }
}
std::vector<std::byte> reader::read_all(nanoseconds t) {
    std::vector<std::byte> out;
    if (auto e = read_all(out, t)) {
        std::string what = std::string("read_all: ") + e.message();
        if (e == errc::aborted) what += ": " + abort_reason();
        throw error(static_cast<errc>(e.value()), what);
    }
    return out;
}
int reader::event_fd() {
    if (!impl_) throw error(errc::closed, "event_fd on an empty reader");
    return impl_->event_fd();
}
std::string reader::abort_reason() const { return impl_ ? impl_->target()->reason : std::string(); }
std::error_code reader::status() const noexcept { return impl_ ? impl_->target()->sticky : std::error_code(); }
bool reader::at_end() const noexcept { return impl_ && impl_->target()->ended; }
std::uint64_t reader::bytes_read() const noexcept { return impl_ ? impl_->target()->bytes : 0; }

// --- creation and opening ----------------------------------------------------------------------
channel create_channel(const channel_options& opt) {
    if (opt.capacity > shm::max_capacity)
        throw error(errc::invalid_argument, "channel capacity above 1 TiB");
    const std::size_t capacity = std::bit_ceil(std::max(opt.capacity, shm::min_capacity));
    shm::segment_identity id{detail::random_uuid(), detail::random_key(), detail::random_key()};
    const std::string cid = detail::format_uuid(id.channel_id.data());
    auto seg = shm::segment::create(shm::segment_name_for(cid), capacity, id);

    channel ch;
    const shm_extension ext{seg->name(), detail::host_name()};
    ch.writer_ref = {cid, detail::format_uuid(id.writer_key.data()), direction::write, ext};
    ch.reader_ref = {cid, detail::format_uuid(id.reader_key.data()), direction::read, ext};
    ch.writer = detail::end_access::make_writer(std::make_unique<detail::shm_writer>(seg, detail::spin_of(opt), effective_loan_claim(opt)));
    ch.reader = detail::end_access::make_reader(std::make_unique<detail::shm_reader>(seg, detail::spin_of(opt)));
    return ch;
}

namespace {
std::shared_ptr<shm::segment> open_checked(const channel_ref& ref, direction want) {
    if (ref.dir != want)
        throw error(errc::wrong_direction,
                    std::string("ref is for the ") + to_string(ref.dir) + " end of channel " +
                        ref.channel_id + "; it cannot open the " + to_string(want) + " end");
    if (!ref.shm)
        throw error(errc::segment_missing, "ref of channel " + ref.channel_id +
                                               " has no \"shm\" extension: it was not made by "
                                               "shmchan, and only shared memory is served here");
    if (ref.shm->host != detail::host_name())
        throw error(errc::segment_missing, "channel " + ref.channel_id + " lives on host \"" +
                                               ref.shm->host + "\", this is \"" +
                                               detail::host_name() + "\"");
    const auto cid = detail::parse_uuid(ref.channel_id);
    if (!cid) throw error(errc::invalid_ref, "channel_id \"" + ref.channel_id + "\" is not a UUID");
    if (ref.shm->segment != shm::segment_name_for(ref.channel_id))
        throw error(errc::invalid_ref, "segment \"" + ref.shm->segment +
                                           "\" does not belong to channel " + ref.channel_id);
    auto seg = shm::segment::open(ref.shm->segment);
    const auto& h = seg->control()->header;
    if (std::memcmp(h.channel_id, cid->data(), cid->size()) != 0)
        throw error(errc::corrupt, "segment " + seg->name() + " holds another channel");
    const auto key = detail::parse_uuid(ref.access_key);
    const std::uint8_t* expect = want == direction::read ? h.reader_key : h.writer_key;
    if (!key || !detail::keys_equal(key->data(), expect))
        throw error(errc::bad_key, "access key does not match the " + std::string(to_string(want)) +
                                       " end of channel " + ref.channel_id);
    return seg;
}
[[noreturn]] void throw_claimed(const channel_ref& ref) {
    throw error(errc::already_claimed, std::string("the ") + to_string(ref.dir) + " end of channel " +
                                           ref.channel_id + " is already claimed");
}
}  // namespace

loan_claim_setting effective_loan_claim(const channel_options& o) {
    using policy = channel_options::claim_policy;
    static const loan_claim_setting env = [] {
        const channel_options d;
        loan_claim_setting c{d.loan_claim, d.loan_claim_min};
        if (const char* v = std::getenv("SHMCHAN_LOAN_CLAIM_MIN"); v && *v) c.min = std::strtoull(v, nullptr, 10);
        if (const char* v = std::getenv("SHMCHAN_LOAN_CLAIM")) {
            const std::string_view p = v;
            c.policy = p == "always" ? policy::always : p == "never" ? policy::never : p == "adaptive" ? policy::adaptive : c.policy;
        }
        return c;
    }();
    const channel_options d;
    return {o.loan_claim == d.loan_claim ? env.policy : o.loan_claim,
            o.loan_claim_min == d.loan_claim_min ? env.min : o.loan_claim_min};
}

transport effective_transport(const channel_options& opt) {
    if (opt.via != transport::automatic) return opt.via;
    const char* env = std::getenv("SHMCHAN_TRANSPORT");
    if (!env || !*env || std::string_view(env) == "auto") return transport::automatic;
    if (std::string_view(env) == "shm") return transport::shm;
    if (std::string_view(env) == "socket") return transport::socket;
    throw error(errc::invalid_argument,
                std::string("SHMCHAN_TRANSPORT must be auto, shm or socket, not \"") + env + "\"");
}

namespace {
// Shared memory when the segment is on this host and can be opened; otherwise the engine's
// socket, when there is an engine to ask.
template <class OpenShm, class OpenSocket>
auto open_end(const channel_ref& ref, const channel_options& opt, direction want, OpenShm shm_open,
              OpenSocket socket_open) {
    if (ref.dir != want)
        throw error(errc::wrong_direction,
                    std::string("ref is for the ") + to_string(ref.dir) + " end of channel " +
                        ref.channel_id + "; it cannot open the " + to_string(want) + " end");
    const transport via = effective_transport(opt);
    auto no_engine = [&](const std::string& why) {
        return error(errc::segment_missing, why + "; no engine address was given for the socket path");
    };
    if (via == transport::socket) {
        if (opt.engine.empty()) throw no_engine("socket transport requested for channel " + ref.channel_id);
        return socket_open();
    }
    if (via == transport::shm || !ref.shm || ref.shm->host == detail::host_name()) {
        if (via == transport::shm || opt.engine.empty()) return shm_open();
        try {
            return shm_open();
        } catch (const error& e) {
            if (e.kind() != errc::segment_missing) throw;  // bad keys and claims stay errors
        }
    } else if (opt.engine.empty()) {
        throw no_engine("channel " + ref.channel_id + " lives on host \"" + ref.shm->host + "\"");
    }
    return socket_open();
}
}  // namespace

writer open_writer(const channel_ref& ref, const channel_options& opt) {
    return open_end(
        ref, opt, direction::write,
        [&] {
            auto impl = std::make_unique<detail::shm_writer>(open_checked(ref, direction::write), detail::spin_of(opt),
                                                                effective_loan_claim(opt));
            if (impl->ensure_claimed()) throw_claimed(ref);
            return detail::end_access::make_writer(std::move(impl));
        },
        [&] { return detail::end_access::make_writer(detail::open_socket_writer(ref, opt.engine)); });
}

reader open_reader(const channel_ref& ref, const channel_options& opt) {
    return open_end(
        ref, opt, direction::read,
        [&] {
            auto impl = std::make_unique<detail::shm_reader>(open_checked(ref, direction::read), detail::spin_of(opt));
            if (impl->ensure_claimed()) throw_claimed(ref);
            return detail::end_access::make_reader(std::move(impl));
        },
        [&] { return detail::end_access::make_reader(detail::open_socket_reader(ref, opt.engine)); });
}

namespace detail {
namespace {
class lazy_writer_impl final : public writer_impl {
public:
    lazy_writer_impl(channel_ref r, channel_options o) : ref_(std::move(r)), opt_(std::move(o)) {}
    std::error_code write(std::span<const std::byte> b, nanoseconds t) override {
        return get() ? in_->write(b, t) : err_;
    }
    std::error_code try_write(std::span<const std::byte> b) override { return get() ? in_->try_write(b) : err_; }
    loan make_loan(std::size_t n, nanoseconds t) override { return get() ? in_->make_loan(n, t) : failed_loan(err_); }
    void commit_loan(std::size_t) override {}  // loans belong to the opened end
    void abandon_loan() override {}
    std::error_code send_message(std::string_view s, nanoseconds t) override {
        return get() ? in_->send_message(s, t) : err_;
    }
    std::error_code close(nanoseconds t) override { return get() ? in_->close(t) : err_; }
    void abort(std::string_view why) override {
        if (get()) in_->abort(why);
    }
    std::error_code wait_drained(nanoseconds t) override { return get() ? in_->wait_drained(t) : err_; }
    std::size_t max_record() const override { return in_ ? in_->max_record() : 0; }
    std::size_t capacity() const override { return in_ ? in_->capacity() : 0; }
    int event_fd() override {
        if (!get()) throw error(static_cast<errc>(err_.value()), "cannot open the writer end");
        return in_->event_fd();
    }
    writer_impl* target() override { return in_ ? in_.get() : this; }

private:
    writer_impl* get() {
        if (!in_ && !err_) {
            try {
                in_ = end_access::release(open_writer(ref_, opt_));
            } catch (const error& e) {
                err_ = e.code();
                finished = true;
            }
        }
        return in_.get();
    }
    channel_ref ref_;
    channel_options opt_;
    std::unique_ptr<writer_impl> in_;
    std::error_code err_;
};

class lazy_reader_impl final : public reader_impl {
public:
    lazy_reader_impl(channel_ref r, channel_options o) : ref_(std::move(r)), opt_(std::move(o)) {}
    item next(nanoseconds t, bool block) override {
        return get() ? in_->next(t, block) : bare(item::kind::error, sticky);
    }
    int event_fd() override {
        if (!get()) throw error(static_cast<errc>(sticky.value()), "cannot open the reader end");
        return in_->event_fd();
    }
    void release_pending() override {
        if (in_) in_->release_pending();
    }
    reader_impl* target() override { return in_ ? in_.get() : this; }

private:
    reader_impl* get() {
        if (!in_ && !sticky) {
            try {
                in_ = end_access::release(open_reader(ref_, opt_));
                in_->on_msg = std::move(on_msg);
            } catch (const error& e) {
                sticky = e.code();
            }
        }
        return in_.get();
    }
    channel_ref ref_;
    channel_options opt_;
    std::unique_ptr<reader_impl> in_;
};
}  // namespace

writer lazy_writer(const channel_ref& ref, const channel_options& options) {
    return end_access::make_writer(std::make_unique<lazy_writer_impl>(ref, options));
}
reader lazy_reader(const channel_ref& ref, const channel_options& options) {
    return end_access::make_reader(std::make_unique<lazy_reader_impl>(ref, options));
}
}  // namespace detail

bool channel_info::finished() const noexcept {
    auto done = [](end_info::state s) {
        return s == end_info::state::closed || s == end_info::state::aborted ||
               s == end_info::state::dead;
    };
    return done(writer.st) && done(reader.st);
}

channel_info inspect(const channel_ref& ref) {
    if (!ref.shm) throw error(errc::segment_missing, "ref has no shared-memory extension");
    if (ref.shm->segment != shm::segment_name_for(ref.channel_id))
        throw error(errc::invalid_ref, "segment does not belong to channel " + ref.channel_id);
    auto seg = shm::segment::open(ref.shm->segment);
    const shm::control_block* cb = seg->control();
    auto end = [](const std::atomic<std::uint32_t>& st, const shm::owner& who) {
        end_info e;
        e.pid = who.pid.load(std::memory_order_relaxed);
        switch (detail::load_state(st)) {
            case shm::end_state::unclaimed: e.st = end_info::state::unclaimed; break;
            case shm::end_state::active:
                e.st = detail::owner_dead(who) ? end_info::state::dead : end_info::state::active;
                break;
            case shm::end_state::closed: e.st = end_info::state::closed; break;
            case shm::end_state::aborted: e.st = end_info::state::aborted; break;
        }
        return e;
    };
    channel_info i;
    i.channel_id = ref.channel_id;
    i.capacity = cb->header.capacity;
    i.committed = cb->producer.tail.load(std::memory_order_acquire);
    i.released = cb->consumer.head.load(std::memory_order_acquire);
    i.writer = end(cb->producer.state, cb->producer.who);
    i.reader = end(cb->consumer.state, cb->consumer.who);
    i.creator_pid = cb->header.creator.pid.load(std::memory_order_relaxed);
    i.creator_alive = shm::process_alive(i.creator_pid, cb->header.creator.start_time.load(std::memory_order_relaxed));
    return i;
}

}  // namespace shmchan
