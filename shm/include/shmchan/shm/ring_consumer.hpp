// The readers' side of the record ring (the ring itself: ring.hpp).
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/ring_types.hpp"
#include "shmchan/shm/wake.hpp"

namespace shmchan::shm {

// The reader's side. It reads at `read_` and gives space back at `head_`: with one record at a
// time (release()) the two meet after each record; a reader holding several views moves read_
// ahead with take() and frees a prefix with release_to(), possibly from another thread (read_
// belongs to the reading thread; head_ to whoever frees, under the caller's lock).
class ring_consumer {
public:
    ring_consumer() = default;
    // Reader `index` (\pre below g.readers).
    ring_consumer(control_block* cb, const std::byte* data, const ring_geometry& g,
                  std::size_t index = 0) noexcept
        : cb_(cb), line_(&reader_line(cb, index)), data_(data), mask_(g.capacity - 1),
          capacity_(g.capacity), max_payload_(g.max_payload),
          others_(all_readers(g.readers) & ~(std::uint64_t{1} << index)),
          head_(line_->head.load(std::memory_order_relaxed)),  // own index
          read_(head_),
          tail_cache_(cb->producer.tail.load(std::memory_order_acquire)),
          drop_(g.overflow == overflow_policy::drop_oldest) {}

    // What a lapped reader missed: records and their payload bytes.
    struct gap {
        std::uint64_t records = 0;
        std::uint64_t bytes = 0;
    };

    // Looks at the next record without consuming it; padding is skipped. The view stays valid
    // until it is released. \pre only one thread of one process reads.
    ring_status try_peek(record_view& out) noexcept {
        for (;;) {
            if (read_ == tail_cache_) {
                // SYNC: acquire pairs with the writer's release store of tail in commit().
                tail_cache_ = cb_->producer.tail.load(std::memory_order_acquire);
                if (read_ == tail_cache_) return ring_status::empty;
            }
            const std::uint64_t avail = tail_cache_ - read_;
            // read_ came from shared memory when this end was claimed: check it too.
            if (tail_cache_ < read_ || ((avail | read_) % record_align) != 0) return ring_status::corrupt;
            if (avail > capacity_) return drop_ ? ring_status::lapped : ring_status::corrupt;
            const std::size_t off = read_ & mask_;
            const auto* h = reinterpret_cast<const record_header*>(data_ + off);
            // Read the header once, with single loads the compiler cannot repeat: the writer
            // side may be hostile and change it under us.
            const std::uint32_t len = load_once(h->length);
            const std::uint32_t type = load_once(h->type);
            // drop_oldest: the header is whole only if its record was not given up meanwhile.
            if (drop_ && lapped_past(read_)) return ring_status::lapped;
            const std::size_t rec = record_size(len);
            if (type == static_cast<std::uint32_t>(record_type::padding)) {
                // Padding must run exactly to the end of the ring.
                if (off + rec != capacity_ || rec > avail) return ring_status::corrupt;
                read_ += rec;
                continue;  // freed with the next record
            }
            if (type < static_cast<std::uint32_t>(record_type::binary) ||
                type > static_cast<std::uint32_t>(record_type::frame) || len > max_payload_ ||
                rec > avail || off + rec > capacity_)
                return ring_status::corrupt;
            out = {static_cast<record_type>(type), data_ + off + sizeof(record_header), len};
            pending_ = rec;
            pending_len_ = len;
            return ring_status::ok;
        }
    }

    // Moves past the record returned by the last try_peek(), which stays unreleased; returns
    // the position after it (release_to() that position to free it and all before it).
    std::uint64_t take() noexcept {
        read_ += pending_;
        pending_ = 0;
        if (drop_) {  // counted in the writer's numbering, for the gaps
            ++seq_;
            bytes_ += pending_len_;
        }
        return read_;
    }

    // drop_oldest. After `lapped`: moves to the oldest record the writer kept and says what
    // was missed before it. corrupt when the lapped line says something impossible.
    ring_status skip(gap& g) noexcept {
        counts_fields f;
        std::uint64_t t = 0;
        if (!read_lapped_and_tail(f, t)) return ring_status::corrupt;
        if (f.pos <= read_ || f.pos > t || t - f.pos > capacity_ || f.pos % record_align != 0 ||
            f.seq < seq_ || f.bytes < bytes_)
            return ring_status::corrupt;
        g = {f.seq - seq_, f.bytes - bytes_};
        read_ = f.pos;
        seq_ = f.seq;
        bytes_ = f.bytes;
        tail_cache_ = t;
        pending_ = 0;
        return ring_status::ok;
    }
    // drop_oldest. A reader joining starts at the next record the writer commits (or at the
    // end record, if the writer already closed); it counts the records before it in the
    // writer's numbering, so that later gaps can be told: from the joined line (a recent tail,
    // a few records back), or from the lapped line when that is further on. Called once, when
    // the end is claimed.
    ring_status join_at_tail() noexcept {
        // Headers walked over every attempt: a writer (or ref holder) that laps each walk near
        // its end would otherwise cost up to 1000 whole-ring walks, with no deadline, on the
        // claiming thread (an engine's event loop, say). A writer that publishes the joined
        // line every quarter ring leaves a few records to walk; four rings of headers, plus 64
        // per attempt, is far more than any honest join needs.
        std::size_t budget = 4 * (capacity_ / record_align) + 64 * 1000;
        for (int attempt = 0; attempt < 1000; ++attempt) {
            counts_fields j, f;
            std::uint64_t t = 0;
            // The joined line before the tail: the writer publishes it after the tail it names.
            if (!read_counts(cb_->joined, j) || !read_lapped_and_tail(f, t)) return ring_status::corrupt;
            if (f.pos > t || t - f.pos > capacity_ || f.pos % record_align != 0 || j.pos > t ||
                j.pos % record_align != 0)
                return ring_status::corrupt;
            if (j.pos > f.pos) f = j;  // nearer the tail: fewer headers to walk
            std::uint64_t pos = f.pos, seq = f.seq, bytes = f.bytes;
            std::uint64_t end_at = t;  // a writer that already closed: its end record
            bool lapped = false;
            while (pos < t) {
                if (budget-- == 0) return ring_status::corrupt;
                const std::size_t off = pos & mask_;
                const auto* h = reinterpret_cast<const record_header*>(data_ + off);
                const std::uint32_t len = load_once(h->length);
                const std::uint32_t type = load_once(h->type);
                if ((lapped = lapped_past(pos))) break;  // overwritten while we walked: again
                const std::size_t rec = record_size(len);
                if (rec > t - pos || off + rec > capacity_) return ring_status::corrupt;
                if (type == static_cast<std::uint32_t>(record_type::end)) {
                    end_at = pos;  // the joiner still sees the end (nothing follows it)
                    break;
                }
                if (type != static_cast<std::uint32_t>(record_type::padding)) {
                    ++seq;
                    bytes += len;
                }
                pos += rec;
            }
            if (lapped) continue;
            read_ = head_ = end_at;
            tail_cache_ = t;
            seq_ = seq;
            bytes_ = bytes;
            line_->head.store(head_, std::memory_order_release);  // for `shmchan ls`
            publish_cpu();
            return ring_status::ok;
        }
        return ring_status::corrupt;  // lapped at every try: no writer does that
    }
    // drop_oldest: the record that ends at `end` (a position take() returned) was still kept
    // by the writer, so the bytes read from its view before this call were whole. Always
    // true under block.
    bool intact(std::uint64_t end) const noexcept { return !drop_ || !lapped_past(end - 1); }
    bool drops() const noexcept { return drop_; }
    // Gives every record before `pos` (a position take() returned; never decreasing) back to
    // the writer.
    void release_to(std::uint64_t pos) noexcept {
        head_ = pos;
        // SYNC: release pairs with the writer's acquire load of head in try_claim(): we are
        // done reading the records before the writer may overwrite them.
        line_->head.store(head_, std::memory_order_release);
        publish_cpu();
        if (has_sleeper(cb_->space, rmw_wakes_) && writer_can_go_on()) wake_sleepers(cb_->space);
    }
    // From now on every release reads the space line's `waiting` with a read-modify-write, so
    // that the writer's sleeps need no barrier once every reader did this (wake.hpp).
    // \pre before the first release.
    void promise_rmw_wakes() noexcept {
        if (!rmw_wakes_) promise_rmw_wakes_on(cb_->space);
        rmw_wakes_ = true;
    }
    // True when the writer last committed from CPU `cpu` (cpu_tag(), nonzero): waiting for its
    // next record by spinning there only delays it.
    bool writer_on_cpu(std::uint32_t cpu) const noexcept {
        return cpu != 0 && cb_->producer.cpu.load(std::memory_order_relaxed) == cpu;
    }
    // Gives the record returned by the last try_peek() back to the writer (with everything
    // taken before it).
    void release() noexcept { release_to(take()); }

    bool has_pending() const noexcept { return pending_ != 0; }
    // Where the record returned by the last try_peek() ends.
    std::uint64_t pending_end() const noexcept { return read_ + pending_; }

private:
    struct counts_fields {
        std::uint64_t pos, seq, bytes;
    };
    // The writer gave up the record at `pos` (or any after it, up to the lapped position).
    bool lapped_past(std::uint64_t pos) const noexcept {
        // SYNC: pairs with the release fence after the writer's publication in drop_until():
        // if anything read before this fence saw a byte written after the publication, the
        // load below sees the new position.
        std::atomic_thread_fence(std::memory_order_acquire);
        return cb_->lapped.pos.load(std::memory_order_relaxed) > pos;
    }
    // The current slot of a counts line, consistent: taken between two equal loads of the
    // version (ring_producer::publish() writes only the other slot before it moves the
    // version). False when the version never holds still: only a hostile writer does that.
    bool read_lapped(counts_fields& f) const noexcept { return read_counts(cb_->lapped, f); }
    bool read_counts(const counts_line& l, counts_fields& f) const noexcept {
        // SYNC: pairs with the writer's release store of pos in publish(): a reader that saw
        // that pos in lapped_past() loads at least the version published with it.
        std::atomic_thread_fence(std::memory_order_acquire);
        for (int i = 0; i < 1000; ++i) {
            // SYNC: acquire pairs with the writer's release store of the version.
            const std::uint32_t v = l.version.load(std::memory_order_acquire);
            const counts_slot& s = l.slot[v & 1];
            f.pos = s.pos.load(std::memory_order_relaxed);
            f.seq = s.seq.load(std::memory_order_relaxed);
            f.bytes = s.bytes.load(std::memory_order_relaxed);
            // SYNC: pairs with the release fence before the writer's slot stores.
            std::atomic_thread_fence(std::memory_order_acquire);
            if (l.version.load(std::memory_order_relaxed) == v) return true;
        }
        return false;
    }
    // The lapped line and a tail that belong together: the line is read before and after the
    // tail, and taken when both reads agree. Then the writer kept everything from f.pos up to
    // t, so t - f.pos <= capacity; a tail read after a line alone may be any number of rings
    // further, under a writer that laps this reader again meanwhile (preempted in between).
    // False when the line never holds still (1000 tries of 1000 reads): a hostile writer.
    bool read_lapped_and_tail(counts_fields& f, std::uint64_t& t) const noexcept {
        if (!read_lapped(f)) return false;
        for (int i = 0; i < 1000; ++i) {
            // SYNC: acquire pairs with the writer's release store of tail in commit(); the
            // writer publishes the lapped line before it moves the tail past what it dropped.
            t = cb_->producer.tail.load(std::memory_order_acquire);
            counts_fields again;
            if (!read_lapped(again)) return false;
            if (again.pos == f.pos && again.seq == f.seq && again.bytes == f.bytes) return true;
            f = again;  // lapped again since: try with the newer line
        }
        return false;
    }

public:
    // Where the next record will be read (the event-fd watcher waits for the tail to pass it).
    std::uint64_t read_position() const noexcept { return read_; }
    // Reloads the tail; true if a record (or padding) waits.
    bool readable() noexcept {
        tail_cache_ = cb_->producer.tail.load(std::memory_order_acquire);
        return tail_cache_ != read_;
    }

private:
    // The cpu hint beside this reader's head: relaxed, stored only when the reader moved.
    void publish_cpu() noexcept {
        if (const std::uint32_t c = cpu_tag(); c != cpu_) {
            cpu_ = c;
            line_->cpu.store(c, std::memory_order_relaxed);
        }
    }
    // A writer sleeps on the space line: whether the room it said it needs is there now, so
    // that of several readers only the last to pass it wakes the writer (each release did, and
    // the writer slept again, a membarrier each time). Hints from shared memory, used for
    // nothing else: bits beyond the validated reader count are ignored.
    bool writer_can_go_on() const noexcept {
        wait_line& w = cb_->space;
        // SYNC: pairs with the same fence in every other reader's release_to(): of two readers
        // releasing at once, each stored its head before its fence, so at least one sees the
        // other's head and the last to pass need_head always wakes the writer. The fence also
        // makes the need stored before the writer counted itself in `waiting` visible.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        const std::uint64_t need = w.need_head.load(std::memory_order_relaxed);
        if (head_ < need) return false;  // this reader is still in the way: no use waking
        for (std::uint64_t m = w.need_readers.load(std::memory_order_relaxed) & others_; m; m &= m - 1) {
            const consumer_line& l = reader_line(cb_, static_cast<std::size_t>(std::countr_zero(m)));
            if (l.head.load(std::memory_order_acquire) < need) return false;  // it wakes the writer
        }
        return true;
    }

    control_block* cb_ = nullptr;
    consumer_line* line_ = nullptr;  // this reader's
    const std::byte* data_ = nullptr;
    std::size_t mask_ = 0;
    std::size_t capacity_ = 0;
    std::size_t max_payload_ = 0;
    std::uint64_t others_ = 0;      // the other readers' bits
    std::uint64_t head_ = 0;        // own index, mirrors this reader's line's head
    std::uint32_t cpu_ = 0;         // the cpu hint last published
    std::uint64_t read_ = 0;        // where the next record is read; head_ <= read_
    std::uint64_t tail_cache_ = 0;  // last seen producer.tail
    std::size_t pending_ = 0;       // size of the record being viewed
    std::size_t pending_len_ = 0;   // its payload length
    bool drop_ = false;             // overflow_policy::drop_oldest
    bool rmw_wakes_ = false;        // promise_rmw_wakes()
    std::uint64_t seq_ = 0;         // drop_oldest: records and payload bytes before read_,
    std::uint64_t bytes_ = 0;       // in the writer's numbering
};

}  // namespace shmchan::shm
