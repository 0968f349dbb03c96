// The engine reading a socket writer's frames itself (src/engine/socket_to_ring.cpp), with
// frames written byte by byte as a client may send them: zero and random mask keys, fragmented
// messages with control frames between fragments, a frame's bytes in fragments, and each way
// of breaking the protocol, answered with its close code while nothing of it reaches the ring.
#include <catch2/catch.hpp>

#include <random>

#include "shmchan/engine.hpp"
#include "shmchan/shmchan.hpp"
#include "shmchan/worker.hpp"
#include "support/helpers.hpp"
#include "support/raw_client.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::quiet_engine;
using shmchan::test::raw_client;
using shmchan::test::via;

namespace {

// One client frame: FIN, opcode, the shortest length encoding, masked with `key`.
std::string frame(bool fin, unsigned op, const std::string& payload, std::uint32_t key = 0x11223344) {
    std::string f;
    f += static_cast<char>((fin ? 0x80 : 0) | op);
    const std::uint64_t n = payload.size();
    if (n < 126) {
        f += static_cast<char>(0x80 | n);
    } else if (n <= 0xffff) {
        f += static_cast<char>(0x80 | 126);
        f += static_cast<char>(n >> 8);
        f += static_cast<char>(n);
    } else {
        f += static_cast<char>(0x80 | 127);
        for (int i = 7; i >= 0; --i) f += static_cast<char>(n >> (8 * i));
    }
    const char k[4] = {static_cast<char>(key >> 24), static_cast<char>(key >> 16), static_cast<char>(key >> 8), static_cast<char>(key)};
    f.append(k, 4);
    for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ k[i % 4]);
    return f;
}
std::string close_frame(std::uint16_t code) {
    return frame(true, 0x8, std::string{static_cast<char>(code >> 8), static_cast<char>(code)});
}

struct setup {
    engine eng{quiet_engine()};
    worker w{eng.url()};
    channel ch = w.create_channel();
    reader rd = open_reader(ch.reader_ref, via(transport::shm, eng.url()));
    raw_client sock{shmchan::test::port_of(eng.url()),
                    "/ws/channels/" + ch.writer_ref.channel_id + "?key=" + ch.writer_ref.access_key + "&dir=write"};
    void send_raw(const std::string& wire) {
        boost::asio::write(boost::beast::get_lowest_layer(sock.ws).socket(), boost::asio::buffer(wire));
    }
};

// What the reader got until the end or an error: chunk bytes run together between messages.
struct received {
    std::vector<std::string> parts;  // "c:<chunk bytes>" or "m:<message>"
    item last;
};
received read_all(reader& rd) {
    received r;
    for (;;) {
        item it = rd.next(10s);
        if (it.is_chunk()) {
            if (r.parts.empty() || r.parts.back().rfind("c:", 0) != 0) r.parts.emplace_back("c:");
            r.parts.back() += it.text();
        } else if (it.is_message()) {
            r.parts.push_back("m:" + std::string(it.text()));
        } else {
            r.last = std::move(it);
            return r;
        }
    }
}

// Collects the payloads of the pongs the engine sends, as they are read.
void watch_pongs(raw_client& c, std::vector<std::string>& pongs) {
    c.ws.control_callback([&pongs](boost::beast::websocket::frame_type k, boost::beast::string_view p) {
        if (k == boost::beast::websocket::frame_type::pong) pongs.emplace_back(p);
    });
}

std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 g(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(g());
    return s;
}

}  // namespace

TEST_CASE("socket to ring: zero and random keys, fragments with a ping between them, all arrive as sent",
          "[engine][socket]") {
    setup s;
    REQUIRE(s.sock.open);
    std::vector<std::string> pongs;
    watch_pongs(s.sock, pongs);
    const std::string big = random_bytes(3 * 1024 * 1024 + 5, 1);  // above a record: several loans
    std::string wire = frame(true, 2, "zero-key ", 0);              // as shmchan's own writer sends it
    wire += frame(false, 2, "frag", 0xdeadbeef);                    // a binary message in three fragments
    wire += frame(true, 0x9, "are you there", 0x01020304);          // a ping between them
    wire += frame(false, 0, "men", 0x0badf00d);
    wire += frame(true, 0, "ted ", 0);
    wire += frame(false, 1, "a text ", 7);                          // a text message in two
    wire += frame(true, 0, "message", 9);
    wire += frame(true, 2, big, 0xa5a5a5a5);
    wire += frame(true, 2, "", 3);                                  // an empty binary message: nothing
    wire += close_frame(1000);
    s.send_raw(wire);
    CHECK(s.sock.next().what == raw_client::incoming::kind::closed);
    CHECK(s.sock.close_code() == 1000);
    CHECK(pongs == std::vector<std::string>{"are you there"});
    received r = read_all(s.rd);
    CHECK(r.last.is_end());
    REQUIRE(r.parts.size() == 3);
    CHECK(r.parts[0] == "c:zero-key fragmented ");
    CHECK(r.parts[1] == "m:a text message");
    CHECK((r.parts[2] == "c:" + big));
}

TEST_CASE("socket to ring: after large frames, pings, small messages and fragments still arrive as sent",
          "[engine][socket]") {
    // After a large frame the engine reads the next header on its own or behind the payload
    // (no more than a header's worth): control frames, small frames and fragments must still
    // come through whole, in order.
    setup s;
    REQUIRE(s.sock.open);
    std::vector<std::string> pongs;
    watch_pongs(s.sock, pongs);
    const std::string big1 = random_bytes(100000, 2), big2 = random_bytes(70000, 3), big3 = random_bytes(80000, 4);
    std::string wire = frame(true, 2, big1, 0);
    wire += frame(true, 0x9, std::string(125, 'p'), 0x01020304);  // the longest ping, right after it
    wire += frame(true, 1, "small text", 5);
    wire += frame(true, 2, big2, 0xa5a5a5a5);
    wire += frame(false, 2, big3, 0x0badf00d);  // a large first fragment
    wire += frame(true, 0x9, "", 0);
    wire += frame(true, 0, "tail", 0x12345678);
    for (int i = 0; i < 3; ++i) wire += frame(true, 2, "x", 0);
    wire += close_frame(1000);
    s.send_raw(wire);
    CHECK(s.sock.next().what == raw_client::incoming::kind::closed);
    CHECK(s.sock.close_code() == 1000);
    CHECK(pongs == std::vector<std::string>{std::string(125, 'p'), ""});
    received r = read_all(s.rd);
    CHECK(r.last.is_end());
    REQUIRE(r.parts.size() == 3);
    CHECK((r.parts[0] == "c:" + big1));
    CHECK(r.parts[1] == "m:small text");
    CHECK((r.parts[2] == "c:" + big2 + big3 + "tail" + "xxx"));
}

TEST_CASE("socket to ring: a frame's bytes in fragments fill its one loan", "[engine][socket][frames]") {
    setup s;
    REQUIRE(s.sock.open);
    std::string wire = frame(true, 1, R"({"shmchan_frame":{"size":10,"pts":7}})");
    wire += frame(false, 2, "01234", 0);
    wire += frame(true, 0x9, "", 5);
    wire += frame(true, 0, "56789", 0x77777777);
    wire += close_frame(1000);
    s.send_raw(wire);
    CHECK(s.sock.next().what == raw_client::incoming::kind::closed);
    item f = s.rd.next(10s);
    REQUIRE(f.is_frame());
    CHECK(f.text() == "0123456789");
    CHECK(f.meta().pts == 7);
    CHECK(s.rd.next(10s).is_end());
}

TEST_CASE("socket to ring: each protocol violation closes with its code, nothing of it reaches the ring",
          "[engine][socket][hostile]") {
    struct bad {
        const char* what;
        std::string wire;
        std::uint16_t code;
        const char* reason;  // in the reader's abort reason
    };
    std::string unmasked = frame(true, 2, "abc");
    unmasked[1] = static_cast<char>(unmasked[1] & 0x7f);
    unmasked.erase(2, 4);
    std::string not_shortest = frame(true, 2, "abc");
    not_shortest = std::string("\x82\xfe\x00\x03", 4) + not_shortest.substr(2);  // 3 in a 16-bit length
    const std::vector<bad> cases = {
        {"a continuation outside a message", frame(true, 0, "abc"), 1002, "a continuation frame outside a fragmented message"},
        {"a new message inside a fragmented one", frame(false, 2, "ab") + frame(true, 2, "cd"), 1002, "a new message inside a fragmented one"},
        {"a length not in its shortest form", not_shortest, 1002, "a frame length not in its shortest form"},
        {"an unmasked frame", unmasked, 1002, "an unmasked client frame"},
        {"reserved bits", std::string("\xc2\x80\0\0\0\0", 6), 1002, "a frame with reserved bits set"},
        {"a close inside a fragmented message", frame(false, 2, "ab") + close_frame(1000), 1000,
         "the stream ended inside a fragmented message"},
        // The header alone is refused: its payload is never sent.
        {"one frame above the message limit", std::string("\x82\xff\0\0\0\0\x01\0\0\x01\0\0\0\0", 14), 1009,
         "above the engine's limit"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        setup s;
        REQUIRE(s.sock.open);
        s.send_raw(frame(true, 2, "before") + c.wire);
        CHECK(s.sock.next().what == raw_client::incoming::kind::closed);
        CHECK(s.sock.close_code() == c.code);
        received r = read_all(s.rd);
        CHECK(r.parts == std::vector<std::string>{"c:before"});
        REQUIRE(r.last.is_error());
        CHECK(r.last.error() == errc::aborted);
        CHECK(s.rd.abort_reason().find(c.reason) != std::string::npos);
    }
}

TEST_CASE("socket to ring: after its close the engine drops what the writer still sends, until the writer's close",
          "[engine][socket][hostile]") {
    setup s;
    REQUIRE(s.sock.open);
    // A frame bigger than its meta announced: refused at its header (1008); the writer goes on
    // sending a megabyte before it reads the close. The engine reads and drops it, and answers
    // the writer's close.
    s.send_raw(frame(true, 1, R"({"shmchan_frame":{"size":4}})") + frame(true, 2, "12345") +
               frame(true, 2, random_bytes(1 << 20, 2), 0));
    CHECK(s.sock.next().what == raw_client::incoming::kind::closed);
    CHECK(s.sock.close_code() == 1008);
    received r = read_all(s.rd);
    CHECK(r.parts.empty());
    REQUIRE(r.last.is_error());
    CHECK(s.rd.abort_reason().find("more bytes than its meta announced") != std::string::npos);
}
