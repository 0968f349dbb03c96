// The bridge from a socket writer to its channel's ring as it was before issue 14, with Beast
// reading the socket: each message is gathered and unmasked in Beast's buffer, then copied into
// the ring. Used when SHMCHAN_ENGINE_BATCH=0 (the A/B of the benchmark); the engine otherwise
// reads the frames itself (socket_to_ring.cpp). A frame (wire/frame_meta_json.hpp) crosses as
// one ring record: its bytes are read from the socket straight into a frame loan.
#include "engine_impl.hpp"

#include <optional>

#include "shmchan/shm/layout.hpp"
#include "wire/frame_meta_json.hpp"

namespace shmchan {

namespace {

// --- socket -> ring: a socket writer feeding the channel's ring --------------------------------
struct socket_to_ring : std::enable_shared_from_this<socket_to_ring> {
    ws_stream ws;
    beast::flat_buffer buf;
    writer w;
    asio::posix::stream_descriptor room;  // polls readable when the ring has more room
    std::size_t off = 0;
    // A frame announced by its meta: the loan its bytes are read into.
    std::optional<detail::decoded_frame_meta> meta;
    loan frame;
    std::size_t got = 0;  // its bytes read so far
    std::byte spill{};    // where a byte beyond the announced size lands
    std::size_t message_max = 0;  // the socket's limit outside frames
    lost_flag reader_lost;

    socket_to_ring(ws_stream&& s, writer&& wr, int efd, lost_flag lost)
        : ws(std::move(s)), w(std::move(wr)), room(ws.get_executor(), ::dup(efd)), reader_lost(std::move(lost)) {}

    void start() {
        message_max = ws.read_message_max();
        read();
    }
    void read() {
        ws.async_read(buf, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->on_frame(ec);
        });
    }
    void on_frame(beast::error_code ec) {
        if (ec) return ended(ec);
        const auto data = buf.cdata();
        const std::string_view text(static_cast<const char*>(data.data()), data.size());
        if (ws.got_text() && detail::is_frame_meta(text)) return on_meta(text);
        off = 0;
        pump();
    }
    // The socket ended (close frame or broken connection): the ring's stream ends with it.
    void ended(beast::error_code ec) {
        const auto& r = ws.reason();
        const auto out = detail::socket_writer_outcome(ec == websocket::error::closed, r.code,
                                                       std::string_view(r.reason.c_str()), ec.message());
        if (out.clean && meta) return w.abort(std::string(detail::reason_bad_frame) + "the stream ended after a frame meta");
        if (out.clean) return finish_close();
        return w.abort(out.abort_reason);
    }
    // Moves the current message into the ring, as far as there is room; waits for more.
    void pump() {
        const auto data = buf.cdata();
        const std::error_code e =
            detail::feed_frame(w, ws.got_text(), std::span(static_cast<const std::byte*>(data.data()), data.size()), off);
        if (e == errc::would_block || e == errc::timeout) return wait_room([](socket_to_ring& s) { s.pump(); });
        if (e) return fail(e);
        buf.consume(buf.size());
        read();
    }
    void on_meta(std::string_view text) {
        auto d = detail::decode_frame_meta(text, shm::max_record_payload);
        buf.consume(buf.size());
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
    // A frame loan of the announced size (waiting for room), then its bytes read into it.
    void loan_frame() {
        frame = w.get_frame_loan(meta->size, 0ns);
        const std::error_code e = frame.error();
        if (e == errc::would_block || e == errc::timeout) return wait_room([](socket_to_ring& s) { s.loan_frame(); });
        if (e || !frame) return fail(e ? e : make_error_code(errc::closed));
        got = 0;
        // The bytes go straight into the ring, so the engine's limit on the messages it buffers
        // does not apply; the ring (sized by the channel's creator) bounds them. One byte more
        // than announced is let in to be seen (then the stream fails with 1008, not 1009).
        ws.read_message_max(std::max(meta->size + 1, message_max));
        read_frame_bytes();
    }
    // Reads the message's payload in place (read_some into the loan: a dynamic buffer that
    // overflowed would fail the socket before we could say why); past the announced size, into
    // one spare byte, which is a mismatch.
    void read_frame_bytes() {
        const auto b = got < meta->size ? asio::mutable_buffer(frame.data().data() + got, meta->size - got)
                                        : asio::mutable_buffer(&spill, 1);
        ws.async_read_some(b, [self = shared_from_this()](beast::error_code ec, std::size_t n) {
            self->on_frame_bytes(ec, n);
        });
    }
    void on_frame_bytes(beast::error_code ec, std::size_t n) {
        if (ec) {
            ws.read_message_max(message_max);
            frame.abandon();
            return ended(ec);
        }
        if (ws.got_text()) return bad_frame(detail::close_refused, "a frame meta followed by a text message");
        if (got + n > meta->size) return bad_frame(detail::close_refused, "more bytes than its meta announced");
        got += n;
        if (!ws.is_message_done()) return read_frame_bytes();
        ws.read_message_max(message_max);
        if (got != meta->size)
            return bad_frame(detail::close_refused, "its meta announced " + std::to_string(meta->size) + " bytes, " +
                                                        std::to_string(got) + " came");
        frame_meta m = meta->meta;
        m.user = meta->user;
        (void)frame.commit(m);  // cannot be refused: the decoder took at most max_user bytes of user
        meta.reset();
        read();
    }
    // A frame sent wrong: nothing of it reaches the ring; the stream fails.
    void bad_frame(std::uint16_t code, const std::string& why) {
        frame.abandon();
        const std::string reason = std::string(detail::reason_bad_frame) + why;
        w.abort("socket writer sent a " + reason);
        close(code, reason);
    }
    void close(std::uint16_t code, const std::string& reason) {
        ws.async_close(close_with(code, reason), [self = shared_from_this()](beast::error_code) {});
    }
    void finish_close() {
        const std::error_code e = w.close(0ns);
        if (e == errc::timeout) return wait_room([](socket_to_ring& s) { s.finish_close(); });
    }
    template <class F>
    void wait_room(F then) {
        room.async_wait(asio::posix::stream_descriptor::wait_read,
                        [self = shared_from_this(), then](beast::error_code ec) {
                            if (ec) return;
                            std::uint64_t v;
                            [[maybe_unused]] auto r = ::read(self->room.native_handle(), &v, sizeof v);
                            then(*self);
                        });
    }
    void fail(std::error_code e) {
        if (e == std::errc::illegal_byte_sequence) {  // a text frame that is not UTF-8: 1007
            w.abort("socket writer sent a text frame that is not UTF-8");
            return close(detail::close_bad_payload, "text frame is not UTF-8");
        }
        // The reader left or died, or the frame can never fit: tell the socket writer. A socket
        // reader whose connection broke left the ring closed, but it was lost.
        if (e == errc::peer_closed && reader_lost->load(std::memory_order_acquire)) e = make_error_code(errc::peer_lost);
        const auto code = e == errc::too_large ? detail::close_too_big : detail::close_internal;
        w.abort(std::string("engine could not deliver: ") + e.message());
        close(code, std::string(to_string(static_cast<errc>(e.value()))) + ": " + e.message());
    }
};

}  // namespace

void start_socket_to_ring_beast(ws_stream&& s, writer&& w, int efd, lost_flag reader_lost) {
    std::make_shared<socket_to_ring>(std::move(s), std::move(w), efd, std::move(reader_lost))->start();
}

}  // namespace shmchan
