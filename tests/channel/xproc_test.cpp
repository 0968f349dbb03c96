// Real processes on both ends (tests/peers/peer.cpp is the other process).
#include <catch2/catch.hpp>

#include <csignal>
#include <sstream>
#include <thread>

#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"
#include "support/process.hpp"

using namespace shmchan;
using shmchan::test::pattern_sum;
using namespace std::chrono_literals;
using shmchan::test::child;
using shmchan::test::peer_path;
using shmchan::test::segment_exists;
using clock_type = std::chrono::steady_clock;

namespace {
std::vector<std::string> words(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> w;
    for (std::string s; in >> s;) w.push_back(s);
    return w;
}
std::string hex(std::uint64_t v) {
    char b[32];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}
}  // namespace

TEST_CASE("1 GiB from a writer process to a reader process, checksum equal", "[xproc]") {
    const std::uint64_t size = std::uint64_t{1} << 30;
    channel ch = create_channel();
    const std::string id = ch.reader_ref.channel_id;
    child rd = child::spawn({peer_path(), "read", ch.reader_ref.dump()});
    child wr = child::spawn({peer_path(), "write", ch.writer_ref.dump(), "--size",
                             std::to_string(size), "--chunk", "1048576", "--loan"});
    auto end = words(rd.read_line(120s));
    REQUIRE(end.size() == 3);
    CHECK(end[0] == "END");
    CHECK(end[1] == std::to_string(size));
    CHECK(end[2] == hex(pattern_sum(size)));
    CHECK(wr.read_line() == "WROTE " + std::to_string(size));
    CHECK(wr.read_line() == "CLOSED");
    CHECK(wr.read_line() == "DRAINED");
    CHECK(rd.wait() == 0);
    CHECK(wr.wait() == 0);
    CHECK_FALSE(segment_exists(id));
}

TEST_CASE("this process writes, another reads (ref passed as JSON)", "[xproc]") {
    channel ch = create_channel(shmchan::test::opts(1 << 16, 50));
    child rd = child::spawn({peer_path(), "read", ch.reader_ref.dump()});
    const std::uint64_t size = 64ull << 20;
    std::vector<std::byte> buf(10007);  // odd chunk sizes: records and chunks do not line up
    for (std::uint64_t off = 0; off < size;) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
        fill_pattern(std::span(buf.data(), n), off);
        REQUIRE_FALSE(ch.writer.write(std::span(buf.data(), n)));
        off += n;
    }
    REQUIRE_FALSE(ch.writer.close());
    REQUIRE_FALSE(ch.writer.wait_drained(60s));
    CHECK(rd.read_line() == "END " + std::to_string(size) + " " + hex(pattern_sum(size)));
    CHECK(rd.wait() == 0);
}

TEST_CASE("many small text and binary records keep their order across processes", "[xproc]") {
    channel ch = create_channel(shmchan::test::opts(1 << 15, 50));
    const int count = 30000;
    child wr = child::spawn({peer_path(), "mixed", ch.writer_ref.dump(), std::to_string(count)});
    // The same sequence as peer_commands.cpp's do_mixed.
    std::vector<std::byte> buf(5000);
    std::uint64_t off = 0;
    int mismatches = 0, i = 0;
    for (; i < count; ++i) {
        item it = ch.reader.next(30s);
        if (i % 3 == 0) {
            mismatches += !(it.is_message() && it.text() == "msg " + std::to_string(i));
        } else {
            const std::size_t n = 1 + static_cast<std::size_t>((i * 7919) % 4999);
            fill_pattern(std::span(buf.data(), n), off);
            off += n;
            mismatches += !(it.is_chunk() && it.data().size() == n &&
                            std::equal(it.data().begin(), it.data().end(), buf.begin()));
        }
        if (mismatches) break;
    }
    CHECK(mismatches == 0);
    CHECK(i == count);
    CHECK(ch.reader.next().is_end());
    CHECK(wr.read_line() == "CLOSED");
    CHECK(wr.wait() == 0);
}

TEST_CASE("kill -9 of the writer mid-stream: the reader gets every byte, then peer_lost", "[xproc][fault]") {
    channel ch = create_channel(shmchan::test::opts(1 << 20, 50));
    const std::string id = ch.reader_ref.channel_id;
    child wr = child::spawn({peer_path(), "write", ch.writer_ref.dump(), "--size", "100000000",
                             "--chunk", "4096", "--pause-after", "300000"});
    REQUIRE(wr.read_line() == "READY 303104");  // 74 chunks of 4096 committed, then it hangs
    stream_checksum got;
    for (;;) {  // the ring holds all of it; read it before the crash
        item it = ch.reader.try_next();
        if (!it.is_chunk()) break;
        got.update(it.data());
    }
    wr.kill(SIGKILL);
    const auto t0 = clock_type::now();
    item it = ch.reader.next(10s);
    const auto noticed = clock_type::now() - t0;
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::peer_lost);
    CHECK(got.bytes() == 303104);
    CHECK(got.value() == pattern_sum(303104));
    // Bound from the design: 250 ms; generous here for sanitizer builds on a busy machine.
    CHECK(noticed < 2s);
    wr.wait();
    CHECK_FALSE(segment_exists(id));  // the survivor removed it
}

TEST_CASE("kill -9 of the reader while the writer waits on a full ring: peer_lost", "[xproc][fault]") {
    channel ch = create_channel(shmchan::test::opts(1 << 16, 50));
    const std::string id = ch.reader_ref.channel_id;
    child rd = child::spawn({peer_path(), "read", ch.reader_ref.dump(), "--stop-after", "100000"});
    std::error_code werr;
    clock_type::time_point failed_at;
    std::thread w([&] {
        std::vector<std::byte> buf(8192);
        for (std::uint64_t off = 0; !werr; off += buf.size()) {
            fill_pattern(buf, off);
            werr = ch.writer.write(buf);
        }
        failed_at = clock_type::now();
    });
    const auto ready = rd.read_line();
    CHECK(ready.rfind("READY", 0) == 0);
    std::this_thread::sleep_for(100ms);  // let the writer fill the ring and sleep
    rd.kill(SIGKILL);
    const auto killed_at = clock_type::now();
    w.join();
    CHECK(werr == errc::peer_lost);
    CHECK(failed_at - killed_at < 2s);
    CHECK(ch.writer.close() == errc::peer_lost);
    rd.wait();
    CHECK_FALSE(segment_exists(id));
}

TEST_CASE("abort and crash reach a reader in another process with the right cause", "[xproc][fault]") {
    SECTION("abort with a reason") {
        channel ch = create_channel();
        child rd = child::spawn({peer_path(), "read", ch.reader_ref.dump()});
        child wr = child::spawn({peer_path(), "write", ch.writer_ref.dump(), "--size", "5000",
                                 "--then", "abort:upstream failed"});
        CHECK(wr.read_line() == "WROTE 5000");
        CHECK(wr.read_line() == "ABORTED");
        CHECK(rd.read_line() == "ERR aborted 5000 " + hex(pattern_sum(5000)) + " upstream failed");
        CHECK(rd.wait() == 3);
    }
    SECTION("a writer dropped without close()") {
        channel ch = create_channel();
        child rd = child::spawn({peer_path(), "read", ch.reader_ref.dump()});
        child wr = child::spawn({peer_path(), "write", ch.writer_ref.dump(), "--size", "100",
                                 "--then", "drop"});
        CHECK(rd.read_line() == "ERR aborted 100 " + hex(pattern_sum(100)) +
                                    " writer destroyed without close()");
        CHECK(wr.wait() == 0);
    }
    SECTION("a writer process that exits without closing") {
        channel ch = create_channel();
        child rd = child::spawn({peer_path(), "read", ch.reader_ref.dump()});
        child wr = child::spawn({peer_path(), "write", ch.writer_ref.dump(), "--size", "100",
                                 "--then", "exit"});
        CHECK(rd.read_line() == "ERR peer_lost 100 " + hex(pattern_sum(100)) + " ");
        CHECK(wr.wait() == 0);
    }
}

TEST_CASE("claims, keys and directions are enforced across processes", "[xproc][errors]") {
    channel ch = create_channel();
    child first = child::spawn({peer_path(), "open-reader", ch.reader_ref.dump()}, true);
    REQUIRE(first.read_line() == "OK");
    child second = child::spawn({peer_path(), "open-reader", ch.reader_ref.dump()}, true);
    CHECK(second.read_line().rfind("ERR already_claimed", 0) == 0);
    child wrong = child::spawn({peer_path(), "open-writer", ch.reader_ref.dump()}, true);
    CHECK(wrong.read_line().rfind("ERR wrong_direction", 0) == 0);
    channel_ref forged = ch.writer_ref;
    forged.access_key = ch.reader_ref.access_key;
    child bad = child::spawn({peer_path(), "open-writer", forged.dump()}, true);
    CHECK(bad.read_line().rfind("ERR bad_key", 0) == 0);
    child junk = child::spawn({peer_path(), "open-reader", "{\"channel_id\": 1}"}, true);
    CHECK(junk.read_line().rfind("ERR invalid_ref", 0) == 0);
    first.close_stdin();
    CHECK(first.wait() == 0);
    CHECK(second.wait() == 3);
    CHECK(wrong.wait() == 3);
    CHECK(bad.wait() == 3);
    CHECK(junk.wait() == 3);
    // The reader has left: closing the writer says so, and finishes the channel.
    CHECK(ch.writer.close() == errc::peer_closed);
    CHECK_FALSE(segment_exists(ch.reader_ref.channel_id));
}
