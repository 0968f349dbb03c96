#include "source_channel.hpp"

#include <chrono>
#include <string_view>
#include <thread>
#include <utility>

#include <shmchan/error.hpp>

#include "common.hpp"

namespace shmchan::gst {

// Held by a buffer that wraps a ring view: releases the item (any thread, any order: the reader
// has max_held > 1), then lets the reader go when it was the last holder.
struct held_item {
    std::shared_ptr<source_channel> ch;
    shmchan::item it;
    static void release(gpointer p) {
        auto* h = static_cast<held_item*>(p);
        h->it.release();
        h->ch->held_.fetch_sub(1, std::memory_order_relaxed);
        delete h;
    }
};

namespace {
std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    const auto e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}
}  // namespace

source_channel::status source_channel::open(const settings& s, const std::atomic<bool>& flushing, bool wait) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(s.timeout_s));
    const auto poll = std::chrono::milliseconds(50);
    channel_options o;
    o.engine = s.engine;
    o.max_held = s.max_held;
    // Frames come every few hundred microseconds at most, and a spin that ends in a sleep
    // anyway is wasted CPU (50 us a frame by default). A small base keeps the adaptive budget:
    // gaps up to spin_max_us (small buffers at a high rate) are still learnt and spun through.
    o.spin_us = 2;
    max_held_ = s.max_held;
    for (;;) {
        if (flushing) return status::flushing;
        std::string text = s.ref;
        if (text.empty()) {
            if (s.ref_file.empty()) {
                error_ = "set ref-file or ref";
                return status::error;
            }
            auto f = read_small_file(s.ref_file);
            std::size_t lines = 0;
            if (f) {
                f = ref_line(*f, s.ref_index, lines);
                if (!f && lines > 0) {  // the file is written whole (renamed into place)
                    error_ = s.ref_file + " has " + std::to_string(lines) + " reader ref" + (lines == 1 ? "" : "s") +
                             ": ref-index=" + std::to_string(s.ref_index) + " needs at least " +
                             std::to_string(s.ref_index + 1) + " (shmchansink readers=N)";
                    return status::error;
                }
            }
            if (!f) {
                if (!wait) return status::later;
                if (clock::now() >= deadline) {
                    error_ = "no ref in " + s.ref_file + " after " + std::to_string(s.timeout_s) +
                             " s (is shmchansink ref-file=" + s.ref_file + " running?)";
                    return status::error;
                }
                std::this_thread::sleep_for(poll);
                continue;
            }
            text = *f;
        }
        try {
            const channel_ref ref = channel_ref::parse(trim(text));
            reader_ = open_reader(ref, o);
            ref_ = trim(text);
            if (reader_.via() == transport::shm) {
                try {
                    live_ = inspect(ref).overflow == channel_options::overflow_policy::drop_oldest;
                } catch (const shmchan::error&) {  // gone already: the reader says so at next()
                }
            }
            open_ = true;
            return status::ok;
        } catch (const shmchan::error& e) {
            // A ref file left by a sink that died: the next sink replaces it.
            const bool stale = s.ref.empty() && e.kind() == errc::segment_missing;
            if (stale && !wait) return status::later;
            if (!stale || clock::now() >= deadline) {
                error_ = std::string("cannot open the channel: ") + e.what();
                return status::error;
            }
            std::this_thread::sleep_for(poll);
        }
    }
}

source_channel::status source_channel::next(const std::atomic<bool>& flushing, GstBuffer** buf, std::string* caps) {
    for (;;) {
        item it = reader_.next(wait_slice);
        switch (it.type()) {
        case item::kind::frame:
        case item::kind::chunk:
            if (!caps_known(it) || !(*buf = to_buffer(std::move(it)))) {
                ++dropped_;
                discont_ = true;
                continue;
            }
            if (discont_) GST_BUFFER_FLAG_SET(*buf, GST_BUFFER_FLAG_DISCONT);
            discont_ = false;
            return status::ok;
        case item::kind::gap:  // a live source that fell behind: the stream goes on after a gap
            discont_ = true;
            caps_fresh_ = false;  // a caps message before the gap was for a frame lost in it
            continue;
        case item::kind::message:
            caps_fresh_ = false;
            if (it.text().starts_with(caps_prefix)) {
                // A live sink repeats its caps before every frame: only a change is news.
                std::string text(it.text().substr(caps_prefix.size()));
                caps_fresh_ = true;
                if (text == caps_) continue;
                caps_ = text;
                *caps = std::move(text);
                return status::ok;
            }
            continue;  // someone else's message
        case item::kind::end:
            return status::eos;
        case item::kind::error:
            break;
        }
        const std::error_code e = it.error();
        if (e == errc::timeout || e == errc::held_limit) {
            // held_limit cannot come (copies start below the limit); should it, wait for a release.
            if (flushing) return status::flushing;
            continue;
        }
        if (e == errc::aborted)
            error_ = "the writer aborted the stream: " + reader_.abort_reason();
        else if (e == errc::peer_lost)
            error_ = "the writer's process died (shmchansink killed?)";
        else
            error_ = "reading the channel: " + describe(e, "writer");
        return status::error;
    }
}

// Whether the caps handed out last are this frame's. Frames of a live sink name their caps in
// the user header; the caps message just before such a frame (no gap between) gives its caps,
// and later frames with the same id have them too. A frame of unknown caps (a source that
// joined between a caps message and its frame, or lost both in a gap) is dropped: the next
// frame comes with its caps. Frames without an id (lossless streams) have the caps last sent.
bool source_channel::caps_known(const shmchan::item& it) {
    const bool fresh = std::exchange(caps_fresh_, false);
    const auto user = it.meta().user;
    const std::string_view tag(reinterpret_cast<const char*>(user.data()), user.size());
    if (!it.is_frame() || !tag.starts_with(caps_id_prefix)) return true;
    if (fresh) {
        caps_id_ = std::string(tag);
        return true;
    }
    return !caps_id_.empty() && tag == caps_id_;
}

GstBuffer* source_channel::to_buffer(shmchan::item it) {
    const std::span<const std::byte> d = it.data();
    const frame_meta meta = it.meta();
    const bool is_frame = it.is_frame();
    GstBuffer* buf;
    if (live_) {
        // A writer that never waits may overwrite a view still held downstream: copy, then
        // check that the bytes copied were whole (else the frame is lost, as in a gap).
        buf = gst_buffer_new_allocate(nullptr, d.size(), nullptr);
        if (!d.empty()) gst_buffer_fill(buf, 0, d.data(), d.size());
        if (!it.intact()) {
            gst_buffer_unref(buf);
            return nullptr;
        }
        ++copied_;
        if (is_frame) meta_to_buffer(meta, buf);
        return buf;
    }
    // Wrap the view while downstream holds fewer than max_held - 1 of them; the item in hand
    // makes one more, and next() must stay possible.
    if (!d.empty() && max_held_ > 1 && held_.load(std::memory_order_relaxed) + 1 < max_held_) {
        held_.fetch_add(1, std::memory_order_relaxed);
        auto* h = new held_item{shared_from_this(), std::move(it)};
        buf = gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, const_cast<std::byte*>(d.data()), d.size(), 0,
                                          d.size(), h, &held_item::release);
        ++wrapped_;
    } else {
        buf = gst_buffer_new_allocate(nullptr, d.size(), nullptr);
        if (!d.empty()) gst_buffer_fill(buf, 0, d.data(), d.size());
        ++copied_;
    }
    if (is_frame) meta_to_buffer(meta, buf);
    return buf;
}

}  // namespace shmchan::gst
