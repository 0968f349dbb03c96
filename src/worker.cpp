// The C++ worker: one WebSocket to the engine, served by an io thread; handlers on threads
// of their own (they may block reading channels).
#include "shmchan/worker.hpp"

#include <condition_variable>
#include <deque>
#include <future>
#include <list>
#include <mutex>
#include <thread>

#include "ends.hpp"
#include "ids.hpp"
#include "ws_client.hpp"

namespace shmchan {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using json = nlohmann::json;

namespace {
// The end at `path`, or an error naming the paths the input does have.
template <class Map>
auto& end_at(Map& ends, const std::string& path, const char* kind, const std::string& fid) {
    auto it = ends.find(path);
    if (it != ends.end()) return it->second;
    std::string have;
    for (auto& [p, e] : ends) have += (have.empty() ? "" : ", ") + p;
    throw error(errc::invalid_argument, "no " + std::string(kind) + " ref at \"" + path + "\" in the input of " +
                                            fid + (have.empty() ? " (it has none)" : " (" + std::string(kind) + "s: " + have + ")"));
}
}  // namespace

reader& invocation::reader(const std::string& path) { return end_at(readers_, path, "reader", function_id_); }
writer& invocation::writer(const std::string& path) { return end_at(writers_, path, "writer", function_id_); }

struct worker_access {
    static invocation make(json input, std::string fid) {
        invocation c;
        c.input_ = std::move(input);
        c.function_id_ = std::move(fid);
        return c;
    }
    static auto& readers(invocation& c) { return c.readers_; }
    static auto& writers(invocation& c) { return c.writers_; }
};

// One connection to the engine. The worker replaces it after a loss (reconnect); handlers
// posted to a link keep it alive until its io_context has run them.
struct worker_link {
    std::unique_ptr<detail::ws_client> conn;
    beast::flat_buffer buf;
    std::deque<std::string> outq;  // io thread only
    std::uint64_t generation = 0;
};

struct worker::impl : std::enable_shared_from_this<impl> {
    std::string url;
    worker_options opt;
    std::thread io;

    std::mutex mu;
    std::condition_variable changed;  // link up/down, stopping
    std::shared_ptr<worker_link> link;  // null while disconnected
    std::uint64_t generations = 0;
    bool stopping = false;
    std::atomic<bool> up{false};
    std::string last_loss;
    std::map<std::string, std::promise<json>> waiting;  // invocation id -> its result message
    std::map<std::string, function_handler> handlers;

    std::mutex threads_mu;
    std::list<std::pair<std::thread, std::shared_ptr<std::atomic<bool>>>> running;

    impl(std::string u, worker_options o) : url(std::move(u)), opt(std::move(o)) {}

    // The first connection: throws engine_unreachable like any setup call.
    void start() {
        adopt(connect());
        io = std::thread([self = shared_from_this()] { self->serve(); });
    }
    std::shared_ptr<worker_link> connect() {
        auto l = std::make_shared<worker_link>();
        l->conn = std::make_unique<detail::ws_client>(url, "/", opt.connect_timeout, opt.tls);
        l->conn->ws().set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
        return l;
    }
    // Makes `l` the current link; after a reconnect, registers every function again (the new
    // engine knows nothing of the old one's registrations).
    void adopt(std::shared_ptr<worker_link> l) {
        std::vector<std::string> ids;
        {
            std::lock_guard lk(mu);
            l->generation = ++generations;
            link = l;
            up = true;
            for (auto& [id, h] : handlers) ids.push_back(id);
        }
        changed.notify_all();
        read(l);
        for (auto& id : ids) send(json{{"type", "registerfunction"}, {"id", id}}.dump());
    }
    // The io thread: runs the current link until it is lost, then reconnects with a backoff
    // (when the options allow) until the worker is destroyed.
    void serve() {
        auto delay = std::chrono::milliseconds(50);
        for (;;) {
            std::shared_ptr<worker_link> l;
            {
                std::lock_guard lk(mu);
                l = link;
            }
            if (l) {
                l->conn->ioc().restart();
                l->conn->ioc().run();  // returns once the read chain has failed and writes are done
                {
                    std::lock_guard lk(mu);
                    if (link == l) link.reset();
                }
                l->conn->ioc().restart();
                l->conn->ioc().poll();  // handlers posted before the reset: let them drop their refs
                delay = std::chrono::milliseconds(50);
            }
            {
                std::unique_lock lk(mu);
                if (stopping || !opt.reconnect) return;
                changed.wait_for(lk, delay, [&] { return stopping; });
                if (stopping) return;
            }
            try {
                adopt(connect());
            } catch (const error&) {
                delay = std::min(delay * 2, opt.reconnect_delay_max);
            }
        }
    }
    void read(const std::shared_ptr<worker_link>& l) {
        l->conn->ws().async_read(l->buf, [self = shared_from_this(), l](beast::error_code ec, std::size_t) {
            if (ec) return self->lost(*l, "connection to the engine at " + self->url + " lost: " + ec.message());
            std::string text = beast::buffers_to_string(l->buf.data());
            l->buf.consume(l->buf.size());
            self->on_message(text, l->generation);
            self->read(l);
        });
    }
    void lost(worker_link& l, const std::string& why) {
        std::map<std::string, std::promise<json>> failed;
        {
            std::lock_guard lk(mu);
            if (link && link->generation == l.generation) up = false;
            last_loss = why;
            failed.swap(waiting);  // the engine that knew these invocations is gone
        }
        changed.notify_all();
        beast::error_code ignore;
        l.conn->ws().next_layer().socket().close(ignore);
        for (auto& [id, p] : failed)
            p.set_value(json{{"error", {{"code", "engine_unreachable"}, {"message", why}}}});
    }
    // Queues a message on the current link; false while disconnected. `generation` (when not
    // 0) restricts it to the link a request came in on: an answer to the old engine's
    // invocation must not reach a new engine.
    bool send(std::string msg, std::uint64_t generation = 0) {
        std::shared_ptr<worker_link> l;
        {
            std::lock_guard lk(mu);
            // `up` goes false when the link's reads fail, before the io thread drops the link:
            // a message posted in between would be lost without a word (trigger_void).
            if (up) l = link;
        }
        if (!l || (generation && l->generation != generation)) return false;
        asio::post(l->conn->ioc(), [self = shared_from_this(), l, msg = std::move(msg)]() mutable {
            l->outq.push_back(std::move(msg));
            if (l->outq.size() == 1) self->write_next(l);
        });
        return true;
    }
    void write_next(const std::shared_ptr<worker_link>& l) {
        l->conn->ws().text(true);
        l->conn->ws().async_write(asio::buffer(l->outq.front()), [self = shared_from_this(), l](beast::error_code ec, std::size_t) {
            if (ec) return;  // the read side reports the loss
            l->outq.pop_front();
            if (!l->outq.empty()) self->write_next(l);
        });
    }
    void on_message(const std::string& text, std::uint64_t generation) {
        json m = json::parse(text, nullptr, false);
        if (m.is_discarded() || !m.is_object()) return;
        const std::string type = m.value("type", "");
        if (type == "invocationresult") {
            if (!m.contains("invocation_id") || !m["invocation_id"].is_string()) return;
            std::lock_guard lk(mu);
            auto it = waiting.find(m["invocation_id"].get<std::string>());
            if (it == waiting.end()) return;  // timed out on our side already
            it->second.set_value(std::move(m));
            waiting.erase(it);
        } else if (type == "invokefunction") {
            spawn_handler(std::move(m), generation);
        }
        // workerregistered, pong and anything else: nothing to do
    }
    void spawn_handler(json m, std::uint64_t generation) {
        std::lock_guard lk(threads_mu);
        for (auto it = running.begin(); it != running.end();) {  // reap finished handler threads
            if (it->second->load()) {
                it->first.join();
                it = running.erase(it);
            } else {
                ++it;
            }
        }
        auto done = std::make_shared<std::atomic<bool>>(false);
        running.emplace_back(std::thread([self = shared_from_this(), m = std::move(m), done, generation] {
            self->run_handler(m, generation);
            done->store(true);
        }), done);
    }
    void run_handler(const json& m, std::uint64_t generation) {
        const std::string fid = m.value("function_id", "");
        const bool wants_result = m.contains("invocation_id") && !m["invocation_id"].is_null();
        json reply = {{"type", "invocationresult"}, {"function_id", fid}};
        if (wants_result) reply["invocation_id"] = m["invocation_id"];
        auto fail = [&](const std::string& code, const std::string& message) {
            reply["error"] = {{"code", code}, {"message", message}};
        };
        function_handler h;
        {
            std::lock_guard lk(mu);
            auto it = handlers.find(fid);
            if (it != handlers.end()) h = it->second;
        }
        if (!h) {
            fail("function_not_found", "Function " + fid + " is not registered on this worker");
        } else {
            try {
                invocation call = worker_access::make(m.contains("data") ? m["data"] : json(), fid);
                channel_options o;
                o.engine = url;
                o.via = opt.via;
                o.tls = opt.tls;
                for (auto& [path, ref] : extract_channel_refs(call.input())) {
                    if (ref.dir == direction::read) worker_access::readers(call).emplace(path, open_reader(ref, o));
                    else worker_access::writers(call).emplace(path, open_writer(ref, o));
                }
                reply["result"] = h(call);
            } catch (const error& e) {
                fail(to_string(e.kind()), e.what());
            } catch (const invocation_error& e) {
                fail(e.code(), e.what());
            } catch (const std::exception& e) {
                fail("handler_error", e.what());
            }
        }
        if (wants_result) send(reply.dump(), generation);
    }
    json call(const std::string& fid, const json& payload, std::chrono::milliseconds timeout) {
        const std::string id = detail::format_uuid(detail::random_uuid().data());
        std::future<json> f;
        {
            std::lock_guard lk(mu);
            if (!up) throw error(errc::engine_unreachable, not_connected());
            f = waiting[id].get_future();
        }
        if (!send(json{{"type", "invokefunction"}, {"invocation_id", id}, {"function_id", fid}, {"data", payload},
                       {"timeout_ms", timeout.count()}}
                      .dump())) {
            std::lock_guard lk(mu);
            waiting.erase(id);
            throw error(errc::engine_unreachable, not_connected());
        }
        if (f.wait_for(timeout) != std::future_status::ready) {
            std::lock_guard lk(mu);
            waiting.erase(id);
            throw invocation_error("timeout", "Function " + fid + " did not answer within " +
                                                  std::to_string(timeout.count()) + " ms");
        }
        json r = f.get();
        if (r.contains("error") && !r["error"].is_null()) {
            const json& e = r["error"];
            const std::string code = e.is_object() ? e.value("code", "error") : "error";
            const std::string msg = e.is_object() ? e.value("message", e.dump()) : e.dump();
            if (code == "engine_unreachable") throw error(errc::engine_unreachable, msg);
            throw invocation_error(code, msg);
        }
        return r.contains("result") ? r["result"] : json();
    }
    std::string not_connected() const {  // mu held
        return "not connected to the engine at " + url + (last_loss.empty() ? "" : " (" + last_loss + ")") +
               (opt.reconnect ? "; reconnecting" : "");
    }
    bool wait_connected(std::chrono::milliseconds timeout) {
        std::unique_lock lk(mu);
        return changed.wait_for(lk, timeout, [&] { return up.load() || stopping; }) && up;
    }
    void shutdown() {
        std::shared_ptr<worker_link> l;
        {
            std::lock_guard lk(mu);
            stopping = true;
            up = false;
            l = link;
        }
        changed.notify_all();
        if (l) {
            asio::post(l->conn->ioc(), [l] {
                beast::error_code ignore;
                l->conn->ws().next_layer().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignore);
                l->conn->ws().next_layer().socket().close(ignore);
            });
        }
        if (io.joinable()) io.join();
        std::list<std::pair<std::thread, std::shared_ptr<std::atomic<bool>>>> all;
        {
            std::lock_guard lk(threads_mu);
            all.swap(running);
        }
        for (auto& [t, d] : all) t.join();
    }
};

worker::worker(const std::string& engine_url, worker_options options)
    : impl_(std::make_shared<impl>(engine_url, std::move(options))) {
    impl_->start();
}

worker::~worker() { impl_->shutdown(); }

void worker::register_function(const std::string& id, function_handler handler) {
    {
        std::lock_guard lk(impl_->mu);
        impl_->handlers[id] = std::move(handler);
    }
    impl_->send(json{{"type", "registerfunction"}, {"id", id}}.dump());  // or at the next reconnect
}

void worker::unregister_function(const std::string& id) {
    {
        std::lock_guard lk(impl_->mu);
        impl_->handlers.erase(id);
    }
    impl_->send(json{{"type", "unregisterfunction"}, {"id", id}}.dump());
}

json worker::trigger(const trigger_request& r) { return impl_->call(r.function_id, r.payload, r.timeout); }

void worker::trigger_void(const std::string& function_id, const json& payload) {
    if (!impl_->send(json{{"type", "invokefunction"}, {"function_id", function_id}, {"data", payload},
                          {"action", {{"type", "void"}}}}
                         .dump())) {
        std::lock_guard lk(impl_->mu);
        throw error(errc::engine_unreachable, impl_->not_connected());
    }
}

channel worker::create_channel(std::size_t buffer_size) {
    json r = impl_->call("engine::channels::create", json{{"buffer_size", buffer_size}}, std::chrono::seconds(10));
    channel ch;
    try {
        ch.writer_ref = channel_ref::from_json(r.at("writer"));
        ch.reader_ref = channel_ref::from_json(r.at("reader"));
    } catch (const json::exception& e) {
        throw error(errc::protocol_error, std::string("engine::channels::create answered without refs: ") + e.what());
    }
    channel_options o;
    o.engine = impl_->url;
    o.via = impl_->opt.via;
    o.tls = impl_->opt.tls;
    ch.writer = detail::deferred_writer(ch.writer_ref, o);
    ch.reader = detail::deferred_reader(ch.reader_ref, o);
    return ch;
}

const std::string& worker::address() const noexcept { return impl_->url; }
bool worker::connected() const noexcept { return impl_->up; }
bool worker::wait_connected(std::chrono::milliseconds timeout) { return impl_->wait_connected(timeout); }

}  // namespace shmchan
