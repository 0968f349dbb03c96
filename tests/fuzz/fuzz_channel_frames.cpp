// Fuzzes what a channel socket writer sends the engine, through Boost.Beast's own server-side
// WebSocket stream (over an in-memory stream, no network), into the engine's frame -> ring
// logic (feed_frame, socket_writer_outcome in src/engine/protocol.hpp) and a fake ring writer
// that is full whenever the input says so.
//
// Input: byte 0 sets the ring's record size (1..256), byte 1 how often the ring is full; then
// a script of frames the client sends, masked as a client must:
//   op % 8:  0 binary   1 text   2 fragmented message   3 ping   4 close with any code
//            5 raw bytes (anything, unmasked)   6 close 1000   7 close 4000 "aborted: <reason>"
// Checked:
//   - the records written are exactly the messages Beast delivered, in order (binary bytes
//     split at the record size, each text message one record), across any number of
//     "ring full" retries; a text message that is not UTF-8 is refused (Beast 1.74 lets one
//     through when a fragmented message ends with an empty frame: found by this fuzzer);
//   - the stream ends cleanly only on close 1000; any other end is an abort with a reason (a
//     shmchan abort's own reason passes unchanged, even empty);
//   - the engine's UTF-8 check agrees with Beast's on every payload; close_reason_text gives
//     valid UTF-8 of at most 123 bytes (the input itself when that already is), to_valid_utf8
//     valid UTF-8 (the input itself when valid).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/detail/utf8_checker.hpp>

#include "engine/protocol.hpp"
#include "shmchan/error.hpp"

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace d = shmchan::detail;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_channel_frames: %s\n", what);
    std::abort();
}

struct record {
    bool text;
    std::string bytes;
    bool operator==(const record&) const = default;
};

// A ring writer that is full every so often (budget 0: would_block until room comes).
struct fake_writer {
    std::size_t max_rec;
    unsigned budget;
    std::vector<record> out;
    std::size_t max_record() const { return max_rec; }
    std::error_code try_write(std::span<const std::byte> b) {
        if (b.size() > max_rec) fail("a binary record above the record size");
        if (b.empty()) fail("an empty binary record");
        if (budget == 0) return shmchan::errc::would_block;
        --budget;
        out.push_back({false, std::string(reinterpret_cast<const char*>(b.data()), b.size())});
        return {};
    }
    std::error_code send_message(std::string_view t, std::chrono::nanoseconds) {
        if (t.size() > max_rec) return shmchan::errc::too_large;
        if (budget == 0) return shmchan::errc::timeout;
        --budget;
        out.push_back({true, std::string(t)});
        return {};
    }
};

// Binary pieces merged, empty binary messages dropped: what a reader of the ring sees.
std::vector<record> flatten(const std::vector<record>& in) {
    std::vector<record> out;
    for (const auto& r : in) {
        if (!r.text && r.bytes.empty()) continue;
        if (!r.text && !out.empty() && !out.back().text) out.back().bytes += r.bytes;
        else out.push_back(r);
    }
    return out;
}

struct input {
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

// One client frame: FIN, opcode, masked payload.
void frame(std::string& wire, bool fin, unsigned opcode, const std::string& payload, std::uint8_t maskseed) {
    wire += static_cast<char>((fin ? 0x80 : 0) | opcode);
    const std::size_t n = payload.size();
    if (n < 126) {
        wire += static_cast<char>(0x80 | n);
    } else {
        wire += static_cast<char>(0x80 | 126);
        wire += static_cast<char>(n >> 8);
        wire += static_cast<char>(n & 0xff);
    }
    const std::uint8_t mask[4] = {maskseed, static_cast<std::uint8_t>(maskseed * 7 + 1), 0x5a, 0xa5};
    for (int i = 0; i < 4; ++i) wire += static_cast<char>(mask[i]);
    for (std::size_t i = 0; i < n; ++i) wire += static_cast<char>(payload[i] ^ static_cast<char>(mask[i % 4]));
}

void check_text_helpers(const std::string& s) {
    const bool beast_ok = websocket::detail::check_utf8(s.data(), s.size());
    if (d::valid_utf8(s) != beast_ok) fail("valid_utf8 disagrees with Beast's UTF-8 check");
    const std::string r = d::close_reason_text(s);
    if (r.size() > d::max_close_reason || !d::valid_utf8(r)) fail("close_reason_text: too long or not UTF-8");
    if (beast_ok && s.size() <= d::max_close_reason && r != s) fail("close_reason_text changed a valid short reason");
    const std::string v = d::to_valid_utf8(s);
    if (!d::valid_utf8(v)) fail("to_valid_utf8 gave invalid UTF-8");
    if (beast_ok && v != s) fail("to_valid_utf8 changed valid UTF-8");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    input in{data, size};
    fake_writer w{std::size_t{1} + in.byte(), 0, {}};
    const std::uint8_t fullness = in.byte();

    std::string wire;
    while (in.n) {
        const std::uint8_t op = in.byte();
        const std::uint8_t seed = in.byte();
        switch (op % 8) {
            case 0:
            case 1: {
                const std::string payload = in.bytes(in.byte() * 3u);
                check_text_helpers(payload);
                frame(wire, true, op % 8 == 0 ? 2 : 1, payload, seed);
                break;
            }
            case 2: {
                const std::string a = in.bytes(in.byte()), b = in.bytes(in.byte());
                frame(wire, false, (seed & 1) ? 1 : 2, a, seed);
                frame(wire, true, 0, b, seed);
                break;
            }
            case 3: frame(wire, true, 9, in.bytes(in.byte() % 126), seed); break;
            case 4: {
                std::string p;
                p += static_cast<char>(in.byte());
                p += static_cast<char>(in.byte());
                p += in.bytes(in.byte() % 124);
                frame(wire, true, 8, p, seed);
                break;
            }
            case 5: wire += in.bytes(in.byte() % 16); break;
            case 6: frame(wire, true, 8, std::string("\x03\xe8", 2) + "stream_complete", seed); break;
            case 7: {
                const std::string why = in.bytes(in.byte() % 100);
                check_text_helpers(why);
                frame(wire, true, 8, std::string("\x0f\xa0", 2) + "aborted: " + why, seed);
                break;
            }
        }
    }

    boost::asio::io_context ioc;
    beast::test::stream server(ioc), client(ioc);
    server.connect(client);
    websocket::stream<beast::test::stream&> ws(server);
    http::request<http::empty_body> req(http::verb::get, "/ws/channels/x?key=k&dir=write", 11);
    req.set(http::field::host, "localhost");
    req.set(http::field::upgrade, "websocket");
    req.set(http::field::connection, "upgrade");
    req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
    req.set(http::field::sec_websocket_version, "13");
    beast::error_code ec;
    ws.accept(req, ec);
    if (ec) fail("handshake failed");
    ws.read_message_max(1u << 16);
    server.append(wire);
    server.close_remote();  // the client is done: EOF after its bytes

    std::vector<record> delivered;
    unsigned room = fullness;
    for (int messages = 0;; ++messages) {
        if (messages > 100000) fail("Beast delivers messages without end");
        beast::flat_buffer buf;
        ws.read(buf, ec);
        if (ec) {
            const auto& r = ws.reason();
            const std::string reason(r.reason.c_str());
            const auto out = d::socket_writer_outcome(ec == websocket::error::closed, r.code, reason, ec.message());
            if (out.clean != (r.code == 1000)) fail("a clean end without close 1000, or close 1000 not clean");
            const bool shmchan_abort =
                ec == websocket::error::closed && r.code == d::close_aborted && reason.rfind("aborted: ", 0) == 0;
            if (!out.clean && shmchan_abort && out.abort_reason != reason.substr(9))
                fail("a shmchan abort's reason was not passed on unchanged");
            if (!out.clean && !shmchan_abort && out.abort_reason.empty()) fail("an abort without a reason");
            break;
        }
        const auto cd = buf.cdata();
        const std::string msg(static_cast<const char*>(cd.data()), cd.size());
        const bool text = ws.got_text();
        if (text && !d::valid_utf8(msg)) {
            // Beast 1.74 skips its final UTF-8 check when a fragmented text message ends with
            // an empty frame; the engine must refuse what slips through (and write nothing).
            std::size_t off = 0;
            w.budget = 1;
            const auto e = d::feed_frame(w, true, std::span(reinterpret_cast<const std::byte*>(msg.data()), msg.size()), off);
            if (e != std::errc::illegal_byte_sequence || off != 0) fail("a text frame that is not UTF-8 was not refused");
            break;
        }
        delivered.push_back({text, msg});
        std::size_t off = 0;
        std::error_code e;
        for (int tries = 0;; ++tries) {
            if (tries > 1 << 20) fail("feed_frame makes no progress");
            w.budget = room % 5;
            room = room * 13 + 7;
            e = d::feed_frame(w, text, std::span(reinterpret_cast<const std::byte*>(msg.data()), msg.size()), off);
            if (e != shmchan::errc::would_block && e != shmchan::errc::timeout) break;
        }
        if (e == shmchan::errc::too_large) {
            if (!text || msg.size() <= w.max_rec) fail("too_large for what fits");
            delivered.pop_back();  // the engine fails the stream here (close 1009)
            break;
        }
        if (e) fail("feed_frame failed");
        if (off != msg.size() && !(text && msg.empty())) fail("feed_frame did not take the whole frame");
    }
    if (flatten(w.out) != flatten(delivered)) fail("the ring does not hold exactly what the socket delivered");
    return 0;
}
