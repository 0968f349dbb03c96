// One worker socket: the iii worker protocol, with a bounded outbound queue.
#include "engine_impl.hpp"

namespace shmchan {

namespace {

// --- worker sessions ------------------------------------------------------------------------
// One worker socket. Its outbound queue is bounded: above outbound_pause the session stops
// reading (its own replies pile up: TCP pushes back on it); above opt.max_outbound_bytes (a
// worker that does not read what others send it) it is dropped.
struct worker_session : detail::worker_link, std::enable_shared_from_this<worker_session> {
    ws_stream ws;
    beast::flat_buffer buf;
    std::deque<std::string> outq;  // strand only, as the fields below
    std::size_t out_bytes = 0;
    bool paused = false, dead = false, attached = false;
    engine::impl* eng;
    std::string id = detail::format_uuid(detail::random_uuid().data());
    bool otel;  // the SDK's telemetry socket: accepted, read, discarded

    worker_session(net_stream&& s, engine::impl* e, bool telemetry)
        : ws(std::move(s)), eng(e), otel(telemetry) {}

    void start(http::request<http::string_body> req) {
        beast::get_lowest_layer(ws).expires_never();
        websocket::stream_base::timeout t = websocket::stream_base::timeout::suggested(beast::role_type::server);
        t.idle_timeout = 60s;  // pinged after 30 s of silence; no answer in 30 s more: gone
        t.keep_alive_pings = true;
        ws.set_option(t);
        // Above the limit Beast fails the read and closes with 1009 (message too big).
        ws.read_message_max(eng->opt.max_message_bytes);
        ws.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
            if (ec) return;
            if (!self->otel) {
                self->eng->rt.attach(self, self->id);
                self->attached = true;
                self->eng->log("worker " + self->id + " connected");
                self->send(json{{"type", "workerregistered"}, {"worker_id", self->id}}.dump());
            }
            self->read();
        });
    }
    void read() {
        ws.async_read(buf, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) {
                if (ec == websocket::error::message_too_big)
                    self->eng->rejects.note(reject::message_too_big,
                                            "worker " + self->id + ": a message above " +
                                                std::to_string(self->eng->opt.max_message_bytes) +
                                                " bytes; connection closed with 1009");
                return self->gone();
            }
            if (!self->otel) {
                const auto d = self->buf.cdata();
                self->eng->rt.on_message(self, std::string_view(static_cast<const char*>(d.data()), d.size()));
            }
            self->buf.consume(self->buf.size());
            // Replies to this message were posted to this strand: decide after them.
            asio::post(self->ws.get_executor(), [self] { self->read_or_pause(); });
        });
    }
    void read_or_pause() {
        if (dead) return;
        if (out_bytes > outbound_pause) paused = true;
        else read();
    }
    void send(std::string msg) override {
        asio::post(ws.get_executor(), [self = shared_from_this(), msg = std::move(msg)]() mutable {
            if (self->dead) return;
            if (self->out_bytes + msg.size() > self->eng->opt.max_outbound_bytes) {
                self->eng->rejects.note(reject::slow_reader,
                                        "worker " + self->id + " does not read: more than " +
                                            std::to_string(self->eng->opt.max_outbound_bytes) +
                                            " bytes queued for it; disconnected");
                return self->gone();
            }
            self->out_bytes += msg.size();
            self->outq.push_back(std::move(msg));
            if (self->outq.size() == 1) self->write_next();
        });
    }
    void write_next() {
        ws.text(true);
        ws.async_write(asio::buffer(outq.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->gone();
            self->out_bytes -= self->outq.front().size();
            self->outq.pop_front();
            if (!self->outq.empty()) self->write_next();
            if (self->paused && !self->dead && self->out_bytes <= outbound_pause / 2) {
                self->paused = false;
                self->read();
            }
        });
    }
    // The connection is over (read or write failed, or it is dropped): once.
    void gone() {
        if (dead) return;
        dead = true;
        if (attached) {
            eng->rt.detach(this);
            eng->log("worker " + id + " disconnected");
        }
        while (outq.size() > 1) outq.pop_back();  // the front may be in flight
        beast::error_code ignore;
        beast::get_lowest_layer(ws).socket().shutdown(tcp::socket::shutdown_both, ignore);
        beast::get_lowest_layer(ws).socket().close(ignore);
    }
};

}  // namespace

void start_worker_session(net_stream&& s, engine::impl* e, bool telemetry, http::request<http::string_body> req) {
    std::make_shared<worker_session>(std::move(s), e, telemetry)->start(std::move(req));
}

}  // namespace shmchan
