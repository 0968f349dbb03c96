// The reader end over a channel segment: views records in place, releases them, and tells a
// clean end from an abort, a dead writer or a corrupt ring.
#include <algorithm>

#include "end_state.hpp"
#include "event_watcher.hpp"
#include "segments.hpp"
#include "shm_ends.hpp"
#include "shmchan/shm/frame_record.hpp"
#include "shmchan/shm/ring.hpp"
#include "waiting.hpp"

namespace shmchan::detail {

namespace {

using namespace shm;

class shm_reader final : public reader_impl {
public:
    std::shared_ptr<segment> seg;
    control_block* cb;
    ring_geometry geometry;  // the segment's, validated at open: never the header's
    ring_consumer cons;
    spin_budget spin;
    bool claimed = false;
    bool finished = false;  // our end is final (end seen, sticky error, or closed)
    liveness_timer liveness;
    event_watcher data_watch;
    slot_lock lock;                      // held while this end lives: our liveness
    std::uint32_t generation = 0;        // process_generation() when claimed
    std::shared_ptr<creator_guard> guard;  // the creator's ends only
    std::size_t index;                     // which of the segment's readers this is
    bool prefault_wanted;                  // channel_options::prefault
    bool rmw_wakes;                        // channel_options::rmw_wakes
    bool data_events = true;               // would_block arms the event fd (data_events_off)

    shm_reader(std::shared_ptr<segment> s, const channel_options& opt, std::size_t i)
        : reader_impl(opt.max_held), seg(std::move(s)), cb(seg->control()), geometry(seg->geometry()),
          spin(spin_of(opt)), index(i), prefault_wanted(opt.prefault),
          rmw_wakes(rmw_wakes_of(opt)) {}

    // Claimed by an ancestor process before a fork: the end is the parent's, not ours.
    bool foreign() const noexcept { return claimed && generation != process_generation(); }

    std::error_code ensure_claimed() {
        if (claimed) return {};
        // Placed before the line says active: drop_oldest joins at the tail there (an
        // impossible lapped line: corrupt), so a writer that sees this reader reading knows it
        // gets every record written after.
        auto place = [this]() -> std::error_code {
            cons = ring_consumer(cb, seg->data(), geometry, index);
            if (cons.drops() && cons.join_at_tail() != ring_status::ok) return errc::corrupt;
            return {};
        };
        if (auto e = claim(*seg, reader_end(*seg, index), lock, place)) return e;
        claimed = true;
        if (rmw_wakes) cons.promise_rmw_wakes();  // before the first release
        prefault(*seg, false, prefault_wanted);
        generation = process_generation();
        return {};
    }

    item make(item::kind k, std::span<const std::byte> d = {}, std::error_code e = {}) {
        if (k == item::kind::chunk || k == item::kind::message) {
            // Held mode: the record stays in the ring until its item is released.
            const std::uint64_t end = held.enabled() ? cons.take() : cons.pending_end();
            item it = held.enabled() ? view(k, d, end) : view(k, d);
            set_end(it, end);
            return it;
        }
        return bare(k, e);
    }
    bool intact(std::uint64_t end) const override { return cons.intact(end); }
    // drop_oldest: the writer gave up records this reader had not read; say what was missed.
    item lapped() {
        ring_consumer::gap g;
        if (cons.skip(g) != ring_status::ok) return fail(errc::corrupt);
        return gap_item({g.records, g.bytes});
    }
    void release_pending() override {
        if (!pending || foreign()) return;
        pending = false;
        cons.release();
    }
    void release_held_to(std::uint64_t pos) override {
        // Items outliving a fork belong to the parent's end; after the end finished, its head
        // is no one's to move. (Called from any thread, under the held lock.)
        if (foreign() || frozen.load(std::memory_order_acquire)) return;
        cons.release_to(pos);
    }
    std::atomic<bool> frozen{false};  // set when the end finishes: held releases stop
    // `how`: closed, or aborted for an end whose holder lost its own reader (the engine's end
    // for a socket reader whose connection broke): the writer reads that as lost.
    void finish(end_state how = end_state::closed) {
        if (finished) return;
        finished = true;
        {
            std::lock_guard g(held_lock());  // no release is moving the head while we finish
            frozen.store(true, std::memory_order_release);
        }
        finish_end(*seg, reader_end(*seg, index), how, cb->space);
        // finish_end saw zeros (an unclaimed writer) and left the name; nobody can use it now.
        if (seg->truncated()) seg->unlink();
    }
    item fail(std::error_code e) {
        sticky = e;
        finish();
        return make(item::kind::error, {}, e);
    }
    // Called with the ring found empty. Returns an error once the writer can add nothing more.
    std::error_code writer_gone(bool check_liveness) {
        // Truncated: the writer's state and tail read as zeros (unclaimed, nothing written).
        if (seg->truncated()) return errc::corrupt;
        const end_state w = load_state(cb->producer.state);
        if (w == end_state::active || w == end_state::unclaimed) {
            if (w == end_state::unclaimed || !check_liveness || seg->held(lock_slot::writer))
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
            case record_type::frame: {
                frame_record f;
                const bool whole = read_frame(v, f);
                // drop_oldest: its header may have been overwritten while we read it.
                if (!cons.intact(cons.pending_end())) return lapped();
                if (!whole) return fail(errc::corrupt);
                bytes += f.size;
                frame_meta m;
                m.pts = f.fields.pts;
                m.dts = f.fields.dts;
                m.duration = f.fields.duration;
                m.offset = f.fields.offset;
                m.offset_end = f.fields.offset_end;
                m.flags = f.fields.flags;
                m.user = {f.fields.user, f.fields.user_len};
                const std::uint64_t end = held.enabled() ? cons.take() : cons.pending_end();
                item it = held.enabled() ? frame_view({f.data, f.size}, m, end) : frame_view({f.data, f.size}, m);
                set_end(it, end);
                return it;
            }
            default:  // end
                ended = true;
                if (held.enabled()) {
                    // Freed with the items still held before it. The end finishes once they are
                    // all released (a writer waiting for them to drain must not see us leave
                    // first), or when the reader goes.
                    const std::uint64_t pos = cons.take();
                    held.release(held.add(pos), [this](std::uint64_t c) { release_held_to(c); });
                    if (held.alive() == 0) finish();
                    return make(item::kind::end);
                }
                cons.release();
                finish();
                return make(item::kind::end);
        }
    }
    item next(nanoseconds t, bool block) override {
        if (foreign()) return make(item::kind::error, {}, errc::forked);
        release_pending();
        if (ended) {
            if (held.enabled() && held.alive() == 0) finish();
            return make(item::kind::end);
        }
        if (sticky) return make(item::kind::error, {}, sticky);
        if (finished) return make(item::kind::error, {}, errc::closed);
        // A process-local flag. Set since the last item: that item may have been read from
        // zero pages, and nothing after it is the writer's.
        if (seg->truncated()) return fail(errc::corrupt);
        if (auto e = ensure_claimed()) return make(item::kind::error, {}, e);
        if (held_full()) return make(item::kind::error, {}, errc::held_limit);
        record_view v;
        ring_status st = cons.try_peek(v);
        if (st == ring_status::ok) return deliver(v);  // the fast path reads no clock
        if (st == ring_status::lapped) return lapped();
        deadline dl(t);
        const auto t0 = clock::now();
        spinner sp(block ? spin.now() : 0ns);
        for (;;) {
            if (st == ring_status::ok) {
                spin.waited(clock::now() - t0);
                return deliver(v);
            }
            if (st == ring_status::corrupt) return fail(errc::corrupt);
            if (st == ring_status::lapped) return lapped();
            if (!block) {
                if (auto e = writer_gone(liveness_due())) return fail(e);
                if (data_events) data_watch.arm(cons.read_position());
                return make(item::kind::error, {}, errc::would_block);
            }
            static const bool spin_beside = spin_on_peer_cpu();
            if ((spin_beside || !cons.writer_on_cpu(shm::cpu_tag())) && sp.more()) {
                st = cons.try_peek(v);
                continue;
            }
            std::error_code gone;
            const sleep_result s = sleep_once(cb->data, 1, dl, [&] {
                if (cons.readable()) return true;
                gone = writer_gone(liveness_due());
                return bool(gone);
            });
            if (gone) return fail(gone);
            if (s == sleep_result::timed_out) return make(item::kind::error, {}, errc::timeout);
            st = cons.try_peek(v);
        }
    }

    // Signals when the tail moves or the writer's fate changes.
    int event_fd() override {
        if (foreign()) throw shmchan::error(errc::forked, "event_fd: the reader end belongs to the parent process");
        if (auto e = ensure_claimed()) throw shmchan::error(static_cast<errc>(e.value()), "event_fd: cannot claim the reader end");
        auto* p = &cb->producer;
        return data_watch.start(
            cb->data, [p] { return p->tail.load(std::memory_order_acquire); },
            [p] {
                const end_state w = load_state(p->state);
                return w == end_state::closed || w == end_state::aborted;
            },
            writer_fate(*seg));
    }

    void data_events_off() override { data_events = false; }

    void finish_lost() override {
        if (foreign() || !claimed) return;
        release_pending();
        finish(end_state::aborted);
    }

    ~shm_reader() override {
        if (foreign()) {  // a forked child's copy: the end is the parent's
            data_watch.stop();  // closes this process's copy of the fd only
            return;
        }
        data_watch.stop();
        if (claimed) {
            release_pending();
            finish();
        }
    }
};

}  // namespace

std::unique_ptr<reader_impl> shm_reader_end(std::shared_ptr<shm::segment> seg, const channel_options& opt,
                                            bool claim_now, std::shared_ptr<creator_guard> guard,
                                            std::size_t index) {
    auto r = std::make_unique<shm_reader>(std::move(seg), opt, index);
    r->guard = std::move(guard);
    if (claim_now && r->ensure_claimed()) return nullptr;
    return r;
}

}  // namespace shmchan::detail
