// The bridge from a channel's ring to its socket reader, driven by the ring reader's event fd
// on the socket's strand. Records leave as WebSocket frames the bridge writes itself (a
// server's frames are not masked: wire/ws_frame.hpp): every record the ring holds at the
// moment, up to bridge_batch_max, goes out in one gather write straight from the ring (the
// items are held until written), so small records cost one send for many, and nothing waits
// for more. A frame (wire/frame_meta_json.hpp) goes out as its meta (text), then its bytes.
//
// The bridge owns both directions of the socket after the upgrade (ws:// or wss://: the bytes
// go through ws.next_layer(), the net_stream, which encrypts them for TLS). Beast neither reads
// nor writes it any more: Beast answers a ping or a close by writing at once, which could land
// inside one of our writes. The bridge reads the client's frames itself (wire/client_frames.hpp)
// and writes its own control frames, only between two writes of records:
//   - ping: a pong with the same payload, at the front of the next write (the latest ping's
//     only, if several came meanwhile: RFC 6455 5.5.3);
//   - close: a close in reply, once the write under way is done; the reader left;
//   - anything else (data frames, unmasked frames, reserved bits, long or fragmented control
//     frames): a close 1002 (1007 for a close reason that is not UTF-8), then the connection
//     ends; the reader was lost, as when its connection breaks.
// The end of the stream, a gap or an error is a close frame from the bridge, after the last
// records; the socket is shut once the reader's close came back.
//
// SHMCHAN_ENGINE_BATCH=0 sends one record per Beast write instead, with Beast reading the socket
// and writing the close (how the engine worked before issue 14): for A/B runs of the benchmark.
// (It also switches socket writers to socket_to_ring_beast.cpp.)
#include "engine_impl.hpp"

#include <cstdlib>
#include <deque>
#include <vector>

#include "ends.hpp"
#include "env_knob.hpp"
#include "wire/client_frames.hpp"
#include "wire/frame_meta_json.hpp"
#include "wire/ws_frame.hpp"

namespace shmchan {

bool engine_batching_on() {
    static const bool on = !detail::env_off("SHMCHAN_ENGINE_BATCH");
    return on;
}

bool engine_kick_on() {
    static const bool on = !detail::env_off("SHMCHAN_ENGINE_KICK");
    return on;
}

namespace {

constexpr std::size_t batch_bytes_max = std::size_t{8} << 20;  // stop adding records past this
// Records up to copy_max bytes are copied, with their headers, into one contiguous staging
// buffer and released at once: a gather write of many tiny buffers costs a sendmsg per 64 of
// them (Asio's limit per call) and holds a ring record each, which capped a batch at 64.
constexpr std::size_t copy_max = 512;
constexpr std::size_t staging_bytes = std::size_t{256} << 10;
constexpr std::size_t records_max = 4096;  // records in one write, copied or held

struct ring_to_socket : std::enable_shared_from_this<ring_to_socket> {
    ws_stream ws;
    reader r;
    asio::posix::stream_descriptor data;  // polls readable when the ring may have something
    const bool batch_mode = engine_batching_on();
    lost_flag reader_lost;

    // The ring side. The records of the write under way (held: their payloads are sent from
    // the ring), the frame headers and texts (frame metas, repaired messages) it points into,
    // its buffers.
    std::vector<item> batch;
    std::vector<detail::ws_server_header_bytes> heads;  // reserved: never reallocated mid-batch
    std::vector<std::byte> staging;                     // copied records; reserved likewise
    std::size_t records = 0;                            // in the batch, copied or held
    bool overwritten = false;  // a copied record was overwritten while it was copied
    std::deque<std::string> texts;
    std::vector<asio::const_buffer> bufs;
    item last;  // an end, gap or error found behind the batch: acted on once it is written
    bool has_last = false;
    bool writing = false, waiting = false;

    // The socket side.
    bool closing = false;  // the bridge's close frame is queued or sent: no more records
    bool gone = false;     // the socket reader left or was lost: the ring end goes
    bool lost = false;     // ... lost: its connection broke, or it broke the protocol
    // Batch mode: the client's frames, read by the bridge; the control frames it writes.
    std::array<std::byte, 512> inbox;
    detail::client_frame_parser parser;
    detail::ws_control_frame pong_next, pong_out, close_out;
    std::size_t pong_next_len = 0, close_len = 0;  // 0: none queued
    bool close_written = false, close_received = false, failing = false, shut = false;
    // A write failed: the connection broke, and nothing more is written to it. A batch written
    // after the failure was seen never to complete (presumably the reactor waiting for an edge
    // of the edge-triggered socket that had already come), holding its records: the ring's writer
    // then waited for room forever (tests/engine/peer_fate_test.cpp, 1 run in 15).
    bool write_failed = false;
    beast::flat_buffer beast_inbox;  // SHMCHAN_ENGINE_BATCH=0: Beast reads (and drops) here

    ring_to_socket(ws_stream&& s, reader&& rd, int efd, lost_flag lost_out)
        : ws(std::move(s)), r(std::move(rd)), data(ws.get_executor(), ::dup(efd)), reader_lost(std::move(lost_out)) {
        heads.reserve(2 * bridge_batch_max);
        staging.reserve(staging_bytes);
    }

    void start(const kick_link& kick) {
        ws.auto_fragment(false);  // one record, one frame
        if (batch_mode) read_frames();
        else read_beast();
        if (kick && batch_mode && engine_kick_on()) take_kicks(kick);
        pump();
    }
    // The writer's bridge (another thread, maybe) rings after it committed: one look at the
    // ring on this bridge's thread, however many rings came before it ran. A pump that finds
    // nothing new, or finds a write under way, does nothing.
    // SYNC: the ring's exchange and the look's exchange are read-modify-writes of `kicked`: a
    // ring that finds a look pending (true) is read by that look's exchange, so the records it
    // committed are seen by the look. (A ring that posts is ordered by the post.)
    std::atomic<bool> kicked{false};
    kick_link kicks;  // the bridge is rung, and its reader still arms for data: until the writer rings
    // The bridge's executor, for a ring from another thread (a copy made here: the ring holds
    // no executor of its own, which could outlive the engine's io_context; ASan caught that).
    const asio::any_io_executor home = ws.get_executor();
    void take_kicks(const kick_link& kick) {
        kicks = kick;
        kick->set([weak = weak_from_this()] {
            auto self = weak.lock();
            if (!self || self->kicked.exchange(true, std::memory_order_acq_rel)) return;
            asio::post(self->home, [self] {
                self->kicked.exchange(false, std::memory_order_acq_rel);
                self->pump();
            });
        });
    }

    // --- the ring side --------------------------------------------------------------------------
    void pump() {
        if (writing || write_failed) return;
        take_pong();
        if (!gone && !closing) collect();
        if (!bufs.empty()) return send_batch();
        if (close_len && !close_written) return send_close();
        if (gone || closing) return;
        if (has_last) return act_on_last();
        wait_data();
    }
    // Every record the ring holds now, up to the batch's limits (one in Beast mode).
    void collect() {
        if (kicks && kicks->writer_rings.load(std::memory_order_acquire)) {
            detail::end_access::data_events_off(r);  // every commit rings from now on
            kicks.reset();  // (the ring's owners keep it)
        }
        std::size_t bytes = 0;
        const std::size_t most = batch_mode ? bridge_batch_max : 1;
        while (!has_last && batch.size() < most && records < records_max && bytes < batch_bytes_max &&
               staging.capacity() - staging.size() >= detail::ws_server_header_max + copy_max) {
            item it = r.try_next();
            if (it.is_error() && (it.error() == errc::would_block || it.error() == errc::held_limit)) break;
            if (it.type() != item::kind::chunk && it.type() != item::kind::message && it.type() != item::kind::frame) {
                last = std::move(it);
                has_last = true;
                break;
            }
            ++records;
            if (copy(it)) continue;  // released here, its bytes are in staging
            bytes += add(it);
            batch.push_back(std::move(it));
        }
    }
    // A small chunk or valid text message (a frame has its meta; a bad text is repaired): its
    // header and bytes go into staging, after the previous copy when it is the last buffer.
    bool copy(const item& it) {
        if (!batch_mode || it.type() == item::kind::frame || it.data().size() > copy_max) return false;
        if (it.is_message() && !detail::valid_utf8(it.text())) return false;
        const std::span<const std::byte> payload = it.data();
        detail::ws_server_header_bytes h;
        const std::size_t hn = detail::ws_server_header(h, it.is_message(), payload.size());
        const std::byte* at = staging.data() + staging.size();
        const bool joins = !staging.empty() && static_cast<const std::byte*>(bufs.back().data()) + bufs.back().size() == at;
        staging.insert(staging.end(), h.begin(), h.begin() + static_cast<std::ptrdiff_t>(hn));
        staging.insert(staging.end(), payload.begin(), payload.end());
        // drop_oldest: the writer may have overwritten it while it was copied.
        overwritten = overwritten || !it.intact();
        const std::size_t n = hn + payload.size();
        if (joins)
            bufs.back() = asio::const_buffer(bufs.back().data(), bufs.back().size() + n);
        else
            bufs.emplace_back(at, n);
        return true;
    }
    // The frames of one record: its header and payload (a frame: its meta first). Returns its
    // payload size.
    std::size_t add(const item& it) {
        std::span<const std::byte> payload = it.data();
        if (it.type() == item::kind::frame) {
            push(texts.emplace_back(detail::encode_frame_meta(payload.size(), it.meta())), true);
        } else if (it.is_message() && !detail::valid_utf8(it.text())) {
            // A text frame must be UTF-8 (or the peer fails the connection): a shared-memory
            // writer's message that is not goes out repaired, as a decoding reader would see it.
            return push(texts.emplace_back(detail::to_valid_utf8(it.text())), true);
        }
        return push(payload, it.is_message());
    }
    std::size_t push(std::string_view s, bool text) {
        return push(std::span(reinterpret_cast<const std::byte*>(s.data()), s.size()), text);
    }
    std::size_t push(std::span<const std::byte> payload, bool text) {
        auto& h = heads.emplace_back();
        bufs.emplace_back(h.data(), detail::ws_server_header(h, text, payload.size()));
        if (!payload.empty()) bufs.emplace_back(payload.data(), payload.size());
        return payload.size();
    }
    void sent(beast::error_code ec) {
        writing = false;
        // drop_oldest: the writer may have overwritten a view while it was sent.
        bool intact = !overwritten;
        for (const item& it : batch) intact = intact && it.intact();
        batch.clear();  // gives the records back to the ring
        overwritten = false;
        records = 0;
        staging.clear();
        heads.clear();
        texts.clear();
        bufs.clear();
        if (gone) release_ring();
        if (ec) {
            write_failed = true;
            return reader_done(!closing);  // as when the reading side sees the break
        }
        if (!intact)
            return close(detail::close_internal, "data_lost: the writer overwrote a record while it was sent (overflow drop-oldest)");
        pump();
    }
    void wait_data() {
        if (waiting) return;
        waiting = true;
        data.async_wait(asio::posix::stream_descriptor::wait_read, [self = shared_from_this()](beast::error_code ec) {
            self->waiting = false;
            if (ec) return;
            std::uint64_t v;
            [[maybe_unused]] auto n = ::read(self->data.native_handle(), &v, sizeof v);
            self->pump();
        });
    }
    // The end of the stream, a gap or an error, after every record before it was sent.
    void act_on_last() {
        item it = std::move(last);
        has_last = false;
        switch (it.type()) {
            case item::kind::end: return close(detail::close_normal, "stream_complete");
            case item::kind::gap:  // the channel socket has no way to say it: the reader stops
                return close(detail::close_internal, "data_lost: the reader fell a ring behind (overflow drop-oldest)");
            default: break;
        }
        const std::error_code e = it.error();
        if (e == errc::aborted) return close(detail::close_aborted, detail::aborted_close_reason(r.abort_reason()));
        if (e == errc::peer_lost) return close(detail::close_internal, detail::reason_writer_lost);
        return close(detail::close_internal, to_string(static_cast<errc>(e.value())));
    }
    // The socket reader is done with the stream. Its ring end goes as soon as no record of a
    // write under way is held (the ring's writer then learns it: peer_lost when it was lost).
    void reader_done(bool was_lost) {
        if (gone) return;
        gone = true;
        if (was_lost) {
            reader_lost->store(true, std::memory_order_release);  // before the ring end goes
            lost = true;
        }
        beast::error_code ignore;
        data.cancel(ignore);
        if (!writing) release_ring();
    }
    void release_ring() {
        if (lost) detail::end_access::finish_lost(r);
        last = item();
        r = reader();
    }

    // --- the socket side ------------------------------------------------------------------------
    void send_batch() {
        writing = true;
        auto done = [self = shared_from_this()](beast::error_code ec, std::size_t) { self->sent(ec); };
        if (batch_mode) return asio::async_write(ws.next_layer(), bufs, detail::transfer_all_at_once{}, std::move(done));
        send_one(0, std::move(done));
    }
    // Beast mode: bufs[i] is a header, bufs[i + 1] its payload (when not empty); Beast writes
    // its own headers.
    template <class Done>
    void send_one(std::size_t i, Done done) {
        if (i >= bufs.size()) return done(beast::error_code{}, 0);
        const auto* h = static_cast<const unsigned char*>(bufs[i].data());
        const bool text = (h[0] & 0x0f) == 1;
        const bool has_payload = (h[1] & 0x7f) != 0;
        const asio::const_buffer payload = has_payload ? bufs[i + 1] : asio::const_buffer();
        ws.binary(!text);
        ws.async_write(payload, [self = shared_from_this(), i, has_payload, done](beast::error_code ec, std::size_t) mutable {
            if (ec) return done(ec, 0);
            self->send_one(i + (has_payload ? 2 : 1), std::move(done));
        });
    }
    // The bridge's close frame: after the write under way (or at once), no records after it.
    void close(std::uint16_t code, std::string_view reason) {
        if (closing) return;
        closing = true;
        if (!batch_mode) return ws.async_close(close_with(code, reason), [self = shared_from_this()](beast::error_code) {});
        close_len = detail::ws_server_close(close_out, code, detail::close_reason_text(reason));
        pump();
    }
    void send_close() {
        writing = true;
        asio::async_write(ws.next_layer(), asio::buffer(close_out.data(), close_len),
                          [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->writing = false;
                              self->close_written = !ec;
                              self->write_failed = self->write_failed || ec;
                              self->maybe_shut();
                          });
    }
    // A pong for the latest ping, at the front of the next write (a frame boundary).
    void take_pong() {
        if (!pong_next_len || closing) return;
        pong_out = pong_next;
        bufs.emplace_back(pong_out.data(), pong_next_len);
        pong_next_len = 0;
    }
    void read_frames() {
        ws.next_layer().async_read_some(asio::buffer(inbox), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
            self->on_bytes(ec, n);
        });
    }
    void on_bytes(beast::error_code ec, std::size_t n) {
        if (ec) return reader_done(!closing);  // broke without a close frame (after ours: fine)
        for (std::size_t off = 0; off < n;) {
            std::size_t used = 0;
            const auto ev = parser.feed(std::span(inbox).subspan(off, n - off), used);
            off += used;
            if (on_event(ev)) return;  // the client is done: read no more
        }
        read_frames();
    }
    // One whole client frame; true when the client is done sending (after a close or a violation).
    bool on_event(const detail::client_event& ev) {
        using kind = detail::client_event::kind;
        switch (ev.what) {
            case kind::none:
            case kind::pong: return false;
            case kind::ping:
                pong_next_len = detail::ws_server_pong(pong_next, ev.payload);
                pump();
                return false;
            case kind::close:
                close_received = true;
                reader_done(false);
                // Echo the client's code (RFC 6455 5.5.1) unless the bridge closed first.
                close(ev.code == detail::close_no_status ? detail::close_normal : ev.code, "");
                maybe_shut();
                return true;
            case kind::violation:
                failing = true;
                reader_done(true);
                close(ev.code, std::string("protocol error: ") + std::string(ev.why));
                maybe_shut();
                return true;
        }
        return true;
    }
    // Once the bridge's close is written and the reader's came (or the reader failed): the
    // server ends the connection first (RFC 6455 7.1.1), as Beast does: TLS with its
    // close_notify, TCP with a shutdown, then reading to the end.
    void maybe_shut() {
        if (shut || !close_written || !(close_received || failing)) return;
        shut = true;
        async_teardown(beast::role_type::server, ws.next_layer(), [self = shared_from_this()](beast::error_code) {});
    }
    // Beast mode: Beast reads the socket and answers pings and closes itself; a data message
    // from the reader fails it as in batch mode.
    void read_beast() {
        ws.async_read(beast_inbox, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->reader_done(ec != websocket::error::closed && !self->closing);
            self->reader_done(true);
            self->close(detail::close_protocol_error, "protocol error: a reading client sent a data frame");
        });
    }
};

}  // namespace

void start_ring_to_socket(ws_stream&& s, reader&& r, int efd, lost_flag reader_lost, kick_link kick) {
    std::make_shared<ring_to_socket>(std::move(s), std::move(r), efd, std::move(reader_lost))->start(kick);
}

}  // namespace shmchan
