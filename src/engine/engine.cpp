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

namespace {

// Close code for a stream the writer aborted (the reason follows); 1011 for a lost writer.
constexpr std::uint16_t close_aborted = 4000;
constexpr std::size_t frame_max = 64u << 20;  // largest frame accepted from a socket
constexpr std::size_t sdk_frame = 64u << 10;  // what SDK writers send

bool same_key(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    unsigned diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned>(a[i] ^ b[i]);
    return diff == 0;
}

std::string query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        auto amp = query.find('&');
        auto part = query.substr(0, amp);
        auto eq = part.find('=');
        if (eq != std::string_view::npos && part.substr(0, eq) == name)
            return std::string(part.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return {};
}

std::string close_reason(std::string s) {
    if (s.size() > 123) s.resize(123);  // a close frame's reason holds at most 123 bytes
    return s;
}

json error_json(const std::string& code, const std::string& message) {
    return {{"code", code}, {"message", message}};
}

}  // namespace

struct worker_session;

struct channel_entry {
    channel ch;
    clock_type::time_point created = clock_type::now();
    bool writer_taken = false;
    bool reader_taken = false;
};

struct pending_invocation {
    std::weak_ptr<worker_session> caller;
    json caller_invocation_id;
    std::string function_id;
    std::weak_ptr<worker_session> target;
    std::shared_ptr<asio::steady_timer> timer;
};

struct engine::impl {
    engine_options opt;
    asio::io_context ioc;
    tcp::acceptor acceptor{ioc};
    asio::steady_timer sweep_timer{ioc};
    std::vector<std::thread> threads;

    mutable std::mutex mu;
    std::map<std::string, std::weak_ptr<worker_session>> functions;
    std::map<std::string, pending_invocation> pending;
    std::map<std::string, std::shared_ptr<channel_entry>> channels;
    std::set<worker_session*> workers;
    std::set<std::string> unknown_types;

    std::mutex stop_mu;
    std::condition_variable stop_cv;
    bool stopped = false;

    explicit impl(engine_options o) : opt(std::move(o)) {}

    void log(const std::string& s) const {
        if (opt.verbose) std::fprintf(stderr, "shmchan engine: %s\n", s.c_str());
    }

    void accept();
    void sweep();
    void on_message(const std::shared_ptr<worker_session>& from, const std::string& text);
    void invoke(const std::shared_ptr<worker_session>& caller, json& m);
    void result(const json& m);
    void worker_gone(worker_session* w);
    json builtin(const std::string& fid, const json& data, bool& ok);
    std::shared_ptr<channel_entry> find_channel(const std::string& id);
};

// --- worker sessions ------------------------------------------------------------------------
struct worker_session : std::enable_shared_from_this<worker_session> {
    websocket::stream<beast::tcp_stream> ws;
    beast::flat_buffer buf;
    std::deque<std::string> outq;
    engine::impl* eng;
    std::string id = detail::format_uuid(detail::random_uuid().data());
    std::set<std::string> functions;  // under eng->mu
    bool otel;                        // the SDK's telemetry socket: accepted, read, discarded

    worker_session(tcp::socket s, engine::impl* e, bool telemetry)
        : ws(std::move(s)), eng(e), otel(telemetry) {}

    void start(http::request<http::string_body> req) {
        beast::get_lowest_layer(ws).expires_never();
        websocket::stream_base::timeout t = websocket::stream_base::timeout::suggested(beast::role_type::server);
        t.idle_timeout = 60s;  // pinged after 30 s of silence; no answer in 30 s more: gone
        t.keep_alive_pings = true;
        ws.set_option(t);
        ws.read_message_max(frame_max);
        ws.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
            if (ec) return;
            if (!self->otel) {
                {
                    std::lock_guard lk(self->eng->mu);
                    self->eng->workers.insert(self.get());
                }
                self->eng->log("worker " + self->id + " connected");
                self->send(json{{"type", "workerregistered"}, {"worker_id", self->id}}.dump());
            }
            self->read();
        });
    }
    void read() {
        ws.async_read(buf, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) {
                if (!self->otel) self->eng->worker_gone(self.get());
                return;
            }
            std::string text = beast::buffers_to_string(self->buf.data());
            self->buf.consume(self->buf.size());
            if (!self->otel) self->eng->on_message(self, text);
            self->read();
        });
    }
    void send(std::string msg) {
        asio::post(ws.get_executor(), [self = shared_from_this(), msg = std::move(msg)]() mutable {
            self->outq.push_back(std::move(msg));
            if (self->outq.size() == 1) self->write_next();
        });
    }
    void write_next() {
        ws.text(true);
        ws.async_write(asio::buffer(outq.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;  // the read side notices and cleans up
            self->outq.pop_front();
            if (!self->outq.empty()) self->write_next();
        });
    }
};

// --- socket -> ring: a socket writer feeding the channel's ring --------------------------------
struct socket_to_ring : std::enable_shared_from_this<socket_to_ring> {
    websocket::stream<beast::tcp_stream> ws;
    beast::flat_buffer buf;
    writer w;
    asio::posix::stream_descriptor room;  // polls readable when the ring has more room
    std::size_t off = 0;
    bool closing = false;

    socket_to_ring(websocket::stream<beast::tcp_stream>&& s, writer&& wr, int efd)
        : ws(std::move(s)), w(std::move(wr)), room(ws.get_executor(), ::dup(efd)) {}

    void start() { read(); }
    void read() {
        ws.async_read(buf, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->on_frame(ec);
        });
    }
    void on_frame(beast::error_code ec) {
        if (ec == websocket::error::closed) {
            const auto& r = ws.reason();
            if (r.code == websocket::close_code::normal) {
                closing = true;  // stream_complete / channel_close: a clean end
                return finish_close();
            }
            const std::string why(r.reason.c_str());
            // Another shmchan end aborting over the socket: pass its reason on unchanged.
            if (r.code == close_aborted && why.rfind("aborted: ", 0) == 0) return w.abort(why.substr(9));
            return w.abort("socket writer closed with code " + std::to_string(r.code) +
                           (why.empty() ? "" : ": " + why));
        }
        // The stock Node SDK sends close 1000 and drops the connection at once (terminate()),
        // so the reply to its close fails: the stream still ended cleanly.
        if (ec && ws.reason().code == websocket::close_code::normal) {
            closing = true;
            return finish_close();
        }
        if (ec) return w.abort("socket writer disconnected: " + ec.message());
        off = 0;
        pump();
    }
    // Moves the current frame into the ring, as far as there is room; waits for more.
    void pump() {
        const auto data = buf.cdata();
        const auto* p = static_cast<const std::byte*>(data.data());
        std::error_code e;
        if (ws.got_text()) {
            e = w.send_message(std::string_view(reinterpret_cast<const char*>(p), data.size()), 0ns);
            if (!e) off = data.size();
        } else {
            while (off < data.size() && !e) {
                const std::size_t piece = std::min(data.size() - off, w.max_record());
                e = w.try_write(std::span(p + off, piece));
                if (!e) off += piece;
            }
        }
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
        // The reader left or died, or the frame can never fit: tell the socket writer.
        const auto code = e == errc::too_large ? websocket::close_code::too_big
                                               : websocket::close_code::internal_error;
        w.abort(std::string("engine could not deliver: ") + e.message());
        ws.async_close({code, close_reason(std::string(to_string(static_cast<errc>(e.value()))) +
                                           ": " + e.message())},
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
            case item::kind::message:
                writing = true;
                ws.binary(cur.is_chunk());
                // Zero-copy: the frame's payload is sent straight from the ring.
                ws.async_write(asio::buffer(cur.data().data(), cur.data().size()),
                               [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                   self->writing = false;
                                   self->cur.release();
                                   if (ec) return;
                                   self->pump();
                               });
                return;
            case item::kind::end:
                return close({websocket::close_code::normal, "stream_complete"});
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
                if (e == errc::aborted) {
                    websocket::close_reason why;
                    why.code = close_aborted;
                    why.reason = close_reason("aborted: " + r.abort_reason());
                    return close(why);
                }
                if (e == errc::peer_lost)
                    return close({websocket::close_code::internal_error, "writer lost"});
                return close({websocket::close_code::internal_error,
                              close_reason(std::string(to_string(static_cast<errc>(e.value()))))});
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
    http::request<http::string_body> req;
    engine::impl* eng;

    http_session(tcp::socket s, engine::impl* e) : stream(std::move(s)), eng(e) {}

    void start() {
        stream.expires_after(30s);
        http::async_read(stream, buf, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (!ec) self->route();
        });
    }
    void respond(http::status st, std::string body, std::string type = "text/plain") {
        auto res = std::make_shared<http::response<http::string_body>>(st, req.version());
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
        const std::string target(req.target());
        const auto qpos = target.find('?');
        const std::string path = target.substr(0, qpos);
        const std::string_view query = qpos == std::string::npos ? std::string_view() : std::string_view(target).substr(qpos + 1);
        const bool upgrade = websocket::is_upgrade(req);

        if (path == "/status" && !upgrade) {
            std::lock_guard lk(eng->mu);
            json fns = json::array();
            for (auto& [fid, w] : eng->functions) fns.push_back(fid);
            return respond(http::status::ok,
                           json{{"channels", eng->channels.size()}, {"workers", eng->workers.size()},
                                {"functions", fns}}.dump(),
                           "application/json");
        }
        if (!upgrade) return respond(http::status::not_found, "Not found");
        if (path == "/" || path == "/otel") {
            stream.expires_never();
            std::make_shared<worker_session>(stream.release_socket(), eng, path == "/otel")->start(std::move(req));
            return;
        }
        static constexpr std::string_view prefix = "/ws/channels/";
        if (path.rfind(prefix, 0) != 0) return respond(http::status::not_found, "Not found");
        const std::string id = path.substr(prefix.size());
        const std::string key = query_param(query, "key");
        const std::string dir = query_param(query, "dir");
        if (dir != "read" && dir != "write")
            return respond(http::status::bad_request, "dir must be read or write");
        auto entry = eng->find_channel(id);
        if (!entry) return respond(http::status::not_found, "Channel not found");
        const bool want_read = dir == "read";
        const channel_ref& mine = want_read ? entry->ch.reader_ref : entry->ch.writer_ref;
        const channel_ref& other = want_read ? entry->ch.writer_ref : entry->ch.reader_ref;
        if (!same_key(key, mine.access_key)) {
            if (same_key(key, other.access_key))
                return respond(http::status::forbidden,
                               "This key is for the " + std::string(want_read ? "write" : "read") +
                                   " end of the channel");
            return respond(http::status::not_found, "Channel not found");
        }
        // Claim the end before the upgrade completes, so that claims go in the order the
        // requests came (a client may open its second socket as soon as the first upgrade).
        auto claimed = std::make_shared<claimed_end>(claim(entry, want_read));
        stream.expires_never();
        auto ws = std::make_shared<websocket::stream<beast::tcp_stream>>(std::move(stream));
        ws->read_message_max(frame_max);
        ws->async_accept(req, [ws, claimed](beast::error_code ec) {
            if (ec) return;  // the client left during the upgrade; dropping the end finishes it
            if (!claimed->refusal.empty()) {
                ws->async_close({websocket::close_code::policy_error, close_reason(claimed->refusal)},
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
            if (taken) throw error(errc::already_claimed, "already claimed");
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
            c.refusal = e.kind() == errc::already_claimed ? "already claimed" : e.what();
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
        if (ec) {
            if (ec == asio::error::operation_aborted) return;
        } else {
            s.set_option(tcp::no_delay(true));
            std::make_shared<http_session>(std::move(s), this)->start();
        }
        accept();
    });
}

void engine::impl::on_message(const std::shared_ptr<worker_session>& from, const std::string& text) {
    json m = json::parse(text, nullptr, false);
    if (m.is_discarded() || !m.is_object() || !m.contains("type") || !m["type"].is_string()) {
        log("worker " + from->id + " sent a message that is not a typed JSON object; ignored");
        return;
    }
    const std::string type = m["type"].get<std::string>();
    if (opt.verbose) log("<- " + from->id + " " + text.substr(0, 300));
    if (type == "registerfunction") {
        if (!m.contains("id") || !m["id"].is_string()) return log("registerfunction without an id; ignored");
        const std::string fid = m["id"].get<std::string>();
        std::lock_guard lk(mu);
        functions[fid] = from;
        from->functions.insert(fid);
    } else if (type == "unregisterfunction") {
        if (!m.contains("id") || !m["id"].is_string()) return;
        const std::string fid = m["id"].get<std::string>();
        std::lock_guard lk(mu);
        auto it = functions.find(fid);
        if (it != functions.end() && it->second.lock() == from) functions.erase(it);
        from->functions.erase(fid);
    } else if (type == "invokefunction") {
        invoke(from, m);
    } else if (type == "invocationresult") {
        result(m);
    } else if (type == "ping") {
        from->send(json{{"type", "pong"}}.dump());
    } else if (type != "pong") {
        // Logged once per type (stderr), then ignored: an SDK newer than this engine keeps working.
        std::lock_guard lk(mu);
        if (unknown_types.insert(type).second)
            std::fprintf(stderr, "shmchan engine: message type \"%s\" is not implemented; ignored\n", type.c_str());
    }
}

json engine::impl::builtin(const std::string& fid, const json& data, bool& ok) {
    ok = true;
    if (fid == "engine::channels::create") {
        std::size_t n = 64;
        if (data.is_object() && data.contains("buffer_size") && !data["buffer_size"].is_null()) {
            const json& b = data["buffer_size"];
            if (!b.is_number_integer() || b.get<long long>() < 1 || b.get<long long>() > 1024) {
                ok = false;
                return error_json("invalid_argument", "buffer_size must be an integer from 1 to 1024");
            }
            n = b.get<std::size_t>();
        }
        // buffer_size counts SDK frames of 64 KiB; a record takes at most half the ring.
        channel_options o;
        o.capacity = std::max<std::size_t>(std::bit_ceil(n * sdk_frame), 4 * sdk_frame);
        try {
            auto entry = std::make_shared<channel_entry>();
            entry->ch = create_channel(o);
            json out = {{"writer", entry->ch.writer_ref.to_json()}, {"reader", entry->ch.reader_ref.to_json()}};
            std::lock_guard lk(mu);
            channels[entry->ch.reader_ref.channel_id] = entry;
            return out;
        } catch (const error& e) {
            ok = false;
            return error_json(to_string(e.kind()), e.what());
        }
    }
    if (fid == "engine::workers::register") return json::object();
    ok = false;
    return error_json("function_not_found", "Function " + fid + " not found");
}

void engine::impl::invoke(const std::shared_ptr<worker_session>& caller, json& m) {
    const bool has_id = m.contains("invocation_id") && !m["invocation_id"].is_null();
    const bool fire_and_forget = !has_id || (m.contains("action") && m["action"].is_object() &&
                                             m["action"].value("type", "") == "void");
    const json caller_id = has_id ? m["invocation_id"] : json();
    auto reply = [&](const std::string& fid, json body, bool ok) {
        if (fire_and_forget) return;
        json r = {{"type", "invocationresult"}, {"invocation_id", caller_id}, {"function_id", fid}};
        r[ok ? "result" : "error"] = std::move(body);
        caller->send(r.dump());
    };
    if (!m.contains("function_id") || !m["function_id"].is_string())
        return reply("", error_json("invalid_request", "invokefunction needs a function_id string"), false);
    const std::string fid = m["function_id"].get<std::string>();
    const json data = m.contains("data") ? m["data"] : json();

    if (fid.rfind("engine::", 0) == 0) {
        bool ok;
        json out = builtin(fid, data, ok);
        return reply(fid, std::move(out), ok);
    }
    std::shared_ptr<worker_session> target;
    {
        std::lock_guard lk(mu);
        auto it = functions.find(fid);
        if (it != functions.end()) target = it->second.lock();
    }
    if (!target) return reply(fid, error_json("function_not_found", "Function " + fid + " not found"), false);

    if (fire_and_forget) {
        m.erase("invocation_id");
        target->send(m.dump());
        return;
    }
    const std::string id = detail::format_uuid(detail::random_uuid().data());
    auto timeout = opt.invocation_timeout;
    if (m.contains("timeout_ms") && m["timeout_ms"].is_number_unsigned())
        timeout = std::chrono::milliseconds(m["timeout_ms"].get<std::uint64_t>());
    auto timer = std::make_shared<asio::steady_timer>(ioc, timeout);
    {
        std::lock_guard lk(mu);
        pending[id] = {caller, caller_id, fid, target, timer};
    }
    timer->async_wait([this, id, timeout](beast::error_code ec) {
        if (ec) return;
        pending_invocation p;
        {
            std::lock_guard lk(mu);
            auto it = pending.find(id);
            if (it == pending.end()) return;
            p = std::move(it->second);
            pending.erase(it);
        }
        if (auto c = p.caller.lock())
            c->send(json{{"type", "invocationresult"}, {"invocation_id", p.caller_invocation_id},
                         {"function_id", p.function_id},
                         {"error", error_json("timeout", "Function " + p.function_id + " did not answer within " +
                                                             std::to_string(timeout.count()) + " ms")}}
                        .dump());
    });
    m["invocation_id"] = id;
    target->send(m.dump());
}

void engine::impl::result(const json& m) {
    if (!m.contains("invocation_id") || !m["invocation_id"].is_string()) return;
    pending_invocation p;
    {
        std::lock_guard lk(mu);
        auto it = pending.find(m["invocation_id"].get<std::string>());
        if (it == pending.end()) return;  // timed out already, or not ours
        p = std::move(it->second);
        pending.erase(it);
    }
    p.timer->cancel();
    auto c = p.caller.lock();
    if (!c) return;
    json r = {{"type", "invocationresult"}, {"invocation_id", p.caller_invocation_id}, {"function_id", p.function_id}};
    if (m.contains("error") && !m["error"].is_null()) r["error"] = m["error"];
    else r["result"] = m.contains("result") ? m["result"] : json();
    c->send(r.dump());
}

void engine::impl::worker_gone(worker_session* w) {
    std::vector<pending_invocation> failed;
    {
        std::lock_guard lk(mu);
        if (!workers.erase(w)) return;
        for (const auto& fid : w->functions) {
            auto it = functions.find(fid);
            if (it != functions.end() && it->second.lock().get() == w) functions.erase(it);
        }
        for (auto it = pending.begin(); it != pending.end();) {
            auto target = it->second.target.lock();
            auto caller = it->second.caller.lock();
            if (!target || target.get() == w) {
                failed.push_back(std::move(it->second));
                it = pending.erase(it);
            } else if (!caller || caller.get() == w) {
                it->second.timer->cancel();
                it = pending.erase(it);
            } else {
                ++it;
            }
        }
    }
    log("worker " + w->id + " disconnected");
    for (auto& p : failed) {
        p.timer->cancel();
        if (auto c = p.caller.lock())
            c->send(json{{"type", "invocationresult"}, {"invocation_id", p.caller_invocation_id},
                         {"function_id", p.function_id},
                         {"error", error_json("worker_disconnected",
                                              "The worker serving " + p.function_id + " disconnected")}}
                        .dump());
    }
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
std::string engine::url() const { return "ws://" + impl_->opt.host + ":" + std::to_string(port()); }
std::size_t engine::live_channels() const {
    std::lock_guard lk(impl_->mu);
    return impl_->channels.size();
}
std::size_t engine::connected_workers() const {
    std::lock_guard lk(impl_->mu);
    return impl_->workers.size();
}

}  // namespace shmchan
