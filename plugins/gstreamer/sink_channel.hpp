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
#include <shmchan/frame.hpp>
#include <shmchan/worker.hpp>

namespace shmchan::gst {

class sink_channel : public std::enable_shared_from_this<sink_channel> {
public:
    enum class result { ok, flushing, error };

    struct settings {
        std::string engine;    // create the channel through the engine at this URL when not empty
        std::size_t capacity = 0;
        std::string ref_file;  // where to write the reader refs, one JSON line each (when not empty)
        std::size_t readers = 1;
        bool drop_oldest = false;  // overflow: the live mode (docs/gstreamer.md)
    };
    // Why these settings cannot work (empty when they can).
    static std::string unsupported(const settings& s);
    // Creates the channel and writes its reader refs to the ref file. On error: false, error().
    bool create(const settings& s);
    bool created() const;
    std::string reader_ref() const;   // the first
    std::string reader_refs() const;  // all of them, one line each

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
    // EOS: ends the stream cleanly and (overflow block) waits until every reader read all of it.
    // With several readers, some of which died or left early while others read everything:
    // ok, and warning() names them.
    result finish();
    std::string warning() const;
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
    frame_meta tagged(frame_meta meta) const;
    void frame_written();
    std::string gone_readers() const;
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
    // Live mode (drop_oldest): the caps message goes before every frame, and each frame's user
    // header names the caps it goes with (caps_tag_), so that a source joining late or after a
    // gap knows its caps. caps_sent_: the message for the next frame is in the ring.
    bool live_ = false;
    std::size_t readers_ = 1;
    std::string current_caps_;
    std::string caps_tag_;
    std::uint64_t caps_id_ = 0;
    bool caps_sent_ = false;
    std::string warning_;
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
