// What the engine reads from its sockets, as pure functions (no sockets, no engine state), so
// that each can be fuzzed (tests/fuzz): a worker message (text frame -> typed message or typed
// error), a request target (-> route), the frames of a socket writer (-> ring records, end,
// abort), and close reasons. Also the rate-limited log of rejected input.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>

#include "wire/channel_socket.hpp"

namespace shmchan::detail {

// --- rejected input -------------------------------------------------------------------------

// Each kind of input the engine refuses; the name is the error code a client sees.
enum class reject : unsigned {
    message_too_big,     // worker message above max_message_bytes (closed with 1009)
    invalid_json,        // not JSON
    too_deep,            // arrays/objects nested deeper than max_depth
    too_many_values,     // more than max_values JSON values in one message
    invalid_message,     // JSON, but not a worker message: not an object, no type, a field of the wrong type
    unknown_type,        // a message type the engine does not implement (ignored)
    function_not_found,  // invokefunction of a function nobody registered
    too_many_pending,    // invocations awaiting an answer: above the caller's or the engine's limit
    too_many_functions,  // registerfunction above the worker's limit
    too_many_channels,   // engine::channels::create above the engine's limit
    unexpected_result,   // invocationresult for an invocation this worker was not given
    slow_reader,         // a worker socket whose outbound queue overflowed (it does not read)
    bad_request,         // HTTP: malformed request or channel URL (400, 414, 431)
    channel_refused,     // channel socket: unknown channel or key (404), the other end's key (403)
    accept_failed,       // accept(2) failed (out of file descriptors, say)
    count_
};
const char* to_string(reject r) noexcept;

// One stderr line per kind of rejected input, at most one per kind per interval: a flood
// cannot fill a disk. The first of a kind is printed at once; later ones within the interval
// are counted and reported with the next line of that kind, or by flush(). Thread-safe.
class reject_log {
public:
    using sink_type = std::function<void(const std::string& line)>;
    explicit reject_log(sink_type sink = {}, std::chrono::milliseconds interval = std::chrono::seconds(10));
    void note(reject kind, std::string_view detail);
    void flush();  // reports counts held back for longer than the interval
    void say(const std::string& line);  // a line, not rate-limited (the caller bounds how many)
    std::uint64_t count(reject kind) const;  // all of that kind so far, printed or not

private:
    struct state {
        std::chrono::steady_clock::time_point last{};
        std::uint64_t held = 0, total = 0;
        std::string latest;
    };
    void print(reject kind, state& s, std::string_view detail);
    sink_type sink_;
    std::chrono::milliseconds interval_;
    mutable std::mutex mu_;
    state s_[static_cast<unsigned>(reject::count_)];
};

// Hostile text made safe for a log line: control bytes and non-ASCII escaped (\xNN), cut to
// `max` bytes with "..." (no terminal escapes or fake lines injected into the log).
// Text from the wire made safe to log: access keys redacted (redact_keys), bytes outside
// printable ASCII escaped, cut at `max` characters.
std::string printable(std::string_view text, std::size_t max = 200);
// Access keys (a URL's key=..., a ref's "access_key": "...") replaced by <redacted>: logs
// must never carry them.
std::string redact_keys(std::string_view text);

// --- the worker protocol --------------------------------------------------------------------

struct message_limits {
    std::size_t max_bytes = std::size_t{16} << 20;  // a message; the socket closes above (1009)
    std::size_t max_depth = 128;                    // nested arrays/objects (serde_json's, so iii's, limit)
    std::size_t max_values = std::size_t{1} << 20;  // JSON values in one message (bounds its parsed size)
    std::size_t max_id_bytes = 1024;                // a function id
    std::chrono::milliseconds max_timeout = std::chrono::hours(24);  // timeout_ms is clamped to this
};

enum class message_type {
    register_function,    // id
    unregister_function,  // id
    invoke_function,      // id = function_id, caller_id, fire_and_forget, timeout
    invocation_result,    // id = invocation_id
    ping,
    pong,
    other,  // any other type (logged, ignored)
};

struct worker_message {
    message_type type = message_type::other;
    std::string type_name;     // "type" as sent
    std::string id;            // see message_type
    nlohmann::json caller_id;  // invokefunction: the caller's invocation_id (null: fire and forget)
    bool fire_and_forget = false;
    std::optional<std::chrono::milliseconds> timeout;  // invokefunction: timeout_ms, clamped
    nlohmann::json body;       // the whole message (an object), to forward
};

struct message_error {
    reject kind = reject::invalid_message;
    std::string message;       // what was wrong, for the client and the log
    nlohmann::json answer_to;  // an invokefunction's invocation_id: answer it with the error
    std::string function_id;   // ... and this function_id (may be empty)
};

struct parsed_message {
    std::optional<worker_message> msg;  // set on success
    message_error error;                // otherwise
    explicit operator bool() const noexcept { return msg.has_value(); }
};

// Parses and validates one text frame of the worker socket. Never throws (but std::bad_alloc);
// memory and stack are bounded by the limits.
parsed_message parse_worker_message(std::string_view text, const message_limits& limits = {});

// JSON parsed within the limits (depth, values), or an error: for payloads of built-in
// functions and for the fuzzers.
struct parsed_json {
    nlohmann::json value;
    std::optional<message_error> error;
    // On a limit error: the root object's "type", "invocation_id" and "function_id" strings
    // (read to the end regardless; empty when absent).
    struct top_fields {
        std::string type, invocation_id, function_id;
    } top;
};
parsed_json parse_json_limited(std::string_view text, const message_limits& limits = {});

// dump() that never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dump_json(const nlohmann::json& j);

// The engine's replies.
std::string error_message(std::string_view code, std::string_view message);  // {"type":"error",...}
nlohmann::json error_body(std::string_view code, std::string_view message);  // {code, message}
std::string invocation_error(const nlohmann::json& invocation_id, std::string_view function_id,
                             std::string_view code, std::string_view message);

// --- HTTP request targets ---------------------------------------------------------------------

inline constexpr std::size_t max_target_bytes = 2048;  // longer: 414

struct route {
    enum class kind { status, worker, otel, channel, error } what = kind::error;
    // channel:
    std::string channel_id;        // a UUID, lower case
    std::array<std::uint8_t, 16> key{};  // the access key's 128 bits
    bool read = false;             // dir=read (else write)
    // error: the HTTP status and a one-line body
    unsigned status = 400;
    std::string message;
};

// Routes a request target: "/status" (GET), "/" and "/otel" (WebSocket), and
// "/ws/channels/{uuid}?key={uuid}&dir=read|write" (WebSocket; the key may be percent-encoded,
// as encodeURIComponent leaves it). A malformed channel URL is 400 (404 for an id or key that
// is not a UUID: no such channel can exist); a target above max_target_bytes is 414.
route route_target(std::string_view target, bool websocket_upgrade);

}  // namespace shmchan::detail
