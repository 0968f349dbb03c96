// The single-producer/single-consumer record ring that lives in a channel segment.
//
// Positions (`head`, `tail`) count bytes ever released/committed and never wrap; the offset in
// the ring is position & (capacity - 1). The writer owns `tail`, the reader owns `head`; each
// side keeps a private cached copy of the other's index and reloads it only when it seems to
// have run out (full / empty), so the shared cache lines move between cores rarely.
//
// Everything the reader takes from shared memory is validated before use: a corrupted or
// hostile segment yields ring_status::corrupt, never an out-of-bounds read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/wait.hpp"

namespace shmchan::shm {

enum class ring_status { ok, full, empty, corrupt, too_large };

// Waking and sleeping without a lost wake-up, and without a locked instruction on the hot path.
// The sleeper counts itself in `waiting`, then (SYNC) calls sleeper_barrier(): membarrier
// makes every registered process's earlier stores visible before it returns, so the sleeper's
// last look sees any tail/head published before the waker read `waiting`; and a waker reading
// `waiting` after the sleeper counted itself sees the count and wakes it. If the wake lands
// between the last look and FUTEX_WAIT, `seq` has changed and FUTEX_WAIT returns at once.
// Without membarrier (not registered), the waker instead reads `waiting` with an acq_rel
// read-modify-write: RMWs on one atomic are totally ordered, so either it reads the sleeper's
// increment, or the sleeper's increment reads from it and so sees the waker's earlier publish.
// (ThreadSanitizer understands the RMW form; it has nothing to check in the membarrier form,
// which orders only atomics.)

// Wakes a sleeper of `w`, if any. Called right after publishing (a tail or head store).
inline void notify(wait_line& w) noexcept {
    bool sleeping;
    if (fast_wake()) {
        std::atomic_signal_fence(std::memory_order_seq_cst);  // keep the publish above the load
        sleeping = w.waiting.load(std::memory_order_relaxed) != 0;
    } else {
        sleeping = w.waiting.fetch_add(0, std::memory_order_acq_rel) != 0;
    }
    // One wake per sleep: later commits before the sleeper is up again skip the syscall.
    if (sleeping && w.woken.exchange(1, std::memory_order_acq_rel) == 0) {
        w.seq.fetch_add(1, std::memory_order_release);
        futex_wake_all(w.seq);
    }
}
// Unconditional wake, for state changes (close, abort, a reader leaving).
inline void notify_always(wait_line& w) noexcept {
    w.seq.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(w.seq);
}
// prepare_sleep() without the barrier, for a sleeper on many lines (the event-fd watcher): it
// announces itself on each, then calls sleeper_barrier() once before its last looks.
inline std::uint32_t announce_sleep(wait_line& w) noexcept {
    w.woken.exchange(0, std::memory_order_acq_rel);  // from here on a wake is a new syscall
    const std::uint32_t seq = w.seq.load(std::memory_order_acquire);
    // A count, not a flag: a reader thread and the event-fd watcher may both sleep here.
    w.waiting.fetch_add(1, std::memory_order_acq_rel);
    return seq;
}
// Returns the futex value to sleep on, and whether sleeps may be long (false: membarrier is
// unavailable here, so a wake could be missed and the sleep must be short). After this call
// the caller re-checks its condition before futex_wait(w.seq, value, ...), then finish_sleep().
inline std::uint32_t prepare_sleep(wait_line& w, bool& long_sleep_ok) noexcept {
    const std::uint32_t seq = announce_sleep(w);
    long_sleep_ok = sleeper_barrier();
    return seq;
}
inline void finish_sleep(wait_line& w) noexcept {
    w.waiting.fetch_sub(1, std::memory_order_relaxed);
}

// One relaxed load of a field a peer may rewrite at any time (a plain read may be split or
// repeated by the compiler, so a checked value could differ from the one used).
template <class T>
inline T load_once(const T& field) noexcept {
    return __atomic_load_n(&field, __ATOMIC_RELAXED);
}

class ring_producer {
public:
    ring_producer() = default;
    // `g`: the segment's validated geometry (never the header's, which a peer may rewrite).
    ring_producer(control_block* cb, std::byte* data, const ring_geometry& g) noexcept
        : cb_(cb), data_(data), mask_(g.capacity - 1), capacity_(g.capacity),
          max_payload_(g.max_payload),
          tail_(cb->producer.tail.load(std::memory_order_relaxed)),  // own index
          head_cache_(cb->consumer.head.load(std::memory_order_acquire)) {}

    std::size_t max_payload() const noexcept { return max_payload_; }
    std::size_t capacity() const noexcept { return capacity_; }

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
        const std::size_t pad = rec > to_end ? to_end : 0;
        const std::size_t need = pad + rec;
        if (tail_ + need - head_cache_ > capacity_) {
            // SYNC: acquire pairs with the reader's release store of head in release(): the
            // reader is done with every byte before the new head.
            head_cache_ = cb_->consumer.head.load(std::memory_order_acquire);
            if (head_cache_ > tail_ || tail_ - head_cache_ > capacity_) {
                st = ring_status::corrupt;  // the peer wrote nonsense into head
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
        const std::size_t rec = record_size(payload);
        const std::size_t to_end = capacity_ - (tail_ & mask_);
        const std::size_t need = (rec > to_end ? to_end : 0) + rec;
        head_cache_ = cb_->consumer.head.load(std::memory_order_acquire);  // SYNC: as try_claim
        return head_cache_ > tail_ || tail_ - head_cache_ > capacity_ ||
               tail_ + need - head_cache_ <= capacity_;
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

    // Bytes the reader has not released yet (reloads head).
    std::size_t unread_bytes() noexcept {
        head_cache_ = cb_->consumer.head.load(std::memory_order_acquire);
        return head_cache_ <= tail_ ? tail_ - head_cache_ : 0;
    }
    std::uint64_t tail() const noexcept { return tail_; }
    std::uint64_t head_seen() const noexcept { return head_cache_; }  // consumer.head, last loaded

private:
    control_block* cb_ = nullptr;
    std::byte* data_ = nullptr;
    std::size_t mask_ = 0;
    std::size_t capacity_ = 0;
    std::size_t max_payload_ = 0;
    std::uint64_t tail_ = 0;        // own index, mirrors producer.tail
    std::uint64_t head_cache_ = 0;  // last seen consumer.head
    std::uint64_t claim_pos_ = 0;
    record_type claim_type_ = record_type::binary;
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
    ring_consumer(control_block* cb, const std::byte* data, const ring_geometry& g) noexcept
        : cb_(cb), data_(data), mask_(g.capacity - 1), capacity_(g.capacity),
          max_payload_(g.max_payload),
          head_(cb->consumer.head.load(std::memory_order_relaxed)),  // own index
          read_(head_),
          tail_cache_(cb->producer.tail.load(std::memory_order_acquire)) {}

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
            if (tail_cache_ < read_ || avail > capacity_ || ((avail | read_) % record_align) != 0)
                return ring_status::corrupt;
            const std::size_t off = read_ & mask_;
            const auto* h = reinterpret_cast<const record_header*>(data_ + off);
            // Read the header once, with single loads the compiler cannot repeat: the writer
            // side may be hostile and change it under us.
            const std::uint32_t len = load_once(h->length);
            const std::uint32_t type = load_once(h->type);
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
            return ring_status::ok;
        }
    }

    // Moves past the record returned by the last try_peek(), which stays unreleased; returns
    // the position after it (release_to() that position to free it and all before it).
    std::uint64_t take() noexcept {
        read_ += pending_;
        pending_ = 0;
        return read_;
    }
    // Gives every record before `pos` (a position take() returned; never decreasing) back to
    // the writer.
    void release_to(std::uint64_t pos) noexcept {
        head_ = pos;
        // SYNC: release pairs with the writer's acquire load of head in try_claim(): we are
        // done reading the records before the writer may overwrite them.
        cb_->consumer.head.store(head_, std::memory_order_release);
        notify(cb_->space);
    }
    // Gives the record returned by the last try_peek() back to the writer (with everything
    // taken before it).
    void release() noexcept { release_to(take()); }

    bool has_pending() const noexcept { return pending_ != 0; }
    // Where the next record will be read (the event-fd watcher waits for the tail to pass it).
    std::uint64_t read_position() const noexcept { return read_; }
    // Reloads the tail; true if a record (or padding) waits.
    bool readable() noexcept {
        tail_cache_ = cb_->producer.tail.load(std::memory_order_acquire);
        return tail_cache_ != read_;
    }

private:
    control_block* cb_ = nullptr;
    const std::byte* data_ = nullptr;
    std::size_t mask_ = 0;
    std::size_t capacity_ = 0;
    std::size_t max_payload_ = 0;
    std::uint64_t head_ = 0;        // own index, mirrors consumer.head
    std::uint64_t read_ = 0;        // where the next record is read; head_ <= read_
    std::uint64_t tail_cache_ = 0;  // last seen producer.tail
    std::size_t pending_ = 0;       // size of the record being viewed
};

}  // namespace shmchan::shm
