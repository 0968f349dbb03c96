// The bridge from a socket writer to its channel's ring (the other way: ring_to_socket.cpp),
// driven on the socket's strand. The engine reads the writer's frames itself after the upgrade
// (wire/ws_client_header.hpp), so that the payload of a binary message goes from the socket
// straight into ring loans and is unmasked there (not at all when the key is zero, as
// shmchan's own socket writer sends it): one copy, the kernel's, where Beast made three
// (into its buffer, the unmask, into the ring).
//
// What goes where:
//   - a binary message in one frame (what shmchan's writer and the Node SDK send): records of
//     at most max_record() bytes, read into loans as they come;
//   - a text message, or a binary message in several frames: gathered whole (at most
//     max_message_bytes), then fed to the ring as before (wire/channel_socket.hpp feed_frame);
//   - a frame's meta (text) and then its bytes (binary, in any number of fragments): the bytes
//     are read into one frame loan of the announced size (wire/frame_meta_json.hpp);
//   - ping: a pong; close: the stream ends (clean on 1000), answered with a close.
// Anything wrong closes the socket with a code and reason and aborts the ring's stream, with
// nothing of the bad message in the ring: 1002 for a protocol violation, 1007 for text that is
// not UTF-8 or a meta that does not decode, 1008 for a frame whose bytes do not match its
// meta, 1009 for a message above the limit, 1011 when the ring's reader left. After the
// bridge's close is written, the server ends the connection (RFC 6455 7.1.1).
//
// SHMCHAN_ENGINE_BATCH=0 uses socket_to_ring_beast.cpp (Beast reads) instead: the benchmark's A/B.
#include "engine_impl.hpp"

#include <array>
#include <cstring>
#include <optional>
#include <vector>

#include "shmchan/shm/layout.hpp"
#include "wire/channel_socket.hpp"
#include "wire/client_frames.hpp"
#include "wire/frame_meta_json.hpp"
#include "wire/ws_client_header.hpp"
#include "wire/ws_frame.hpp"

namespace shmchan {

namespace {

constexpr std::size_t inbox_bytes = 64u << 10;  // headers, control frames, small payloads
// A payload piece at least this large, with nothing buffered, is read straight into its
// destination; smaller ones through the inbox (which may then hold the next frames too).
constexpr std::size_t direct_min = 4u << 10;

struct socket_to_ring : std::enable_shared_from_this<socket_to_ring> {
    // The reader's bridge, when the channel's reader is a socket here too (engine_impl.hpp,
    // reader_kick): rung once a pass of step() committed records, and once more by the
    // destructor, which runs after `w` (declared below) is gone and its end final.
    struct reader_bell {
        kick_link k;
        void ring() const {
            if (k) k->ring();
        }
        ~reader_bell() { ring(); }
    } bell;
    ws_stream ws;  // upgraded; from here on only its next layer is used
    writer w;
    asio::posix::stream_descriptor room;  // polls readable when the ring has more room
    lost_flag reader_lost;
    bool fresh = false;  // records committed since the bell last rang
    std::size_t message_max = 0;

    // Bytes read and not used yet: inbox[pos, end).
    std::vector<std::byte> inbox = std::vector<std::byte>(inbox_bytes);
    std::size_t pos = 0, end = 0;

    // The data frame whose payload is coming (or came last): its header, bytes still to come,
    // bytes so far.
    detail::ws_client_header fh;
    bool in_frame = false;
    std::uint64_t left = 0, done = 0;
    bool in_message = false;  // a fragmented message is under way (for the header's checks)
    // Where the payload goes: a gathered message, chunk loans, or the announced frame's loan.
    enum class sink : std::uint8_t { gather, chunk, frame, discard } to = sink::gather;
    std::vector<std::byte> msg;  // gathered: a text message or a fragmented binary one
    bool msg_text = false;
    std::size_t msg_fill = 0, msg_off = 0;  // bytes in msg; fed to the ring so far
    bool msg_pending = false;               // msg is whole, waiting for room in the ring
    loan chunk;
    std::size_t chunk_got = 0;
    std::optional<detail::decoded_frame_meta> meta;  // a frame announced by its meta
    loan frame;
    std::size_t got = 0;  // its bytes so far

    bool reading = false, waiting = false;
    bool draining = false;  // the bridge closed first: frames are read and dropped until the writer's close
    bool stopped = false;   // the writer's close came, or the connection broke or broke the protocol: no more reading

    // The frames the bridge writes (one at a time): a pong for the latest ping, its close.
    detail::client_frame_parser control;  // checks and unmasks control frames
    detail::ws_control_frame pong_next, pong_out, close_out;
    std::size_t pong_len = 0, close_len = 0;
    bool writing = false, close_written = false, shut = false;
    bool write_failed = false;  // nothing more is written after a failed write (ring_to_socket.cpp says why)

    socket_to_ring(ws_stream&& s, writer&& wr, int efd, lost_flag lost, kick_link k)
        : bell{engine_kick_on() ? std::move(k) : nullptr}, ws(std::move(s)), w(std::move(wr)),
          room(ws.get_executor(), ::dup(efd)), reader_lost(std::move(lost)) {
        if (bell.k) bell.k->writer_rings.store(true, std::memory_order_release);
    }

    void start() {
        message_max = ws.read_message_max();
        step();
    }

    // --- reading ------------------------------------------------------------------------------
    // Acts on what is buffered until it needs bytes (a read is started) or room (a wait is), or
    // the writer is done. Every pass either moves on or starts one of those: after the bridge's
    // own close it goes on reading (and dropping) until the writer's close.
    void step() {
        while (!stopped && !reading && !waiting) {
            if (msg_pending && !draining) feed_message();
            else if (!in_frame) next_header();
            else payload();
        }
        if (fresh) bell.ring();
        fresh = false;
    }
    // The last data frame was large: the next header is read on its own (or behind the payload
    // read straight into the ring), so that the next payload is not pulled into the inbox and
    // copied out of it. Small frames keep whole-inbox reads, many frames per read.
    bool large_frame() const { return fh.length >= direct_min; }
    // Reads into the inbox: at most `want` bytes after a large frame (0: as much as fits).
    void read_more(std::size_t want = 0) {
        if (pos == end) pos = end = 0;
        if (inbox.size() - end < direct_min) {  // little room left: move what is buffered down
            std::memmove(inbox.data(), inbox.data() + pos, end - pos);
            end -= pos;
            pos = 0;
        }
        std::size_t n = inbox.size() - end;
        if (large_frame() && want) n = std::min(n, want);
        read_into(asio::buffer(inbox.data() + end, n), [](socket_to_ring& s, std::size_t got) { s.end += got; });
    }
    template <class Buffers, class Then>
    void read_into(const Buffers& b, Then then) {
        reading = true;
        ws.next_layer().async_read_some(b, [self = shared_from_this(), then](beast::error_code ec, std::size_t n) {
            self->reading = false;
            if (self->stopped) return;
            if (ec) return self->broken(ec);
            then(*self, n);
            self->step();
        });
    }
    bool next_header() {
        detail::ws_client_header h;
        const auto r = detail::parse_client_header(std::span(inbox).subspan(pos, end - pos), in_message, h);
        using st = detail::ws_header_result::status;
        if (r.what == st::need_more) return read_more(detail::ws_client_header_max), false;
        if (r.what == st::violation) return violation(r.why), false;
        if (h.is_control()) {
            const std::size_t whole = h.header_size + h.length;
            if (end - pos < whole) return read_more(whole - (end - pos)), false;
            std::size_t used = 0;
            const auto ev = control.feed(std::span(inbox).subspan(pos, whole), used);
            pos += whole;
            return on_control(ev);
        }
        pos += h.header_size;
        fh = h;
        in_frame = true;
        left = h.length;
        done = 0;
        const bool first = h.opcode != detail::ws_op_continuation;
        in_message = !h.fin;
        if (draining) {
            to = sink::discard;
        } else if (first) {
            msg_text = h.opcode == detail::ws_op_text;
            if (meta && msg_text) return bad_frame(detail::close_refused, "a frame meta followed by a text message"), false;
            to = meta ? sink::frame : (!msg_text && h.fin) ? sink::chunk : sink::gather;
            msg_fill = 0;
        }
        if (to == sink::discard) return left == 0 ? (frame_done(), true) : true;
        if (to == sink::frame && got + left > meta->size)
            return bad_frame(detail::close_refused, "more bytes than its meta announced"), false;
        if (to != sink::frame && msg_fill + left > message_max) return too_big(), false;
        if (to == sink::gather) msg.resize(msg_fill + left);
        if (left == 0) frame_done();
        return true;
    }
    // Where the next payload bytes go (at most `left`); empty when the bridge waits for room.
    std::span<std::byte> destination() {
        switch (to) {
            case sink::gather: return std::span(msg).subspan(msg_fill, left);
            case sink::frame: return frame.data().subspan(got, left);
            case sink::chunk:
                if (!chunk) {
                    chunk = w.get_loan(static_cast<std::size_t>(std::min<std::uint64_t>(left, w.max_record())), 0ns);
                    const std::error_code e = chunk.error();
                    if (e == errc::would_block || e == errc::timeout) return wait_room(), std::span<std::byte>();
                    if (e || !chunk) return fail(e ? e : make_error_code(errc::closed)), std::span<std::byte>();
                    chunk_got = 0;
                }
                return chunk.data().subspan(chunk_got);
            case sink::discard: break;
        }
        return {};
    }
    bool payload() {
        if (to == sink::discard) {  // after the bridge's close
            if (pos == end) return read_more(), false;
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, end - pos));
            pos += n;
            left -= n;
            if (left == 0) frame_done();
            return true;
        }
        const std::span<std::byte> dst = destination();
        if (dst.empty()) return false;
        if (pos < end) {  // buffered bytes first
            const std::size_t n = std::min(dst.size(), end - pos);
            std::memcpy(dst.data(), inbox.data() + pos, n);
            pos += n;
            arrived(dst.first(n));
            return true;
        }
        if (dst.size() < direct_min) return read_more(dst.size() + detail::ws_client_header_max), false;
        // Straight from the socket into the ring (or the gathered message), and what follows
        // (the next frame's header, as a rule) into the inbox, which is empty: one read.
        pos = end = 0;
        const std::array<asio::mutable_buffer, 2> bufs{asio::buffer(dst.data(), dst.size()),
                                                       asio::buffer(inbox.data(), detail::ws_client_header_max)};
        read_into(bufs, [dst](socket_to_ring& s, std::size_t n) {
            const std::size_t mine = std::min(n, dst.size());
            s.end = n - mine;
            s.arrived(dst.first(mine));
        });
        return false;
    }
    // `b` (at the payload's current offset) came, masked.
    void arrived(std::span<std::byte> b) {
        detail::ws_unmask(b, fh.key, done);
        left -= b.size();
        done += b.size();
        switch (to) {
            case sink::gather: msg_fill += b.size(); break;
            case sink::frame: got += b.size(); break;
            case sink::chunk:
                chunk_got += b.size();
                if (chunk_got == chunk.size()) {
                    chunk.commit();  // leaves the loan empty
                    fresh = true;
                }
                break;
            case sink::discard: break;
        }
        if (left == 0) frame_done();
    }
    void frame_done() {
        in_frame = false;
        if (!fh.fin) return;
        switch (to) {
            case sink::chunk:
            case sink::discard: return;  // every record was committed as it filled
            case sink::frame: return frame_whole();
            case sink::gather: break;
        }
        const std::string_view text(reinterpret_cast<const char*>(msg.data()), msg_fill);
        if (msg_text && detail::is_frame_meta(text)) return on_meta(text);
        msg_off = 0;
        msg_pending = true;
    }
    // A whole text message or fragmented binary one into the ring, as far as there is room.
    bool feed_message() {
        const std::error_code e = detail::feed_frame(w, msg_text, std::span<const std::byte>(msg.data(), msg_fill), msg_off);
        if (e == errc::would_block || e == errc::timeout) return wait_room(), false;
        if (e) return fail(e), false;
        msg_pending = false;
        fresh = true;
        return true;
    }

    // --- frames (a meta, then its bytes) ------------------------------------------------------
    void on_meta(std::string_view text) {
        auto d = detail::decode_frame_meta(text, shm::max_record_payload);
        if (!d) return bad_frame(detail::close_bad_payload, d.error);
        if (d.size > w.max_frame()) {
            const std::string why = "frame of " + std::to_string(d.size) + " bytes exceeds the channel's largest frame (" +
                                    std::to_string(w.max_frame()) + " bytes)";
            w.abort("engine could not deliver: " + why);
            return close(detail::close_too_big, std::string(to_string(errc::too_large)) + ": " + why);
        }
        meta = std::move(d);
        loan_frame();
    }
    void loan_frame() {
        frame = w.get_frame_loan(meta->size, 0ns);
        const std::error_code e = frame.error();
        if (e == errc::would_block || e == errc::timeout) return wait_room([](socket_to_ring& s) { s.loan_frame(); });
        if (e || !frame) return fail(e ? e : make_error_code(errc::closed));
        got = 0;
    }
    void frame_whole() {
        if (got != meta->size)
            return bad_frame(detail::close_refused, "its meta announced " + std::to_string(meta->size) + " bytes, " +
                                                        std::to_string(got) + " came");
        frame_meta m = meta->meta;
        m.user = meta->user;
        fresh = true;
        (void)frame.commit(m);  // cannot be refused: the decoder took at most max_user bytes of user
        meta.reset();
        to = sink::gather;
    }

    // --- control frames, the end, failures ------------------------------------------------------
    bool on_control(const detail::client_event& ev) {
        using kind = detail::client_event::kind;
        switch (ev.what) {
            case kind::none:
            case kind::pong: return true;
            case kind::ping:
                pong_len = detail::ws_server_pong(pong_next, ev.payload);
                write_next();
                return true;
            case kind::close: {
                const std::string_view reason(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size());
                closed(ev.code, reason);
                return false;
            }
            case kind::violation: violation(ev.why, ev.code); return false;
        }
        return false;
    }
    // The writer's close frame: the stream ends (cleanly on 1000, with nothing left half-sent),
    // and the bridge answers with the same code.
    void closed(std::uint16_t code, std::string_view reason) {
        stopped = true;
        if (!draining) {  // (after the bridge's close, the stream has already failed)
            const auto out = detail::socket_writer_outcome(true, code, reason, "");
            const char* half = meta ? "the stream ended after a frame meta"
                               : in_message ? "the stream ended inside a fragmented message" : nullptr;
            drop_partial();
            if (out.clean && half) w.abort(std::string(detail::reason_bad_frame) + half);
            else if (out.clean) finish_close();
            else w.abort(out.abort_reason);
            queue_close(code == detail::close_no_status ? detail::close_normal : code, "");
        }
        maybe_shut();
    }
    // The connection broke (no close frame): the writer is gone.
    void broken(beast::error_code ec) {
        stopped = true;
        if (draining) return;
        drop_partial();
        w.abort(detail::socket_writer_outcome(false, 0, "", ec.message()).abort_reason);
    }
    void finish_close() {
        const std::error_code e = w.close(0ns);
        if (e == errc::timeout) return wait_room([](socket_to_ring& s) { s.finish_close(); });
    }
    void drop_partial() {
        chunk.abandon();
        frame.abandon();
        meta.reset();
        msg_pending = false;
    }
    // A frame sent wrong: nothing of it reaches the ring; the stream fails.
    void bad_frame(std::uint16_t code, const std::string& why) {
        const std::string reason = std::string(detail::reason_bad_frame) + why;
        fail_with(code, reason, "socket writer sent a " + reason);
    }
    void violation(std::string_view why, std::uint16_t code = detail::close_protocol_error) {
        stopped = true;  // nothing after a violation is read
        if (draining) return maybe_shut();
        fail_with(code, "protocol error: " + std::string(why), "socket writer broke the WebSocket protocol: " + std::string(why));
    }
    // Refused at its header: its payload is not waited for (it may be gigabytes, or never come),
    // the connection fails as for a violation, as Beast fails it.
    void too_big() {
        fail_with(detail::close_too_big, "message too big",
                  "socket writer sent a message above the engine's limit of " + std::to_string(message_max) + " bytes");
        stopped = true;
        maybe_shut();
    }
    void fail(std::error_code e) {
        if (e == std::errc::illegal_byte_sequence)  // a text frame that is not UTF-8: 1007
            return fail_with(detail::close_bad_payload, "text frame is not UTF-8", "socket writer sent a text frame that is not UTF-8");
        // The reader left or died, or the frame can never fit: tell the socket writer. A socket
        // reader whose connection broke left the ring closed, but it was lost.
        if (e == errc::peer_closed && reader_lost->load(std::memory_order_acquire)) e = make_error_code(errc::peer_lost);
        const auto code = e == errc::too_large ? detail::close_too_big : detail::close_internal;
        fail_with(code, std::string(to_string(static_cast<errc>(e.value()))) + ": " + e.message(),
                  std::string("engine could not deliver: ") + e.message());
    }
    void fail_with(std::uint16_t code, const std::string& close_reason, const std::string& abort_reason) {
        drop_partial();
        w.abort(abort_reason);
        close(code, close_reason);
    }
    // The bridge closes first: the writer's frames are dropped until its close comes back.
    void close(std::uint16_t code, const std::string& reason) {
        draining = true;
        to = sink::discard;  // a frame under way is read to its end, and dropped
        queue_close(code, reason);
        maybe_shut();
    }

    // --- writing --------------------------------------------------------------------------------
    void queue_close(std::uint16_t code, std::string_view reason) {
        if (close_len) return;
        close_len = detail::ws_server_close(close_out, code, detail::close_reason_text(reason));
        write_next();
    }
    void write_next() {
        if (writing || shut || write_failed) return;
        asio::const_buffer b;
        if (pong_len && !close_len) {
            pong_out = pong_next;
            b = asio::buffer(pong_out.data(), pong_len);
            pong_len = 0;
        } else if (close_len && !close_written) {
            b = asio::buffer(close_out.data(), close_len);
            close_written = true;
        } else {
            return;
        }
        writing = true;
        asio::async_write(ws.next_layer(), b, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->writing = false;
            if (ec) {
                self->write_failed = true;
                return;
            }
            if (self->close_written) return self->maybe_shut();
            self->write_next();
        });
    }
    // Once both closes went (or the writer broke the protocol): the server ends the connection
    // first (RFC 6455 7.1.1), TLS with its close_notify, TCP with a shutdown, then reading (and
    // dropping) to the end.
    void maybe_shut() {
        if (shut || !close_written || writing || !stopped) return;
        shut = true;
        async_teardown(beast::role_type::server, ws.next_layer(), [self = shared_from_this()](beast::error_code) {});
    }
    template <class F>
    void wait_room(F then) {
        waiting = true;
        room.async_wait(asio::posix::stream_descriptor::wait_read,
                        [self = shared_from_this(), then](beast::error_code ec) {
                            self->waiting = false;
                            if (ec) return;
                            std::uint64_t v;
                            [[maybe_unused]] auto r = ::read(self->room.native_handle(), &v, sizeof v);
                            then(*self);
                            self->step();
                        });
    }
    void wait_room() {
        wait_room([](socket_to_ring&) {});
    }
};

}  // namespace

void start_socket_to_ring(ws_stream&& s, writer&& w, int efd, lost_flag reader_lost, kick_link kick) {
    if (!engine_batching_on()) return start_socket_to_ring_beast(std::move(s), std::move(w), efd, std::move(reader_lost));
    std::make_shared<socket_to_ring>(std::move(s), std::move(w), efd, std::move(reader_lost), std::move(kick))->start();
}

}  // namespace shmchan
