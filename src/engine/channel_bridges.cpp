// The bridges between channel sockets and rings, one per socket end, driven by the ring end's
// event fd on the socket's strand.
#include "engine_impl.hpp"

namespace shmchan {

namespace {

// --- socket -> ring: a socket writer feeding the channel's ring --------------------------------
struct socket_to_ring : std::enable_shared_from_this<socket_to_ring> {
    websocket::stream<beast::tcp_stream> ws;
    beast::flat_buffer buf;
    writer w;
    asio::posix::stream_descriptor room;  // polls readable when the ring has more room
    std::size_t off = 0;

    socket_to_ring(websocket::stream<beast::tcp_stream>&& s, writer&& wr, int efd)
        : ws(std::move(s)), w(std::move(wr)), room(ws.get_executor(), ::dup(efd)) {}

    void start() { read(); }
    void read() {
        ws.async_read(buf, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->on_frame(ec);
        });
    }
    void on_frame(beast::error_code ec) {
        if (ec) {
            const auto& r = ws.reason();
            const auto out = detail::socket_writer_outcome(ec == websocket::error::closed, r.code,
                                                           std::string_view(r.reason.c_str()), ec.message());
            if (out.clean) return finish_close();
            return w.abort(out.abort_reason);
        }
        off = 0;
        pump();
    }
    // Moves the current frame into the ring, as far as there is room; waits for more.
    void pump() {
        const auto data = buf.cdata();
        const std::error_code e =
            detail::feed_frame(w, ws.got_text(), std::span(static_cast<const std::byte*>(data.data()), data.size()), off);
        if (e == errc::would_block || e == errc::timeout) return wait_room([](socket_to_ring& s) { s.pump(); });
        if (e) return fail(e);
        buf.consume(buf.size());
        read();
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
            ws.async_close(close_with(detail::close_bad_payload, "text frame is not UTF-8"),
                           [self = shared_from_this()](beast::error_code) {});
            return;
        }
        // The reader left or died, or the frame can never fit: tell the socket writer.
        const auto code = e == errc::too_large ? detail::close_too_big : detail::close_internal;
        w.abort(std::string("engine could not deliver: ") + e.message());
        ws.async_close(close_with(code, std::string(to_string(static_cast<errc>(e.value()))) + ": " + e.message()),
                       [self = shared_from_this()](beast::error_code) {});
    }
};

// --- ring -> socket: the channel's ring feeding a socket reader --------------------------------
struct ring_to_socket : std::enable_shared_from_this<ring_to_socket> {
    websocket::stream<beast::tcp_stream> ws;
    beast::flat_buffer inbox;  // anything the socket reader sends is read and dropped
    reader r;
    asio::posix::stream_descriptor data;  // polls readable when the ring may have something
    item cur;
    std::string repaired;  // a text record that was not UTF-8, made valid for the text frame
    bool writing = false, closing = false, gone = false;

    ring_to_socket(websocket::stream<beast::tcp_stream>&& s, reader&& rd, int efd)
        : ws(std::move(s)), r(std::move(rd)), data(ws.get_executor(), ::dup(efd)) {}

    void start() {
        ws.auto_fragment(false);  // one record, one frame
        read_client();
        pump();
    }
    void read_client() {
        ws.async_read(inbox, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) {
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
        cur = r.try_next();
        switch (cur.type()) {
            case item::kind::chunk:
            case item::kind::frame:  // its bytes (the meta does not cross the socket yet)
            case item::kind::message: {
                writing = true;
                ws.binary(!cur.is_message());
                // Zero-copy: the frame's payload is sent straight from the ring. A text frame
                // must be UTF-8 (or the peer fails the connection): a shared-memory writer's
                // message that is not goes out repaired, as a decoding reader would see it.
                asio::const_buffer payload(cur.data().data(), cur.data().size());
                if (cur.is_message() && !detail::valid_utf8(cur.text())) {
                    repaired = detail::to_valid_utf8(cur.text());
                    payload = asio::buffer(repaired);
                }
                ws.async_write(payload, [self = shared_from_this()](beast::error_code ec, std::size_t) {
                    self->writing = false;
                    self->cur.release();
                    self->repaired.clear();
                    if (ec) return;
                    self->pump();
                });
                return;
            }
            case item::kind::end:
                return close(close_with(detail::close_normal, "stream_complete"));
            case item::kind::error: {
                const std::error_code e = cur.error();
                if (e == errc::would_block) {
                    data.async_wait(asio::posix::stream_descriptor::wait_read,
                                    [self = shared_from_this()](beast::error_code ec) {
                                        if (ec) return;
                                        std::uint64_t v;
                                        [[maybe_unused]] auto n = ::read(self->data.native_handle(), &v, sizeof v);
                                        self->pump();
                                    });
                    return;
                }
                if (e == errc::aborted) return close(close_with(detail::close_aborted, detail::aborted_close_reason(r.abort_reason())));
                if (e == errc::peer_lost) return close(close_with(detail::close_internal, detail::reason_writer_lost));
                return close(close_with(detail::close_internal, to_string(static_cast<errc>(e.value()))));
            }
        }
    }
    void close(websocket::close_reason why) {
        closing = true;
        ws.async_close(why, [self = shared_from_this()](beast::error_code) {});
    }
};

}  // namespace

void start_socket_to_ring(ws_stream&& s, writer&& w, int efd) {
    std::make_shared<socket_to_ring>(std::move(s), std::move(w), efd)->start();
}
void start_ring_to_socket(ws_stream&& s, reader&& r, int efd) {
    std::make_shared<ring_to_socket>(std::move(s), std::move(r), efd)->start();
}

}  // namespace shmchan
