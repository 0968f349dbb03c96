// The engine: HTTP upgrade routing, the worker protocol, built-in functions, and the bridges
// between channel sockets and shared-memory rings. Each thread runs an io_context of its own and
// connections are spread over them, each on its own strand; engine-wide tables are under one
// mutex.
#include "engine_impl.hpp"

namespace shmchan {

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

// --- the engine's tables -----------------------------------------------------------------------
std::shared_ptr<channel_entry> engine::impl::find_channel(const std::string& id) {
    std::lock_guard lk(mu);
    auto it = channels.find(id);
    return it == channels.end() ? nullptr : it->second;
}

void engine::impl::accept() {
    asio::io_context& on = next_context == 0 ? ioc : *more[next_context - 1];
    next_context = (next_context + 1) % (more.size() + 1);
    acceptor.async_accept(asio::make_strand(on), [this](beast::error_code ec, tcp::socket s) {
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
        start_http_session(std::move(s), this);
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
        o.max_held = bridge_batch_max;  // a socket reader's records leave in batches
        // Its end is claimed on the event loop: mapping a 64 MiB ring at once there held every
        // other connection ~16 ms; its pages fault in as the bridge first writes or reads them.
        o.prefault = false;
        // Its bridge ends commit and release once per message or batch, while the shared-memory
        // peer sleeps between them: each wake costs the engine a locked instruction and spares
        // the peer a membarrier per sleep.
        o.rmw_wakes = true;
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
        // Without TLS, a remote peer's traffic and the access keys in its URLs cross the network
        // readable by anyone on the path.
        if (!ep.address().is_loopback() && !i.tls)
            std::fprintf(stderr,
                         "shmchan engine: warning: listening on %s without TLS: traffic and access keys travel in "
                         "clear, and anyone who can reach it may register and invoke functions (--tls-cert/--tls-key "
                         "for wss://; see docs/engine.md, \"Threat model\")\n",
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
    for (int t = 1; t < i.opt.threads; ++t) {
        i.more.push_back(std::make_unique<asio::io_context>(1));
        i.keep_running.push_back(asio::make_work_guard(*i.more.back()));
    }
    i.accept();
    i.sweep();
    i.threads.emplace_back([&i] { i.ioc.run(); });
    for (auto& c : i.more) i.threads.emplace_back([&c = *c] { c.run(); });
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
    for (auto& c : i.more) c->stop();
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
    return std::string(impl_->tls ? "wss://" : "ws://") + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(port());
}
std::size_t engine::live_channels() const {
    std::lock_guard lk(impl_->mu);
    return impl_->channels.size();
}
std::size_t engine::connected_workers() const { return impl_->rt.workers(); }

}  // namespace shmchan
