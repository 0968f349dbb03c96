// The write end of a channel. Move-only; one thread at a time (\pre: a single producer).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "shmchan/error.hpp"
#include "shmchan/frame.hpp"
#include "shmchan/transport.hpp"

namespace shmchan {

using std::chrono::nanoseconds;
inline constexpr nanoseconds forever = nanoseconds::max();

namespace detail {
struct writer_impl;
struct end_access;
struct deferred_open;
}  // namespace detail

class writer;

// A contiguous region of the ring loaned to the writer: fill it in place, then commit().
// Destroyed without commit() it is abandoned and nothing reaches the reader. A frame loan
// (writer::get_frame_loan) is committed with its frame_meta; committed without, its meta is unset.
class loan {
public:
    loan() = default;
    loan(loan&& o) noexcept;
    loan& operator=(loan&& o) noexcept;
    ~loan();

    explicit operator bool() const noexcept { return data_ != nullptr; }
    std::error_code error() const noexcept { return error_; }
    std::span<std::byte> data() const noexcept { return {data_, size_}; }
    std::size_t size() const noexcept { return size_; }

    // Publishes the first `used` bytes (default: all). \pre used <= size().
    void commit(std::size_t used) noexcept;
    void commit() noexcept { commit(size_); }
    // A frame loan: publishes the first `used` bytes as one frame with `meta`. A user header
    // longer than frame_meta::max_user is refused (errc::invalid_argument, the writer's
    // last_error() says the sizes) and nothing is published: the loan stays open, to commit
    // again with a shorter header or abandon. On a loan that is not a frame loan the meta is
    // ignored (a chunk carries none). \pre used <= size().
    [[nodiscard]] std::error_code commit(std::size_t used, const frame_meta& meta) noexcept;
    [[nodiscard]] std::error_code commit(const frame_meta& meta) noexcept { return commit(size_, meta); }
    void abandon() noexcept;
    bool is_frame() const noexcept { return frame_; }

private:
    friend class writer;
    friend struct detail::writer_impl;
    detail::writer_impl* owner_ = nullptr;
    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
    std::error_code error_;
    bool frame_ = false;
};

// One reader of a channel as its writer sees it (writer::readers()).
struct reader_status {
    enum class state : std::uint8_t {
        waiting,  // its ref was not used yet (under overflow block, it holds the ring from the start)
        reading,  // attached
        done,     // closed after releasing everything committed
        left,     // closed early, with records unread
        lost,     // its process died (or it wrote an impossible position)
    };
    state st = state::waiting;
    std::uint64_t released = 0;  // ring bytes it released: committed - released is its lag
    int pid = 0;                 // for display only: namespace-local, recycled
};
const char* to_string(reader_status::state s) noexcept;

class writer {
public:
    writer();
    writer(writer&&) noexcept;
    writer& operator=(writer&&) noexcept;
    // A writer destroyed while still open aborts the stream ("writer destroyed without
    // close()"): the reader must never mistake a dropped writer for a finished stream.
    ~writer();

    explicit operator bool() const noexcept { return impl_ || deferred_ || failure_; }

    // Copies `bytes` into the channel, split into records of at most max_record() bytes,
    // blocking while the ring is full. On an error part of the bytes may have been committed:
    // bytes_written() tells how many.
    [[nodiscard]] std::error_code write(std::span<const std::byte> bytes,
                                        nanoseconds timeout = forever) noexcept;
    [[nodiscard]] std::error_code write(std::string_view bytes,
                                        nanoseconds timeout = forever) noexcept {
        return write(std::as_bytes(std::span(bytes.data(), bytes.size())), timeout);
    }
    // All or nothing, never blocks: errc::would_block when the ring lacks room for all of it,
    // errc::too_large when it could never hold it at once.
    [[nodiscard]] std::error_code try_write(std::span<const std::byte> bytes) noexcept;

    // Zero-copy: a region of exactly `n` bytes inside the ring (n <= max_record()).
    // On failure the loan is empty and loan.error() says why (too_large, timeout, ...).
    [[nodiscard]] loan get_loan(std::size_t n, nanoseconds timeout = forever) noexcept;
    [[nodiscard]] loan try_loan(std::size_t n) noexcept;

    // One frame: `bytes` and `meta` reach the reader as one item, never split (frame.hpp).
    // errc::too_large when it exceeds max_frame() (last_error() names the capacity to ask for),
    // invalid_argument when meta.user is longer than frame_meta::max_user. All or nothing: on
    // timeout nothing was written.
    [[nodiscard]] std::error_code write_frame(std::span<const std::byte> bytes, const frame_meta& meta,
                                              nanoseconds timeout = forever) noexcept;
    // Zero-copy: `n` bytes of a frame inside the ring (n <= max_frame()); fill them, then
    // loan.commit(meta). The loan keeps room for frame_meta::max_user bytes of user header.
    [[nodiscard]] loan get_frame_loan(std::size_t n, nanoseconds timeout = forever) noexcept;

    // A text message, delivered in order with the binary chunks. At most max_record() bytes.
    [[nodiscard]] std::error_code send_message(std::string_view text,
                                               nanoseconds timeout = forever) noexcept;

    // Ends the stream cleanly (the reader sees end of stream after every byte written).
    // errc::timeout: not done yet, nothing lost; call close() again to go on (on the socket
    // path the close handshake stays under way), or abort().
    [[nodiscard]] std::error_code close(nanoseconds timeout = forever) noexcept;
    // Ends the stream as broken; the reader gets errc::aborted with `reason` once it has read
    // everything committed before. Never blocks, needs no room in the ring.
    void abort(std::string_view reason) noexcept;
    // Waits until every reader has consumed every committed record (for "exit once delivered").
    // With several readers: peer_closed when one left early, peer_lost when one died, once the
    // others drained (readers() says which).
    [[nodiscard]] std::error_code wait_drained(nanoseconds timeout = forever) noexcept;
    // The channel's readers, in the order of its reader refs, as this writer last saw them
    // (reading, waiting to be claimed, or gone and why). Empty on the socket path.
    std::vector<reader_status> readers() const;

    // An eventfd that polls readable when a write may make progress (room in the ring, or the
    // reader's fate changed), for event loops: poll, read it to clear, then try_write/try_loan.
    int event_fd();

    std::size_t max_record() const noexcept;    // largest payload of one record
    std::size_t max_frame() const noexcept;     // largest frame (with any user header)
    // What the last failed call said in words, beyond its code (e.g. the capacity a frame that
    // was too large needs); empty when it said nothing more.
    std::string last_error() const;
    std::size_t capacity() const noexcept;      // ring bytes
    std::uint64_t bytes_written() const noexcept;  // payload bytes committed so far
    bool is_open() const noexcept;              // claimed (or claimable) and not yet finished
    // The path this end took: shm or socket; automatic while a deferred end is not opened yet.
    transport via() const noexcept;

private:
    friend struct detail::end_access;
    explicit writer(std::unique_ptr<detail::writer_impl> impl) noexcept;
    // The end, opened now if it was deferred (an end a worker hands to a handler opens on first
    // use); nullptr when empty or when opening failed (failure_ says why).
    detail::writer_impl* live() noexcept;
    std::error_code failure() const noexcept;
    std::unique_ptr<detail::writer_impl> impl_;
    std::unique_ptr<detail::deferred_open> deferred_;
    std::error_code failure_;
};

}  // namespace shmchan
