// The single-producer record ring that lives in a channel segment, read by one or several
// readers (each sees every record).
//
// Positions (`head`, `tail`) count bytes ever released/committed and never wrap; the offset in
// the ring is position & (capacity - 1). The writer owns `tail`, each reader its own `head`;
// each side keeps a private cached copy of the other's index (the writer: the lowest head of
// the readers it still counts) and reloads it only when it seems to have run out (full /
// empty), so the shared cache lines move between cores rarely.
//
// Everything the reader takes from shared memory is validated before use: a corrupted or
// hostile segment yields ring_status::corrupt, never an out-of-bounds read.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/wake.hpp"

namespace shmchan::shm {

// lapped: (drop_oldest) the writer overwrote records this reader had not read; skip().
enum class ring_status { ok, full, empty, corrupt, too_large, lapped };

// A bit for each of `n` readers (\pre 1 <= n <= 64).
constexpr std::uint64_t all_readers(std::size_t n) noexcept {
    return n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
}

// Records from this size up wrap early (ring_producer::early_wrap_fits). Smaller ones stay in
// the caches anyway, and wrapping early ties the writer closer to the reader: 1 MiB records
// in a 4 MiB ring ran at 0.5-1x the speed without it here; 16 MiB ones at 1.2x with it.
inline constexpr std::size_t default_early_wrap_min = std::size_t{4} << 20;

class ring_producer {
public:
    ring_producer() = default;
    // `g`: the segment's validated geometry (never the header's, which a peer may rewrite).
    ring_producer(control_block* cb, std::byte* data, const ring_geometry& g) noexcept
        : cb_(cb), data_(data), mask_(g.capacity - 1), capacity_(g.capacity),
          max_payload_(g.max_payload),
          readers_(g.readers),
          live_(all_readers(g.readers)),
          tail_(cb->producer.tail.load(std::memory_order_relaxed)) {  // own index
        drop_ = g.overflow == overflow_policy::drop_oldest;
        reload_heads();  // an impossible head is found again, and reported, by try_claim()
        if (drop_) {  // the lapped line is the writer's own, as the tail
            oldest_ = cb->lapped.pos.load(std::memory_order_relaxed);
            oldest_seq_ = cb->lapped.seq.load(std::memory_order_relaxed);
            oldest_bytes_ = cb->lapped.bytes.load(std::memory_order_relaxed);
            lapped_version_ = cb->lapped.version.load(std::memory_order_relaxed) & ~1u;
        }
    }

    std::size_t max_payload() const noexcept { return max_payload_; }
    std::size_t capacity() const noexcept { return capacity_; }

    // The readers whose heads hold space (bit i: reader i). All at first; the writer end stops
    // counting a reader that closed or died (drop_reader), and then never counts it again.
    std::uint64_t counted() const noexcept { return live_; }
    void drop_reader(std::size_t i) noexcept { live_ &= ~(std::uint64_t{1} << i); }
    // The reader whose head was impossible, after `corrupt`.
    std::size_t bad_reader() const noexcept { return bad_reader_; }

    // Reserves room for a record of `payload` bytes and returns where its payload goes, or
    // nullptr with `st` = full / corrupt / too_large. Nothing is visible to the reader until
    // commit(). \pre only one thread of one process produces.
    std::byte* try_claim(std::size_t payload, record_type type, ring_status& st) noexcept {
        if (payload > max_payload_) {
            st = ring_status::too_large;
            return nullptr;
        }
        if (tail_ % record_align != 0) {  // tail_ came from shared memory when this end was claimed
            st = ring_status::corrupt;
            return nullptr;
        }
        const std::size_t rec = record_size(payload);
        const std::size_t off = tail_ & mask_;
        const std::size_t to_end = capacity_ - off;
        std::size_t pad = rec > to_end ? to_end : 0;
        if (!pad && off != 0 && rec >= early_wrap_min_ && early_wrap_fits(rec, to_end)) pad = to_end;
        const std::size_t need = pad + rec;
        if (drop_) {
            // Never waits: the records that start below where this one ends, one ring back,
            // are given up (the readers are told before a byte of them is overwritten).
            if (oldest_ > tail_ || tail_ - oldest_ > capacity_ || oldest_ % record_align != 0) {
                st = ring_status::corrupt;
                return nullptr;
            }
            if (tail_ + need - oldest_ > capacity_ && !drop_until(tail_ + need - capacity_)) {
                st = ring_status::corrupt;  // a header below the tail was rewritten by someone
                return nullptr;
            }
        } else if (tail_ + need - head_cache_ > capacity_) {
            if (!reload_heads()) {
                st = ring_status::corrupt;  // a reader wrote nonsense into its head
                return nullptr;
            }
            if (tail_ + need - head_cache_ > capacity_) {
                st = ring_status::full;
                return nullptr;
            }
        }
        if (pad) {
            auto* h = reinterpret_cast<record_header*>(data_ + off);
            h->length = static_cast<std::uint32_t>(pad - sizeof(record_header));
            h->type = static_cast<std::uint32_t>(record_type::padding);
            h->reserved = 0;
        }
        claim_pos_ = tail_ + pad;
        claim_type_ = type;
        st = ring_status::ok;
        return data_ + (claim_pos_ & mask_) + sizeof(record_header);
    }

    // Publishes the claimed record with `payload` bytes (at most what was claimed).
    void commit(std::size_t payload) noexcept {
        auto* h = reinterpret_cast<record_header*>(data_ + (claim_pos_ & mask_));
        h->length = static_cast<std::uint32_t>(payload);
        h->type = static_cast<std::uint32_t>(claim_type_);
        h->reserved = 0;
        tail_ = claim_pos_ + record_size(payload);
        // SYNC: release pairs with the reader's acquire load of tail in try_peek(): the header
        // and payload written above are visible before the new tail.
        cb_->producer.tail.store(tail_, std::memory_order_release);
        notify(cb_->data);
    }

    // True if a record of `payload` bytes can be claimed now (reloads head). Never true for a
    // corrupt head, so a waiter reaches try_claim() and reports it.
    bool can_claim(std::size_t payload) noexcept {
        if (drop_) return true;
        return !reload_heads() || tail_ + footprint(payload) - head_cache_ <= capacity_;
    }

    // Block mode, before the writer sleeps for room for a record of `payload` bytes (or, with
    // `drain`, for every byte to be read): says so on the space line, so that only the
    // release that makes the room wakes it. clear_need() after the sleep.
    void say_need(std::size_t payload, bool drain = false) noexcept {
        if (drop_) return;
        const std::uint64_t end = tail_ + footprint(payload);
        const std::uint64_t need = drain ? tail_ : end > capacity_ ? end - capacity_ : 0;
        // Relaxed: the sleeper's count in `waiting` (acq_rel) comes after and publishes them.
        cb_->space.need_head.store(need, std::memory_order_relaxed);
        cb_->space.need_readers.store(live_, std::memory_order_relaxed);
    }
    void clear_need() noexcept {
        if (drop_) return;
        cb_->space.need_head.store(0, std::memory_order_relaxed);
        cb_->space.need_readers.store(0, std::memory_order_relaxed);
    }

    // Ring bytes the next record of `payload` bytes takes from the tail: the record, and the
    // padding to the end before it when it does not fit there.
    std::size_t footprint(std::size_t payload) const noexcept {
        const std::size_t rec = record_size(payload);
        const std::size_t to_end = capacity_ - (tail_ & mask_);
        return (rec > to_end ? to_end : 0) + rec;
    }

    // Copies `n` bytes as one record.
    ring_status try_push(record_type type, const void* src, std::size_t n) noexcept {
        ring_status st;
        std::byte* p = try_claim(n, type, st);
        if (!p) return st;
        if (n) std::memcpy(p, src, n);
        commit(n);
        return ring_status::ok;
    }

    // Bytes some counted reader has not released yet (reloads the heads). Under drop_oldest,
    // what the slowest could still read (it lost the rest).
    std::size_t unread_bytes() noexcept {
        reload_heads();
        if (drop_ && head_cache_ < oldest_) return tail_ - oldest_;
        return head_cache_ <= tail_ ? tail_ - head_cache_ : 0;
    }
    std::uint64_t tail() const noexcept { return tail_; }
    std::uint64_t head_seen() const noexcept { return head_cache_; }  // lowest head, last loaded

    // The lowest head of the counted readers (none left: the tail, all space free), into
    // head_cache_. False, with bad_reader(), when a head is ahead of the tail or more than a
    // ring behind: the reader wrote nonsense.
    bool reload_heads() noexcept {
        std::uint64_t low = tail_, sum = 0;
        for (std::size_t i = 0; i < readers_; ++i) {
            // SYNC: acquire pairs with reader i's release store of its head in release_to():
            // that reader is done with every byte before it.
            const consumer_line& l = reader_line(cb_, i);
            const std::uint64_t h = l.head.load(std::memory_order_acquire);
            sum += h;
            if (!(live_ >> i & 1)) continue;
            // drop_oldest: a reader not claimed yet will start at the tail; it is behind nothing.
            if (drop_ && l.state.load(std::memory_order_acquire) == static_cast<std::uint32_t>(end_state::unclaimed))
                continue;
            if (h > tail_ || tail_ - h > capacity_) {
                bad_reader_ = i;
                head_cache_ = tail_ - capacity_;  // looks full: the next claim reloads (and fails)
                return false;
            }
            low = std::min(low, h);
        }
        head_cache_ = low;
        heads_sum_ = sum;
        return true;
    }
    bool drops() const noexcept { return drop_; }

    // drop_oldest: moves the oldest record kept past every record that starts below `floor`
    // (\pre floor <= tail_), counting what is given up, and publishes it before any byte below
    // it is overwritten. The headers walked are this writer's own, but in shared memory: each
    // is read once and checked. False when one is impossible.
    bool drop_until(std::uint64_t floor) noexcept {
        std::uint64_t pos = oldest_, seq = oldest_seq_, bytes = oldest_bytes_;
        while (pos < floor) {
            const std::size_t off = pos & mask_;
            const auto* h = reinterpret_cast<const record_header*>(data_ + off);
            const std::uint32_t len = load_once(h->length);
            const std::uint32_t type = load_once(h->type);
            const std::size_t rec = record_size(len);
            if (rec > tail_ - pos || off + rec > capacity_) return false;
            if (type != static_cast<std::uint32_t>(record_type::padding)) {
                ++seq;
                bytes += len;
            }
            pos += rec;
        }
        lapped_line& l = cb_->lapped;
        // SYNC: a seqlock. The odd version, then the three fields, then the even version
        // (release); readers take the fields between two equal even versions (read_lapped).
        l.version.store(++lapped_version_, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        l.pos.store(pos, std::memory_order_relaxed);
        l.seq.store(seq, std::memory_order_relaxed);
        l.bytes.store(bytes, std::memory_order_relaxed);
        l.version.store(++lapped_version_, std::memory_order_release);
        // SYNC: pairs with the acquire fence in ring_consumer::lapped_past(): the new position is
        // visible before any byte the writer now overwrites below it (stores after this fence).
        std::atomic_thread_fence(std::memory_order_release);
        oldest_ = pos;
        oldest_seq_ = seq;
        oldest_bytes_ = bytes;
        return true;
    }

    // Records of at least `bytes` (0: none) may wrap early (early_wrap_fits).
    void wrap_early_from(std::size_t bytes) noexcept { early_wrap_min_ = bytes ? bytes : SIZE_MAX; }

    // The sum of every reader's head at the last reload: it changes whenever any head moves
    // (heads only grow), which is what an event-fd watcher waits for.
    std::uint64_t heads_sum() const noexcept { return heads_sum_; }

private:
    control_block* cb_ = nullptr;
    std::byte* data_ = nullptr;
    std::size_t mask_ = 0;
    std::size_t capacity_ = 0;
    std::size_t max_payload_ = 0;
    std::size_t readers_ = 0;
    std::uint64_t live_ = 0;        // counted readers
    std::size_t bad_reader_ = 0;
    std::uint64_t heads_sum_ = 0;
    bool drop_ = false;                // overflow_policy::drop_oldest
    std::uint64_t oldest_ = 0;         // drop_oldest: the lapped line's fields, as published
    std::uint64_t oldest_seq_ = 0;
    std::uint64_t oldest_bytes_ = 0;
    std::uint32_t lapped_version_ = 0;
    std::uint64_t tail_ = 0;        // own index, mirrors producer.tail
    std::uint64_t head_cache_ = 0;  // lowest head of the counted readers, last loaded
    std::uint64_t claim_pos_ = 0;
    record_type claim_type_ = record_type::binary;
    std::size_t early_wrap_min_ = default_early_wrap_min;

    // Block mode, a large record: back to the ring's start (padding the rest) when every
    // record there is released, rather than on into memory untouched for a lap. The writer,
    // and readers that keep up, then cycle through only as many records' worth of memory as
    // the readers hold, which stays in the caches and TLBs (4K frames of 33 MB in a 4-frame
    // ring: 0.6x the in-process rate cycling through all four, 0.9x through two).
    bool early_wrap_fits(std::size_t rec, std::size_t to_end) noexcept {
        if (drop_) return false;  // its writer never looks at the heads
        const auto fits = [&] { return tail_ + to_end + rec - head_cache_ <= capacity_; };
        return fits() || (reload_heads() && fits());
    }
};

struct record_view {
    record_type type;
    const std::byte* data;
    std::size_t size;
};

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
        lapped_fields f;
        if (!read_lapped(f)) return ring_status::corrupt;
        // SYNC: acquire pairs with the writer's release store of tail; loaded after the lapped
        // line, so it is at least the tail the writer had when it published f.
        const std::uint64_t t = cb_->producer.tail.load(std::memory_order_acquire);
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
    // end record, if the writer already closed); it counts
    // the records kept before it (in the writer's numbering, from the lapped line) so that
    // later gaps can be told. Called once, when the end is claimed.
    ring_status join_at_tail() noexcept {
        for (int attempt = 0; attempt < 1000; ++attempt) {
            lapped_fields f;
            if (!read_lapped(f)) return ring_status::corrupt;
            const std::uint64_t t = cb_->producer.tail.load(std::memory_order_acquire);  // SYNC: as skip()
            if (f.pos > t || t - f.pos > capacity_ || f.pos % record_align != 0) return ring_status::corrupt;
            std::uint64_t pos = f.pos, seq = f.seq, bytes = f.bytes;
            std::uint64_t end_at = t;  // a writer that already closed: its end record
            bool lapped = false;
            while (pos < t) {
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
        if (has_sleeper(cb_->space) && writer_can_go_on()) wake_sleepers(cb_->space);
    }
    // Gives the record returned by the last try_peek() back to the writer (with everything
    // taken before it).
    void release() noexcept { release_to(take()); }

    bool has_pending() const noexcept { return pending_ != 0; }
    // Where the record returned by the last try_peek() ends.
    std::uint64_t pending_end() const noexcept { return read_ + pending_; }

private:
    struct lapped_fields {
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
    // The lapped line's three fields, consistent (the seqlock of drop_until()). False when the
    // version stays odd: a writer that died in those few instructions, or a hostile one.
    bool read_lapped(lapped_fields& f) const noexcept {
        const lapped_line& l = cb_->lapped;
        for (int i = 0; i < 100000; ++i) {
            const std::uint32_t v = l.version.load(std::memory_order_acquire);
            if (v & 1) continue;
            f.pos = l.pos.load(std::memory_order_relaxed);
            f.seq = l.seq.load(std::memory_order_relaxed);
            f.bytes = l.bytes.load(std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (l.version.load(std::memory_order_relaxed) == v) return true;
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
    std::uint64_t read_ = 0;        // where the next record is read; head_ <= read_
    std::uint64_t tail_cache_ = 0;  // last seen producer.tail
    std::size_t pending_ = 0;       // size of the record being viewed
    std::size_t pending_len_ = 0;   // its payload length
    bool drop_ = false;             // overflow_policy::drop_oldest
    std::uint64_t seq_ = 0;         // drop_oldest: records and payload bytes before read_,
    std::uint64_t bytes_ = 0;       // in the writer's numbering
};

}  // namespace shmchan::shm
