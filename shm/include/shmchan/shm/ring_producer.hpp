// The writer's side of the record ring (the ring itself: ring.hpp).
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

// Records from this size up wrap early (ring_producer::early_wrap_fits). Smaller ones stay in
// the caches anyway, and wrapping early ties the writer closer to the reader: with it, 1 MiB
// records in a 4 MiB ring ran at 0.5-1x their speed without it; 16 MiB ones at 1.2x, 1080p
// I420 frames (3.1 MB, a 16 MiB ring) at 1.1-1.2x on one machine and 0.8x on another
// (docs/benchmarks.md, "1080p: the memory a writer cycles through").
inline constexpr std::size_t default_early_wrap_min = std::size_t{2} << 20;

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
        if (drop_) {  // the counts lines are the writer's own, as the tail
            lapped_version_ = cb->lapped.version.load(std::memory_order_relaxed);
            const counts_slot& s = cb->lapped.slot[lapped_version_ & 1];
            oldest_ = s.pos.load(std::memory_order_relaxed);
            oldest_seq_ = s.seq.load(std::memory_order_relaxed);
            oldest_bytes_ = s.bytes.load(std::memory_order_relaxed);
            joined_version_ = cb->joined.version.load(std::memory_order_relaxed);
            const counts_slot& j = cb->joined.slot[joined_version_ & 1];
            joined_pos_ = j.pos.load(std::memory_order_relaxed);
            tail_seq_ = j.seq.load(std::memory_order_relaxed);
            tail_bytes_ = j.bytes.load(std::memory_order_relaxed);
            // Counts at the tail, from the last publication (the same as the tail unless a
            // writer stopped between the two). Impossible values are hints that only make
            // gaps wrong, never an access: try_claim() finds an impossible header again.
            std::uint64_t pos = joined_pos_;
            if (pos <= tail_ && tail_ - pos <= capacity_) count_records(pos, tail_seq_, tail_bytes_, tail_);
        }
    }

    std::size_t max_payload() const noexcept { return max_payload_; }
    std::size_t capacity() const noexcept { return capacity_; }

    // The readers whose heads hold space (bit i: reader i). All at first; the writer end stops
    // counting a reader that closed or died (drop_reader), and then never counts it again.
    std::uint64_t counted() const noexcept { return live_; }
    void drop_reader(std::size_t i) noexcept { live_ &= ~(std::uint64_t{1} << i); }
    // After try_claim() said `corrupt`, or heads_ok() is false: the reader whose dropping lets
    // the claim go on (its head was impossible and other counted readers are left), else
    // no_reader: the ring is corrupt (an impossible tail, lapped line or record header below
    // the tail, or the last reader's head), and no retry changes that.
    static constexpr std::size_t no_reader = SIZE_MAX;
    std::size_t reader_to_drop() const noexcept {
        const std::size_t i = bad_reader_;
        if (i >= readers_ || !(live_ >> i & 1) || live_ == (std::uint64_t{1} << i)) return no_reader;
        return i;
    }

    // Reserves room for a record of `payload` bytes and returns where its payload goes, or
    // nullptr with `st` = full / corrupt / too_large. Nothing is visible to the reader until
    // commit(). \pre only one thread of one process produces.
    std::byte* try_claim(std::size_t payload, record_type type, ring_status& st) noexcept {
        bad_reader_ = no_reader;  // set again only by reload_heads()
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
        notify(cb_->data, rmw_wakes_);
        if (drop_) {
            ++tail_seq_;
            tail_bytes_ += payload;
            // After the tail, so that a joiner that read these counts loads a tail at least
            // as far (ring_consumer::join_at_tail).
            if (++joined_records_ >= join_publish_records || tail_ - joined_pos_ >= capacity_ / 4) {
                publish(cb_->joined, joined_version_, tail_, tail_seq_, tail_bytes_);
                joined_pos_ = tail_;
                joined_records_ = 0;
            }
        }
        if (const std::uint32_t c = cpu_tag(); c != cpu_) {  // a hint: relaxed, only on a move
            cpu_ = c;
            cb_->producer.cpu.store(c, std::memory_order_relaxed);
        }
    }

    // Block mode, the ring too full for a record of `payload` bytes: true when a reader with
    // records still to read last released from CPU `cpu` (cpu_tag(), nonzero). Such a reader
    // wants that CPU and cannot have it while the caller spins there, so the caller should
    // sleep rather than spin: if it is the one in the way, the spin delays the room itself;
    // if another, it delays a reader that the room will soon wait for.
    bool held_on_cpu(std::size_t payload, std::uint32_t cpu) const noexcept {
        if (drop_ || cpu == 0 || tail_ + footprint(payload) <= capacity_) return false;
        for (std::size_t i = 0; i < readers_; ++i) {
            if (!(live_ >> i & 1)) continue;
            const consumer_line& l = reader_line(cb_, i);
            if (l.head.load(std::memory_order_relaxed) < tail_ && l.cpu.load(std::memory_order_relaxed) == cpu)
                return true;
        }
        return false;
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
    // what the slowest could still read (it lost the rest). The whole ring when a head is
    // impossible (heads_ok() says so), never 0: nothing is drained then.
    std::size_t unread_bytes() noexcept {
        if (!reload_heads()) return capacity_;
        // oldest_ is checked only by try_claim(): an impossible one (from the segment when this
        // end was claimed) is left out here rather than made into a count.
        if (drop_ && head_cache_ < oldest_ && oldest_ <= tail_) return tail_ - oldest_;
        return head_cache_ <= tail_ ? tail_ - head_cache_ : 0;
    }
    std::uint64_t tail() const noexcept { return tail_; }
    std::uint64_t head_seen() const noexcept { return head_cache_; }  // lowest head, last loaded

    // The lowest head of the counted readers (none left: the tail, all space free), into
    // head_cache_. False when a head is ahead of the tail or more than a ring behind: that
    // reader wrote nonsense, and reader_to_drop() names it.
    bool reload_heads() noexcept {
        std::uint64_t low = tail_, sum = 0;
        bool ok = true;
        for (std::size_t i = 0; i < readers_; ++i) {
            // SYNC: acquire pairs with reader i's release store of its head in release_to():
            // that reader is done with every byte before it.
            const consumer_line& l = reader_line(cb_, i);
            const std::uint64_t h = l.head.load(std::memory_order_acquire);
            sum += h;  // every head, the impossible ones too: the watcher compares the same sum
            if (!(live_ >> i & 1)) continue;
            // drop_oldest: a reader not claimed yet will start at the tail; it is behind nothing.
            if (drop_ && l.state.load(std::memory_order_acquire) == static_cast<std::uint32_t>(end_state::unclaimed))
                continue;
            if (h > tail_ || tail_ - h > capacity_) {
                if (ok) bad_reader_ = i;
                ok = false;
                continue;
            }
            low = std::min(low, h);
        }
        heads_sum_ = sum;
        heads_ok_ = ok;
        // With an impossible head the ring looks full (modulo 2^64): the next claim reloads,
        // and fails.
        head_cache_ = ok ? low : tail_ - capacity_;
        return ok;
    }
    // The last reload found every counted head possible (else reader_to_drop() names one).
    bool heads_ok() const noexcept { return heads_ok_; }
    bool drops() const noexcept { return drop_; }

    // drop_oldest: moves the oldest record kept past every record that starts below `floor`
    // (\pre floor <= tail_), counting what is given up, and publishes it before any byte below
    // it is overwritten. The headers walked are this writer's own, but in shared memory: each
    // is read once and checked. False when one is impossible.
    bool drop_until(std::uint64_t floor) noexcept {
        std::uint64_t pos = oldest_, seq = oldest_seq_, bytes = oldest_bytes_;
        if (!count_records(pos, seq, bytes, floor)) return false;
        publish(cb_->lapped, lapped_version_, pos, seq, bytes);
        // SYNC: pairs with the acquire fence in ring_consumer::lapped_past(): the new position is
        // visible before any byte the writer now overwrites below it (stores after this fence).
        std::atomic_thread_fence(std::memory_order_release);
        oldest_ = pos;
        oldest_seq_ = seq;
        oldest_bytes_ = bytes;
        return true;
    }

    // From now on every commit reads the data line's `waiting` with a read-modify-write, so
    // that the readers' sleeps need no barrier (wake.hpp). \pre before the first commit.
    void promise_rmw_wakes() noexcept {
        if (!rmw_wakes_) promise_rmw_wakes_on(cb_->data);
        rmw_wakes_ = true;
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
    std::size_t bad_reader_ = no_reader;
    bool heads_ok_ = true;
    std::uint64_t heads_sum_ = 0;
    bool drop_ = false;                // overflow_policy::drop_oldest
    bool rmw_wakes_ = false;           // promise_rmw_wakes()
    std::uint64_t oldest_ = 0;         // drop_oldest: the lapped line's fields, as published
    std::uint64_t oldest_seq_ = 0;
    std::uint64_t oldest_bytes_ = 0;
    std::uint32_t lapped_version_ = 0;
    std::uint64_t tail_seq_ = 0;       // drop_oldest: records and payload bytes before the tail
    std::uint64_t tail_bytes_ = 0;
    std::uint64_t joined_pos_ = 0;     // drop_oldest: the joined line's pos, as published
    std::uint64_t joined_records_ = 0; // records committed since
    std::uint32_t joined_version_ = 0;
    std::uint64_t tail_ = 0;        // own index, mirrors producer.tail
    std::uint32_t cpu_ = 0;         // the cpu hint last published
    std::uint64_t head_cache_ = 0;  // lowest head of the counted readers, last loaded
    std::uint64_t claim_pos_ = 0;
    record_type claim_type_ = record_type::binary;
    std::size_t early_wrap_min_ = default_early_wrap_min;

    // Moves `pos` on to the first record boundary at or past `until` (\pre until <= tail_),
    // adding to `seq` and `bytes` every record passed but padding. The headers walked are this
    // writer's own, but in shared memory: each is read once and checked. False when one is
    // impossible (`pos` is then where it stopped).
    bool count_records(std::uint64_t& pos, std::uint64_t& seq, std::uint64_t& bytes, std::uint64_t until) const noexcept {
        // Record sizes keep an aligned start aligned; a start from shared memory may be odd.
        if (pos % record_align != 0) return false;
        while (pos < until) {
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
        return true;
    }

    // Publishes pos, seq and bytes on a counts line: into the slot no reader is pointed at,
    // then the version that points at it, then the line's pos.
    static void publish(counts_line& l, std::uint32_t& version, std::uint64_t pos, std::uint64_t seq,
                        std::uint64_t bytes) noexcept {
        counts_slot& s = l.slot[(version + 1) & 1];
        // SYNC: pairs with the acquire fence in ring_consumer::read_counts(): the last version
        // store is visible before these slot stores, so a reader that saw any of them loads a
        // newer version after its fields and takes them again.
        std::atomic_thread_fence(std::memory_order_release);
        s.pos.store(pos, std::memory_order_relaxed);
        s.seq.store(seq, std::memory_order_relaxed);
        s.bytes.store(bytes, std::memory_order_relaxed);
        // SYNC: release pairs with the version's acquire load in read_counts(): the slot's
        // fields before the version that points at it.
        l.version.store(++version, std::memory_order_release);
        // SYNC: release pairs with the acquire fence at the start of read_counts(): a reader
        // that saw this pos finds the version that says where its counts are.
        l.pos.store(pos, std::memory_order_release);
    }

    // Block mode, a large record: back to the ring's start (padding the rest) when every
    // record there is released, rather than on into memory untouched for a lap. The writer,
    // and readers that keep up, then cycle through only as many records' worth of memory as
    // the readers hold, which stays nearer in the caches and TLBs (4K frames of 33 MB in the
    // GStreamer sink's 7-frame ring: +13% frames/s, docs/benchmarks.md).
    bool early_wrap_fits(std::size_t rec, std::size_t to_end) noexcept {
        if (drop_) return false;  // its writer never looks at the heads
        const auto fits = [&] { return tail_ + to_end + rec - head_cache_ <= capacity_; };
        return fits() || (reload_heads() && fits());
    }
};

}  // namespace shmchan::shm
