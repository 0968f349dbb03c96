// Frames and held views over the socket path (src/socket_writer.cpp, src/socket_reader.cpp,
// src/engine/socket_to_ring.cpp): frames cross the engine whole, with their meta, in order with
// chunks and messages, in every combination of transports; a socket reader holds several items;
// a committed record leaves at once; a hostile socket writer's bad frames are refused.
#include <catch2/catch.hpp>

#include <future>
#include <thread>

#include "shmchan/engine.hpp"
#include "shmchan/shmchan.hpp"
#include "shmchan/worker.hpp"
#include "support/helpers.hpp"
#include "support/raw_client.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::quiet_engine;
using shmchan::test::via;

namespace {

std::vector<std::byte> pattern(std::size_t n, std::uint64_t off) {
    std::vector<std::byte> b(n);
    fill_pattern(b, off);
    return b;
}
std::vector<std::byte> copy(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

// Meta with every field set (the user header at its largest), and one with pts only.
struct sample_meta {
    std::vector<std::byte> user = pattern(frame_meta::max_user, 7);
    frame_meta full() const {
        frame_meta m;
        m.pts = 40'000'000;
        m.dts = -5;
        m.duration = 33'333'333;
        m.offset = 12;
        m.offset_end = 13;
        m.flags = frame_flags::keyframe | frame_flags::discont | 0x8000'0000u;
        m.user = user;
        return m;
    }
    static frame_meta pts_only() {
        frame_meta m;
        m.pts = 0;
        return m;
    }
};

void check_meta(const frame_meta& got, const frame_meta& want) {
    CHECK(got.pts == want.pts);
    CHECK(got.dts == want.dts);
    CHECK(got.duration == want.duration);
    CHECK(got.offset == want.offset);
    CHECK(got.offset_end == want.offset_end);
    CHECK(got.flags == want.flags);
    CHECK(copy(got.user) == copy(want.user));
}

// The mixed stream: a message, a chunk, a frame written, a frame loaned, an empty frame, a
// frame larger than the socket writer's 1 MiB chunks, a chunk, a message, the end. Runs on its
// own thread: no Catch assertions there (they are not thread-safe); returns what failed.
std::string write_mixed(writer& w, const sample_meta& s) {
    if (w.send_message("first")) return "send_message";
    if (w.write("chunk-1")) return "write";
    if (w.write_frame(pattern(300'000, 1), s.full())) return "write_frame";
    loan l = w.get_frame_loan(100'000);
    if (!l) return "get_frame_loan";
    fill_pattern(l.data(), 2);
    if (l.commit(sample_meta::pts_only())) return "commit";
    frame_meta gap;
    gap.flags = frame_flags::gap;
    if (w.write_frame({}, gap)) return "write_frame (empty)";
    if (w.write_frame(pattern(1'500'000, 3), s.full())) return "write_frame (1.5 MB)";
    if (w.write("chunk-2")) return "write 2";
    if (w.send_message("last")) return "send_message 2";
    if (w.close()) return "close";
    return {};
}
// Opens the gates and joins the writer thread however the test leaves (a failed REQUIRE must
// not leave a joinable thread behind).
struct writer_thread {
    std::vector<std::promise<void>> gates;
    std::vector<std::shared_future<void>> waits;  // the writer thread waits on these
    std::vector<bool> opened;
    std::thread t;
    explicit writer_thread(std::size_t n_gates) : gates(n_gates), opened(n_gates, false) {
        for (auto& g : gates) waits.push_back(g.get_future().share());
    }
    void open(std::size_t i) {
        if (!opened[i]) gates[i].set_value();
        opened[i] = true;
    }
    ~writer_thread() {
        for (std::size_t i = 0; i < gates.size(); ++i) open(i);
        if (t.joinable()) t.join();
    }
};
void read_mixed(reader& r, const sample_meta& s) {
    item a = r.next(10s);
    REQUIRE(a.is_message());
    CHECK(a.text() == "first");
    item b = r.next(10s);
    REQUIRE(b.is_chunk());
    CHECK(b.text() == "chunk-1");
    item c = r.next(10s);
    REQUIRE(c.is_frame());
    CHECK(copy(c.data()) == pattern(300'000, 1));
    check_meta(c.meta(), s.full());
    item d = r.next(10s);
    REQUIRE(d.is_frame());
    CHECK(copy(d.data()) == pattern(100'000, 2));
    check_meta(d.meta(), sample_meta::pts_only());
    item e = r.next(10s);
    REQUIRE(e.is_frame());
    CHECK(e.data().empty());
    CHECK(e.meta().flags == frame_flags::gap);
    CHECK(e.meta().pts == frame_meta::none);
    CHECK(e.meta().offset == frame_meta::no_offset);
    item f = r.next(10s);
    REQUIRE(f.is_frame());
    CHECK(f.data().size() == 1'500'000);
    CHECK(copy(f.data()) == pattern(1'500'000, 3));
    check_meta(f.meta(), s.full());
    item g = r.next(10s);
    REQUIRE(g.is_chunk());
    CHECK(g.text() == "chunk-2");
    item h = r.next(10s);
    REQUIRE(h.is_message());
    CHECK(h.text() == "last");
    CHECK(r.next(10s).is_end());
}

}  // namespace

TEST_CASE("socket frames: frames arrive whole with their meta, in order with chunks and messages", "[engine][frames]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    const sample_meta s;
    const auto [wt, rt] = GENERATE(std::pair{transport::socket, transport::shm}, std::pair{transport::shm, transport::socket},
                                   std::pair{transport::socket, transport::socket});
    INFO("writer " << (wt == transport::socket ? "socket" : "shm") << ", reader " << (rt == transport::socket ? "socket" : "shm"));
    channel ch = w.create_channel();  // a 4 MiB ring
    reader r = open_reader(ch.reader_ref, via(rt, eng.url()));
    writer wr = open_writer(ch.writer_ref, via(wt, eng.url()));
    std::string failed;
    writer_thread writing(0);
    writing.t = std::thread([&] { failed = write_mixed(wr, s); });
    read_mixed(r, s);
    writing.t.join();
    CHECK(failed == "");
}

TEST_CASE("socket frames: a frame above the engine's 16 MiB message limit crosses whole, above the ring's, too_large",
          "[engine][frames]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel(1024);  // a 64 MiB ring
    reader r = open_reader(ch.reader_ref, via(transport::socket, eng.url()));
    writer wr = open_writer(ch.writer_ref, via(transport::socket, eng.url()));
    // The socket writer knows the ring's limit (a little below half of it): the engine says it
    // at the upgrade.
    CHECK(wr.max_frame() > (16u << 20));
    CHECK(wr.max_frame() < (32u << 20));
    const std::size_t big = 20u << 20;
    const sample_meta s;
    std::error_code sent, refused, loan_refused, closed;
    std::string why;
    writer_thread t(0);
    t.t = std::thread([&] {
        sent = wr.write_frame(pattern(big, 9), s.full());
        refused = wr.write_frame(pattern(wr.max_frame() + 1, 0), s.full());
        why = wr.last_error();
        loan_refused = wr.get_frame_loan(wr.max_frame() + 1).error();
        closed = wr.close();
    });
    item f = r.next(30s);
    REQUIRE(f.is_frame());
    CHECK(f.data().size() == big);
    CHECK(copy(f.data()) == pattern(big, 9));
    check_meta(f.meta(), s.full());
    CHECK(r.next(30s).is_end());
    t.t.join();
    CHECK_FALSE(sent);
    CHECK(refused == errc::too_large);
    INFO(why);
    CHECK(why.find("create the channel with capacity >= 134217728") != std::string::npos);  // 64 MiB is not enough
    CHECK(loan_refused == errc::too_large);
    CHECK_FALSE(closed);
}

TEST_CASE("socket frames: a frame loan committed with a user header longer than max_user is refused and stays open",
          "[engine][frames][errors]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel();
    reader r = open_reader(ch.reader_ref, via(transport::shm, eng.url()));
    writer wr = open_writer(ch.writer_ref, via(transport::socket, eng.url()));
    const std::vector<std::byte> user = pattern(frame_meta::max_user + 1, 3);
    std::error_code refused, committed, closed;
    bool open_after = false, open_at_end = true;
    std::string why;
    writer_thread t(0);
    t.t = std::thread([&] {
        loan l = wr.get_frame_loan(50'000);
        if (!l) return;
        fill_pattern(l.data(), 4);
        frame_meta m;
        m.pts = 7;
        m.user = user;
        refused = l.commit(m);
        why = wr.last_error();
        open_after = static_cast<bool>(l);
        m.user = std::span(user).first(frame_meta::max_user);
        committed = l.commit(m);
        open_at_end = static_cast<bool>(l);
        closed = wr.close();
    });
    item f = r.next(30s);
    REQUIRE(f.is_frame());
    CHECK(copy(f.data()) == pattern(50'000, 4));  // every byte, from the loan refused once
    CHECK(f.meta().pts == 7);
    CHECK(copy(f.meta().user) == copy(std::span(user).first(frame_meta::max_user)));
    CHECK(r.next(30s).is_end());
    t.t.join();
    CHECK(refused == errc::invalid_argument);
    CHECK(why.find("at most 256") != std::string::npos);
    CHECK(open_after);
    CHECK_FALSE(committed);
    CHECK_FALSE(open_at_end);
    CHECK_FALSE(closed);
}

TEST_CASE("socket frames: a socket reader holds several items, released out of order and from another thread",
          "[engine][frames][held]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel();
    channel_options o = via(transport::socket, eng.url());
    o.max_held = 3;
    reader r = open_reader(ch.reader_ref, o);
    writer wr = open_writer(ch.writer_ref, via(transport::shm, eng.url()));
    const sample_meta s;
    for (int i = 0; i < 6; ++i) {
        frame_meta m = s.full();
        m.pts = i;
        if (i == 4) REQUIRE_FALSE(wr.write(pattern(5000, 100 + i)));
        else REQUIRE_FALSE(wr.write_frame(pattern(10'000 + i, 100 + i), m));
    }
    REQUIRE_FALSE(wr.close());

    item a = r.next(10s), b = r.next(10s), c = r.next(10s);
    REQUIRE((a.is_frame() && b.is_frame() && c.is_frame()));
    item full = r.next(10s);
    REQUIRE(full.is_error());
    CHECK(full.error() == errc::held_limit);
    // The middle one released on another thread, then the first: both slots come back.
    std::thread([&] { b.release(); }).join();
    CHECK(copy(a.data()) == pattern(10'000, 100));
    CHECK(a.meta().pts == 0);
    CHECK(copy(a.meta().user) == s.user);
    a.release();
    item d = r.next(10s);
    REQUIRE(d.is_frame());
    item e = r.next(10s);
    REQUIRE(e.is_chunk());
    CHECK(r.next(10s).error() == errc::held_limit);
    // What is still held is intact after later reads and releases.
    CHECK(copy(c.data()) == pattern(10'002, 102));
    CHECK(c.meta().pts == 2);
    CHECK(copy(c.meta().user) == s.user);
    std::thread([&] { c.release(); }).join();
    item f = r.next(10s);
    REQUIRE(f.is_frame());
    CHECK(copy(d.data()) == pattern(10'003, 103));
    CHECK(d.meta().pts == 3);
    CHECK(copy(d.meta().user) == s.user);
    CHECK(copy(e.data()) == pattern(5000, 104));
    CHECK(copy(f.data()) == pattern(10'005, 105));
    CHECK(f.meta().pts == 5);
    // Released out of order: the last first, from another thread.
    std::thread([&] { f.release(); }).join();
    d.release();
    CHECK(copy(e.data()) == pattern(5000, 104));
    e.release();
    CHECK(r.next(10s).is_end());
}

TEST_CASE("socket frames: a record committed by a socket writer leaves at once, while the writer waits",
          "[engine][frames][regression]") {
    // Issue 14: a socket writer that committed a loan (or wrote a message) and then paused kept
    // the record until its next call or close(); the reader waited meanwhile.
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel();
    reader r = open_reader(ch.reader_ref, via(transport::shm, eng.url()));
    writer wr = open_writer(ch.writer_ref, via(transport::socket, eng.url()));
    std::string failed;
    writer_thread t(3);
    const auto& g = t.waits;
    t.t = std::thread([&] {
        // A whole 1 MiB record is more than the client's write buffer: its tail needs the
        // writer's io to run after the first piece.
        loan l = wr.get_loan(wr.max_record());
        if (!l) return void(failed = "get_loan");
        fill_pattern(l.data(), 0);
        l.commit();
        g[0].wait_for(20s);  // paused: no call on the writer until the reader has the record
        loan f = wr.get_frame_loan(700 << 10);
        if (!f) return void(failed = "get_frame_loan");
        fill_pattern(f.data(), 1);
        if (f.commit(sample_meta::pts_only())) return void(failed = "commit");
        g[1].wait_for(20s);
        if (wr.send_message("note")) return void(failed = "send_message");
        g[2].wait_for(20s);
        if (wr.close()) failed = "close";
    });
    std::vector<std::byte> got;
    while (got.size() < (1u << 20)) {
        item it = r.next(10s);
        REQUIRE(it.is_chunk());
        got.insert(got.end(), it.data().begin(), it.data().end());
    }
    CHECK(got == pattern(1 << 20, 0));
    t.open(0);
    item f = r.next(10s);
    REQUIRE(f.is_frame());
    CHECK(copy(f.data()) == pattern(700 << 10, 1));
    t.open(1);
    item m = r.next(10s);
    REQUIRE(m.is_message());
    CHECK(m.text() == "note");
    t.open(2);
    CHECK(r.next(10s).is_end());
    t.t.join();
    CHECK(failed == "");
}

TEST_CASE("socket frames: bad frames from a hostile socket writer are refused with a clear close code",
          "[engine][frames][hostile]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    const auto port = shmchan::test::port_of(eng.url());
    struct bad_case {
        const char* what;
        std::vector<std::pair<std::string, bool>> messages;  // (payload, binary)
        std::uint16_t code;                                   // 0: the client closes with 1000
        const char* reason;                                   // the shared-memory reader's abort reason
    };
    const std::string ok_meta = R"({"shmchan_frame":{"size":10,"pts":1}})";
    const std::vector<bad_case> cases = {
        {"meta that is not JSON", {{R"({"shmchan_frame":{"size":1)", false}}, 1007, "frame meta is not JSON"},
        {"size of the wrong type", {{R"({"shmchan_frame":{"size":"10"}})", false}}, 1007, "frame size is not a non-negative integer"},
        {"unknown field", {{R"({"shmchan_frame":{"size":1,"colour":2}})", false}}, 1007, "unknown field"},
        {"user above 256 bytes", {{R"({"shmchan_frame":{"size":1,"user":")" + std::string(344 + 4, 'A') + "\"}}", false}}, 1007, "frame user above 256 bytes"},
        {"meta then a text message", {{ok_meta, false}, {"hello", false}}, 1008, "followed by a text message"},
        {"fewer bytes than announced", {{ok_meta, false}, {"12345", true}}, 1008, "announced 10 bytes, 5 came"},
        {"more bytes than announced", {{ok_meta, false}, {"0123456789A", true}}, 1008, "more bytes than its meta announced"},
        {"a frame larger than the ring", {{R"({"shmchan_frame":{"size":100000000}})", false}}, 1009, "exceeds the channel's largest frame"},
        {"meta then the end", {{ok_meta, false}}, 0, "the stream ended after a frame meta"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        channel ch = w.create_channel();
        reader rd = open_reader(ch.reader_ref, via(transport::shm, eng.url()));
        shmchan::test::raw_client sock(port, "/ws/channels/" + ch.writer_ref.channel_id + "?key=" +
                                                 ch.writer_ref.access_key + "&dir=write");
        REQUIRE(sock.open);
        CHECK(sock.response["X-Shmchan-Max-Frame"] != "");  // the ring's largest frame, for the writer
        REQUIRE(sock.send("before", true));
        for (const auto& [payload, binary] : c.messages) REQUIRE(sock.send(payload, binary));
        if (c.code) {
            CHECK(sock.next().what == shmchan::test::raw_client::incoming::kind::closed);
            CHECK(sock.close_code() == c.code);
        } else {
            sock.ws.close(boost::beast::websocket::close_code::normal);
        }
        item a = rd.next(10s);
        REQUIRE(a.is_chunk());
        CHECK(a.text() == "before");
        item b = rd.next(10s);  // nothing of the bad frame reached the ring
        REQUIRE(b.is_error());
        CHECK(b.error() == errc::aborted);
        CHECK(rd.abort_reason().find(c.reason) != std::string::npos);
    }
}
