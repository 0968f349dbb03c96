// Fuzzes parse_worker_message (src/engine/protocol.cpp): one text frame of the engine's worker
// socket -> a typed message or a typed error, with the engine's limits and with tiny ones.
//   Never throws; an error has a UTF-8 message and makes a JSON reply; an error that answers an invocation only comes from an "invokefunction".
//   A message is a JSON object with a string "type"; ids are non-empty and within the limit;
//   an invocation with a caller id is not fire and forget; its body dumps to JSON that parses
//   back to the same message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "engine/protocol.hpp"

namespace d = shmchan::detail;

namespace {
[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_worker_message: %s\n", what);
    std::abort();
}

void check(std::string_view text, const d::message_limits& lim) {
    d::parsed_message p;
    try {
        p = d::parse_worker_message(text, lim);
    } catch (...) {
        fail("parse_worker_message threw");
    }
    if (!p) {
        const auto& e = p.error;
        if (e.message.empty()) fail("an error without a message");
        if (!d::valid_utf8(e.message)) fail("an error message that is not UTF-8");
        if (!e.answer_to.is_null()) {
            if (!e.answer_to.is_string() || e.answer_to.get<std::string>().empty()) fail("answer_to is not an id");
            if (e.function_id.size() > lim.max_id_bytes) fail("function_id of an answer above the limit");
            if (text.find("invokefunction") == std::string_view::npos) fail("an answer for what is not an invocation");
        }
        // The reply built from it is JSON.
        const auto reply = e.answer_to.is_null() ? d::error_message(d::to_string(e.kind), e.message)
                                                 : d::invocation_error(e.answer_to, e.function_id, "x", e.message);
        if (nlohmann::json::parse(reply, nullptr, false).is_discarded()) fail("error reply is not JSON");
        return;
    }
    const auto& m = *p.msg;
    if (!m.body.is_object() || !m.body.contains("type") || m.body["type"] != m.type_name) fail("body without its type");
    switch (m.type) {
        case d::message_type::register_function:
        case d::message_type::unregister_function:
        case d::message_type::invoke_function:
            if (m.id.empty() || m.id.size() > lim.max_id_bytes) fail("function id empty or above the limit");
            break;
        case d::message_type::invocation_result:
            if (m.id.empty()) fail("invocationresult without an id");
            break;
        default: break;
    }
    if (m.type == d::message_type::invoke_function) {
        if (m.fire_and_forget != m.caller_id.is_null()) fail("fire_and_forget and caller_id disagree");
        if (!m.caller_id.is_null() && (!m.caller_id.is_string() || m.caller_id.get<std::string>().empty()))
            fail("caller id is not a non-empty string");
        if (m.timeout && (m.timeout->count() < 0 || *m.timeout > lim.max_timeout)) fail("timeout out of range");
    }
    const std::string again = d::dump_json(m.body);
    const d::parsed_message q = d::parse_worker_message(again, lim);
    if (!q && q.error.kind != d::reject::message_too_big) fail("a message dumped does not parse again");
    if (q && (q.msg->type != m.type || q.msg->id != m.id || q.msg->fire_and_forget != m.fire_and_forget))
        fail("a message dumped parses to another message");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    check(text, d::message_limits{});
    d::message_limits tiny;
    tiny.max_bytes = 2048;
    tiny.max_depth = 4;
    tiny.max_values = 24;
    tiny.max_id_bytes = 8;
    tiny.max_timeout = std::chrono::milliseconds(1000);
    check(text, tiny);

    return 0;
}
