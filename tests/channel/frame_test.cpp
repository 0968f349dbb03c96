// Frames within one process: one record each, never split, meta intact, in order with chunks
// and messages; loans; the refusals; and a hostile writer's frame header.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "shmchan/shmchan.hpp"
#include "shmchan/shm/frame_record.hpp"
#include "shmchan/shm/segment.hpp"
#include "shmchan/testkit/frames.hpp"
#include "support/helpers.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using testkit::meta_difference;
using testkit::sample_frame;

namespace {
std::vector<std::byte> frame_bytes(std::size_t n, std::uint64_t i) {
    std::vector<std::byte> v(n);
    fill_pattern(v, i << 32);
    return v;
}
channel frame_channel(std::size_t cap) {
    channel_options o;
    o.capacity = cap;
    o.spin_us = 10;
    return create_channel(o);
}
}  // namespace

TEST_CASE("frames arrive whole with every field of their meta, mixed in order with chunks and messages", "[frame]") {
    channel ch = frame_channel(1 << 20);
    const std::size_t n = 600;  // user headers of every length 0..256, unset fields in some
    std::size_t i = 0, got_frames = 0, got_chunks = 0, got_messages = 0;
    auto read_some = [&](std::size_t until) {
        while (got_frames < until) {
            item it = ch.reader.next(5s);
            REQUIRE_FALSE(it.is_error());
            if (it.is_chunk()) {
                CHECK(it.data().size() == 3);
                ++got_chunks;
                continue;
            }
            if (it.is_message()) {
                CHECK(it.text() == "m" + std::to_string(got_frames));
                ++got_messages;
                continue;
            }
            REQUIRE(it.is_frame());
            sample_frame want(got_frames);
            INFO("frame " << got_frames);
            CHECK(meta_difference(it.meta(), want.meta) == "");
            const auto bytes = frame_bytes(got_frames * 37 % 5000, got_frames);
            REQUIRE(it.data().size() == bytes.size());
            CHECK((bytes.empty() || std::memcmp(it.data().data(), bytes.data(), bytes.size()) == 0));
            ++got_frames;
        }
    };
    for (; i < n; ++i) {
        sample_frame f(i);
        if (i % 4 == 1) REQUIRE_FALSE(ch.writer.write("abc"));
        if (i % 9 == 2) REQUIRE_FALSE(ch.writer.send_message("m" + std::to_string(i)));
        const auto bytes = frame_bytes(i * 37 % 5000, i);
        if (i % 2) {
            REQUIRE_FALSE(ch.writer.write_frame(bytes, f.meta));
        } else {
            loan l = ch.writer.get_frame_loan(bytes.size());
            REQUIRE(l);
            CHECK(l.is_frame());
            if (!bytes.empty()) std::memcpy(l.data().data(), bytes.data(), bytes.size());  // frame 0 is empty
            REQUIRE_FALSE(l.commit(f.meta));
        }
        if (i % 50 == 49) read_some(i + 1);
    }
    REQUIRE_FALSE(ch.writer.close());
    read_some(n);
    CHECK(ch.reader.next(1s).is_end());
    CHECK(got_chunks == n / 4);
    CHECK(got_messages > 0);
}

TEST_CASE("a frame loan committed short, or without meta, or abandoned", "[frame][loan]") {
    channel ch = frame_channel(64 << 10);
    {
        loan l = ch.writer.get_frame_loan(1000);
        REQUIRE(l);
        std::memset(l.data().data(), 0x5a, 1000);
        sample_frame f(3);
        REQUIRE_FALSE(l.commit(10, f.meta));
    }
    {
        loan l = ch.writer.get_frame_loan(100);
        REQUIRE(l);
        std::memset(l.data().data(), 0x11, 100);
        l.commit();  // no meta: every field unset
    }
    {
        loan l = ch.writer.get_frame_loan(100);
        REQUIRE(l);
    }  // abandoned: nothing is published
    REQUIRE_FALSE(ch.writer.write_frame({}, frame_meta{}));  // an empty frame is a frame
    REQUIRE_FALSE(ch.writer.close());

    item a = ch.reader.next(1s);
    REQUIRE(a.is_frame());
    CHECK(a.data().size() == 10);
    CHECK(a.data()[9] == std::byte{0x5a});
    CHECK(meta_difference(a.meta(), sample_frame(3).meta) == "");
    item b = ch.reader.next(1s);
    REQUIRE(b.is_frame());
    CHECK(b.data().size() == 100);
    CHECK(meta_difference(b.meta(), frame_meta{}) == "");
    item c = ch.reader.next(1s);
    REQUIRE(c.is_frame());
    CHECK(c.data().empty());
    CHECK(ch.reader.next(1s).is_end());
    CHECK(ch.reader.bytes_read() == 110);
}

TEST_CASE("a frame too large is refused whole, with the capacity that would hold it", "[frame][errors]") {
    channel ch = frame_channel(64 << 10);
    const std::size_t maxf = ch.writer.max_frame();
    CHECK(maxf == shm::max_payload_for(64 << 10) - shm::frame_overhead);
    // The largest frame fits (never split).
    REQUIRE_FALSE(ch.writer.write_frame(frame_bytes(maxf, 1), frame_meta{}));
    item it = ch.reader.next(1s);
    REQUIRE(it.is_frame());
    CHECK(it.data().size() == maxf);
    it.release();

    const std::size_t big = maxf + 1;
    CHECK(ch.writer.write_frame(frame_bytes(big, 2), frame_meta{}) == errc::too_large);
    const std::string why = ch.writer.last_error();
    const std::size_t need = capacity_for_frame(big);
    CHECK(need == 128 << 10);
    CHECK(why.find("capacity >= " + std::to_string(need)) != std::string::npos);
    CHECK(ch.writer.get_frame_loan(big).error() == errc::too_large);
    // Nothing was written, and the writer goes on.
    REQUIRE_FALSE(ch.writer.write_frame(frame_bytes(10, 3), frame_meta{}));
    CHECK(ch.reader.next(1s).data().size() == 10);

    // A channel of the capacity named holds it.
    channel ok = frame_channel(need);
    CHECK(ok.writer.max_frame() >= big);
    CHECK(capacity_for_frame(std::size_t{1} << 40) == 0);  // no ring holds a 1 TiB record
}

TEST_CASE("a user header longer than max_user is refused", "[frame][errors]") {
    channel ch = frame_channel(64 << 10);
    std::vector<std::byte> user(frame_meta::max_user + 1);
    frame_meta m;
    m.user = user;
    CHECK(ch.writer.write_frame(frame_bytes(10, 0), m) == errc::invalid_argument);
    CHECK(ch.writer.last_error().find("at most 256") != std::string::npos);
    m.user = std::span(user).first(frame_meta::max_user);
    CHECK_FALSE(ch.writer.write_frame(frame_bytes(10, 0), m));
    item written = ch.reader.next(1s);
    REQUIRE(written.is_frame());
    CHECK(written.meta().user.size() == frame_meta::max_user);
}

TEST_CASE("a frame loan committed with a user header longer than max_user is refused and stays open", "[frame][loan][errors]") {
    channel ch = frame_channel(64 << 10);
    std::vector<std::byte> user(frame_meta::max_user + 1);
    for (std::size_t i = 0; i < user.size(); ++i) user[i] = std::byte(i * 7);
    const auto bytes = frame_bytes(1000, 5);
    loan l = ch.writer.get_frame_loan(bytes.size());
    REQUIRE(l);
    std::memcpy(l.data().data(), bytes.data(), bytes.size());
    frame_meta m;
    m.pts = 99;
    m.user = user;
    CHECK(l.commit(m) == errc::invalid_argument);
    CHECK(ch.writer.last_error().find("at most 256") != std::string::npos);
    CHECK(l);  // nothing published, nothing lost: the loan is still the writer's
    CHECK(ch.reader.try_next().error() == errc::would_block);
    m.user = std::span(user).first(frame_meta::max_user);
    REQUIRE_FALSE(l.commit(m));
    CHECK_FALSE(l);
    item it = ch.reader.next(1s);
    REQUIRE(it.is_frame());
    CHECK(it.meta().pts == 99);
    CHECK(std::vector<std::byte>(it.meta().user.begin(), it.meta().user.end()) ==
          std::vector<std::byte>(user.begin(), user.begin() + frame_meta::max_user));
    CHECK(std::vector<std::byte>(it.data().begin(), it.data().end()) == bytes);
}

TEST_CASE("frames count as bytes read, read_all and chunks() take their bytes", "[frame]") {
    channel ch = frame_channel(64 << 10);
    REQUIRE_FALSE(ch.writer.write("ab"));
    REQUIRE_FALSE(ch.writer.write_frame(std::as_bytes(std::span("cde", 3)), frame_meta{}));
    REQUIRE_FALSE(ch.writer.write("f"));
    REQUIRE_FALSE(ch.writer.close());
    std::string all;
    for (auto c : ch.reader.chunks(1s)) all.append(reinterpret_cast<const char*>(c.data()), c.size());
    CHECK(all == "abcdef");
    CHECK(ch.reader.at_end());
    CHECK(ch.reader.bytes_read() == 6);
}

TEST_CASE("a hostile writer's frame header cannot place the reader outside the record", "[frame][hostile]") {
    auto run = [](auto&& scribble) {
        channel ch = frame_channel(64 << 10);
        frame_meta m;
        std::vector<std::byte> user(8, std::byte{1});
        m.user = user;
        REQUIRE_FALSE(ch.writer.write_frame(frame_bytes(100, 0), m));
        auto seg = shm::segment::open(ch.reader_ref.shm->segment);
        auto* fh = reinterpret_cast<shm::frame_header*>(seg->data() + sizeof(shm::record_header));
        scribble(*fh);
        item it = ch.reader.next(100ms);
        REQUIRE(it.is_error());
        CHECK(it.error() == errc::corrupt);
    };
    SECTION("user header longer than allowed") { run([](shm::frame_header& h) { h.user_len = 257; }); }
    SECTION("data beyond the record") { run([](shm::frame_header& h) { h.data_offset = 4096; }); }
    SECTION("data over the user header") { run([](shm::frame_header& h) { h.data_offset = 64; }); }
    SECTION("data offset not aligned") { run([](shm::frame_header& h) { h.data_offset = 81; }); }
    SECTION("record shorter than a frame header") {
        channel ch = frame_channel(64 << 10);
        REQUIRE_FALSE(ch.writer.write_frame(frame_bytes(100, 0), frame_meta{}));
        auto seg = shm::segment::open(ch.reader_ref.shm->segment);
        reinterpret_cast<shm::record_header*>(seg->data())->length = 32;
        item it = ch.reader.next(100ms);
        REQUIRE(it.is_error());
        CHECK(it.error() == errc::corrupt);
    }
}
