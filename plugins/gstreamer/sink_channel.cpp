#include "sink_channel.hpp"

#include <algorithm>
#include <cstring>

#include "common.hpp"

namespace shmchan::gst {

// Held by the GstMemory that wraps a loan: keeps the channel (and the ring's mapping) alive,
// and says when the memory is freed.
struct loan_memory_token {
    std::shared_ptr<sink_channel> ch;
    static void release(gpointer p) {
        auto* t = static_cast<loan_memory_token*>(p);
        t->ch->memory_gone();
        delete t;
    }
};

std::string sink_channel::unsupported(const settings& s) {
    // iii's createChannel makes a channel with one reader and no overflow choice.
    if (!s.engine.empty() && (s.readers > 1 || s.drop_oldest))
        return "readers > 1 and overflow=drop-oldest need a channel in shared memory: the engine "
               "creates channels with one lossless reader; leave 'engine' unset";
    return {};
}

bool sink_channel::create(const settings& s) {
    std::lock_guard lock(mu_);
    if (created_) return true;
    if (error_ = unsupported(s); !error_.empty()) return false;
    try {
        if (!s.engine.empty()) {
            worker_ = std::make_unique<shmchan::worker>(s.engine);
            // The engine counts 64 KiB units, 1 to 1024 (docs/engine.md).
            const std::size_t units = std::clamp<std::size_t>((s.capacity + 65535) / 65536, 1, 1024);
            ch_ = worker_->create_channel(units);
        } else {
            channel_options o;
            o.capacity = s.capacity;
            o.readers = s.readers;
            o.overflow = s.drop_oldest ? channel_options::overflow_policy::drop_oldest
                                       : channel_options::overflow_policy::block;
            // Upstream fills the loans (videotestsrc, converters, decoders: memcpy-like, whole
            // lines): zeroing them first is a second pass over every frame (+3.5 ms of a 4K
            // RGBA frame's ~6 ms here), and the adaptive chooser, timing whole pipeline steps,
            // can settle on it. docs/benchmarks.md, GStreamer section. SHMCHAN_LOAN_CLAIM
            // still overrides it for A/B runs.
            o.loan_claim = channel_options::claim_policy::never;
            ch_ = create_channel(o);
        }
    } catch (const std::exception& e) {
        error_ = std::string("cannot create the channel: ") + e.what();
        return false;
    }
    live_ = s.drop_oldest;
    readers_ = ch_.reader_refs.empty() ? 1 : ch_.reader_refs.size();
    if (!s.ref_file.empty()) {
        std::string lines;
        for (const auto& r : ch_.reader_refs) lines += r.dump() + "\n";
        if (lines.empty()) lines = ch_.reader_ref.dump() + "\n";
        if (std::string why = write_file_atomically(s.ref_file, lines); !why.empty()) {
            error_ = why;
            ch_.writer.abort(why);
            done_ = true;
            return false;
        }
    }
    created_ = true;
    return true;
}

bool sink_channel::created() const {
    std::lock_guard lock(mu_);
    return created_;
}

std::string sink_channel::reader_ref() const {
    std::lock_guard lock(mu_);
    return created_ ? ch_.reader_ref.dump() : std::string();
}

std::string sink_channel::reader_refs() const {
    std::lock_guard lock(mu_);
    if (!created_) return {};
    std::string lines;
    for (const auto& r : ch_.reader_refs) lines += (lines.empty() ? "" : "\n") + r.dump();
    return lines.empty() ? ch_.reader_ref.dump() : lines;
}

std::string sink_channel::warning() const {
    std::lock_guard lock(mu_);
    return warning_;
}

bool sink_channel::finished() const {
    std::lock_guard lock(mu_);
    return done_;
}

std::uint64_t sink_channel::frames_in_place() const {
    std::lock_guard lock(mu_);
    return in_place_;
}

std::uint64_t sink_channel::frames_copied() const {
    std::lock_guard lock(mu_);
    return copied_;
}

std::string sink_channel::error() const {
    std::lock_guard lock(mu_);
    return error_;
}

sink_channel::result sink_channel::fail(std::error_code e, const std::string& what) {
    const std::string detail = ch_.writer.last_error();
    error_ = what + ": " + describe(e, "reader");
    if (!detail.empty()) error_ += ": " + detail;
    // The reader gets at most 127 bytes of reason: for a frame too large, the numbers first.
    std::string reason = error_;
    if (e == errc::too_large && frame_bytes_) {
        const std::size_t need = capacity_for_frame(frame_bytes_);
        reason = "frame of " + std::to_string(frame_bytes_) + " bytes too large for capacity " +
                 std::to_string(ch_.writer.capacity()) +
                 (need ? "; needs capacity >= " + std::to_string(need) : "; no channel holds it");
    }
    if (loan_) loan_.abandon();
    if (!done_) ch_.writer.abort(reason);
    done_ = true;
    return result::error;
}

void sink_channel::abort(const std::string& reason) {
    std::lock_guard lock(mu_);
    if (!created_ || done_) return;
    if (loan_) loan_.abandon();
    ch_.writer.abort(reason);
    done_ = true;
}

sink_channel::result sink_channel::wait_writer(const std::function<std::error_code()>& attempt,
                                               const char* what, std::unique_lock<std::mutex>& lock) {
    for (;;) {
        const std::error_code e = attempt();
        if (!e) return result::ok;
        if (e != errc::timeout) return fail(e, what);
        if (flushing_) return result::flushing;
        lock.unlock();  // let the other thread (pool or render) in between slices
        lock.lock();
    }
}

sink_channel::result sink_channel::send_pending_caps(std::unique_lock<std::mutex>& lock) {
    // A message cannot pass a loan: with one out, render() sends the caps (and copies that frame).
    if (loan_) return result::ok;
    // Live: the current caps before every frame; lossless: only new caps (the stream as before).
    const bool again = live_ && !caps_sent_ && !current_caps_.empty();
    if (pending_caps_.empty() && !again) return result::ok;
    const std::string text = std::string(caps_prefix) + (pending_caps_.empty() ? current_caps_ : pending_caps_);
    const result r = wait_writer([&] { return ch_.writer.send_message(text, wait_slice); },
                                 "sending the caps", lock);
    if (r == result::ok) {
        pending_caps_.clear();
        caps_sent_ = true;
    }
    return r;
}

// Live: the frame's user header names its caps (caps_tag_).
frame_meta sink_channel::tagged(frame_meta meta) const {
    if (live_) meta.user = std::as_bytes(std::span(caps_tag_.data(), caps_tag_.size()));
    return meta;
}

void sink_channel::frame_written() { caps_sent_ = false; }

sink_channel::result sink_channel::set_caps(const std::string& caps) {
    std::unique_lock lock(mu_);
    pending_caps_ = caps;
    if (caps != current_caps_) {
        current_caps_ = caps;
        caps_tag_ = std::string(caps_id_prefix) + std::to_string(++caps_id_);
    }
    // Live: sent right before the next frame, so that a source joining in between has them.
    if (!created_ || done_ || live_) return result::ok;
    return send_pending_caps(lock);
}

GstBuffer* sink_channel::acquire(std::size_t size, const std::function<bool()>& cancelled, result& r) {
    std::unique_lock lock(mu_);
    r = result::ok;
    if (!created_ || done_) return nullptr;
    // One loan at a time, and only once nothing shows the previous one's bytes any more.
    while (memory_alive_) {
        if (flushing_ || cancelled()) {
            r = result::flushing;
            return nullptr;
        }
        memory_freed_.wait_for(lock, wait_slice);
    }
    if (done_) return nullptr;
    if ((r = send_pending_caps(lock)) != result::ok) {
        if (r == result::error) r = result::ok;  // render() reports it
        return nullptr;
    }
    if (size == 0 || size > ch_.writer.max_frame()) return nullptr;  // render() copies, or says too_large
    for (;;) {
        loan_ = ch_.writer.get_frame_loan(size, wait_slice);
        if (loan_) break;
        if (loan_.error() != errc::timeout) return nullptr;  // render() meets the same error
        if (flushing_ || cancelled()) {
            r = result::flushing;
            return nullptr;
        }
        lock.unlock();
        lock.lock();
        if (done_) return nullptr;
    }
    auto* token = new loan_memory_token{shared_from_this()};
    GstMemory* mem = gst_memory_new_wrapped(static_cast<GstMemoryFlags>(0), loan_.data().data(),
                                            loan_.size(), 0, size, token, &loan_memory_token::release);
    GstBuffer* buf = gst_buffer_new();
    gst_buffer_append_memory(buf, mem);
    loan_memory_ = mem;
    memory_alive_ = true;
    return buf;
}

void sink_channel::memory_gone() {
    std::lock_guard lock(mu_);
    if (loan_) loan_.abandon();  // upstream dropped the buffer without pushing it
    loan_memory_ = nullptr;
    memory_alive_ = false;
    memory_freed_.notify_all();
}

sink_channel::result sink_channel::render(GstBuffer* buf) {
    std::unique_lock lock(mu_);
    if (done_) {
        if (error_.empty()) error_ = "the channel was already finished";
        return result::error;
    }
    const frame_meta meta = tagged(meta_from_buffer(buf));
    frame_bytes_ = gst_buffer_get_size(buf);
    GstMemory* mem = gst_buffer_n_memory(buf) == 1 ? gst_buffer_peek_memory(buf, 0) : nullptr;
    std::vector<std::byte> copy;
    if (loan_ && mem && mem == loan_memory_) {
        gsize offset = 0;
        const gsize size = gst_memory_get_sizes(mem, &offset, nullptr);
        if (pending_caps_.empty() && (!live_ || caps_sent_) && offset == 0 && size <= loan_.size()) {
            // Zero copy: upstream rendered into the ring.
            if (const std::error_code e = loan_.commit(size, meta)) return fail(e, "committing a frame");
            ++in_place_;
            frame_written();
            return result::ok;
        }
        // New caps came while the loan was out (or the buffer was cut): one copy, so that the
        // caps message goes before this frame.
        GstMapInfo map;
        if (!gst_buffer_map(buf, &map, GST_MAP_READ)) return fail(errc::system_error, "mapping a buffer");
        copy.assign(reinterpret_cast<const std::byte*>(map.data), reinterpret_cast<const std::byte*>(map.data) + map.size);
        gst_buffer_unmap(buf, &map);
        loan_.abandon();
    } else if (loan_) {
        error_ = "a buffer from shmchansink's pool is held upstream while another buffer arrives "
                 "(one loan at a time); upstream must push the pool's buffers in order";
        if (loan_) loan_.abandon();
        ch_.writer.abort(error_);
        done_ = true;
        return result::error;
    }
    if (result r = send_pending_caps(lock); r != result::ok) return r;
    ++copied_;
    if (!copy.empty() || gst_buffer_get_size(buf) == 0) {
        const result r = wait_writer([&] { return ch_.writer.write_frame(copy, meta, wait_slice); },
                                     "writing a frame", lock);
        if (r == result::ok) frame_written();
        return r;
    }
    GstMapInfo map;
    if (!gst_buffer_map(buf, &map, GST_MAP_READ)) return fail(errc::system_error, "mapping a buffer");
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(map.data), map.size);
    const result r = wait_writer([&] { return ch_.writer.write_frame(bytes, meta, wait_slice); },
                                 "writing a frame", lock);
    gst_buffer_unmap(buf, &map);
    if (r == result::ok) frame_written();
    return r;
}

sink_channel::result sink_channel::finish() {
    std::unique_lock lock(mu_);
    if (done_) return error_.empty() ? result::ok : result::error;
    if (loan_) loan_.abandon();
    pending_caps_.clear();
    if (live_) {
        // Live: the sink never waits for sources, at the end neither (a stopped one would hold
        // it); each reads what is left in the ring, then the end. Sources that left or died
        // (close() says so when none is left) change nothing, as for the writes.
        std::error_code e;
        while ((e = ch_.writer.close(wait_slice)) == errc::timeout)
            if (flushing_) return result::flushing;
        if (e && e != errc::peer_closed && e != errc::peer_lost) return fail(e, "closing the channel");
        done_ = true;
        return result::ok;
    }
    result r = wait_writer([&] { return ch_.writer.close(wait_slice); }, "closing the channel", lock);
    if (r != result::ok) return r;
    done_ = true;  // closed: a later stop() must not abort
    for (;;) {
        const std::error_code e = ch_.writer.wait_drained(wait_slice);
        if (!e) return result::ok;
        if (e == errc::timeout) {
            if (flushing_) return result::flushing;
            lock.unlock();
            lock.lock();
            continue;
        }
        // Several readers: those still counted (reading or done) released everything and get
        // a clean end; the others are named.
        if ((e == errc::peer_lost || e == errc::peer_closed) && readers_ > 1) {
            const auto all = ch_.writer.readers();
            if (std::any_of(all.begin(), all.end(), [](const reader_status& s) {
                    return s.st == reader_status::state::done || s.st == reader_status::state::reading;
                })) {
                warning_ = gone_readers();
                return result::ok;
            }
        }
        error_ = "waiting for the reader: " + describe(e, "reader");
        if (readers_ > 1) error_ += " (" + gone_readers() + ")";
        return result::error;
    }
}

// "reader 1 of 3: its process died; ..." for each reader that did not read the whole stream
// (called once wait_drained() answered: the readers still counted read everything).
std::string sink_channel::gone_readers() const {
    std::string out;
    const auto all = ch_.writer.readers();
    for (std::size_t i = 0; i < all.size(); ++i) {
        if (all[i].st == reader_status::state::done || all[i].st == reader_status::state::reading) continue;
        const char* why = all[i].st == reader_status::state::lost   ? "its process died"
                          : all[i].st == reader_status::state::left ? "it left before the end"
                                                                    : "its ref was never used";
        out += (out.empty() ? "" : "; ") + std::string("reader ") + std::to_string(i) + " of " +
               std::to_string(all.size()) + ": " + why;
    }
    return out;
}

}  // namespace shmchan::gst
