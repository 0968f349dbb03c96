// The shmchan command-line tool, as a user runs it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iterator>
#include <thread>
#include <unistd.h>

#include "shmchan/engine.hpp"
#include "shmchan/shmchan.hpp"
#include "shmchan/testkit/checksum.hpp"
#include "support/helpers.hpp"
#include "support/process.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::child;
using shmchan::test::cli_path;
using shmchan::test::peer_path;

namespace {
std::string temp_path(const std::string& tag) {
    return "/tmp/shmchan-test-" + std::to_string(::getpid()) + "-" + tag;
}
std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}
void write_file(const std::string& path, std::size_t n) {
    std::vector<std::byte> v(n);
    fill_pattern(v, 0);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(v.data()),
                                                static_cast<std::streamsize>(n));
}
}  // namespace

TEST_CASE("shmchan send | shmchan recv -o copies a file exactly", "[cli]") {
    const std::string in = temp_path("in"), out = temp_path("out");
    write_file(in, (5u << 20) + 77);
    child send = child::spawn({cli_path(), "send", "--capacity", "64K", "--chunk", "4K", in});
    const std::string ref = send.read_line();
    REQUIRE(is_channel_ref(nlohmann::json::parse(ref)));
    child recv = child::spawn({cli_path(), "recv", "-o", out, ref});
    CHECK(recv.wait() == 0);
    CHECK(send.wait() == 0);  // exits once the reader consumed everything
    CHECK(slurp(out) == slurp(in));
    CHECK_FALSE(shmchan::test::segment_exists(channel_ref::parse(ref).channel_id));
    std::remove(in.c_str());
    std::remove(out.c_str());
}

TEST_CASE("shmchan recv takes the ref from stdin and writes to stdout", "[cli]") {
    const std::string in = temp_path("in2");
    write_file(in, 100000);
    child send = child::spawn({cli_path(), "send", in});
    const std::string ref = send.read_line();
    child recv = child::spawn({cli_path(), "recv", "-"}, true);
    recv.write_stdin(ref + "\n");
    recv.close_stdin();
    CHECK(recv.read_all() == slurp(in));
    CHECK(recv.wait() == 0);
    CHECK(send.wait() == 0);
    std::remove(in.c_str());
}

TEST_CASE("shmchan recv: bad refs and broken streams exit non-zero with the cause", "[cli][errors]") {
    SECTION("malformed ref") {
        child recv = child::spawn({cli_path(), "recv", "{not json"}, false, true);
        const std::string err = recv.read_all();
        CHECK(recv.wait() == 1);
        CHECK(err.find("invalid_ref") != std::string::npos);
        CHECK(std::count(err.begin(), err.end(), '\n') == 1);  // one line
    }
    SECTION("a writer ref given to recv") {
        channel ch = create_channel();
        child recv = child::spawn({cli_path(), "recv", ch.writer_ref.dump()}, false, true);
        CHECK(recv.read_all().find("wrong_direction") != std::string::npos);
        CHECK(recv.wait() == 1);
        CHECK_FALSE(ch.writer.close());
        CHECK(ch.reader.next().is_end());
    }
    SECTION("aborted stream") {
        channel ch = create_channel();
        REQUIRE_FALSE(ch.writer.write("some"));
        ch.writer.abort("producer crashed");
        child recv = child::spawn({cli_path(), "recv", ch.reader_ref.dump()}, false, true);
        const std::string out = recv.read_all();
        CHECK(recv.wait() == 1);
        CHECK(out.find("some") == 0);  // delivered bytes come first, on stdout
        CHECK(out.find("aborted") != std::string::npos);
        CHECK(out.find("producer crashed") != std::string::npos);
    }
    SECTION("writer killed") {
        channel ch = create_channel();
        child wr = child::spawn({peer_path(), "write", ch.writer_ref.dump(), "--size", "1000",
                                 "--pause-after", "1000"});
        REQUIRE(wr.read_line() == "READY 1000");
        child recv = child::spawn({cli_path(), "recv", "-o", "/dev/null", ch.reader_ref.dump()},
                                  false, true);
        std::this_thread::sleep_for(100ms);
        wr.kill(SIGKILL);
        const std::string err = recv.read_all();
        CHECK(recv.wait() == 1);
        CHECK(err.find("peer_lost") != std::string::npos);
        CHECK(err.find("after 1000 bytes") != std::string::npos);
    }
}

TEST_CASE("shmchan send fails when its reader dies", "[cli][errors]") {
    const std::string in = temp_path("in3");
    write_file(in, 20u << 20);
    child send = child::spawn({cli_path(), "send", "--capacity", "64K", in});
    const std::string ref = send.read_line();
    child rd = child::spawn({peer_path(), "read", ref, "--stop-after", "100000"});
    REQUIRE(rd.read_line().rfind("READY", 0) == 0);
    rd.kill(SIGKILL);
    CHECK(send.wait(30s) == 1);
    CHECK_FALSE(shmchan::test::segment_exists(channel_ref::parse(ref).channel_id));
    std::remove(in.c_str());
}

TEST_CASE("shmchan demo verifies its checksum", "[cli]") {
    child demo = child::spawn({cli_path(), "demo", "--size", "64M"});
    const std::string out = demo.read_all();
    CHECK(demo.wait() == 0);
    CHECK(out.find("verified") != std::string::npos);
    CHECK(out.find("GB/s") != std::string::npos);
}

TEST_CASE("shmchan usage errors exit 2", "[cli]") {
    child c = child::spawn({cli_path(), "frobnicate"}, false, true);
    CHECK(c.read_all().find("usage") != std::string::npos);
    CHECK(c.wait() == 2);
}

TEST_CASE("shmchan send --engine / recv --engine --transport: both paths copy exactly", "[cli][engine]") {
    engine_options eo;
    eo.port = 0;
    engine eng(eo);
    const std::string in = temp_path("in4"), out = temp_path("out4");
    write_file(in, (3u << 20) + 5);
    for (std::string t : {"shm", "socket", "auto"}) {
        child send = child::spawn({cli_path(), "send", "--engine", eng.url(), in});
        const std::string ref = send.read_line();
        REQUIRE(channel_ref::parse(ref).shm);
        child recv = child::spawn({cli_path(), "recv", "--engine", eng.url(), "--transport", t, "-o", out, ref});
        CHECK(recv.wait() == 0);
        CHECK(send.wait() == 0);
        CHECK(slurp(out) == slurp(in));
    }
    child bad = child::spawn({cli_path(), "send", "--engine", "ws://127.0.0.1:1", in}, false, true);
    CHECK(bad.read_all().find("engine_unreachable") != std::string::npos);
    CHECK(bad.wait() == 1);
    std::remove(in.c_str());
    std::remove(out.c_str());
}

TEST_CASE("shmchan send --readers 3: three recv processes each get the whole file", "[cli][readers]") {
    const std::string in = temp_path("in-r3");
    write_file(in, (3u << 20) + 5);
    child send = child::spawn({cli_path(), "send", "--capacity", "64K", "--readers", "3", in});
    std::vector<std::string> refs;
    for (int i = 0; i < 3; ++i) refs.push_back(send.read_line());
    std::vector<child> recvs;
    for (int i = 0; i < 3; ++i) {
        REQUIRE(is_channel_ref(nlohmann::json::parse(refs[i])));
        recvs.push_back(child::spawn({cli_path(), "recv", "-o", temp_path("out-r" + std::to_string(i)), refs[i]}));
    }
    CHECK(channel_ref::parse(refs[0]).channel_id == channel_ref::parse(refs[2]).channel_id);
    CHECK(refs[0] != refs[1]);  // a key each
    for (auto& r : recvs) CHECK(r.wait() == 0);
    CHECK(send.wait() == 0);
    for (int i = 0; i < 3; ++i) {
        CHECK(slurp(temp_path("out-r" + std::to_string(i))) == slurp(in));
        std::remove(temp_path("out-r" + std::to_string(i)).c_str());
    }
    CHECK_FALSE(shmchan::test::segment_exists(channel_ref::parse(refs[0]).channel_id));
    std::remove(in.c_str());
}

TEST_CASE("shmchan send --readers 2: a reader killed mid-stream is named, the other gets everything", "[cli][readers][errors]") {
    const std::string in = temp_path("in-rk"), out = temp_path("out-rk");
    write_file(in, 8u << 20);
    child send = child::spawn({cli_path(), "send", "--capacity", "64K", "--readers", "2", in}, false, true);
    const std::string ref0 = send.read_line(), ref1 = send.read_line();
    // Both read (an unclaimed reader holds the ring under block); one stops and is killed.
    child good = child::spawn({cli_path(), "recv", "-o", out, ref0});
    child rd = child::spawn({peer_path(), "read", ref1, "--stop-after", "100000"});
    REQUIRE(rd.read_line().rfind("READY", 0) == 0);
    rd.kill(SIGKILL);
    CHECK(good.wait(60s) == 0);
    const std::string said = send.read_all(60s);
    CHECK(said.find("reader 1 was lost") != std::string::npos);
    CHECK(said.find("reader 0") == std::string::npos);
    CHECK(send.wait(30s) == 1);
    CHECK(slurp(out) == slurp(in));
    std::remove(in.c_str());
    std::remove(out.c_str());
}

TEST_CASE("shmchan send --readers: bad counts are usage errors", "[cli][readers][errors]") {
    for (const char* n : {"0", "65", "x"}) {
        child send = child::spawn({cli_path(), "send", "--readers", n, "/dev/null"}, false, true);
        CHECK(send.wait() == 2);
    }
}

TEST_CASE("shmchan recv stops with one line and exit 1 when told of a gap (drop-oldest)", "[cli][readers][errors]") {
    channel_options o;
    o.capacity = 64 << 10;
    o.overflow = channel_options::overflow_policy::drop_oldest;
    channel ch = create_channel(o);
    const std::string out = temp_path("out-gap");
    child recv = child::spawn({cli_path(), "recv", "-o", out, ch.reader_ref.dump()}, false, true);
    std::vector<std::byte> b(1000);
    // It has joined (a drop-oldest reader starts at the next record) once it released one.
    REQUIRE(shmchan::test::eventually([&] {
        if (ch.writer.readers()[0].st == reader_status::state::reading && ch.writer.bytes_written() == 0)
            REQUIRE_FALSE(ch.writer.try_write(b));
        return ch.writer.readers()[0].released > 0;
    }));
    recv.kill(SIGSTOP);
    for (int i = 0; i < 1000; ++i) REQUIRE_FALSE(ch.writer.try_write(b));  // ~1 MB: far past the ring
    REQUIRE_FALSE(ch.writer.close());  // never waits, even for a stopped reader
    recv.kill(SIGCONT);
    const std::string said = recv.read_all(30s);
    INFO(said);
    CHECK(said.find("shmchan recv: data lost") == 0);
    CHECK(said.find("after 1000 bytes") != std::string::npos);
    CHECK(std::count(said.begin(), said.end(), '\n') == 1);
    CHECK(recv.wait() == 1);
    std::remove(out.c_str());
}
