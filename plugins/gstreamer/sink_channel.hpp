// The write side of shmchansink, apart from GObject: the channel it created, the writer, the
// pool's one loan at a time, and the caps message still to send. Shared (std::shared_ptr) by the
// element, its buffer pool and every buffer wrapping a loan, so the ring stays mapped while
// any such buffer lives. Every method takes the lock: the pool's acquire (upstream's thread)
// and render (the sink's thread) may run at once.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <shmchan/channel.hpp>
#include <shmchan/worker.hpp>

namespace shmchan::gst {

class sink_channel : public std::enable_shared_from_this<sink_channel> {
public:
    enum class result { ok, flushing, error };

    // Creates the channel (through the engine at `engine` when not empty) with `capacity` ring
    // bytes, and writes its reader ref to `ref_file` (when not empty). On error: false, error().
    bool create(const std::string& engine, std::size_t capacity, const std::string& ref_file);
    bool created() const;
    std::string reader_ref() const;

    // unlock / unlock_stop of the element: every wait returns `flushing` while set.
    void set_flushing(bool on) noexcept { flushing_ = on; }

    // New caps: sent as a message before the next frame (now, when no loan is out).
    result set_caps(const std::string& caps);
    // For the pool: a buffer wrapping a frame loan of `size` bytes, or nullptr with `ok` when
    // none can be had (no channel yet, too large, a broken channel: upstream then fills an
    // ordinary buffer and render() copies it, or reports the error). `cancelled` is polled.
    GstBuffer* acquire(std::size_t size, const std::function<bool()>& cancelled, result& r);
    // One buffer as one frame: committed in place when it is the pool's loan, else copied.
    result render(GstBuffer* buf);
    // EOS: ends the stream cleanly and waits until the reader has read all of it.
    result finish();
    // Ends the stream as broken (once; later calls and finish() after it do nothing).
    void abort(const std::string& reason);
    bool finished() const;

    // What the last failure was, in words (for GST_ELEMENT_ERROR).
    std::string error() const;
    // Frames committed in place (upstream filled a loan) and frames copied.
    std::uint64_t frames_in_place() const;
    std::uint64_t frames_copied() const;

private:
    friend struct loan_memory_token;
    result wait_writer(const std::function<std::error_code()>& attempt, const char* what,
                       std::unique_lock<std::mutex>& lock);
    result send_pending_caps(std::unique_lock<std::mutex>& lock);
    result fail(std::error_code e, const std::string& what);
    void memory_gone();

    mutable std::mutex mu_;
    std::condition_variable memory_freed_;
    std::atomic<bool> flushing_{false};
    std::unique_ptr<shmchan::worker> worker_;  // through the engine: destroyed after the ends
    shmchan::channel ch_;
    bool created_ = false;
    bool done_ = false;  // closed or aborted
    std::string pending_caps_;
    std::string error_;
    // The pool's loan (one at a time) and the memory that wraps it; memory_alive_ until that
    // memory is freed, so no new loan overwrites bytes a buffer somewhere still shows.
    shmchan::loan loan_;
    GstMemory* loan_memory_ = nullptr;
    bool memory_alive_ = false;
    std::uint64_t in_place_ = 0, copied_ = 0;
    std::size_t frame_bytes_ = 0;  // of the frame being written (for a too_large reason)
};

}  // namespace shmchan::gst
