// The engine's private parts, shared by its files: engine::impl (tables, router, options), a
// channel's entry, and the sessions' entry points. See engine.cpp for the overall shape.
#pragma once

#include "shmchan/engine.hpp"

#include <utility>  // before Asio: its C++20 headers use std::exchange without it (Boost 1.74)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <bit>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unistd.h>

#include "engine/tls_context.hpp"
#include "ids.hpp"
#include "net_stream.hpp"
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

namespace engine_detail {

constexpr std::size_t sdk_frame = 64u << 10;          // what SDK writers send
// The most records a channel's ring end lends a socket reader's bridge at once (they leave in
// one gather write: ring_to_socket.cpp): the engine's ring reader holds this many.
constexpr std::size_t bridge_batch_max = 64;
constexpr std::size_t outbound_pause = 1u << 20;      // a worker socket's queue: stop reading it above
constexpr std::size_t http_header_limit = 8u << 10;  // request line and headers (431 above)

inline websocket::close_reason close_with(std::uint16_t code, std::string_view reason) {
    websocket::close_reason r;
    r.code = code;
    r.reason = close_reason_text(reason);
    return r;
}

}  // namespace engine_detail
using namespace engine_detail;

// The reader bridge's doorbell, for a channel whose two ends are both socket bridges of this
// engine: the writer's bridge rings it once it committed records, and once more when it is
// gone (its end final), and the reader's bridge looks at its ring at once, on its own thread.
// Without it the reader's bridge learns of records from its event fd, through the event
// watcher's thread: the bridge arms the fd when it runs dry (a futex wake of the watcher), the
// writer's commit wakes the watcher again, which writes the eventfd: two wake-ups of a third
// thread per message. Once the bridge sees `writer_rings` it stops arming for data
// (end_access::data_events_off); the fd still tells it the writer's fate.
// SHMCHAN_ENGINE_KICK=0 turns this off, for A/B runs of the benchmark.
class reader_kick {
public:
    // `f` runs under the lock: it must neither set() nor ring() again.
    void set(std::function<void()> f) {
        std::lock_guard l(mu_);
        ring_ = std::move(f);
    }
    void ring() {
        std::lock_guard l(mu_);
        if (ring_) ring_();
    }
    // Set by the writer's bridge before its first commit: every commit from then on rings.
    std::atomic<bool> writer_rings{false};

private:
    std::mutex mu_;
    std::function<void()> ring_;  // set once the reader's bridge starts
};
bool engine_kick_on();  // false when SHMCHAN_ENGINE_KICK=0 (ring_to_socket.cpp)

struct channel_entry {
    channel ch;
    std::array<std::uint8_t, 16> reader_key{}, writer_key{};  // the refs' keys, for constant-time checks
    clock_type::time_point created = clock_type::now();
    bool writer_taken = false;
    bool reader_taken = false;
    // Set by a socket reader's bridge when its connection broke without a close: the ring's
    // writer then says peer_lost to a socket writer, where the ring itself only says peer_closed.
    std::shared_ptr<std::atomic<bool>> reader_lost = std::make_shared<std::atomic<bool>>(false);
    std::shared_ptr<reader_kick> kick = std::make_shared<reader_kick>();
};

struct engine::impl {
    engine_options opt;
    // Thread 0 runs `ioc` (the acceptor, the timers, a share of the connections); each further
    // thread runs one of `more`. A connection stays on the context it was accepted onto: its
    // handlers never hop between threads (with one shared context, a socket's completions
    // bounced between the threads, a futex wake and a context switch each; measured in
    // docs/benchmarks.md). `more` is declared first so that it goes last: the accept pending on
    // `ioc` holds a socket of one of them, destroyed with `ioc`.
    std::vector<std::unique_ptr<asio::io_context>> more;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;  // `more` idle
    asio::io_context ioc;
    std::size_t next_context = 0;  // the acceptor's handler only
    tcp::acceptor acceptor{ioc};
    asio::steady_timer sweep_timer{ioc};
    std::vector<std::thread> threads;
    detail::reject_log rejects;
    detail::router rt;
    std::shared_ptr<asio::ssl::context> tls;  // null: plain ws://

    mutable std::mutex mu;  // channels
    std::map<std::string, std::shared_ptr<channel_entry>> channels;

    std::mutex stop_mu;
    std::condition_variable stop_cv;
    bool stopped = false;

    explicit impl(engine_options o)
        : opt(std::move(o)), rt(router_limits_from(opt), router_hooks()), tls(detail::server_tls_context(opt)) {}

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

// The sessions, each in its own file; each keeps itself alive while its socket is open.
// Every socket is a net_stream: plain TCP, or TLS once http_session has seen a handshake.
using detail::net_stream;
using ws_stream = websocket::stream<net_stream>;
void start_http_session(tcp::socket s, engine::impl* e);                                     // http_session.cpp
void start_worker_session(net_stream&& s, engine::impl* e, bool telemetry,
                          http::request<http::string_body> req);                             // worker_session.cpp
using lost_flag = std::shared_ptr<std::atomic<bool>>;  // channel_entry::reader_lost
using kick_link = std::shared_ptr<reader_kick>;       // channel_entry::kick
void start_socket_to_ring(ws_stream&& s, writer&& w, int efd, lost_flag reader_lost, kick_link kick);  // socket_to_ring.cpp
void start_socket_to_ring_beast(ws_stream&& s, writer&& w, int efd, lost_flag reader_lost);  // socket_to_ring_beast.cpp
void start_ring_to_socket(ws_stream&& s, reader&& r, int efd, lost_flag reader_lost, kick_link kick);  // ring_to_socket.cpp
// False when SHMCHAN_ENGINE_BATCH=0: the channel bridges work as before issue 14 (Beast reads and
// writes the sockets, one record per write), for A/B runs of the benchmark.
bool engine_batching_on();                                                                    // ring_to_socket.cpp

}  // namespace shmchan
