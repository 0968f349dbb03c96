#include "router.hpp"

#include <cstdio>

#include "../ids.hpp"

namespace shmchan::detail {

using json = nlohmann::json;

router::router(router_limits limits, hooks h) : lim_(std::move(limits)), hooks_(std::move(h)) {}

void router::attach(const std::shared_ptr<worker_link>& w, std::string name) {
    std::lock_guard lk(mu_);
    auto& st = workers_[w.get()];
    st.link = w;
    st.name = std::move(name);
}

void router::note(reject kind, const std::string& who, std::string_view detail) {
    if (hooks_.log) hooks_.log->note(kind, "worker " + who + ": " + printable(detail));
}

router::pending_invocation router::take(std::map<std::string, pending_invocation>::iterator it) {
    pending_invocation p = std::move(it->second);
    pending_.erase(it);
    if (auto c = workers_.find(p.caller_key); c != workers_.end() && c->second.awaiting > 0) --c->second.awaiting;
    return p;
}

void router::on_message(const std::shared_ptr<worker_link>& from, std::string_view text) {
    std::string name;
    {
        std::lock_guard lk(mu_);
        auto it = workers_.find(from.get());
        if (it == workers_.end()) return;  // detached already
        name = it->second.name;
    }
    if (hooks_.verbose) std::fprintf(stderr, "shmchan engine: <- %s %s\n", name.c_str(), printable(text, 300).c_str());
    parsed_message p = parse_worker_message(text, lim_.message);
    if (!p) {
        const message_error& e = p.error;
        note(e.kind, name, e.message);
        // An invocation is answered with its error; anything else gets iii's error message
        // (which SDKs ignore, but a person reading the socket sees).
        if (!e.answer_to.is_null())
            from->send(invocation_error(e.answer_to, e.function_id, to_string(e.kind), e.message));
        else
            from->send(error_message(to_string(e.kind), e.message));
        return;
    }
    worker_message& m = *p.msg;
    switch (m.type) {
        case message_type::register_function: {
            bool over = false;
            {
                std::lock_guard lk(mu_);
                auto it = workers_.find(from.get());
                if (it == workers_.end()) return;
                auto& fns = it->second.functions;
                if (!fns.count(m.id) && fns.size() >= lim_.functions_per_worker) {
                    over = true;
                } else {
                    functions_[m.id] = from;  // a later registration takes the id over, as in iii
                    fns.insert(m.id);
                }
            }
            if (over) {
                const std::string why = "a worker may register at most " + std::to_string(lim_.functions_per_worker) +
                                        " functions; " + m.id + " was not registered";
                note(reject::too_many_functions, name, why);
                from->send(error_message(to_string(reject::too_many_functions), why));
            }
            return;
        }
        case message_type::unregister_function: {
            std::lock_guard lk(mu_);
            auto it = functions_.find(m.id);
            if (it != functions_.end() && it->second.lock() == from) functions_.erase(it);
            if (auto w = workers_.find(from.get()); w != workers_.end()) w->second.functions.erase(m.id);
            return;
        }
        case message_type::invoke_function: return invoke(from, m);
        case message_type::invocation_result: return result(from, m);
        case message_type::ping: return from->send(R"({"type":"pong"})");
        case message_type::pong: return;
        case message_type::other: {
            bool first = false;
            {
                std::lock_guard lk(mu_);
                if (unknown_types_.size() < 64) first = unknown_types_.insert(m.type_name).second;
            }
            // Once per type (an SDK newer than this engine keeps working), then rate-limited.
            if (first && hooks_.log)
                hooks_.log->say("shmchan engine: message type \"" + printable(m.type_name, 64) +
                                "\" is not implemented; ignored");
            else if (!first)
                note(reject::unknown_type, name, "message type \"" + m.type_name + "\" is not implemented; ignored");
            return;
        }
    }
}

void router::invoke(const std::shared_ptr<worker_link>& from, worker_message& m) {
    auto reply = [&](const std::string& text) {
        if (!m.fire_and_forget) from->send(text);
    };
    if (m.id.rfind("engine::", 0) == 0) {
        static const json none;
        const auto d = m.body.find("data");
        builtin_result r{false, error_body("function_not_found", "Function " + m.id + " not found")};
        try {
            if (hooks_.builtin) r = hooks_.builtin(m.id, d != m.body.end() ? *d : none);
        } catch (const std::exception& e) {  // never out of a socket's handler
            r = {false, error_body("internal_error", e.what())};
        }
        if (m.fire_and_forget) return;
        json out = {{"type", "invocationresult"}, {"invocation_id", m.caller_id}, {"function_id", m.id}};
        out[r.ok ? "result" : "error"] = std::move(r.body);
        return from->send(dump_json(out));
    }

    std::string name, pid;
    std::shared_ptr<worker_link> target;
    bool over = false;
    std::size_t awaiting = 0;
    {
        std::lock_guard lk(mu_);
        auto self = workers_.find(from.get());
        if (self == workers_.end()) return;
        name = self->second.name;
        if (auto it = functions_.find(m.id); it != functions_.end()) target = it->second.lock();
        if (target && !m.fire_and_forget) {
            awaiting = self->second.awaiting;
            if (awaiting >= lim_.pending_per_worker || pending_.size() >= lim_.pending_total) {
                over = true;
            } else {
                pid = format_uuid(random_uuid().data());
                auto& p = pending_[pid];
                p.caller = from;
                p.caller_key = from.get();
                p.caller_id = m.caller_id;
                p.function_id = m.id;
                p.target = target;
                p.target_key = target.get();
                p.timeout = m.timeout.value_or(lim_.invocation_timeout);
                ++self->second.awaiting;
            }
        }
    }
    if (!target) {
        const std::string why = "Function " + m.id + " not found";
        note(reject::function_not_found, name, why);
        return reply(invocation_error(m.caller_id, m.id, "function_not_found", why));
    }
    if (over) {
        const std::string why =
            awaiting >= lim_.pending_per_worker
                ? "this worker already awaits " + std::to_string(awaiting) + " invocations (the limit per worker)"
                : "the engine already holds " + std::to_string(lim_.pending_total) + " invocations awaiting an answer (its limit)";
        note(reject::too_many_pending, name, why);
        return reply(invocation_error(m.caller_id, m.id, "too_many_pending", why));
    }
    if (m.fire_and_forget) {
        m.body.erase("invocation_id");
        return target->send(dump_json(m.body));
    }
    std::unique_ptr<invocation_timer> timer;
    if (hooks_.arm) timer = hooks_.arm(pid, m.timeout.value_or(lim_.invocation_timeout));
    {
        std::lock_guard lk(mu_);
        if (auto it = pending_.find(pid); it != pending_.end()) it->second.timer = std::move(timer);
    }
    if (timer) timer->cancel();  // finished already (its target left)
    m.body["invocation_id"] = pid;
    target->send(dump_json(m.body));
}

void router::result(const std::shared_ptr<worker_link>& from, worker_message& m) {
    pending_invocation p;
    std::string name;
    {
        std::lock_guard lk(mu_);
        auto it = pending_.find(m.id);
        if (it == pending_.end()) return;  // timed out already, or not ours: tolerated (the SDKs do too)
        if (it->second.target_key != from.get()) {
            if (auto w = workers_.find(from.get()); w != workers_.end()) name = w->second.name;
        } else {
            p = take(it);
        }
    }
    if (!p.target_key) {
        // Only the worker that was given the invocation may answer it.
        return note(reject::unexpected_result, name, "invocationresult for invocation " + m.id + " it was not given");
    }
    if (p.timer) p.timer->cancel();
    auto c = p.caller.lock();
    if (!c) return;
    json r = {{"type", "invocationresult"}, {"invocation_id", p.caller_id}, {"function_id", p.function_id}};
    const auto e = m.body.find("error");
    if (e != m.body.end() && !e->is_null()) {
        r["error"] = std::move(*e);
    } else {
        const auto res = m.body.find("result");
        r["result"] = res != m.body.end() ? std::move(*res) : json();
    }
    c->send(dump_json(r));
}

void router::detach(worker_link* w) {
    std::vector<pending_invocation> failed, dropped;
    {
        std::lock_guard lk(mu_);
        auto self = workers_.find(w);
        if (self == workers_.end()) return;
        for (const auto& fid : self->second.functions) {
            auto it = functions_.find(fid);
            if (it == functions_.end()) continue;
            auto holder = it->second.lock();
            if (!holder || holder.get() == w) functions_.erase(it);
        }
        for (auto it = pending_.begin(); it != pending_.end();) {
            if (it->second.target_key == w) {
                failed.push_back(take(it++));
            } else if (it->second.caller_key == w) {
                dropped.push_back(take(it++));  // its answer, when it comes, is not ours to route
            } else {
                ++it;
            }
        }
        workers_.erase(self);
    }
    for (auto& p : dropped)
        if (p.timer) p.timer->cancel();
    for (auto& p : failed) {
        if (p.timer) p.timer->cancel();
        if (auto c = p.caller.lock())
            c->send(invocation_error(p.caller_id, p.function_id, "worker_disconnected",
                                     "The worker serving " + p.function_id + " disconnected"));
    }
}

void router::expire(const std::string& pending_id) {
    pending_invocation p;
    {
        std::lock_guard lk(mu_);
        auto it = pending_.find(pending_id);
        if (it == pending_.end()) return;
        p = take(it);
    }
    if (auto c = p.caller.lock())
        c->send(invocation_error(p.caller_id, p.function_id, "timeout",
                                 "Function " + p.function_id + " did not answer within " +
                                     std::to_string(p.timeout.count()) + " ms"));
}

std::size_t router::workers() const {
    std::lock_guard lk(mu_);
    return workers_.size();
}
std::size_t router::pending() const {
    std::lock_guard lk(mu_);
    return pending_.size();
}
std::vector<std::string> router::functions() const {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    for (const auto& [fid, w] : functions_)
        if (!w.expired()) out.push_back(fid);
    return out;
}

}  // namespace shmchan::detail
