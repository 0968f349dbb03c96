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
        std::string engine;
        double timeout_s = 30;  // for ref_file to appear
        unsigned max_held = 3;
    };
    enum class status { ok, flushing, eos, error };

    // Waits for the ref (polling `flushing`) and opens the reader.
    status open(const settings& s, const std::atomic<bool>& flushing);
    bool is_open() const noexcept { return open_; }
    const std::string& ref() const noexcept { return ref_; }

    // The next buffer (*buf) or new caps (*caps, as a string), the end, or an error.
    status next(const std::atomic<bool>& flushing, GstBuffer** buf, std::string* caps);

    const std::string& error() const noexcept { return error_; }
    std::uint64_t frames_wrapped() const noexcept { return wrapped_; }
    std::uint64_t frames_copied() const noexcept { return copied_; }

private:
    friend struct held_item;
    GstBuffer* to_buffer(shmchan::item it);

    shmchan::reader reader_;
    bool open_ = false;
    unsigned max_held_ = 1;
    std::atomic<unsigned> held_{0};  // items alive in buffers downstream
    std::uint64_t wrapped_ = 0, copied_ = 0;
    bool discont_ = false;  // records were lost (overflow drop-oldest): mark the next buffer
    std::string ref_;
    std::string error_;
};

}  // namespace shmchan::gst
