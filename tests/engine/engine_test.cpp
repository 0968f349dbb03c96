// The engine and the C++ worker: the worker protocol, channels created through the engine,
// both transports, and the errors a socket user can meet.
#include <catch2/catch.hpp>

#include <csignal>
#include <future>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>

#include "shmchan/admin.hpp"
#include "shmchan/engine.hpp"
#include "shmchan/shmchan.hpp"
#include "shmchan/worker.hpp"
#include "support/helpers.hpp"
#include "support/proc_stats.hpp"
#include "support/process.hpp"

using namespace shmchan;
using shmchan::test::pattern_sum;
using shmchan::test::thrown;
using namespace std::chrono_literals;
using shmchan::test::eventually;
using shmchan::test::quiet_engine;
using shmchan::test::via;
using json = nlohmann::json;

namespace {
template <class F>
std::string invocation_code(F&& f) {
    try {
        f();
    } catch (const invocation_error& e) {
        return e.code();
    }
    return "none";
}
// files::process: the seed's function, in C++ (bytes and checksum of the reader's stream).
json files_process(invocation& call) {
    stream_checksum sum;
    for (auto chunk : call.reader("reader").chunks()) sum.update(chunk);
    if (auto e = call.reader("reader").status())
        throw error(static_cast<errc>(e.value()), "reading failed: " + e.message());
    return {{"bytes", sum.bytes()}, {"checksum", sum.value()}, {"filename", call.input().value("filename", "")}};
}
}  // namespace

TEST_CASE("engine: functions are registered, triggered, and fail with clear codes", "[engine]") {
    engine eng(quiet_engine());
    worker callee(eng.url());
    worker caller(eng.url());
    callee.register_function("math::add", [](invocation& c) {
        return json{{"sum", c.input().at("a").get<int>() + c.input().at("b").get<int>()}};
    });
    callee.register_function("boom", [](invocation&) -> json { throw std::runtime_error("kaput"); });
    callee.register_function("needs::reader", [](invocation& c) -> json {
        c.reader("reader");  // the input has no ref there
        return json{};
    });
    std::promise<void> slow_release;
    auto slow_gate = slow_release.get_future().share();
    callee.register_function("slow", [slow_gate](invocation&) {
        slow_gate.wait();
        return json{};
    });
    std::promise<json> fired;
    callee.register_function("fire", [&fired](invocation& c) {
        fired.set_value(c.input());
        return json{};
    });
    REQUIRE(eventually([&] {
        try {
            return caller.trigger({"math::add", {{"a", 2}, {"b", 3}}}) == json{{"sum", 5}};
        } catch (const invocation_error&) {
            return false;  // registration still on its way
        }
    }));
    CHECK(invocation_code([&] { caller.trigger({"no::such"}); }) == "function_not_found");
    CHECK(invocation_code([&] { caller.trigger({"boom"}); }) == "handler_error");
    CHECK(invocation_code([&] { caller.trigger({"needs::reader", {{"x", 1}}}); }) == "invalid_argument");
    CHECK(invocation_code([&] { caller.trigger({"math::add", {{"a", "x"}}}); }) == "handler_error");
    CHECK(invocation_code([&] { caller.trigger({"slow", json::object(), 200ms}); }) == "timeout");
    slow_release.set_value();

    caller.trigger_void("fire", {{"x", 1}});
    auto f = fired.get_future();
    REQUIRE(f.wait_for(5s) == std::future_status::ready);
    CHECK(f.get() == json{{"x", 1}});
    CHECK(eng.connected_workers() == 2);
}

TEST_CASE("engine: a worker process killed mid-invocation fails the caller at once", "[engine][fault]") {
    engine eng(quiet_engine());
    shmchan::test::child w = shmchan::test::child::spawn({SHMCHAN_TEST_WORKER, eng.url(), "hang"});
    REQUIRE(w.read_line() == "READY");
    worker caller(eng.url());
    auto pending = std::async(std::launch::async, [&] {
        return invocation_code([&] { caller.trigger({"test::hang", json::object(), 20s}); });
    });
    std::this_thread::sleep_for(300ms);
    w.kill(SIGKILL);
    REQUIRE(pending.wait_for(10s) == std::future_status::ready);
    CHECK(pending.get() == "worker_disconnected");
    CHECK(eventually([&] { return eng.connected_workers() == 1; }));
}

TEST_CASE("engine: the seed flow, shared memory and socket, checksums equal", "[engine]") {
    engine eng(quiet_engine());
    const std::uint64_t size = 48ull << 20;
    for (transport t : {transport::shm, transport::socket}) {
        worker_options wo;
        wo.via = t;
        worker callee(eng.url(), wo);
        worker caller(eng.url(), wo);
        callee.register_function("files::process", files_process);
        std::this_thread::sleep_for(100ms);
        channel ch = caller.create_channel();
        REQUIRE(ch.reader_ref.shm);  // engine channels carry the shared-memory extension
        std::error_code werr;
        std::thread producer([&] {
            std::vector<std::byte> buf(1 << 20);
            for (std::uint64_t off = 0; off < size && !werr; off += buf.size()) {
                fill_pattern(buf, off);
                werr = ch.writer.write(buf);
            }
            if (!werr) werr = ch.writer.close();
        });
        json r = caller.trigger({"files::process", {{"filename", "big.bin"}, {"reader", ch.reader_ref}}, 120s});
        producer.join();
        CHECK_FALSE(werr);
        CHECK(r["bytes"] == size);
        CHECK(r["checksum"] == pattern_sum(size));
        CHECK(r["filename"] == "big.bin");
    }
    CHECK(eventually([&] { return eng.live_channels() == 0; }));  // both finished: removed
}

TEST_CASE("engine: a writer ref passed to a function streams the reply back", "[engine]") {
    engine eng(quiet_engine());
    worker callee(eng.url());
    worker caller(eng.url());
    callee.register_function("echo::upper", [](invocation& c) {
        std::string s = c.input().at("text");
        for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        auto& w = c.writer("reply");
        if (auto e = w.send_message("begin")) throw error(static_cast<errc>(e.value()), "send");
        if (auto e = w.write(s)) throw error(static_cast<errc>(e.value()), "write");
        if (auto e = w.close()) throw error(static_cast<errc>(e.value()), "close");
        return json{{"sent", s.size()}};
    });
    std::this_thread::sleep_for(100ms);
    for (transport t : {transport::shm, transport::socket}) {
        channel ch = caller.create_channel();
        reader r = open_reader(ch.reader_ref, via(t, eng.url()));
        json res = caller.trigger({"echo::upper", {{"text", "hello"}, {"reply", ch.writer_ref}}});
        CHECK(res["sent"] == 5);
        std::vector<std::string> got;
        r.on_message([&](std::string_view m) { got.emplace_back(m); });
        auto bytes = r.read_all();
        CHECK(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()) == "HELLO");
        CHECK(got == std::vector<std::string>{"begin"});
    }
}

TEST_CASE("socket transport: order, aborts and ends cross the engine both ways", "[engine]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    SECTION("shm writer -> socket reader, with an abort") {
        channel ch = w.create_channel(4);
        reader r = open_reader(ch.reader_ref, via(transport::socket, eng.url()));
        writer wr = open_writer(ch.writer_ref, via(transport::shm, eng.url()));
        REQUIRE_FALSE(wr.send_message("t1"));
        REQUIRE_FALSE(wr.write("b1"));
        REQUIRE_FALSE(wr.send_message("t2"));
        wr.abort("disk full");
        item a = r.next(10s);
        REQUIRE(a.is_message());
        CHECK(a.text() == "t1");
        item b = r.next(10s);
        REQUIRE(b.is_chunk());
        CHECK(b.text() == "b1");
        item c = r.next(10s);
        REQUIRE(c.is_message());
        CHECK(c.text() == "t2");
        item d = r.next(10s);
        REQUIRE(d.is_error());
        CHECK(d.error() == errc::aborted);
        CHECK(r.abort_reason() == "disk full");
    }
    SECTION("socket writer -> shm reader, clean end and abort") {
        for (bool abort : {false, true}) {
            channel ch = w.create_channel();
            reader r = open_reader(ch.reader_ref, via(transport::shm, eng.url()));
            writer wr = open_writer(ch.writer_ref, via(transport::socket, eng.url()));
            std::vector<std::byte> big(3u << 20);
            fill_pattern(big, 0);
            REQUIRE_FALSE(wr.write(big));
            REQUIRE_FALSE(wr.send_message("note"));
            if (abort) wr.abort("upstream died");
            else REQUIRE_FALSE(wr.close());
            std::vector<std::byte> got;
            std::vector<std::string> notes;
            r.on_message([&](std::string_view m) { notes.emplace_back(m); });
            const std::error_code e = r.read_all(got, 10s);
            CHECK(got == big);
            CHECK(notes == std::vector<std::string>{"note"});
            if (abort) {
                CHECK(e == errc::aborted);
                CHECK(r.abort_reason() == "upstream died");
            } else {
                CHECK_FALSE(e);
            }
        }
    }
    SECTION("socket writer -> socket reader") {
        channel ch = w.create_channel();
        reader r = open_reader(ch.reader_ref, via(transport::socket, eng.url()));
        writer wr = open_writer(ch.writer_ref, via(transport::socket, eng.url()));
        std::thread t([&] {
            std::vector<std::byte> buf(256 << 10);
            for (std::uint64_t off = 0; off < (32u << 20); off += buf.size()) {
                fill_pattern(buf, off);
                if (wr.write(buf)) return;
            }
            (void)wr.close();
        });
        stream_checksum sum;
        for (auto c : r.chunks(30s)) sum.update(c);
        t.join();
        CHECK_FALSE(r.status());
        CHECK(sum.bytes() == (32u << 20));
        CHECK(sum.value() == pattern_sum(32u << 20));
    }
}

TEST_CASE("socket transport: bad keys, wrong direction, second claim, engine down", "[engine][errors]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel();
    const auto sock = via(transport::socket, eng.url());

    channel_ref forged = ch.reader_ref;
    forged.access_key = "00000000-0000-4000-8000-000000000000";
    CHECK(thrown([&] { open_reader(forged, sock); }) == errc::segment_missing);  // 404
    channel_ref other = ch.reader_ref;
    other.access_key = ch.writer_ref.access_key;
    CHECK(thrown([&] { open_reader(other, sock); }) == errc::wrong_direction);  // 403
    channel_ref unknown = ch.reader_ref;
    unknown.channel_id = "00000000-0000-4000-8000-000000000000";
    CHECK(thrown([&] { open_reader(unknown, sock); }) == errc::segment_missing);

    reader first = open_reader(ch.reader_ref, sock);
    reader second = open_reader(ch.reader_ref, sock);  // upgraded, then closed by the engine
    item it = second.next(5s);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::already_claimed);
    // The shared-memory path sees the same claim.
    CHECK(thrown([&] { open_reader(ch.reader_ref, via(transport::shm, eng.url())); }) == errc::already_claimed);

    // An engine that is not there.
    engine_options eo = quiet_engine();
    std::string dead_url;
    {
        engine gone(eo);
        dead_url = gone.url();
    }
    CHECK(thrown([&] { worker x(dead_url); }) == errc::engine_unreachable);
    CHECK(thrown([&] { open_reader(ch.reader_ref, via(transport::socket, dead_url)); }) == errc::engine_unreachable);
    channel_ref remote = ch.reader_ref;
    remote.shm->host = "another-host";  // not here: automatic falls back to the socket
    CHECK(thrown([&] { open_reader(remote, via(transport::automatic, dead_url)); }) == errc::engine_unreachable);
    (void)ch.writer.close();
}

TEST_CASE("engine: a channel whose writer never comes expires, the reader learns it", "[engine]") {
    engine_options eo = quiet_engine();
    eo.channel_ttl = 300ms;
    engine eng(eo);
    worker w(eng.url());
    channel ch = w.create_channel();
    reader r = open_reader(ch.reader_ref, via(transport::shm, eng.url()));
    item it = r.next(10s);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::aborted);
    CHECK(r.abort_reason() == "channel expired: its writer never connected");
    CHECK(eventually([&] { return eng.live_channels() == 0; }));
    CHECK_FALSE(shmchan::test::segment_exists(ch.reader_ref.channel_id));
}

TEST_CASE("engine: the ends it bridges do not map their whole ring when claimed (its event loop would stall)", "[engine]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    channel ch = w.create_channel(1024);  // a 64 MiB ring
    channel_options shm_opts = via(transport::shm, eng.url());
    shm_opts.prefault = false;  // this test's own end maps nothing ahead either
    const long before = test::sample_process(::getpid()).rss_kib;
    reader r = open_reader(ch.reader_ref, shm_opts);
    writer wr = open_writer(ch.writer_ref, via(transport::socket, eng.url()));  // the engine's end writes
    REQUIRE_FALSE(wr.write("x"));
    item it = r.next(10s);
    REQUIRE(it.is_chunk());
    const long grew = test::sample_process(::getpid()).rss_kib - before;
    INFO("resident memory grew by " << grew << " KiB");
    CHECK(grew < 16 * 1024);  // the engine's end prefaulting its 64 MiB would show here
    REQUIRE_FALSE(wr.close());
    CHECK(r.next(10s).is_end());
}

TEST_CASE("engine: create_channel validates buffer_size", "[engine][errors]") {
    engine eng(quiet_engine());
    worker w(eng.url());
    CHECK(invocation_code([&] { w.create_channel(0); }) == "invalid_argument");
    CHECK(invocation_code([&] { w.create_channel(5000); }) == "invalid_argument");
    channel one = w.create_channel(1);
    CHECK(one.reader_ref.shm);
    (void)one.writer.close();
    (void)one.reader.next(1s);
}

TEST_CASE("engine: stopping finishes the ends nobody took, no segment is left", "[engine]") {
    std::string id;
    reader r;
    {
        engine eng(quiet_engine());
        worker w(eng.url());
        channel ch = w.create_channel();
        id = ch.reader_ref.channel_id;
        r = open_reader(ch.reader_ref, via(transport::shm, eng.url()));
    }  // engine and worker gone; the writer never came
    item it = r.next(10s);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::aborted);
    CHECK(r.abort_reason() == "engine stopped");
    CHECK_FALSE(shmchan::test::segment_exists(id));
}

TEST_CASE("engine restart: workers reconnect and register again, the old engine's channels fail clearly",
          "[engine][fault]") {
    using shmchan::test::child;
    // The engine is a real process, killed with SIGKILL and started again on the same port.
    auto start_engine = [](const std::string& listen) {
        auto e = child::spawn({shmchan::test::cli_path(), "engine", "--listen", listen});
        const std::string line = e.read_line(10s);
        REQUIRE(line.rfind("shmchan engine: listening on ws://", 0) == 0);
        return std::make_pair(std::move(e), line.substr(line.find("ws://")));
    };
    auto [eng, url] = start_engine("127.0.0.1:0");
    const std::string port = url.substr(url.rfind(':') + 1);

    worker_options wo;
    wo.reconnect_delay_max = 200ms;
    worker served(url, wo);
    served.register_function("echo", [](invocation& call) { return call.input(); });
    worker caller(url);
    REQUIRE(eventually([&] {
        try {
            return caller.trigger({"echo", json{{"n", 1}}, 2s}) == json{{"n", 1}};
        } catch (const invocation_error&) {
            return false;  // not registered yet
        }
    }));
    // A channel of the old engine, its reader to be opened through the socket later.
    auto ch = caller.create_channel();

    // An invocation pending when the engine dies fails with engine_unreachable, not a timeout.
    served.register_function("hang", [](invocation&) {
        std::this_thread::sleep_for(1500ms);
        return json();
    });
    REQUIRE(eventually([&] { return invocation_code([&] { caller.trigger({"nope", {}, 1s}); }) == "function_not_found"; }));
    std::this_thread::sleep_for(100ms);  // "hang" registered (the engine handles one connection's messages in order)
    auto pending = std::async(std::launch::async, [&] {
        try {
            caller.trigger({"hang", {}, 20s});
            return errc::ok;
        } catch (const error& e) {
            return e.kind();
        } catch (const invocation_error&) {
            return errc::protocol_error;
        }
    });
    std::this_thread::sleep_for(300ms);
    const auto killed_at = std::chrono::steady_clock::now();
    eng.kill(SIGKILL);
    REQUIRE(eng.wait(5s) == 128 + SIGKILL);
    REQUIRE(pending.wait_for(3s) == std::future_status::ready);
    CHECK(pending.get() == errc::engine_unreachable);
    REQUIRE(eventually([&] { return !served.connected() && !caller.connected(); }, 3s));
    INFO("loss noticed after " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - killed_at).count() << " ms");
    CHECK(thrown([&] { caller.trigger({"echo", {}, 1s}); }) == errc::engine_unreachable);
    CHECK(thrown([&] { caller.trigger_void("echo", {}); }) == errc::engine_unreachable);

    // A new engine on the same address: both workers come back by themselves, and "echo" is
    // served again without the worker's code doing anything.
    auto [eng2, url2] = start_engine("127.0.0.1:" + port);
    CHECK(url2 == url);
    REQUIRE(served.wait_connected(5s));
    REQUIRE(caller.wait_connected(5s));
    REQUIRE(eventually([&] {
        try {
            return caller.trigger({"echo", json{{"n", 2}}, 2s}) == json{{"n", 2}};
        } catch (const invocation_error&) {
            return false;
        }
    }));
    // The old engine's channel: the new engine does not know it.
    CHECK(thrown([&] { auto r = open_reader(ch.reader_ref, via(transport::socket, url)); }) == errc::segment_missing);
    // New channels work.
    auto ch2 = caller.create_channel();
    REQUIRE_FALSE(ch2.writer.write(std::string_view("after restart")));
    REQUIRE_FALSE(ch2.writer.close());
    auto r2 = open_reader(ch2.reader_ref, via(transport::socket, url));
    auto all = r2.read_all(5s);
    CHECK(std::string(reinterpret_cast<const char*>(all.data()), all.size()) == "after restart");
    eng2.kill(SIGTERM);
    CHECK(eng2.wait(10s) == 0);

    // The killed engine could not remove its channel's segment: `shmchan ls` shows it as an
    // orphan, which gc (and any engine starting 5 minutes later) removes. Remove it here.
    bool orphan = false;
    for (auto& s : list_segments())
        if (s.name == "/shmchan-" + ch.reader_ref.channel_id) orphan = s.orphaned;
    CHECK(orphan);
    ::shm_unlink(("/shmchan-" + ch.reader_ref.channel_id).c_str());
}
