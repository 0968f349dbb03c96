// The read end of a channel. Move-only; one thread at a time (\pre: a single consumer).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "shmchan/error.hpp"
#include "shmchan/frame.hpp"
#include "shmchan/transport.hpp"
#include "shmchan/writer.hpp"  // nanoseconds, forever

namespace shmchan {

namespace detail {
struct reader_impl;
struct end_access;
struct deferred_open;
}  // namespace detail

// What a reader of a drop_oldest channel missed, one ring behind the writer (item::kind::gap):
// whole records, and their payload bytes.
struct gap_info {
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
};

// One thing read from a channel: a binary chunk, a frame, a text message, the clean end, an
// error, or (overflow drop_oldest) a gap. A chunk, frame or message is a read-only view into the ring, valid until the item is
// released or destroyed and, for a reader that holds one item at a time (max_held 1, the
// default), until the reader's next call; then its space goes back to the writer.
// With max_held > 1 an item may be released from any thread, in any order.
class item {
public:
    enum class kind : std::uint8_t { chunk, message, end, error, frame, gap };

    item() = default;
    item(item&& o) noexcept;
    item& operator=(item&& o) noexcept;
    ~item() { release(); }

    kind type() const noexcept { return kind_; }
    bool is_chunk() const noexcept { return kind_ == kind::chunk; }
    bool is_message() const noexcept { return kind_ == kind::message; }
    bool is_end() const noexcept { return kind_ == kind::end; }
    bool is_error() const noexcept { return kind_ == kind::error; }
    bool is_frame() const noexcept { return kind_ == kind::frame; }
    bool is_gap() const noexcept { return kind_ == kind::gap; }

    std::span<const std::byte> data() const noexcept { return data_; }
    std::string_view text() const noexcept {
        return {reinterpret_cast<const char*>(data_.data()), data_.size()};
    }
    std::error_code error() const noexcept { return error_; }
    // A frame's timestamps, flags and user header (a view into the ring, as data()); unset
    // values for anything else.
    const frame_meta& meta() const noexcept { return meta_; }
    // A gap item: what was missed before the next item (overflow drop_oldest only).
    const gap_info& gap() const noexcept { return gap_; }
    // Overflow drop_oldest: the writer never waits, so a reader a whole ring behind can find a
    // view it holds overwritten. True if the bytes read from this item so far were whole (check
    // after using them, as a seqlock reader does); false once the item is released. Always
    // true under block.
    bool intact() const noexcept;

    void release() noexcept;

private:
    friend struct detail::reader_impl;
    detail::reader_impl* owner_ = nullptr;
    std::uint64_t token_ = 0;
    kind kind_ = kind::end;
    std::span<const std::byte> data_;
    std::error_code error_;
    frame_meta meta_;
    gap_info gap_;
    std::uint64_t end_ = 0;  // where its record ends in the ring (intact())
};

class reader {
public:
    reader();
    reader(reader&&) noexcept;
    reader& operator=(reader&&) noexcept;
    ~reader();  // stops reading; a writer still writing then gets errc::peer_closed

    explicit operator bool() const noexcept { return impl_ || deferred_ || failure_; }

    // Next chunk, frame, message or end; blocks until one is there. Errors: timeout, aborted (the
    // writer's reason in abort_reason()), peer_lost, corrupt. End and errors are sticky.
    // held_limit (not sticky) when max_held items are alive: release one first.
    [[nodiscard]] item next(nanoseconds timeout = forever) noexcept;
    // Never blocks: errc::would_block when nothing is there yet.
    [[nodiscard]] item try_next() noexcept;
    // As the Rust SDK: binary chunks (and frames) only; text messages go to the on_message
    // callback (or are dropped when none is set).
    [[nodiscard]] item next_binary(nanoseconds timeout = forever) noexcept;
    void on_message(std::function<void(std::string_view)> callback);

    // Everything up to the end. Throws shmchan::error on abort, peer loss, etc.
    std::vector<std::byte> read_all(nanoseconds timeout = forever);
    [[nodiscard]] std::error_code read_all(std::vector<std::byte>& out,
                                           nanoseconds timeout = forever) noexcept;

    // A file descriptor that polls readable when try_next() may have something (data, end,
    // error). Read 8 bytes from it to clear it, then call try_next() until would_block.
    // Served by a watcher thread started on first call; the fd belongs to the reader.
    int event_fd();

    std::string abort_reason() const;             // the writer's reason after errc::aborted
    std::error_code status() const noexcept;      // sticky error, or ok (also after a clean end)
    bool at_end() const noexcept;                 // clean end seen
    std::uint64_t bytes_read() const noexcept;    // chunk and frame payload bytes delivered
    // The path this end took: shm or socket; automatic while a deferred end is not opened yet.
    transport via() const noexcept;

    // range-for over binary chunks and frames' bytes: for (std::span<const std::byte> c : r.chunks()) ...
    // The loop stops at the end or at an error; check status() after it.
    class chunk_range;
    chunk_range chunks(nanoseconds timeout = forever) noexcept;

private:
    friend struct detail::end_access;
    explicit reader(std::unique_ptr<detail::reader_impl> impl) noexcept;
    // As writer::live(): the end, opened now if it was deferred.
    detail::reader_impl* live() noexcept;
    std::unique_ptr<detail::reader_impl> impl_;
    std::unique_ptr<detail::deferred_open> deferred_;
    std::error_code failure_;
    std::function<void(std::string_view)> on_message_;
};

class reader::chunk_range {
public:
    class iterator {
    public:
        using value_type = std::span<const std::byte>;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(chunk_range* r) : range_(r) {}
        value_type operator*() const noexcept { return range_->current_.data(); }
        iterator& operator++() {
            range_->advance();
            return *this;
        }
        void operator++(int) { ++*this; }
        bool operator==(std::default_sentinel_t) const noexcept {
            return !range_ || !(range_->current_.is_chunk() || range_->current_.is_frame());
        }

    private:
        chunk_range* range_ = nullptr;
    };
    iterator begin() {
        advance();
        return iterator(this);
    }
    std::default_sentinel_t end() const noexcept { return {}; }

private:
    friend class reader;
    chunk_range(reader& r, nanoseconds t) : reader_(&r), timeout_(t) {}
    void advance() {
        current_ = item();
        current_ = reader_->next_binary(timeout_);
    }
    reader* reader_;
    nanoseconds timeout_;
    item current_;
};

inline reader::chunk_range reader::chunks(nanoseconds timeout) noexcept {
    return chunk_range(*this, timeout);
}

}  // namespace shmchan
