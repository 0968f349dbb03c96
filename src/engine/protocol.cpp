#include "protocol.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "../ids.hpp"

namespace shmchan::detail {

using json = nlohmann::json;

// --- rejected input -------------------------------------------------------------------------

const char* to_string(reject r) noexcept {
    switch (r) {
        case reject::message_too_big: return "message_too_big";
        case reject::invalid_json: return "invalid_json";
        case reject::too_deep: return "too_deep";
        case reject::too_many_values: return "too_many_values";
        case reject::invalid_message: return "invalid_message";
        case reject::unknown_type: return "unknown_type";
        case reject::function_not_found: return "function_not_found";
        case reject::too_many_pending: return "too_many_pending";
        case reject::too_many_functions: return "too_many_functions";
        case reject::too_many_channels: return "too_many_channels";
        case reject::unexpected_result: return "unexpected_result";
        case reject::slow_reader: return "slow_reader";
        case reject::bad_request: return "bad_request";
        case reject::channel_refused: return "channel_refused";
        case reject::accept_failed: return "accept_failed";
        case reject::count_: break;
    }
    return "unknown";
}

reject_log::reject_log(sink_type sink, std::chrono::milliseconds interval)
    : sink_(std::move(sink)), interval_(interval) {
    if (!sink_) sink_ = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
}

void reject_log::print(reject kind, state& s, std::string_view detail) {
    std::string line = "shmchan engine: rejected ";
    line += to_string(kind);
    line += ": ";
    line += detail;
    if (s.held > 0) line += " (and " + std::to_string(s.held) + " more of this kind before it, not shown)";
    s.held = 0;
    s.last = std::chrono::steady_clock::now();
    sink_(line);
}

void reject_log::note(reject kind, std::string_view detail) {
    std::lock_guard lk(mu_);
    state& s = s_[static_cast<unsigned>(kind)];
    ++s.total;
    const auto now = std::chrono::steady_clock::now();
    if (s.total == 1 || now - s.last >= interval_) return print(kind, s, detail);
    ++s.held;
    s.latest.assign(detail.substr(0, 300));
}

void reject_log::flush() {
    std::lock_guard lk(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (unsigned k = 0; k < static_cast<unsigned>(reject::count_); ++k) {
        state& s = s_[k];
        if (s.held == 0 || now - s.last < interval_) continue;
        const std::uint64_t held = s.held - 1;  // the latest is the one printed
        s.held = held;
        std::string latest = std::move(s.latest);
        print(static_cast<reject>(k), s, latest);
    }
}

void reject_log::say(const std::string& line) {
    std::lock_guard lk(mu_);
    sink_(line);
}

std::uint64_t reject_log::count(reject kind) const {
    std::lock_guard lk(mu_);
    return s_[static_cast<unsigned>(kind)].total;
}

std::string redact_keys(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    auto key_char = [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
    };
    for (std::size_t i = 0; i < text.size();) {
        // A channel URL's query: key=SECRET
        if (text.compare(i, 4, "key=") == 0 && (i == 0 || !key_char(text[i - 1]))) {
            out += "key=<redacted>";
            i += 4;
            while (i < text.size() && key_char(text[i])) ++i;
            continue;
        }
        // A ref in JSON: "access_key" : "SECRET"
        if (text.compare(i, 12, "\"access_key\"") == 0) {
            std::size_t j = i + 12;
            while (j < text.size() && (text[j] == ' ' || text[j] == ':' || text[j] == '\t')) ++j;
            if (j < text.size() && text[j] == '"') {
                std::size_t k = j + 1;
                while (k < text.size() && text[k] != '"') k += text[k] == '\\' ? 2 : 1;
                out.append(text.substr(i, j + 1 - i));
                out += "<redacted>";
                i = std::min(k, text.size());
                continue;
            }
        }
        out += text[i++];
    }
    return out;
}

std::string printable(std::string_view raw, std::size_t max) {
    static constexpr char hex[] = "0123456789abcdef";
    const std::string text = redact_keys(raw);
    std::string out;
    for (const char c : text) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        const auto b = static_cast<unsigned char>(c);
        if (b >= 0x20 && b < 0x7f && b != '\\') {
            out += c;
        } else {
            out += "\\x";
            out += hex[b >> 4];
            out += hex[b & 15];
        }
    }
    return out;
}

// --- JSON within limits ---------------------------------------------------------------------

namespace {

// nlohmann's DOM builder behind a gate that counts depth and values. Past a limit it stops
// building (memory stays bounded) but reads on to the end - the parser is iterative, so this
// costs time linear in the message and no stack - to learn the message's top-level type,
// invocation_id and function_id: an invocation refused for its size is still answered.
class limited_sax {
public:
    limited_sax(json& root, const message_limits& l) : dom_(root, false), lim_(l) {}

    bool null() { return value() && (!building() || dom_.null()); }
    bool boolean(bool b) { return value() && (!building() || dom_.boolean(b)); }
    bool number_integer(json::number_integer_t v) { return value() && (!building() || dom_.number_integer(v)); }
    bool number_unsigned(json::number_unsigned_t v) { return value() && (!building() || dom_.number_unsigned(v)); }
    bool number_float(json::number_float_t v, const json::string_t& s) {
        return value() && (!building() || dom_.number_float(v, s));
    }
    bool string(json::string_t& s) {
        if (depth_ == 1 && in_root_object_) {
            if (key_ == "type") top.type = s;
            else if (key_ == "invocation_id") top.invocation_id = s;
            else if (key_ == "function_id") top.function_id = s.substr(0, lim_.max_id_bytes);
        }
        return value() && (!building() || dom_.string(s));
    }
    bool binary(json::binary_t& b) { return value() && (!building() || dom_.binary(b)); }
    bool start_object(std::size_t n) {
        if (depth_ == 0) in_root_object_ = true;
        return value() && open() && (!building() || dom_.start_object(n));
    }
    bool key(json::string_t& k) {
        if (depth_ == 1) key_ = k.substr(0, 16);
        return !building() || dom_.key(k);
    }
    bool end_object() {
        --depth_;
        return !building() || dom_.end_object();
    }
    bool start_array(std::size_t n) { return value() && open() && (!building() || dom_.start_array(n)); }
    bool end_array() {
        --depth_;
        return !building() || dom_.end_array();
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) {
        // The text quotes the offending bytes: made printable (and so valid UTF-8).
        std::string what = ex.what();
        if (what.rfind("[json.exception.", 0) == 0)
            if (auto close = what.find("] "); close != std::string::npos) what.erase(0, close + 2);
        error = message_error{reject::invalid_json, "not valid JSON: " + printable(what), {}, {}};
        invalid = true;
        return false;
    }

    std::optional<message_error> error;  // the first limit passed, or invalid JSON
    bool invalid = false;                // not JSON at all
    parsed_json::top_fields top;

private:
    bool building() const noexcept { return !error; }
    bool value() {
        if (++values_ > lim_.max_values && !error)
            error = message_error{reject::too_many_values,
                                  "more than " + std::to_string(lim_.max_values) + " JSON values in one message", {}, {}};
        return true;
    }
    bool open() {
        if (++depth_ > lim_.max_depth && !error)
            error = message_error{reject::too_deep,
                                  "arrays and objects nested deeper than " + std::to_string(lim_.max_depth) + " levels",
                                  {}, {}};
        return true;
    }

    nlohmann::detail::json_sax_dom_parser<json> dom_;
    const message_limits& lim_;
    std::size_t depth_ = 0, values_ = 0;
    bool in_root_object_ = false;
    std::string key_;  // the current key of the root object
};

message_error bad(std::string message, json answer_to = {}, std::string fid = {}) {
    return {reject::invalid_message, std::move(message), std::move(answer_to), std::move(fid)};
}

const char* kind_name(const json& j) { return j.type_name(); }

}  // namespace

parsed_json parse_json_limited(std::string_view text, const message_limits& limits) {
    parsed_json out;
    limited_sax sax(out.value, limits);
    const bool ok = json::sax_parse(text.begin(), text.end(), &sax);
    if (!ok || sax.error) {
        out.error = sax.error ? std::move(sax.error) : message_error{reject::invalid_json, "not valid JSON", {}, {}};
        out.value = json();
        if (!sax.invalid) out.top = std::move(sax.top);
    }
    return out;
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_body(std::string_view code, std::string_view message) {
    return {{"code", std::string(code)}, {"message", std::string(message)}};
}
std::string error_message(std::string_view code, std::string_view message) {
    return dump_json({{"type", "error"}, {"error", error_body(code, message)}});
}
std::string invocation_error(const json& invocation_id, std::string_view function_id, std::string_view code,
                             std::string_view message) {
    return dump_json({{"type", "invocationresult"},
                      {"invocation_id", invocation_id},
                      {"function_id", std::string(function_id)},
                      {"error", error_body(code, message)}});
}

// --- worker messages --------------------------------------------------------------------------

parsed_message parse_worker_message(std::string_view text, const message_limits& lim) {
    parsed_message out;
    auto fail = [&](message_error e) {
        out.error = std::move(e);
        return std::move(out);
    };
    if (text.size() > lim.max_bytes)
        return fail({reject::message_too_big,
                     "message of " + std::to_string(text.size()) + " bytes, above the limit of " +
                         std::to_string(lim.max_bytes),
                     {}, {}});
    parsed_json pj = parse_json_limited(text, lim);
    if (pj.error) {
        // Refused for its size: an invocation is still answered, if its id could be read.
        if (pj.top.type == "invokefunction" && !pj.top.invocation_id.empty()) {
            pj.error->answer_to = pj.top.invocation_id;
            pj.error->function_id = pj.top.function_id;
        }
        return fail(std::move(*pj.error));
    }
    json& m = pj.value;
    if (!m.is_object()) return fail(bad(std::string("a worker message is a JSON object, not ") + kind_name(m)));
    const auto t = m.find("type");
    if (t == m.end()) return fail(bad("a worker message needs a \"type\""));
    if (!t->is_string()) return fail(bad(std::string("\"type\" must be a string, not ") + kind_name(*t)));

    worker_message w;
    w.type_name = t->get<std::string>();
    const std::string& type = w.type_name;
    // A required, non-empty string field of bounded size.
    auto id_field = [&](const char* field, std::string& to, std::size_t max) -> std::optional<std::string> {
        const auto it = m.find(field);
        if (it == m.end() || it->is_null()) return type + " needs \"" + field + "\"";
        if (!it->is_string()) return type + ": \"" + field + "\" must be a string, not " + kind_name(*it);
        const auto& s = it->get_ref<const std::string&>();
        if (s.empty()) return type + ": \"" + field + "\" is empty";
        if (s.size() > max)
            return type + ": \"" + field + "\" is " + std::to_string(s.size()) + " bytes long, above the limit of " +
                   std::to_string(max);
        to = s;
        return std::nullopt;
    };

    if (type == "registerfunction" || type == "unregisterfunction") {
        w.type = type == "registerfunction" ? message_type::register_function : message_type::unregister_function;
        if (auto e = id_field("id", w.id, lim.max_id_bytes)) return fail(bad(*e));
    } else if (type == "invokefunction") {
        w.type = message_type::invoke_function;
        // invocation_id: absent, null or "" is fire and forget (as the SDKs read it).
        if (const auto id = m.find("invocation_id"); id != m.end() && !id->is_null()) {
            if (!id->is_string())
                return fail(bad(std::string("invokefunction: \"invocation_id\" must be a string, not ") + kind_name(*id)));
            if (!id->get_ref<const std::string&>().empty()) w.caller_id = *id;
        }
        bool void_action = false;
        std::optional<std::string> problem;
        if (const auto a = m.find("action"); a != m.end() && !a->is_null()) {
            if (!a->is_object()) {
                problem = std::string("invokefunction: \"action\" must be an object, not ") + kind_name(*a);
            } else if (const auto at = a->find("type"); at != a->end() && !at->is_null()) {
                if (!at->is_string())
                    problem = std::string("invokefunction: \"action.type\" must be a string, not ") + kind_name(*at);
                else
                    void_action = at->get_ref<const std::string&>() == "void";
            }
        }
        w.fire_and_forget = w.caller_id.is_null() || void_action;
        if (w.fire_and_forget) w.caller_id = json();
        if (!problem) problem = id_field("function_id", w.id, lim.max_id_bytes);
        if (!problem) {
            if (const auto to = m.find("timeout_ms"); to != m.end() && !to->is_null()) {
                if (!to->is_number() || (to->is_number_integer() && to->get<std::int64_t>() < 0) ||
                    (to->is_number_float() && !(to->get<double>() >= 0)))
                    problem = "invokefunction: \"timeout_ms\" must be a number of milliseconds, at least 0";
                else {
                    const double ms = to->get<double>();
                    const auto cap = static_cast<double>(lim.max_timeout.count());
                    w.timeout = std::chrono::milliseconds(
                        static_cast<std::int64_t>(ms >= cap ? cap : std::floor(ms)));
                }
            }
        }
        if (problem) {
            std::string fid;
            if (const auto f = m.find("function_id"); f != m.end() && f->is_string())
                fid = f->get_ref<const std::string&>().substr(0, lim.max_id_bytes);
            return fail(bad(std::move(*problem), w.caller_id, std::move(fid)));
        }
    } else if (type == "invocationresult") {
        w.type = message_type::invocation_result;
        if (auto e = id_field("invocation_id", w.id, 1024)) return fail(bad(*e));
    } else if (type == "ping") {
        w.type = message_type::ping;
    } else if (type == "pong") {
        w.type = message_type::pong;
    } else {
        w.type = message_type::other;
    }
    w.body = std::move(m);
    out.msg = std::move(w);
    return out;
}

// --- request targets --------------------------------------------------------------------------

namespace {

route refuse(unsigned status, std::string message) {
    route r;
    r.what = route::kind::error;
    r.status = status;
    r.message = std::move(message);
    return r;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// %XX decoding (as encodeURIComponent encodes); nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        const int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi << 4 | lo);
        i += 2;
    }
    return out;
}

}  // namespace

route route_target(std::string_view target, bool upgrade) {
    if (target.size() > max_target_bytes)
        return refuse(414, "request target of " + std::to_string(target.size()) + " bytes, above the limit of " +
                               std::to_string(max_target_bytes));
    if (target.empty() || target.front() != '/') return refuse(400, "request target must start with /");
    const auto qpos = target.find('?');
    const std::string_view path = target.substr(0, qpos);
    const std::string_view query = qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1);

    route r;
    if (path == "/status" && !upgrade) {
        r.what = route::kind::status;
        return r;
    }
    if (!upgrade) return refuse(404, "Not found");
    if (path == "/" || path == "/otel") {
        r.what = path == "/" ? route::kind::worker : route::kind::otel;
        return r;
    }
    static constexpr std::string_view prefix = "/ws/channels/";
    if (path.substr(0, prefix.size()) != prefix) return refuse(404, "Not found");
    const std::string_view id = path.substr(prefix.size());
    if (id.empty()) return refuse(400, "channel URL without a channel id: /ws/channels/{id}?key=..&dir=read|write");
    if (id.find('/') != std::string_view::npos) return refuse(404, "Not found");

    std::optional<std::string> key, dir;
    for (std::string_view rest = query; !rest.empty();) {
        const auto amp = rest.find('&');
        const std::string_view part = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        if (part.empty()) continue;
        const auto eq = part.find('=');
        const std::string_view name = part.substr(0, eq);
        std::optional<std::string>* slot = name == "key" ? &key : name == "dir" ? &dir : nullptr;
        if (!slot) continue;  // other parameters are ignored
        if (eq == std::string_view::npos) return refuse(400, "channel URL: \"" + std::string(name) + "\" has no value");
        if (slot->has_value()) return refuse(400, "channel URL: \"" + std::string(name) + "\" given twice");
        auto v = percent_decode(part.substr(eq + 1));
        if (!v) return refuse(400, "channel URL: malformed %-escape in \"" + std::string(name) + "\"");
        *slot = std::move(*v);
    }
    if (!key) return refuse(400, "channel URL without key=");
    if (!dir) return refuse(400, "channel URL without dir=read|write");
    if (*dir != "read" && *dir != "write") return refuse(400, "dir must be read or write");
    const auto cid = parse_uuid(std::string(id));
    if (!cid) return refuse(404, "Channel not found (the channel id is not a UUID)");
    const auto k = parse_uuid(*key);
    if (!k) return refuse(404, "Channel not found (the key is not a UUID)");
    r.what = route::kind::channel;
    r.channel_id = format_uuid(cid->data());
    std::copy(k->begin(), k->end(), r.key.begin());
    r.read = *dir == "read";
    return r;
}

}  // namespace shmchan::detail
