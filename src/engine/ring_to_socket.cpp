// The bridge from a channel's ring to its socket reader, driven by the ring reader's event fd
// on the socket's strand. Records leave as WebSocket frames the bridge writes itself (a
// server's frames are not masked: wire/ws_frame.hpp): every record the ring holds at the
// moment, up to batch_max, goes out in one gather write straight from the ring (the items are
// held until written), so small records cost one send for many, and nothing waits for more.
// A frame (wire/frame_meta_json.hpp) goes out as its meta (text), then its bytes (binary).
//
// SHMCHAN_ENGINE_BATCH=0 sends one record per Beast write instead (how the engine sent before
// issue 14): for A/B runs of the benchmark.
//
// Beast still reads the socket (the reader sends nothing but a close frame) and writes the
// final close frame, after the last gather write completed. A close frame from the reader
// while a gather write is under way is answered by Beast at once; the reader is leaving then
// and reads nothing more of the stream.
#include "engine_impl.hpp"

#include <cstdlib>
#include <deque>
#include <vector>

#include "ends.hpp"
#include "wire/frame_meta_json.hpp"
#include "wire/ws_frame.hpp"

namespace shmchan {

namespace {

bool batching_on() {
    static const bool on = [] {
        const char* v = std::getenv("SHMCHAN_ENGINE_BATCH");
        return !(v && v[0] == '0' && v[1] == '\0');
    }();
    return on;
}

constexpr std::size_t batch_bytes_max = std::size_t{8} << 20;  // stop adding records past this

struct ring_to_socket : std::enable_shared_from_this<ring_to_socket> {
    ws_stream ws;
    beast::flat_buffer inbox;  // anything the socket reader sends is read and dropped
    reader r;
    asio::posix::stream_descriptor data;  // polls readable when the ring may have something
    const bool batch_mode = batching_on();
    // The records of the write under way (held: their payloads are sent from the ring), the
    // frame headers and texts (frame metas, repaired messages) it points into, its buffers.
    std::vector<item> batch;
    std::vector<detail::ws_server_header_bytes> heads;  // reserved: never reallocated mid-batch
    std::deque<std::string> texts;
    std::vector<asio::const_buffer> bufs;
    item last;  // an end, gap or error found behind the batch: acted on once it is written
    bool has_last = false;
    bool writing = false, closing = false, gone = false;
    bool lost = false;  // the socket reader's connection broke (no close frame)
    lost_flag reader_lost;

    ring_to_socket(ws_stream&& s, reader&& rd, int efd, lost_flag lost_out)
        : ws(std::move(s)), r(std::move(rd)), data(ws.get_executor(), ::dup(efd)), reader_lost(std::move(lost_out)) {
        heads.reserve(2 * bridge_batch_max);
    }
    // Once no handler runs (no send reads the ring any more): a shared-memory writer learns
    // that its reader was lost from the ring end's final state.
    ~ring_to_socket() {
        if (lost) detail::end_access::finish_lost(r);
    }

    void start() {
        ws.auto_fragment(false);  // one record, one frame
        read_client();
        pump();
    }
    void read_client() {
        ws.async_read(inbox, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) {
                // Before r goes (which the ring's writer then sees): a close frame is a reader
                // that left, anything else one that was lost.
                if (ec != websocket::error::closed && !self->closing) {
                    self->reader_lost->store(true, std::memory_order_release);
                    self->lost = true;
                }
                self->gone = true;  // the socket reader left: stop; dropping r tells the writer
                beast::error_code ignore;
                self->data.cancel(ignore);
                return;
            }
            self->inbox.consume(self->inbox.size());
            self->read_client();
        });
    }
    void pump() {
        if (writing || closing || gone) return;
        std::size_t bytes = 0;
        const std::size_t most = batch_mode ? bridge_batch_max : 1;
        while (batch.size() < most && bytes < batch_bytes_max) {
            item it = r.try_next();
            if (it.is_error() && (it.error() == errc::would_block || it.error() == errc::held_limit)) break;
            if (it.type() != item::kind::chunk && it.type() != item::kind::message && it.type() != item::kind::frame) {
                last = std::move(it);
                has_last = true;
                break;
            }
            bytes += add(it);
            batch.push_back(std::move(it));
        }
        if (!batch.empty()) return send_batch();
        if (has_last) return act_on_last();
        wait_data();
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
    void send_batch() {
        writing = true;
        auto done = [self = shared_from_this()](beast::error_code ec, std::size_t) { self->sent(ec); };
        if (batch_mode) return asio::async_write(ws.next_layer(), bufs, std::move(done));
        // One record through Beast (the A/B baseline): its frames as Beast messages.
        send_one(0, std::move(done));
    }
    // bufs[i] is a header, bufs[i + 1] its payload (when not empty): Beast writes its own headers.
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
    void sent(beast::error_code ec) {
        writing = false;
        // drop_oldest: the writer may have overwritten a view while it was sent.
        bool intact = true;
        for (const item& it : batch) intact = intact && it.intact();
        batch.clear();  // gives the records back to the ring
        heads.clear();
        texts.clear();
        bufs.clear();
        if (ec) return;
        if (!intact)
            return close(close_with(detail::close_internal, "data_lost: the writer overwrote a record while it was sent (overflow drop-oldest)"));
        pump();
    }
    void wait_data() {
        data.async_wait(asio::posix::stream_descriptor::wait_read, [self = shared_from_this()](beast::error_code ec) {
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
            case item::kind::end:
                return close(close_with(detail::close_normal, "stream_complete"));
            case item::kind::gap:  // the channel socket has no way to say it: the reader stops
                return close(close_with(detail::close_internal, "data_lost: the reader fell a ring behind (overflow drop-oldest)"));
            default: break;
        }
        const std::error_code e = it.error();
        if (e == errc::aborted) return close(close_with(detail::close_aborted, detail::aborted_close_reason(r.abort_reason())));
        if (e == errc::peer_lost) return close(close_with(detail::close_internal, detail::reason_writer_lost));
        return close(close_with(detail::close_internal, to_string(static_cast<errc>(e.value()))));
    }
    void close(websocket::close_reason why) {
        closing = true;
        ws.async_close(why, [self = shared_from_this()](beast::error_code) {});
    }
};

}  // namespace

void start_ring_to_socket(ws_stream&& s, reader&& r, int efd, lost_flag reader_lost) {
    std::make_shared<ring_to_socket>(std::move(s), std::move(r), efd, std::move(reader_lost))->start();
}

}  // namespace shmchan
