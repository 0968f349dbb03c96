// The interface of the ends behind shmchan::writer / shmchan::reader, which the public classes
// (ends.cpp) forward to. Two transports implement it: shared memory (shm_writer.cpp,
// shm_reader.cpp) and the engine's channel socket (socket_writer.cpp, socket_reader.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "held_items.hpp"
#include "shmchan/channel.hpp"
#include "shmchan/reader.hpp"
#include "shmchan/writer.hpp"

namespace shmchan::detail {

struct writer_impl {
    virtual ~writer_impl() = default;

    virtual std::error_code write(std::span<const std::byte> bytes, nanoseconds t) = 0;
    virtual std::error_code try_write(std::span<const std::byte> bytes) = 0;
    virtual loan make_loan(std::size_t n, nanoseconds t) = 0;
    virtual void commit_loan(std::size_t used) = 0;
    virtual void abandon_loan() = 0;
    virtual std::error_code send_message(std::string_view text, nanoseconds t) = 0;
    // One frame, never split: too_large beyond max_frame(), invalid_argument for a user header
    // longer than frame_meta::max_user. All or nothing.
    virtual std::error_code write_frame(std::span<const std::byte> bytes, const frame_meta& meta,
                                        nanoseconds t) = 0;
    virtual loan make_frame_loan(std::size_t n, nanoseconds t) = 0;
    // \pre refuse_user_header(meta) passed (loan::commit checks it first).
    virtual void commit_frame_loan(std::size_t used, const frame_meta& meta) = 0;
    virtual std::size_t max_frame() const = 0;
    virtual std::error_code close(nanoseconds t) = 0;
    virtual void abort(std::string_view reason) = 0;
    virtual std::error_code wait_drained(nanoseconds t) = 0;
    virtual std::size_t max_record() const = 0;
    virtual std::size_t capacity() const = 0;
    // Polls readable when a write may make progress (room in the ring, or the reader's fate).
    virtual int event_fd() = 0;
    // The readers as this end sees them (shared memory only; the socket path says nothing).
    virtual std::vector<reader_status> readers() const { return {}; }

    std::uint64_t bytes_written() const noexcept { return written; }
    bool is_finished() const noexcept { return finished; }
    // A user header longer than frame_meta::max_user: invalid_argument, with detail_ set.
    std::error_code refuse_user_header(const frame_meta& meta);
    const std::string& last_error() const noexcept { return detail_; }
    transport path() const noexcept { return path_; }

protected:
    std::uint64_t written = 0;  // payload bytes handed over
    bool finished = false;      // this end is final (closed, aborted, or a fatal error)
    std::string detail_;        // last_error(): words for the last failure, if any
    transport path_ = transport::shm;  // the socket ends say socket

    // The common refusals of a frame: a user header too long, a frame too large for the ring
    // (with the capacity that would hold it). Sets detail_.
    std::error_code check_frame(std::size_t n, const frame_meta& meta);

    loan lend(std::byte* data, std::size_t n) {
        loan l;
        l.owner_ = this;
        l.data_ = data;
        l.size_ = n;
        return l;
    }
    loan lend_frame(std::byte* data, std::size_t n) {
        loan l = lend(data, n);
        l.frame_ = true;
        return l;
    }
    static loan failed_loan(std::error_code e) {
        loan l;
        l.error_ = e;
        return l;
    }
};

struct reader_impl {
    virtual ~reader_impl() = default;

    explicit reader_impl(std::size_t max_held = 1) : held(max_held) {}

    virtual item next(nanoseconds t, bool block) = 0;
    virtual int event_fd() = 0;
    // One item at a time (max_held 1): gives back the item delivered last.
    virtual void release_pending() = 0;
    // Several (held mode): gives back every item up to the one whose cookie this is (called
    // with the held lock taken, from whichever thread released).
    virtual void release_held_to(std::uint64_t cookie) = 0;
    // The view whose record ends at `end` is still whole (overflow drop_oldest; else true).
    virtual bool intact(std::uint64_t /*end*/) const { return true; }
    // Finishes the end as lost rather than left: the engine's ring end of a socket reader whose
    // connection broke, so that the ring's writer reports peer_lost (shared memory only).
    virtual void finish_lost() {}
    // From now on running out of records does not arm the event fd for the writer's next
    // commit (it still signals the writer's fate): the engine's reader bridge, rung by a
    // writer bridge of its own instead (engine_impl.hpp, reader_kick). Shared memory only.
    virtual void data_events_off() {}

    void release_token(std::uint64_t t) {
        if (held.enabled()) held.release(t, [this](std::uint64_t c) { release_held_to(c); });
        else if (pending && t == token) release_pending();
    }
    static item bare(item::kind k, std::error_code e) {
        item it;
        it.kind_ = k;
        it.error_ = e;
        return it;
    }

    bool at_end() const noexcept { return ended; }
    std::error_code status() const noexcept { return sticky; }
    const std::string& abort_reason() const noexcept { return reason; }
    std::uint64_t bytes_read() const noexcept { return bytes; }
    transport path() const noexcept { return path_; }

protected:
    transport path_ = transport::shm;  // the socket ends say socket
    bool ended = false;  // clean end seen
    std::error_code sticky;
    std::string reason;  // the writer's, after errc::aborted
    std::uint64_t bytes = 0;

    // An item viewing `d`; its release (or, with max_held 1, the next call) gives the space back.
    // `cookie`: what release_held_to() needs to free it, in held mode.
    item view(item::kind k, std::span<const std::byte> d, std::uint64_t cookie = 0) {
        item it;
        it.kind_ = k;
        it.data_ = d;
        it.owner_ = this;
        if (held.enabled()) {
            it.token_ = held.add(cookie);
        } else {
            it.token_ = ++token;
            pending = true;
        }
        return it;
    }
    item frame_view(std::span<const std::byte> d, const frame_meta& m, std::uint64_t cookie = 0) {
        item it = view(item::kind::frame, d, cookie);
        it.meta_ = m;
        return it;
    }
    static item gap_item(const gap_info& g) {
        item it = bare(item::kind::gap, {});
        it.gap_ = g;
        return it;
    }
    static void set_end(item& it, std::uint64_t end) noexcept { it.end_ = end; }
    // In held mode, before delivering: an error item when max_held items are alive.
    bool held_full() { return held.enabled() && held.full(); }
    std::mutex& held_lock() noexcept { return held.lock(); }

    bool pending = false;
    std::uint64_t token = 0;
    held_items held;
};

// What a deferred end opens on first use (open_writer / open_reader with these options).
struct deferred_open {
    channel_ref ref;
    channel_options options;
};

struct end_access {
    static writer make_writer(std::unique_ptr<writer_impl> p) { return writer(std::move(p)); }
    static reader make_reader(std::unique_ptr<reader_impl> p) { return reader(std::move(p)); }
    static std::unique_ptr<writer_impl> release(writer&& w) { return std::move(w.impl_); }
    static std::unique_ptr<reader_impl> release(reader&& r) { return std::move(r.impl_); }
    static void finish_lost(reader& r) {
        if (r.impl_) r.impl_->finish_lost();
    }
    static void data_events_off(reader& r) {
        if (r.impl_) r.impl_->data_events_off();
    }
    static writer deferred_writer(deferred_open d) {
        writer w;
        w.deferred_ = std::make_unique<deferred_open>(std::move(d));
        return w;
    }
    static reader deferred_reader(deferred_open d) {
        reader r;
        r.deferred_ = std::make_unique<deferred_open>(std::move(d));
        return r;
    }
};

// Ends that open themselves on first use; an error opening is returned by every call.
writer deferred_writer(const channel_ref& ref, const channel_options& options);
reader deferred_reader(const channel_ref& ref, const channel_options& options);

}  // namespace shmchan::detail
