// Frames between real processes (tests/peers/frame_peer.cpp is the other one): every frame's
// bytes and meta, loaned and copied, read one at a time and held out of order; a frame writer
// killed mid-stream.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>

#include "shmchan/shmchan.hpp"
#include "shmchan/testkit/frames.hpp"
#include "support/helpers.hpp"
#include "support/process.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::child;
using shmchan::test::frame_peer_path;
using shmchan::test::segment_exists;

TEST_CASE("frames from a writer process to a reader process that holds them out of order", "[xproc][frame]") {
    channel ch = create_channel(shmchan::test::opts(1 << 20, 50));
    const std::string id = ch.reader_ref.channel_id;
    const std::string frames = "3000", max = "200000";
    child rd = child::spawn({frame_peer_path(), "read", ch.reader_ref.dump(), frames, max, "6"});
    child wr = child::spawn({frame_peer_path(), "write", ch.writer_ref.dump(), frames, max});
    CHECK(rd.read_line(120s) == "END " + frames);
    CHECK(wr.read_line(60s) == "WROTE " + frames);
    CHECK(wr.read_line(60s) == "DRAINED");
    CHECK(rd.wait() == 0);
    CHECK(wr.wait() == 0);
    CHECK_FALSE(segment_exists(id));
}

TEST_CASE("frames from this process to a reader process, one item at a time", "[xproc][frame]") {
    channel ch = create_channel(shmchan::test::opts(256 << 10, 50));
    const std::uint64_t frames = 500;
    const std::size_t max = 50000;
    child rd = child::spawn({frame_peer_path(), "read", ch.reader_ref.dump(), std::to_string(frames), std::to_string(max)});
    for (std::uint64_t i = 0; i < frames; ++i) {
        testkit::sample_frame f(i);
        std::vector<std::byte> b(1 + i * 7919 % max);
        fill_pattern(b, i << 32);
        REQUIRE_FALSE(ch.writer.write_frame(b, f.meta, 30s));
    }
    REQUIRE_FALSE(ch.writer.close());
    CHECK(rd.read_line(60s) == "END " + std::to_string(frames));
    CHECK(rd.wait() == 0);
}

TEST_CASE("a frame writer killed mid-stream: the reader gets every whole frame, then peer_lost", "[xproc][frame]") {
    channel ch = create_channel(shmchan::test::opts(64 << 10, 50));
    // Far more than the ring holds: the writer blocks until we read, and is killed meanwhile.
    child wr = child::spawn({frame_peer_path(), "write", ch.writer_ref.dump(), "100000", "20000"});
    std::uint64_t i = 0;
    for (; i < 50; ++i) {
        item it = ch.reader.next(30s);
        REQUIRE(it.is_frame());
        CHECK(testkit::meta_difference(it.meta(), testkit::sample_frame(i).meta) == "");
    }
    wr.kill(SIGKILL);
    CHECK(wr.wait() == 128 + SIGKILL);
    for (;; ++i) {
        item it = ch.reader.next(10s);
        if (it.is_error()) {
            CHECK(it.error() == errc::peer_lost);
            break;
        }
        REQUIRE(it.is_frame());  // only whole frames: a claimed, uncommitted one never shows
        std::vector<std::byte> b(1 + i * 7919 % 20000);
        fill_pattern(b, i << 32);
        REQUIRE(it.data().size() == b.size());
        CHECK(std::memcmp(it.data().data(), b.data(), b.size()) == 0);
    }
}
