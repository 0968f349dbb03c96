// The HTTP request before the upgrade: /status, worker sockets, and channel sockets (keys
// checked, the end claimed in request order). With TLS, the handshake comes first; a client
// speaking plain HTTP to a TLS engine gets a plain 400 that says so.
#include "engine_impl.hpp"
#include "ends.hpp"
#include "tls.hpp"

namespace shmchan {

namespace {

// --- HTTP: the request before the upgrade --------------------------------------------------------
struct http_session : std::enable_shared_from_this<http_session> {
    net_stream stream;
    beast::flat_buffer buf;
    std::optional<http::request_parser<http::string_body>> parser;
    http::request<http::string_body> req;
    engine::impl* eng;
    bool plain_on_tls = false;  // a client without TLS on a TLS listener: answered 400

    http_session(tcp::socket s, engine::impl* e) : stream(std::move(s)), eng(e) {}

    void start() {
        stream.expires_after(30s);  // a client that does not finish its request in time is dropped
        if (!eng->tls) return read_request();
        beast::async_detect_ssl(stream.tcp(), buf, [self = shared_from_this()](beast::error_code ec, bool tls) {
            if (ec) return;
            if (!tls) {  // read the request first: closing on unread bytes would reset the answer away
                self->plain_on_tls = true;
                return self->read_request();
            }
            self->stream.start_tls(self->eng->tls);
            self->stream.tls()->async_handshake(
                asio::ssl::stream_base::server, self->buf.data(),
                [self](beast::error_code e, std::size_t used) {
                    if (e) return self->reject_request(reject::bad_request, "TLS handshake failed: " + e.message());
                    self->buf.consume(used);
                    self->read_request();
                });
        });
    }
    void read_request() {
        parser.emplace();
        parser->header_limit(http_header_limit);
        parser->body_limit(64u << 10);  // upgrades and GET /status have no body
        http::async_read(stream, buf, *parser, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (!ec && self->plain_on_tls) {
                self->reject_request(reject::bad_request, "plain HTTP to a TLS listener");
                return self->respond(http::status::bad_request, std::string(detail::tls_only_body));
            }
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
                start_worker_session(std::move(stream), eng, rt.what == detail::route::kind::otel, std::move(req));
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
        auto ws = std::make_shared<ws_stream>(std::move(stream));
        ws->read_message_max(eng->opt.max_message_bytes);
        if (claimed->refusal.empty() && !claimed->r) {
            // A socket writer learns the largest frame it may send (socket_writer::max_frame).
            const std::string mf = std::to_string(claimed->w.max_frame());
            ws->set_option(websocket::stream_base::decorator(
                [mf](websocket::response_type& res) { res.set(detail::max_frame_header, mf); }));
        }
        ws->async_accept(req, [ws, claimed, lost = entry->reader_lost, kick = entry->kick](beast::error_code ec) {
            if (ec) {
                // The client's connection broke during the upgrade: a reader's end was lost (its
                // writer says peer_lost, as for a reader whose connection breaks later on).
                if (claimed->r) {
                    lost->store(true, std::memory_order_release);
                    detail::end_access::finish_lost(claimed->r);
                }
                return;  // dropping the end finishes it
            }
            if (!claimed->refusal.empty()) {
                ws->async_close(close_with(detail::close_refused, claimed->refusal),
                                [ws](beast::error_code) {});
            } else if (claimed->r) {
                start_ring_to_socket(std::move(*ws), std::move(claimed->r), claimed->efd, lost, kick);
            } else {
                start_socket_to_ring(std::move(*ws), std::move(claimed->w), claimed->efd, lost, kick);
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

}  // namespace

void start_http_session(tcp::socket s, engine::impl* e) { std::make_shared<http_session>(std::move(s), e)->start(); }

}  // namespace shmchan
