// The engine's input handling as pure functions (src/engine/protocol.hpp): worker messages,
// request targets, channel frames and close reasons. Regression cases found by review and by
// the fuzzers (tests/fuzz) are marked.
#include <catch2/catch.hpp>

#include <string>
#include <thread>

#include "engine/protocol.hpp"
#include "ids.hpp"
#include "shmchan/error.hpp"

using namespace shmchan::detail;
using json = nlohmann::json;

namespace {
message_error error_of(std::string_view text, const message_limits& lim = {}) {
    parsed_message p = parse_worker_message(text, lim);
    REQUIRE_FALSE(p);
    return p.error;
}
worker_message message_of(std::string_view text) {
    parsed_message p = parse_worker_message(text);
    INFO(text);
    REQUIRE(p);
    return *p.msg;
}
std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }
}  // namespace

TEST_CASE("worker messages: the iii frames parse to typed messages", "[engine][protocol]") {
    auto r = message_of(R"({"type":"registerfunction","id":"files::process","description":"d"})");
    CHECK(r.type == message_type::register_function);
    CHECK(r.id == "files::process");

    auto i = message_of(R"({"type":"invokefunction","invocation_id":"i1","function_id":"f","data":{"a":1},"timeout_ms":1500})");
    CHECK(i.type == message_type::invoke_function);
    CHECK(i.caller_id == "i1");
    CHECK_FALSE(i.fire_and_forget);
    CHECK(i.timeout == std::chrono::milliseconds(1500));
    CHECK(i.body["data"] == json{{"a", 1}});

    // Fire and forget: no id, a null or empty id, or action void.
    for (const char* t : {R"({"type":"invokefunction","function_id":"f"})",
                          R"({"type":"invokefunction","function_id":"f","invocation_id":null})",
                          R"({"type":"invokefunction","function_id":"f","invocation_id":""})",
                          R"({"type":"invokefunction","function_id":"f","invocation_id":"x","action":{"type":"void"}})"}) {
        auto v = message_of(t);
        CHECK(v.fire_and_forget);
        CHECK(v.caller_id.is_null());
    }
    CHECK(message_of(R"({"type":"invokefunction","function_id":"f","invocation_id":"x","timeout_ms":1e12})").timeout ==
          message_limits{}.max_timeout);
    CHECK(message_of(R"({"type":"invocationresult","invocation_id":"p1","result":null})").type ==
          message_type::invocation_result);
    CHECK(message_of(R"({"type":"ping"})").type == message_type::ping);
    CHECK(message_of(R"({"type":"registertrigger","id":"t"})").type == message_type::other);
}

TEST_CASE("worker messages: malformed input and wrong shapes are typed errors", "[engine][protocol]") {
    CHECK(error_of("not json").kind == reject::invalid_json);
    CHECK(error_of("{\"type\":\"ping\",\"x\":\"\xff\"}").kind == reject::invalid_json);  // not UTF-8
    CHECK(error_of(R"({"type":"ping"} trailing)").kind == reject::invalid_json);
    CHECK(error_of("[1,2]").kind == reject::invalid_message);
    CHECK(error_of("42").kind == reject::invalid_message);
    CHECK(error_of(R"({"id":"x"})").message == "a worker message needs a \"type\"");
    CHECK(error_of(R"({"type":5})").message == "\"type\" must be a string, not number");
    CHECK(error_of(R"({"type":"registerfunction"})").message == "registerfunction needs \"id\"");
    CHECK(error_of(R"({"type":"registerfunction","id":7})").message == "registerfunction: \"id\" must be a string, not number");
    CHECK(error_of(R"({"type":"registerfunction","id":""})").kind == reject::invalid_message);
    CHECK(error_of(R"({"type":"invocationresult","result":1})").kind == reject::invalid_message);
    CHECK(error_of(R"({"type":"invokefunction","function_id":"f","invocation_id":7})").answer_to.is_null());

    // An invocation with a readable id is answered with the error.
    auto e = error_of(R"({"type":"invokefunction","invocation_id":"a1","function_id":"f","timeout_ms":"soon"})");
    CHECK(e.answer_to == "a1");
    CHECK(e.function_id == "f");
    CHECK(error_of(R"({"type":"invokefunction","invocation_id":"a2"})").answer_to == "a2");
    CHECK(error_of(R"({"type":"invokefunction","invocation_id":"a3","function_id":"f","timeout_ms":-1})").answer_to == "a3");

    // Regression (review): a non-string action.type threw json::type_error out of the engine's
    // handler, which terminated the engine.
    auto a = error_of(R"({"type":"invokefunction","function_id":"x","invocation_id":"1","action":{"type":5}})");
    CHECK(a.message == "invokefunction: \"action.type\" must be a string, not number");
    CHECK(a.answer_to == "1");
    CHECK(error_of(R"({"type":"invokefunction","function_id":"x","invocation_id":"1","action":"void"})").answer_to == "1");

    // Ids above the limit.
    CHECK(error_of(R"({"type":"registerfunction","id":")" + std::string(1025, 'f') + "\"}").kind == reject::invalid_message);
}

TEST_CASE("worker messages: depth, value count and size are bounded, the invocation is still answered", "[engine][protocol]") {
    // Regression (review): data nested a million deep overflowed the engine's stack (json copy
    // and dump recurse) and killed it.
    const std::string deep = R"({"type":"invokefunction","invocation_id":"d1","function_id":"f","data":)" + nested(1000000) + "}";
    auto e = error_of(deep);
    CHECK(e.kind == reject::too_deep);
    CHECK(e.answer_to == "d1");
    CHECK(e.function_id == "f");
    // The id may come after the deep part.
    CHECK(error_of(R"({"type":"invokefunction","data":)" + nested(300) + R"(,"invocation_id":"d2","function_id":"g"})").answer_to ==
          "d2");
    CHECK(error_of(nested(1000000)).kind == reject::too_deep);
    CHECK(error_of(std::string(100000, '[')).kind == reject::invalid_json);  // unterminated: not JSON
    // At the limit: accepted (the message object is level 1).
    CHECK(parse_worker_message(R"({"type":"invokefunction","function_id":"f","data":)" + nested(127) + "}"));
    CHECK(error_of(R"({"type":"invokefunction","function_id":"f","data":)" + nested(128) + "}").kind == reject::too_deep);
    // Deep but not JSON after all: invalid_json wins, nothing to answer.
    auto bad = error_of(R"({"type":"invokefunction","invocation_id":"d3","function_id":"f","data":)" + nested(200));
    CHECK(bad.kind == reject::invalid_json);
    CHECK(bad.answer_to.is_null());

    message_limits lim;
    lim.max_values = 100;
    std::string wide = R"({"type":"invokefunction","invocation_id":"w1","function_id":"f","data":[0)";
    for (int i = 0; i < 200; ++i) wide += ",0";
    wide += "]}";
    auto w = error_of(wide, lim);
    CHECK(w.kind == reject::too_many_values);
    CHECK(w.answer_to == "w1");

    lim.max_bytes = 10;
    CHECK(error_of(R"({"type":"ping"})", lim).kind == reject::message_too_big);
}

TEST_CASE("worker messages: replies and log lines are valid UTF-8 whatever came in", "[engine][protocol]") {
    auto e = error_of("{\"type\":\"ping\" \xff\xfe garbage");
    CHECK(valid_utf8(e.message));
    CHECK_FALSE(json::parse(error_message("invalid_json", e.message), nullptr, false).is_discarded());
    CHECK(printable("a\x1b[31mred\nfake line\xff") == "a\\x1b[31mred\\x0afake line\\xff");
    CHECK(printable(std::string(500, 'x'), 10) == "xxxxxxxxxx...");
    CHECK(dump_json(json("\xff")) == "\"\xef\xbf\xbd\"");
}

TEST_CASE("log lines never carry access keys", "[engine][protocol]") {
    CHECK(printable("GET /ws/channels/abc?key=0123abcdEF&dir=read") == "GET /ws/channels/abc?key=<redacted>&dir=read");
    CHECK(redact_keys("/ws/channels/abc?dir=read&key=s3cr3t") == "/ws/channels/abc?dir=read&key=<redacted>");
    CHECK(redact_keys("monkey=banana") == "monkey=banana");  // only a key= of its own
    const std::string ref = R"({"channel_id":"c1","access_key":"deadbeef","direction":"read"})";
    const std::string out = printable(R"({"type":"invokefunction","data":{"reader":)" + ref + "}}", 300);
    CHECK(out.find("deadbeef") == std::string::npos);
    CHECK(out.find(R"("access_key":"<redacted>")") != std::string::npos);
    CHECK(out.find(R"("channel_id":"c1")") != std::string::npos);
    CHECK(redact_keys(R"({"access_key" : "a\"b","x":1})") == R"({"access_key" : "<redacted>","x":1})");
    CHECK(redact_keys(R"("access_key":"unterminated)") == R"("access_key":"<redacted>)");
}

TEST_CASE("reject_log: one line per kind at once, then at most one per interval", "[engine][protocol]") {
    std::vector<std::string> lines;
    reject_log log([&](const std::string& l) { lines.push_back(l); }, std::chrono::milliseconds(50));
    for (int i = 0; i < 1000; ++i) log.note(reject::invalid_json, "x");
    log.note(reject::too_deep, "y");
    CHECK(lines.size() == 2);
    CHECK(log.count(reject::invalid_json) == 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    log.flush();
    REQUIRE(lines.size() == 3);
    CHECK(lines[2].find("rejected invalid_json: x (and 998 more") != std::string::npos);
    log.flush();
    CHECK(lines.size() == 3);
}

TEST_CASE("route_target: channel URLs are checked, malformed ones are 400, 404 or 414", "[engine][protocol]") {
    const std::string id = "0b0f3c8e-3a34-4d1b-9a63-2f3d6f1e9c11", key = "8f6e2d10-77aa-4c3e-8d2b-5e8a1f0c2b33";
    auto ok = route_target("/ws/channels/" + id + "?key=" + key + "&dir=read", true);
    REQUIRE(ok.what == route::kind::channel);
    CHECK(ok.channel_id == id);
    CHECK(ok.read);
    CHECK(format_uuid(ok.key.data()) == key);
    // encodeURIComponent and upper case still name the same key; other parameters are ignored.
    std::string enc = key;
    for (std::size_t p; (p = enc.find('-')) != std::string::npos;) enc.replace(p, 1, "%2D");
    auto pe = route_target("/ws/channels/" + id + "?x=1&key=" + enc + "&dir=write", true);
    REQUIRE(pe.what == route::kind::channel);
    CHECK(pe.key == ok.key);
    CHECK_FALSE(pe.read);
    std::string upper = id;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    auto up = route_target("/ws/channels/" + upper + "?key=" + key + "&dir=read", true);
    REQUIRE(up.what == route::kind::channel);
    CHECK(up.channel_id == id);

    auto status_of = [](const std::string& t, bool upgrade = true) {
        const route r = route_target(t, upgrade);
        return r.what == route::kind::error ? r.status : 0u;
    };
    const std::string base = "/ws/channels/" + id;
    CHECK(status_of(base + "?dir=read") == 400);                         // missing key
    CHECK(status_of(base + "?key=" + key) == 400);                       // missing dir
    CHECK(status_of(base + "?key=" + key + "&dir=both") == 400);         // wrong direction
    CHECK(status_of(base + "?key=" + key + "&key=" + key + "&dir=read") == 400);
    CHECK(status_of(base + "?key=%zz&dir=read") == 400);
    CHECK(status_of(base + "?key=%4&dir=read") == 400);
    CHECK(status_of(base + "?key&dir=read") == 400);
    CHECK(status_of("/ws/channels/?key=" + key + "&dir=read") == 400);  // no id
    CHECK(status_of("/ws/channels/not-a-uuid?key=" + key + "&dir=read") == 404);
    CHECK(status_of(base + "?key=not-a-key&dir=read") == 404);
    CHECK(status_of(base + "/more?key=" + key + "&dir=read") == 404);
    CHECK(status_of(base + "?key=" + key + "&dir=read", false) == 404);  // not an upgrade
    CHECK(status_of(base + "?key=" + key + "&dir=read&pad=" + std::string(3000, 'x')) == 414);
    CHECK(status_of("relative") == 400);
    CHECK(status_of("/nowhere") == 404);
    CHECK(route_target("/status", false).what == route::kind::status);
    CHECK(route_target("/", true).what == route::kind::worker);
    CHECK(route_target("/?token=x", true).what == route::kind::worker);
    CHECK(route_target("/otel", true).what == route::kind::otel);
}

TEST_CASE("close reasons: cut at a character boundary, always UTF-8", "[engine][protocol]") {
    CHECK(close_reason_text("stream_complete") == "stream_complete");
    // Regression (review): "aborted: " + a reason of multi-byte characters was cut at byte 123,
    // inside a character; Beast (and ws in Node) then fail the connection on the invalid close
    // frame, so a socket reader saw a lost writer instead of the abort and its reason.
    std::string e_acute;
    for (int i = 0; i < 100; ++i) e_acute += "\xc3\xa9";
    const std::string r = close_reason_text("aborted: x" + e_acute);
    CHECK(r.size() == 122);  // 10 + 56 * 2: the 57th character would end at byte 124
    CHECK(valid_utf8(r));
    CHECK(close_reason_text(std::string(200, 'x')).size() == 123);
    CHECK(close_reason_text("a\xff" "b") == "a?b");
    CHECK(to_valid_utf8("a\xe0" "b") == "a\xef\xbf\xbd" "b");
    CHECK(valid_utf8("\xf0\x9f\x98\x80"));
    CHECK_FALSE(valid_utf8("\xed\xa0\x80"));  // a surrogate
    CHECK_FALSE(valid_utf8("\xc0\x80"));      // overlong
}

namespace {
struct recording_writer {
    std::size_t max_rec = 4;
    int room = 1000;
    std::vector<std::pair<bool, std::string>> out;
    std::size_t max_record() const { return max_rec; }
    std::error_code try_write(std::span<const std::byte> b) {
        if (room-- <= 0) return shmchan::errc::would_block;
        out.emplace_back(false, std::string(reinterpret_cast<const char*>(b.data()), b.size()));
        return {};
    }
    std::error_code send_message(std::string_view t, std::chrono::nanoseconds) {
        if (t.size() > max_rec) return shmchan::errc::too_large;
        if (room-- <= 0) return shmchan::errc::timeout;
        out.emplace_back(true, std::string(t));
        return {};
    }
};
std::span<const std::byte> bytes_of(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }
}  // namespace

TEST_CASE("channel frames: split into records, resumed after a full ring, ends and aborts", "[engine][protocol]") {
    recording_writer w;
    w.room = 2;
    std::size_t off = 0;
    CHECK(feed_frame(w, false, bytes_of("abcdefghij"), off) == shmchan::errc::would_block);
    CHECK(off == 8);
    w.room = 10;
    CHECK_FALSE(feed_frame(w, false, bytes_of("abcdefghij"), off));
    CHECK(off == 10);
    CHECK(w.out == std::vector<std::pair<bool, std::string>>{{false, "abcd"}, {false, "efgh"}, {false, "ij"}});
    off = 0;
    CHECK(feed_frame(w, true, bytes_of("too long"), off) == shmchan::errc::too_large);
    // Regression (fuzz_channel_frames): Beast 1.74 delivers a fragmented text message whose
    // last fragment is empty without its final UTF-8 check; the engine refuses it (1007).
    off = 0;
    CHECK(feed_frame(w, true, bytes_of("a\xe0"), off) == std::errc::illegal_byte_sequence);
    CHECK(off == 0);

    CHECK(socket_writer_outcome(true, 1000, "stream_complete", "").clean);
    CHECK(socket_writer_outcome(false, 1000, "", "broken pipe").clean);  // Node: close, then drop
    CHECK(socket_writer_outcome(true, close_aborted, "aborted: disk full", "").abort_reason == "disk full");
    CHECK(socket_writer_outcome(true, 1011, "oops", "").abort_reason == "socket writer closed with code 1011: oops");
    CHECK(socket_writer_outcome(false, 0, "", "end of stream").abort_reason == "socket writer disconnected: end of stream");
}
