// The writer end over a channel segment: claims records in the ring (copying, or lending them
// to fill in place), waits for room, and ends the stream with an end record or an abort.
#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "end_state.hpp"
#include "env_knob.hpp"
#include "event_watcher.hpp"
#include "segments.hpp"
#include "shm_ends.hpp"
#include "shmchan/memory.hpp"
#include "shmchan/shm/claim_chooser.hpp"
#include "shmchan/shm/frame_record.hpp"
#include "shmchan/shm/ring.hpp"
#include "waiting.hpp"

namespace shmchan::detail {

namespace {

using namespace shm;

// SHMCHAN_EARLY_WRAP_MIN=BYTES (0: never) replaces the ring's default for A/B runs.
std::size_t early_wrap_min() {
    static const std::size_t v = env_number("SHMCHAN_EARLY_WRAP_MIN").value_or(default_early_wrap_min);
    return v;
}

class shm_writer final : public writer_impl {
public:
    std::shared_ptr<segment> seg;
    control_block* cb;
    ring_geometry geometry;  // the segment's, validated at open: never the header's
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
    std::byte* frame_base = nullptr;  // a frame loan's record payload (its header goes there)
    std::error_code sticky;  // the reader is gone or the segment is corrupt: nothing more to do
    event_watcher space_watch;
    slot_lock lock;                      // held while this end lives: our liveness
    std::uint32_t generation = 0;        // process_generation() when claimed
    std::shared_ptr<creator_guard> guard;  // the creator's ends only
    // Why each reader stopped counting (reading: it still counts). Its mask is mirrored for the
    // event-fd watcher thread.
    std::vector<reader_status::state> gone;
    std::atomic<std::uint64_t> counted_mirror{0};
    bool any_lost = false;
    bool prefault_wanted;  // channel_options::prefault
    bool rmw_wakes;        // channel_options::rmw_wakes

    shm_writer(std::shared_ptr<segment> s, const channel_options& opt)
        : seg(std::move(s)), cb(seg->control()), geometry(seg->geometry()), spin(spin_of(opt)),
          claim_cfg(effective_loan_claim(opt)), gone(geometry.readers, reader_status::state::reading),
          prefault_wanted(opt.prefault), rmw_wakes(rmw_wakes_of(opt)) {}

    std::error_code ensure_claimed() {
        if (claimed) return {};
        if (auto e = claim(*seg, writer_end(cb), lock)) return e;
        claimed = true;
        prefault(*seg, true, prefault_wanted);
        generation = process_generation();
        prod = ring_producer(cb, seg->data(), geometry);
        prod.wrap_early_from(early_wrap_min());
        if (rmw_wakes) prod.promise_rmw_wakes();  // before the first commit
        counted_mirror.store(prod.counted(), std::memory_order_relaxed);
        return {};
    }
    // Claimed by an ancestor process before a fork: the end is the parent's, not ours.
    bool foreign() const noexcept { return claimed && generation != process_generation(); }
    std::error_code ready() {
        if (foreign()) return errc::forked;
        if (sticky) return sticky;
        if (finished) return errc::closed;
        // A process-local flag: a loan or write that faulted since is not reported as written.
        if (seg->truncated()) return check_fatal(errc::corrupt);
        if (loan_out) return errc::invalid_argument;  // one claim at a time: commit the loan first
        return ensure_claimed();
    }
    // The readers' fates, checked on the slow path only (a state shares its head's line);
    // their liveness (a lock test, one fcntl each) at most once per poll interval unless `now`.
    // A reader that closed or died stops holding space; an error only once none is left.
    std::error_code peer_check(bool now = false) {
        // Truncated: the ring and the readers' states read as zeros (unclaimed) from here on.
        if (seg->truncated()) return errc::corrupt;
        const bool look = liveness.due() || now;
        for (std::uint64_t m = prod.counted(); m; m &= m - 1) {
            const auto i = static_cast<std::size_t>(std::countr_zero(m));
            const reader_status::state st = fate_of(i, look);
            if (st != reader_status::state::reading && st != reader_status::state::waiting) drop(i, st);
        }
        if (prod.counted() == 0) return any_lost ? errc::peer_lost : errc::peer_closed;
        return {};
    }
    // Reader i as its line says now: waiting, reading, or gone (done: it released everything up
    // to the end record, the writer being finished; left: closed before; lost: dead, or a state
    // no reader writes). Its liveness lock is tested only when `look`.
    reader_status::state fate_of(std::size_t i, bool look) const {
        consumer_line& l = seg->reader(i);
        end_state r = load_state(l.state);
        if (r == end_state::unclaimed) return reader_status::state::waiting;
        if (r == end_state::active) {
            if (!look || seg->held(reader_slot(i))) return reader_status::state::reading;
            // Unlocked: its holder died, or closed between our two looks (a reader writes its
            // final state before its lock goes, so the state read now is the last one).
            r = load_state(l.state);
        }
        const bool all = finished && l.head.load(std::memory_order_acquire) == prod.tail();
        if (all) return reader_status::state::done;
        return r == end_state::closed ? reader_status::state::left : reader_status::state::lost;
    }
    void drop(std::size_t i, reader_status::state why) {
        prod.drop_reader(i);
        counted_mirror.store(prod.counted(), std::memory_order_relaxed);
        gone[i] = why;
        any_lost = any_lost || why == reader_status::state::lost;
    }
    // An event loop's try found the ring too full: readers found closed or dead now stop
    // counting. True when one did, whose head may have been all that held the room: the
    // caller looks again (its event fd, armed now, would wait for a release that never comes).
    bool dropped_gone_readers(std::error_code& err) {
        const std::uint64_t before = prod.counted();
        err = check_fatal(peer_check());
        return !err && prod.counted() != before;
    }
    // After try_claim() said `corrupt`, or a reload found an impossible head (heads_ok()): a
    // reader that wrote an impossible head is dropped when others are left (and the claim is
    // tried again). Anything else is `corrupt`: the ring's own state, which no retry changes
    // (it looped for ever when reader 0 was taken for it).
    std::error_code bad_head() {
        const std::size_t i = prod.reader_to_drop();
        if (i == shm::ring_producer::no_reader) return errc::corrupt;
        drop(i, reader_status::state::lost);
        return {};
    }
    std::vector<reader_status> readers() const override {
        std::vector<reader_status> out(geometry.readers);
        for (std::size_t i = 0; i < out.size(); ++i) {
            consumer_line& l = seg->reader(i);
            out[i].released = l.head.load(std::memory_order_acquire);
            out[i].pid = l.who.pid.load(std::memory_order_relaxed);
            // As peer_check() would drop it now (a const look: nothing is dropped).
            out[i].st = gone[i] != reader_status::state::reading ? gone[i] : fate_of(i, true);
        }
        return out;
    }
    std::error_code wait_space(std::size_t payload, const deadline& dl) {
        const auto t0 = clock::now();
        static const bool spin_beside = spin_on_peer_cpu();
        for (spinner sp(dl.immediate() ? 0ns : spin.now()); sp.more();) {
            if (prod.can_claim(payload)) return spin.waited(clock::now() - t0), std::error_code{};
            if (!spin_beside && prod.held_on_cpu(payload, shm::cpu_tag())) break;  // sleep instead
        }
        for (;;) {
            if (auto e = peer_check()) return e;
            prod.say_need(payload);
            const sleep_result r = sleep_once(cb->space, static_cast<std::uint32_t>(geometry.readers), dl, [&] { return prod.can_claim(payload) || seg->truncated(); });
            prod.clear_need();
            switch (r) {
                case sleep_result::ready: spin.waited(clock::now() - t0); return {};
                case sleep_result::timed_out:
                    if (dl.immediate()) space_watch.arm(prod.heads_sum());  // an event loop's try
                    return errc::timeout;
                case sleep_result::woken: break;
            }
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
            if (st == ring_status::corrupt && !seg->truncated() && !bad_head()) continue;
            if (st != ring_status::full || seg->truncated()) {
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
        // The record went to zero pages if the segment was truncated meanwhile (close(): the
        // end record must not be reported as delivered).
        if (seg->truncated()) return check_fatal(errc::corrupt);
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
        if (seg->truncated()) return check_fatal(errc::corrupt);  // as push()
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
        // drop_oldest never waits: what does not fit replaces the oldest records.
        while (!prod.drops()) {
            const std::size_t unread = prod.unread_bytes();
            if (!prod.heads_ok()) {  // a reader wrote an impossible head: drop it, or corrupt
                if (auto e = check_fatal(bad_head())) return e;
                continue;
            }
            if (need <= cap - std::min<std::size_t>(unread, cap)) break;
            std::error_code e;
            if (dropped_gone_readers(e)) continue;
            if (e) return e;
            space_watch.arm(prod.heads_sum());
            return errc::would_block;
        }
        return write(bytes, 0ns);  // fits: no record will wait
    }
    loan make_loan(std::size_t n, nanoseconds t) override {
        if (auto e = ready()) return failed_loan(e);
        if (n > prod.max_payload()) return failed_loan(errc::too_large);
        std::error_code err;
        std::byte* p = claim_loan(n, record_type::binary, t, err);
        if (!p) return failed_loan(err);
        prepare_loan(p, n);
        return lend(p, n);
    }
    loan make_frame_loan(std::size_t n, nanoseconds t) override {
        if (auto e = ready()) return failed_loan(e);
        if (auto e = check_frame(n, {})) return failed_loan(e);
        std::error_code err;
        std::byte* p = claim_loan(frame_loan_offset + n, record_type::frame, t, err);
        if (!p) return failed_loan(err);
        frame_base = p;
        prepare_loan(p + frame_loan_offset, n);
        return lend_frame(p + frame_loan_offset, n);
    }
    // Claims a record for a loan: at once (try_loan, t == 0) or waiting up to t.
    std::byte* claim_loan(std::size_t payload, record_type type, nanoseconds t, std::error_code& err) {
        if (t != 0ns) {
            deadline dl(t);
            return claim_record(payload, type, dl, err);
        }
        ring_status st;  // try_loan: no spinning, no waiting
        for (;;) {  // each pass with one reader fewer, or the last
            if (std::byte* p = prod.try_claim(payload, type, st)) return p;
            if (st == ring_status::corrupt && !seg->truncated() && !bad_head()) continue;
            if (st != ring_status::full || seg->truncated()) break;
            if (dropped_gone_readers(err)) continue;
            if (!err) {
                space_watch.arm(prod.heads_sum());
                err = errc::would_block;
            }
            return nullptr;
        }
        err = check_fatal(st == ring_status::too_large ? errc::too_large : errc::corrupt);
        return nullptr;
    }
    // The loan's bytes are `p`, `n`: claim them for writing, as the policy says, and time it.
    void prepare_loan(std::byte* p, std::size_t n) {
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
    }
    void commit_loan(std::size_t used) override {
        if (!loan_out) return;  // the loan was cancelled by close(), abort() or an error
        if (loan_timed) chooser.took(ticks() - loan_t0, loan_n);
        prod.commit(used);
        written += used;
        loan_out = false;
    }
    void commit_frame_loan(std::size_t used, const frame_meta& m) override {
        if (!loan_out) return;
        if (loan_timed) chooser.took(ticks() - loan_t0, loan_n);
        frame_fields f = fields_of(m);  // its user header was checked by loan::commit
        put_frame_header(frame_base, f, frame_loan_offset);
        prod.commit(frame_loan_offset + used);
        written += used;
        loan_out = false;
    }
    std::error_code write_frame(std::span<const std::byte> bytes, const frame_meta& m, nanoseconds t) override {
        if (auto e = ready()) return e;
        if (auto e = check_frame(bytes.size(), m)) return e;
        const std::size_t off = frame_data_offset(m.user.size());
        deadline dl(t);
        std::error_code err;
        std::byte* p = claim_record(off + bytes.size(), record_type::frame, dl, err);
        if (!p) return err;
        put_frame_header(p, fields_of(m), off);
        copy_into_shared(p + off, bytes.data(), bytes.size());
        prod.commit(off + bytes.size());
        written += bytes.size();
        if (seg->truncated()) return check_fatal(errc::corrupt);  // as push()
        return {};
    }
    static frame_fields fields_of(const frame_meta& m) noexcept {
        frame_fields f;
        f.pts = m.pts;
        f.dts = m.dts;
        f.duration = m.duration;
        f.offset = m.offset;
        f.offset_end = m.offset_end;
        f.flags = m.flags;
        f.user = m.user.data();
        f.user_len = std::min(m.user.size(), max_frame_user);
        return f;
    }
    std::size_t max_frame() const override { return geometry.max_payload - frame_overhead; }
    void abandon_loan() override { loan_out = false; }
    std::error_code send_message(std::string_view text, nanoseconds t) override {
        if (auto e = ready()) return e;
        if (text.size() > prod.max_payload()) return errc::too_large;
        return push(record_type::text, reinterpret_cast<const std::byte*>(text.data()), text.size(), t);
    }
    std::size_t max_record() const override { return geometry.max_payload; }
    std::size_t capacity() const override { return geometry.capacity; }
    std::error_code close(nanoseconds t) override {
        if (foreign()) return errc::forked;
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
        if (finished || foreign()) return;  // also after a fatal error: the reader is gone
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
        finish_end(*seg, writer_end(cb), s, cb->data);
        // finish_end saw zeros (an unclaimed reader) and left the name; nobody can use it now.
        if (seg->truncated()) seg->unlink();
    }
    std::error_code wait_drained(nanoseconds t) override {
        if (foreign()) return errc::forked;
        if (sticky) return sticky;
        if (!claimed) return {};
        deadline dl(t);
        for (;;) {
            const std::size_t unread = prod.unread_bytes();
            if (!prod.heads_ok()) {  // an impossible head: drop it, or corrupt
                if (auto e = check_fatal(bad_head())) return e;
                continue;
            }
            const std::error_code none_left = unread == 0 ? std::error_code{} : peer_check();
            if (none_left || prod.unread_bytes() == 0) {
                // Every reader still counted released everything: those that left early or
                // died are the answer.
                std::error_code e;
                for (auto g : gone)
                    if (g == reader_status::state::left && !e) e = errc::peer_closed;
                for (auto g : gone)
                    if (g == reader_status::state::lost) e = errc::peer_lost;
                return prod.counted() == 0 ? check_fatal(e) : e;
            }
            prod.say_need(0, true);
            const sleep_result r = sleep_once(cb->space, static_cast<std::uint32_t>(geometry.readers), dl, [&] { return prod.unread_bytes() == 0; });
            prod.clear_need();
            if (r == sleep_result::timed_out) return errc::timeout;
        }
    }
    // Signals when the head moves or the reader's fate changes.
    int event_fd() override {
        if (foreign()) throw shmchan::error(errc::forked, "event_fd: the writer end belongs to the parent process");
        if (auto e = ensure_claimed()) throw shmchan::error(static_cast<errc>(e.value()), "event_fd: cannot claim the writer end");
        // In the watcher thread: the readers this end still counts (a mirror of its mask).
        shm::segment* s = seg.get();
        const std::atomic<std::uint64_t>* counted = &counted_mirror;
        const std::size_t n = geometry.readers;
        auto each_counted = [s, counted](auto&& pred) {
            for (std::uint64_t m = counted->load(std::memory_order_relaxed); m; m &= m - 1)
                if (pred(reader_end(*s, static_cast<std::size_t>(std::countr_zero(m))))) return true;
            return false;
        };
        return space_watch.start(
            cb->space,
            [s, n] {  // as ring_producer::heads_sum()
                std::uint64_t sum = 0;
                for (std::size_t i = 0; i < n; ++i) sum += s->reader(i).head.load(std::memory_order_acquire);
                return sum;
            },
            [each_counted] {  // a counted reader closed: the next try drops it (or fails)
                return each_counted([](end_ref e) { return load_state(e.state) == end_state::closed; });
            },
            [s, each_counted] { return each_counted([s](end_ref e) { return final_or_dead(*s, e); }); });
    }
    ~shm_writer() override {
        if (foreign()) {  // a forked child's copy: the end is the parent's
            space_watch.stop();  // closes this process's copy of the fd only
            return;
        }
        space_watch.stop();
        if (claimed && !finished) abort("writer destroyed without close()");
    }
};

}  // namespace

std::unique_ptr<writer_impl> shm_writer_end(std::shared_ptr<shm::segment> seg, const channel_options& opt,
                                            bool claim_now, std::shared_ptr<creator_guard> guard) {
    auto w = std::make_unique<shm_writer>(std::move(seg), opt);
    w->guard = std::move(guard);
    if (claim_now && w->ensure_claimed()) return nullptr;
    return w;
}

}  // namespace shmchan::detail
