// The read side of shmchansrc, apart from GObject: finding the ref, the reader, and turning
// items into buffers (wrapping ring views, or copying when downstream holds enough of them).
// Shared (std::shared_ptr) by the element and every buffer wrapping an item: items never
// outlive their reader.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <shmchan/channel.hpp>

namespace shmchan::gst {

class source_channel : public std::enable_shared_from_this<source_channel> {
public:
    struct settings {
        std::string ref;       // JSON, or empty to read ref_file
        std::string ref_file;
        unsigned ref_index = 0;  // the line of ref_file to use
        std::string engine;
        double timeout_s = 30;  // for ref_file to appear
        unsigned max_held = 3;
    };
    // later: open(wait = false) found nothing to open yet (no ref file, or a stale one).
    enum class status { ok, flushing, eos, error, later };

    // Waits for the ref (polling `flushing`) and opens the reader. Without `wait`, one attempt:
    // what waiting could change is `later`, what it could not (a ref-index beyond the file's
    // refs, a ref that does not parse, a wrong key) is an error at once.
    status open(const settings& s, const std::atomic<bool>& flushing, bool wait = true);
    bool is_open() const noexcept { return open_; }
    const std::string& ref() const noexcept { return ref_; }

    // The next buffer (*buf) or new caps (*caps, as a string), the end, or an error.
    status next(const std::atomic<bool>& flushing, GstBuffer** buf, std::string* caps);

    const std::string& error() const noexcept { return error_; }
    std::uint64_t frames_wrapped() const noexcept { return wrapped_; }
    std::uint64_t frames_copied() const noexcept { return copied_; }
    // Frames dropped in live mode: overwritten while copied, or with caps not known yet.
    std::uint64_t frames_dropped() const noexcept { return dropped_; }

private:
    friend struct held_item;
    GstBuffer* to_buffer(shmchan::item it);
    bool caps_known(const shmchan::item& it);

    shmchan::reader reader_;
    bool open_ = false;
    unsigned max_held_ = 1;
    std::atomic<unsigned> held_{0};  // items alive in buffers downstream
    std::uint64_t wrapped_ = 0, copied_ = 0, dropped_ = 0;
    bool discont_ = false;  // records were lost (overflow drop-oldest): mark the next buffer
    // Live mode (the channel's overflow is drop_oldest): frames are copied, then checked whole.
    bool live_ = false;
    // Caps of a live stream (docs/gstreamer.md, "Late join"): the caps last handed out, the
    // caps id of frames known to have them, and whether the last record read was a caps
    // message (so the next frame, with no gap between, is the frame it was sent for).
    std::string caps_;
    std::string caps_id_;
    bool caps_fresh_ = false;
    std::string ref_;
    std::string error_;
};

}  // namespace shmchan::gst
