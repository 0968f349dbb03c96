// The worker protocol's state and dispatch, without sockets or timers of its own: which worker
// serves which function, which invocations await an answer, and the limits on both. The
// engine feeds it the text frames of its worker sockets; the fuzzer (tests/fuzz) feeds it
// bytes through fake links and timers.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol.hpp"

namespace shmchan::detail {

// A connected worker socket, as the router sees it.
class worker_link {
public:
    virtual ~worker_link() = default;
    virtual void send(std::string text) = 0;  // queues a text frame; never blocks
};

// A running invocation timeout; cancel() is called when the answer came first.
class invocation_timer {
public:
    virtual ~invocation_timer() = default;
    virtual void cancel() = 0;
};

struct router_limits {
    message_limits message;
    std::size_t pending_per_worker = 4096;  // invocations a worker awaits at once
    std::size_t pending_total = 65536;      // invocations awaiting an answer, all workers
    std::size_t functions_per_worker = 1024;
    std::chrono::milliseconds invocation_timeout = std::chrono::seconds(30);  // without timeout_ms
};

struct builtin_result {
    bool ok = true;
    nlohmann::json body;  // the result, or {code, message}
};

class router {
public:
    struct hooks {
        // Starts a timer that calls expire(pending_id) after `after`.
        std::function<std::unique_ptr<invocation_timer>(const std::string& pending_id, std::chrono::milliseconds after)> arm;
        // engine::* functions; answers function_not_found for those it does not know.
        std::function<builtin_result(const std::string& function_id, const nlohmann::json& data)> builtin;
        reject_log* log = nullptr;  // may be null
        bool verbose = false;       // log every message (stderr)
    };

    router(router_limits limits, hooks h);

    void attach(const std::shared_ptr<worker_link>& w, std::string name);  // a worker connected
    void on_message(const std::shared_ptr<worker_link>& from, std::string_view text);
    void detach(worker_link* w);  // a worker left: its functions go, invocations it serves fail
    void expire(const std::string& pending_id);  // an invocation's timer fired

    std::size_t workers() const;
    std::size_t pending() const;
    std::vector<std::string> functions() const;
    const router_limits& limits() const noexcept { return lim_; }

private:
    struct worker_state {
        std::weak_ptr<worker_link> link;
        std::string name;
        std::set<std::string> functions;
        std::size_t awaiting = 0;  // invocations this worker made that await an answer
    };
    struct pending_invocation {
        std::weak_ptr<worker_link> caller;
        worker_link* caller_key = nullptr;
        nlohmann::json caller_id;
        std::string function_id;
        std::weak_ptr<worker_link> target;
        worker_link* target_key = nullptr;
        std::chrono::milliseconds timeout{};
        std::unique_ptr<invocation_timer> timer;
    };

    void invoke(const std::shared_ptr<worker_link>& from, worker_message& m);
    void result(const std::shared_ptr<worker_link>& from, worker_message& m);
    void note(reject kind, const std::string& who, std::string_view detail);
    pending_invocation take(std::map<std::string, pending_invocation>::iterator it);  // under mu_

    const router_limits lim_;
    hooks hooks_;
    mutable std::mutex mu_;
    std::map<worker_link*, worker_state> workers_;
    std::map<std::string, std::weak_ptr<worker_link>> functions_;
    std::map<std::string, pending_invocation> pending_;
    std::set<std::string> unknown_types_;  // logged once each (at most 64 kept)
};

}  // namespace shmchan::detail
