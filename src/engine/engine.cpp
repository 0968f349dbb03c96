// The engine: HTTP upgrade routing, the worker protocol, built-in functions, and the bridges
// between channel sockets and shared-memory rings. All sessions run on one io_context; each
// connection's handlers run on its own strand; engine-wide tables are under one mutex.
#include "shmchan/engine.hpp"

#include <utility>  // before Asio: its C++20 headers use std::exchange without it (Boost 1.74)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <bit>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unistd.h>

#include "../ids.hpp"
#include "protocol.hpp"
#include "router.hpp"
#include "shmchan/admin.hpp"
#include "shmchan/channel.hpp"
#include "shmchan/shm/segment.hpp"
#include "shmchan/error.hpp"

namespace shmchan {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
using detail::close_reason_text;
using detail::reject;

namespace {

constexpr std::size_t sdk_frame = 64u << 10;          // what SDK writers send
constexpr std::size_t outbound_pause = 1u << 20;      // a worker socket's queue: stop reading it above
constexpr std::size_t http_header_limit = 8u << 10;  // request line and headers (431 above)

websocket::close_reason close_with(std::uint16_t code, std::string_view reason) {
    websocket::close_reason r;
    r.code = code;
    r.reason = close_reason_text(reason);
    return r;
}

}  // namespace

struct worker_session;

struct channel_entry {
    channel ch;
    std::array<std::uint8_t, 16> reader_key{}, writer_key{};  // the refs' keys, for constant-time checks
    clock_type::time_point created = clock_type::now();
    bool writer_taken = false;
    bool reader_taken = false;
};

struct engine::impl {
    engine_options opt;
    asio::io_context ioc;
    tcp::acceptor acceptor{ioc};
    asio::steady_timer sweep_timer{ioc};
    std::vector<std::thread> threads;
    detail::reject_log rejects;
    detail::router rt;

    mutable std::mutex mu;  // channels
    std::map<std::string, std::shared_ptr<channel_entry>> channels;

    std::mutex stop_mu;
    std::condition_variable stop_cv;
    bool stopped = false;

    explicit impl(engine_options o)
        : opt(std::move(o)), rt(router_limits_from(opt), router_hooks()) {}

    static detail::router_limits router_limits_from(const engine_options& o) {
        detail::router_limits l;
        l.message.max_bytes = o.max_message_bytes;
        l.pending_per_worker = o.max_pending_per_worker;
        l.pending_total = o.max_pending;
        l.functions_per_worker = o.max_functions_per_worker;
        l.invocation_timeout = o.invocation_timeout;
        return l;
    }
    detail::router::hooks router_hooks();

    void log(const std::string& s) const {
        if (opt.verbose) std::fprintf(stderr, "shmchan engine: %s\n", s.c_str());
    }

    void accept();
    void sweep();
    detail::builtin_result builtin(const std::string& fid, const json& data);
    std::shared_ptr<channel_entry> find_channel(const std::string& id);
};

namespace {
struct asio_timer final : detail::invocation_timer {
    explicit asio_timer(asio::io_context& ioc, std::chrono::milliseconds after) : t(ioc, after) {}
    void cancel() override { t.cancel(); }
    asio::steady_timer t;
};
}  // namespace

detail::router::hooks engine::impl::router_hooks() {
    detail::router::hooks h;
    h.arm = [this](const std::string& id, std::chrono::milliseconds after) -> std::unique_ptr<detail::invocation_timer> {
        auto t = std::make_unique<asio_timer>(ioc, after);
        t->t.async_wait([this, id](beast::error_code ec) {
            if (!ec) rt.expire(id);
        });
        return t;
    };
    h.builtin = [this](const std::string& fid, const json& data) { return builtin(fid, data); };
    h.log = &rejects;
    h.verbose = opt.verbose;
    return h;
}

// --- worker sessions ------------------------------------------------------------------------
// One worker socket. Its outbound queue is bounded: above outbound_pause the session stops
// reading (its own replies pile up: TCP pushes back on it); above opt.max_outbound_bytes (a
// worker that does not read what others send it) it is dropped.
struct worker_session : detail::worker_link, std::enable_shared_from_this<worker_session> {
    websocket::stream<beast::tcp_stream> ws;
    beast::flat_buffer buf;
    std::deque<std::string> outq;  // strand only, as the fields below
    std::size_t out_bytes = 0;
    bool paused = false, dead = false, attached = false;
    engine::impl* eng;
    std::string id = detail::format_uuid(detail::random_uuid().data());
    bool otel;  // the SDK's telemetry socket: accepted, read, discarded

    worker_session(tcp::socket s, engine::impl* e, bool telemetry)
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
            case item::kind::message: {
                writing = true;
                ws.binary(cur.is_chunk());
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

// --- HTTP: the request before the upgrade --------------------------------------------------------
struct http_session : std::enable_shared_from_this<http_session> {
    beast::tcp_stream stream;
    beast::flat_buffer buf;
    std::optional<http::request_parser<http::string_body>> parser;
    http::request<http::string_body> req;
    engine::impl* eng;

    http_session(tcp::socket s, engine::impl* e) : stream(std::move(s)), eng(e) {}

    void start() {
        stream.expires_after(30s);  // a client that does not finish its request in time is dropped
        parser.emplace();
        parser->header_limit(http_header_limit);
        parser->body_limit(64u << 10);  // upgrades and GET /status have no body
        http::async_read(stream, buf, *parser, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (!ec) {
                self->req = self->parser->release();
                return self->route();
            }
            if (ec == http::error::header_limit) {
                self->reject_request(reject::bad_request, "request headers above " + std::to_string(http_header_limit) + " bytes");
                return self->respond(http::status::request_header_fields_too_large, "Request header fields too large");
            }
            if (ec == http::error::body_limit) {
                self->reject_request(reject::bad_request, "request body too large");
                return self->respond(http::status::payload_too_large, "Payload too large");
            }
            if (ec != http::error::end_of_stream && ec != asio::error::eof && ec != beast::error::timeout &&
                ec != asio::error::connection_reset && ec != asio::error::operation_aborted) {
                self->reject_request(reject::bad_request, "malformed HTTP request: " + ec.message());
                return self->respond(http::status::bad_request, "Bad request");
            }
        });
    }
    void reject_request(reject kind, const std::string& why) {
        beast::error_code ec;
        const auto peer = stream.socket().remote_endpoint(ec);
        eng->rejects.note(kind, (ec ? std::string("?") : peer.address().to_string()) + ": " + why);
    }
    void respond(http::status st, std::string body, std::string type = "text/plain") {
        auto res = std::make_shared<http::response<http::string_body>>(st, req.version() ? req.version() : 11);
        res->set(http::field::content_type, type);
        res->keep_alive(false);
        res->body() = std::move(body);
        res->prepare_payload();
        http::async_write(stream, *res, [self = shared_from_this(), res](beast::error_code, std::size_t) {
            beast::error_code ignore;
            self->stream.socket().shutdown(tcp::socket::shutdown_send, ignore);
        });
    }
    void route() {
        const bool upgrade = websocket::is_upgrade(req);
        const detail::route rt = detail::route_target(std::string_view(req.target().data(), req.target().size()), upgrade);
        switch (rt.what) {
            case detail::route::kind::status: {
                json fns = eng->rt.functions();
                std::size_t nch;
                {
                    std::lock_guard lk(eng->mu);
                    nch = eng->channels.size();
                }
                return respond(http::status::ok,
                               detail::dump_json({{"channels", nch}, {"workers", eng->rt.workers()}, {"functions", fns}}),
                               "application/json");
            }
            case detail::route::kind::worker:
            case detail::route::kind::otel:
                stream.expires_never();
                std::make_shared<worker_session>(stream.release_socket(), eng, rt.what == detail::route::kind::otel)
                    ->start(std::move(req));
                return;
            case detail::route::kind::error:
                if (rt.status != 404 || upgrade)
                    reject_request(rt.status == 404 ? reject::channel_refused : reject::bad_request,
                                   std::to_string(rt.status) + " for " +
                                       detail::printable(std::string_view(req.target().data(), req.target().size()), 120) +
                                       ": " + rt.message);
                return respond(static_cast<http::status>(rt.status), rt.message);
            case detail::route::kind::channel:
                return open_channel(rt);
        }
    }
    void open_channel(const detail::route& rt) {
        auto entry = eng->find_channel(rt.channel_id);
        const bool want_read = rt.read;
        // Keys are compared in constant time, and per direction: the other end's key is 403.
        const bool mine = entry && detail::keys_equal(rt.key.data(), want_read ? entry->reader_key.data() : entry->writer_key.data());
        const bool other = entry && !mine &&
                           detail::keys_equal(rt.key.data(), want_read ? entry->writer_key.data() : entry->reader_key.data());
        if (!mine) {
            reject_request(reject::channel_refused, std::string(other ? "403" : "404") + " for the " +
                                                        (want_read ? "read" : "write") + " end of channel " + rt.channel_id +
                                                        (other ? " (the other end's key)" : " (unknown channel or key)"));
            if (other)
                return respond(http::status::forbidden, "This key is for the " + std::string(want_read ? "write" : "read") +
                                                            " end of the channel");
            return respond(http::status::not_found, "Channel not found");
        }
        // Claim the end before the upgrade completes, so that claims go in the order the
        // requests came (a client may open its second socket as soon as the first upgrade).
        auto claimed = std::make_shared<claimed_end>(claim(entry, want_read));
        stream.expires_never();
        auto ws = std::make_shared<websocket::stream<beast::tcp_stream>>(std::move(stream));
        ws->read_message_max(eng->opt.max_message_bytes);
        ws->async_accept(req, [ws, claimed](beast::error_code ec) {
            if (ec) return;  // the client left during the upgrade; dropping the end finishes it
            if (!claimed->refusal.empty()) {
                ws->async_close(close_with(detail::close_refused, claimed->refusal),
                                [ws](beast::error_code) {});
            } else if (claimed->r) {
                std::make_shared<ring_to_socket>(std::move(*ws), std::move(claimed->r), claimed->efd)->start();
            } else {
                std::make_shared<socket_to_ring>(std::move(*ws), std::move(claimed->w), claimed->efd)->start();
            }
        });
    }
    struct claimed_end {
        reader r;
        writer w;
        int efd = -1;
        std::string refusal;  // why the end cannot be had ("already claimed")
    };
    // Takes the channel's end for a socket: claims the ring end (event_fd() claims it; it fails
    // if a process attached through shared memory holds it).
    claimed_end claim(const std::shared_ptr<channel_entry>& entry, bool want_read) {
        claimed_end c;
        try {
            std::unique_lock lk(eng->mu);
            bool& taken = want_read ? entry->reader_taken : entry->writer_taken;
            if (taken) throw error(errc::already_claimed, std::string(detail::reason_already_claimed));
            taken = true;
            if (want_read) {
                c.r = std::move(entry->ch.reader);
                lk.unlock();
                c.efd = c.r.event_fd();
            } else {
                c.w = std::move(entry->ch.writer);
                lk.unlock();
                c.efd = c.w.event_fd();
            }
        } catch (const error& e) {
            c.r = reader();
            c.w = writer();
            c.refusal = e.kind() == errc::already_claimed ? std::string(detail::reason_already_claimed) : e.what();
        }
        return c;
    }
};

// --- the engine's tables -----------------------------------------------------------------------
std::shared_ptr<channel_entry> engine::impl::find_channel(const std::string& id) {
    std::lock_guard lk(mu);
    auto it = channels.find(id);
    return it == channels.end() ? nullptr : it->second;
}

void engine::impl::accept() {
    acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
        if (ec == asio::error::operation_aborted) return;
        if (ec) {
            // Out of file descriptors, say: try again shortly instead of spinning on the error.
            rejects.note(reject::accept_failed, "accept failed: " + ec.message() + "; retrying in 100 ms");
            auto t = std::make_shared<asio::steady_timer>(ioc, 100ms);
            t->async_wait([this, t](beast::error_code e) {
                if (!e) accept();
            });
            return;
        }
        beast::error_code ignore;
        s.set_option(tcp::no_delay(true), ignore);
        std::make_shared<http_session>(std::move(s), this)->start();
        accept();
    });
}

detail::builtin_result engine::impl::builtin(const std::string& fid, const json& data) {
    auto fail = [](std::string_view code, const std::string& message) {
        return detail::builtin_result{false, detail::error_body(code, message)};
    };
    if (fid == "engine::channels::create") {
        std::size_t n = 64;
        if (data.is_object() && data.contains("buffer_size") && !data["buffer_size"].is_null()) {
            const json& b = data["buffer_size"];
            if (!b.is_number_integer() || b.get<long long>() < 1 || b.get<long long>() > 1024)
                return fail("invalid_argument", "buffer_size must be an integer from 1 to 1024");
            n = b.get<std::size_t>();
        }
        {
            std::lock_guard lk(mu);
            if (channels.size() >= opt.max_channels) {
                const std::string why = "the engine already serves " + std::to_string(channels.size()) +
                                        " channels (its limit); finish some first";
                rejects.note(reject::too_many_channels, why);
                return fail("too_many_channels", why);
            }
        }
        // buffer_size counts SDK frames of 64 KiB; a record takes at most half the ring.
        channel_options o;
        o.capacity = std::max<std::size_t>(std::bit_ceil(n * sdk_frame), 4 * sdk_frame);
        try {
            auto entry = std::make_shared<channel_entry>();
            entry->ch = create_channel(o);
            const auto rk = detail::parse_uuid(entry->ch.reader_ref.access_key);
            const auto wk = detail::parse_uuid(entry->ch.writer_ref.access_key);
            std::copy(rk->begin(), rk->end(), entry->reader_key.begin());
            std::copy(wk->begin(), wk->end(), entry->writer_key.begin());
            json out = {{"writer", entry->ch.writer_ref.to_json()}, {"reader", entry->ch.reader_ref.to_json()}};
            std::lock_guard lk(mu);
            channels[entry->ch.reader_ref.channel_id] = entry;
            return {true, std::move(out)};
        } catch (const error& e) {
            return fail(to_string(e.kind()), e.what());
        }
    }
    if (fid == "engine::workers::register") return {true, json::object()};
    rejects.note(reject::function_not_found, "built-in function " + detail::printable(fid) + " not found");
    return fail("function_not_found", "Function " + fid + " not found");
}

// Removes channels that are finished, and those with an end that never came within the TTL.
void engine::impl::sweep() {
    sweep_timer.expires_after(std::min<std::chrono::milliseconds>(1s, opt.channel_ttl / 2 + 1ms));
    sweep_timer.async_wait([this](beast::error_code ec) {
        if (ec) return;
        std::vector<std::shared_ptr<channel_entry>> expired;
        {
            std::lock_guard lk(mu);
            const auto now = clock_type::now();
            for (auto it = channels.begin(); it != channels.end();) {
                bool remove = false;
                try {
                    const channel_info info = inspect(it->second->ch.reader_ref);
                    if (info.finished()) remove = true;
                    else if (now - it->second->created > opt.channel_ttl &&
                             (info.writer.st == end_info::state::unclaimed ||
                              info.reader.st == end_info::state::unclaimed)) {
                        expired.push_back(it->second);
                        remove = true;
                    }
                } catch (const error&) {
                    remove = true;  // gone from /dev/shm: both ends are done
                }
                it = remove ? channels.erase(it) : std::next(it);
            }
        }
        rejects.flush();
        for (auto& e : expired) {
            // A writer that never came: the reader learns the stream is broken, not empty.
            if (!e->writer_taken) e->ch.writer.abort("channel expired: its writer never connected");
            if (!e->reader_taken) (void)e->ch.reader.try_next();  // claim, then drop: the writer sees peer_closed
            log("channel " + e->ch.reader_ref.channel_id + " expired");
        }
        sweep();
    });
}

// --- engine ----------------------------------------------------------------------------------
engine::engine(engine_options options) : impl_(std::make_shared<impl>(std::move(options))) {
    auto& i = *impl_;
    try {
        const tcp::endpoint ep(asio::ip::make_address(i.opt.host), i.opt.port);
        if (!ep.address().is_loopback())
            std::fprintf(stderr,
                         "shmchan engine: warning: listening on %s, not on loopback: anyone who can reach it may "
                         "register and invoke functions and read or write every channel whose id and key they "
                         "learn (no authentication, no TLS; see docs/engine.md)\n",
                         i.opt.host.c_str());
        i.acceptor.open(ep.protocol());
        i.acceptor.set_option(asio::socket_base::reuse_address(true));
        i.acceptor.bind(ep);
        i.acceptor.listen(asio::socket_base::max_listen_connections);
    } catch (const boost::system::system_error& e) {
        throw error(errc::system_error, "engine cannot listen on " + i.opt.host + ":" +
                                            std::to_string(i.opt.port) + ": " + e.code().message());
    }
    // Segments left by crashed processes (an engine before this one, say) go first; only those
    // untouched for 5 minutes, so that starting an engine never races other programs' cleanup.
    if (const auto removed = collect_garbage(false, std::chrono::minutes(5)); !removed.empty())
        std::fprintf(stderr, "shmchan engine: removed %zu orphaned channel segment(s) from %s\n", removed.size(),
                     shm::shm_dir().c_str());
    i.accept();
    i.sweep();
    for (int t = 0; t < std::max(1, i.opt.threads); ++t) i.threads.emplace_back([&i] { i.ioc.run(); });
}

engine::~engine() { stop(); }

void engine::stop() {
    auto& i = *impl_;
    {
        std::lock_guard lk(i.stop_mu);
        if (i.stopped) return;
        i.stopped = true;
    }
    i.ioc.stop();
    for (auto& t : i.threads) t.join();
    i.threads.clear();
    // Ends nobody took will never be taken now: finish them, so the peers learn it and the
    // segments go (a writer that never came is aborted; a reader that never came is closed).
    std::map<std::string, std::shared_ptr<channel_entry>> left;
    {
        std::lock_guard lk(i.mu);
        left.swap(i.channels);
    }
    for (auto& [id, e] : left) {
        if (!e->writer_taken) e->ch.writer.abort("engine stopped");
        if (!e->reader_taken) (void)e->ch.reader.try_next();
    }
    i.stop_cv.notify_all();
}

void engine::wait() {
    std::unique_lock lk(impl_->stop_mu);
    impl_->stop_cv.wait(lk, [this] { return impl_->stopped; });
}

std::uint16_t engine::port() const noexcept { return impl_->acceptor.local_endpoint().port(); }
std::string engine::url() const {
    const std::string& h = impl_->opt.host;
    return "ws://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(port());
}
std::size_t engine::live_channels() const {
    std::lock_guard lk(impl_->mu);
    return impl_->channels.size();
}
std::size_t engine::connected_workers() const { return impl_->rt.workers(); }

}  // namespace shmchan
