// Fuzzes the engine's worker-protocol dispatch (src/engine/router.cpp) against fake worker
// sockets and fake timers: no network, no threads. The input is a script of operations:
//
//   op % 8:  0 connect a worker (at most 4)         1 worker k sends raw bytes (length-prefixed)
//            2 k registers f<n>                     3 k invokes f<n> (id / no id / void / timeout)
//            4 k answers an invocation it was given, or one it was not
//            5 k disconnects                        6 a timer fires        7 k unregisters f<n>
//
// with small limits (3 pending per worker, 5 in all, 3 functions per worker, depth 8).
// Checked:
//   - nothing throws; everything the engine sends is a JSON object with a string "type";
//   - every invocation a connected caller made with an invocation_id (and every invalid one
//     whose id could be read) is answered exactly once - by the target, an error, a timeout
//     (all timers fire at the end) or worker_disconnected - and nothing else is answered;
//   - pending invocations never exceed the engine's limit; none is left at the end, and no
//     worker or function once every worker has left.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/router.hpp"

namespace d = shmchan::detail;
using json = nlohmann::json;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_engine_dispatch: %s\n", what);
    std::abort();
}

struct fake_link final : d::worker_link {
    std::deque<json> given;                 // invokefunction messages the engine forwarded here
    std::map<std::string, long> expected;   // caller invocation id (dumped) -> answers still due
    void send(std::string text) override {
        const json m = json::parse(text, nullptr, false);
        if (m.is_discarded() || !m.is_object() || !m.contains("type") || !m["type"].is_string())
            fail("the engine sent something that is not a typed JSON object");
        const std::string type = m["type"];
        if (type == "invokefunction") {
            if (!m.contains("function_id") || !m["function_id"].is_string()) fail("forwarded invocation without function_id");
            if (m.contains("invocation_id")) {
                if (!m["invocation_id"].is_string()) fail("forwarded invocation id is not a string");
                given.push_back(m);
            }
        } else if (type == "invocationresult") {
            if (!m.contains("invocation_id")) fail("invocationresult without invocation_id");
            const bool err = m.contains("error"), res = m.contains("result");
            if (err == res) fail("invocationresult needs exactly one of result and error");
            long& due = expected[m["invocation_id"].dump()];
            if (--due < 0) fail("an invocation answered twice, or one that was never made");
        }
    }
};

struct fake_timer final : d::invocation_timer {
    void cancel() override {}
};

struct reader {
    const std::uint8_t* p;
    std::size_t n;
    std::uint8_t byte() {
        if (!n) return 0;
        --n;
        return *p++;
    }
    std::string bytes(std::size_t k) {
        k = std::min(k, n);
        std::string s(reinterpret_cast<const char*>(p), k);
        p += k;
        n -= k;
        return s;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    d::router_limits lim;
    lim.message.max_bytes = 4096;
    lim.message.max_depth = 8;
    lim.message.max_values = 64;
    lim.message.max_id_bytes = 16;
    lim.pending_per_worker = 3;
    lim.pending_total = 5;
    lim.functions_per_worker = 3;

    std::vector<std::string> timers;  // pending ids, in the order armed; firing a done one is a no-op
    d::reject_log log([](const std::string&) {});
    d::router::hooks h;
    h.arm = [&](const std::string& id, std::chrono::milliseconds) -> std::unique_ptr<d::invocation_timer> {
        timers.push_back(id);
        return std::make_unique<fake_timer>();
    };
    h.builtin = [](const std::string& fid, const json&) {
        if (fid == "engine::ok") return d::builtin_result{true, json::object()};
        return d::builtin_result{false, d::error_body("function_not_found", "no " + fid)};
    };
    h.log = &log;
    d::router rt(lim, h);

    std::vector<std::shared_ptr<fake_link>> links;
    unsigned serial = 0;

    // A message from k, and the answers it makes due.
    auto say = [&](const std::shared_ptr<fake_link>& k, const std::string& text) {
        const d::parsed_message p = d::parse_worker_message(text, lim.message);
        if (p && p.msg->type == d::message_type::invoke_function && !p.msg->fire_and_forget)
            ++k->expected[p.msg->caller_id.dump()];
        if (!p && !p.error.answer_to.is_null()) ++k->expected[p.error.answer_to.dump()];
        try {
            rt.on_message(k, text);
        } catch (...) {
            fail("on_message threw");
        }
        if (rt.pending() > lim.pending_total) fail("more pending invocations than the limit");
    };

    reader in{data, size};
    while (in.n) {
        const std::uint8_t op = in.byte() % 8;
        if (op == 0) {
            if (links.size() < 4) {
                links.push_back(std::make_shared<fake_link>());
                rt.attach(links.back(), "w" + std::to_string(serial++));
            }
            continue;
        }
        if (op == 6) {
            if (!timers.empty()) rt.expire(timers[in.byte() % timers.size()]);
            continue;
        }
        if (links.empty()) continue;
        const std::size_t ki = in.byte() % links.size();
        auto& k = links[ki];
        const std::string fn = "f" + std::to_string(in.byte() % 4);
        switch (op) {
            case 1: {
                const std::size_t len = in.byte() | std::size_t{in.byte()} << 8;
                say(k, in.bytes(len));
                break;
            }
            case 2: say(k, json{{"type", "registerfunction"}, {"id", fn}}.dump()); break;
            case 7: say(k, json{{"type", "unregisterfunction"}, {"id", fn}}.dump()); break;
            case 3: {
                const std::uint8_t mode = in.byte();
                json m = {{"type", "invokefunction"}, {"function_id", (mode & 8) ? "engine::ok" : fn}, {"data", {{"x", 1}}}};
                if ((mode & 3) != 0) m["invocation_id"] = "c" + std::to_string(serial++);
                if ((mode & 3) == 2) m["action"] = {{"type", "void"}};
                if (mode & 4) m["timeout_ms"] = 0;
                say(k, m.dump());
                break;
            }
            case 4: {
                const std::uint8_t how = in.byte();
                std::string id = "not-given";
                if (!(how & 1) && !k->given.empty()) {
                    id = k->given.front()["invocation_id"];
                    k->given.pop_front();
                } else if ((how & 2) && links.size() > 1) {
                    auto& other = links[(ki + 1) % links.size()];
                    if (!other->given.empty()) id = other->given.front()["invocation_id"];  // not k's to answer
                }
                json r = {{"type", "invocationresult"}, {"invocation_id", id}, {"function_id", fn}};
                if (how & 4) r["error"] = {{"code", "boom"}, {"message", "m"}};
                else r["result"] = {{"ok", true}};
                say(k, r.dump());
                break;
            }
            case 5:
                rt.detach(k.get());
                links.erase(links.begin() + static_cast<std::ptrdiff_t>(ki));
                break;
        }
    }
    // Every timer fires: whatever is left times out.
    for (const auto& id : timers) rt.expire(id);
    if (rt.pending() != 0) fail("invocations still pending after every timer fired");
    for (const auto& k : links)
        for (const auto& [id, due] : k->expected)
            if (due != 0) fail("an invocation of a connected caller was never answered");
    for (const auto& k : links) rt.detach(k.get());
    if (rt.workers() != 0 || !rt.functions().empty()) fail("workers or functions left after everyone left");
    return 0;
}
