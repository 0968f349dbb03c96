// A reader that keeps several items alive (channel_options::max_held): out-of-order release
// frees only the released prefix, the limit is an error that goes away, and releases from
// other threads keep the ring moving.
#include <catch2/catch.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"

using namespace shmchan;
using namespace std::chrono_literals;

namespace {
channel held_channel(std::size_t cap, std::size_t held) {
    channel_options o;
    o.capacity = cap;
    o.spin_us = 10;
    o.max_held = held;
    return create_channel(o);
}
std::vector<std::byte> record_of(std::size_t n, std::uint64_t i) {
    std::vector<std::byte> v(n);
    fill_pattern(v, i << 32);
    return v;
}
}  // namespace

TEST_CASE("held items: the limit, and out-of-order release frees only the released prefix", "[held]") {
    // 4 KiB ring, records of 1 KiB + header: three fit.
    channel ch = held_channel(4096, 3);
    const std::size_t n = 1000;
    for (int i = 0; i < 3; ++i) REQUIRE_FALSE(ch.writer.write_frame(record_of(n, i), frame_meta{}));
    item a = ch.reader.next(1s), b = ch.reader.next(1s), c = ch.reader.next(1s);
    REQUIRE((a.is_frame() && b.is_frame() && c.is_frame()));
    item d = ch.reader.try_next();
    REQUIRE(d.is_error());
    CHECK(d.error() == errc::held_limit);
    CHECK(ch.reader.status() == std::error_code{});  // not sticky

    // The ring is full; releasing the second and third frees nothing (the first is still held).
    CHECK(ch.writer.write_frame(record_of(n, 3), frame_meta{}, 0ns) == errc::timeout);
    b.release();
    c.release();
    CHECK(ch.writer.write_frame(record_of(n, 3), frame_meta{}, 0ns) == errc::timeout);
    // Views still held are intact.
    CHECK(std::memcmp(a.data().data(), record_of(n, 0).data(), n) == 0);
    a.release();  // now all three go back at once
    for (int i = 3; i < 6; ++i) REQUIRE_FALSE(ch.writer.write_frame(record_of(n, i), frame_meta{}, 0ns));
    for (int i = 3; i < 6; ++i) {
        item it = ch.reader.next(1s);
        REQUIRE(it.is_frame());
        CHECK(std::memcmp(it.data().data(), record_of(n, i).data(), n) == 0);
    }  // each released when it goes out of scope
    REQUIRE_FALSE(ch.writer.close());
    CHECK(ch.reader.next(1s).is_end());
}

TEST_CASE("held items: the writer's drain waits for the held items, the end comes after them", "[held]") {
    channel ch = held_channel(64 << 10, 4);
    REQUIRE_FALSE(ch.writer.write("one"));
    REQUIRE_FALSE(ch.writer.write("two"));
    REQUIRE_FALSE(ch.writer.close());
    item a = ch.reader.next(1s), b = ch.reader.next(1s);
    REQUIRE((a.is_chunk() && b.is_chunk()));
    CHECK(ch.reader.next(1s).is_end());
    CHECK(ch.writer.wait_drained(50ms) == errc::timeout);  // two records still held
    std::thread t([&] {
        std::this_thread::sleep_for(20ms);
        b.release();
        a.release();
    });
    CHECK_FALSE(ch.writer.wait_drained(5s));
    t.join();
    CHECK(ch.reader.next(1s).is_end());
}

TEST_CASE("held items released in shuffled order from another thread: every byte, no stall", "[held][threads]") {
    const std::size_t frames = 3000, held = 8;
    channel ch = held_channel(64 << 10, held);
    std::error_code werr;  // Catch's assertions are for the main thread only
    std::thread writer([&] {
        for (std::size_t i = 0; i < frames && !werr; ++i) {
            const auto bytes = record_of(1 + i * 97 % 6000, i);
            if (i % 2) {
                werr = ch.writer.write_frame(bytes, frame_meta{}, 10s);
            } else {
                loan l = ch.writer.get_frame_loan(bytes.size(), 10s);
                if ((werr = l.error())) break;
                std::memcpy(l.data().data(), bytes.data(), bytes.size());
                frame_meta m;
                m.pts = static_cast<std::int64_t>(i);
                if ((werr = l.commit(m))) break;
            }
        }
        if (!werr) werr = ch.writer.close(10s);
    });
    std::mutex mu;
    std::condition_variable cv;
    std::deque<item> handed;
    bool done = false, starved = false;  // starved: the reader is at its limit
    std::thread releaser([&] {
        std::mt19937 rng(7);
        std::vector<item> mine;
        for (;;) {
            std::unique_lock g(mu);
            cv.wait(g, [&] { return done || starved || !handed.empty(); });
            starved = false;
            while (!handed.empty()) {
                mine.push_back(std::move(handed.front()));
                handed.pop_front();
            }
            const bool last = done;
            g.unlock();
            // Release a random half, keep the rest a while (out of order).
            std::shuffle(mine.begin(), mine.end(), rng);
            const std::size_t keep = last ? 0 : mine.size() / 2;
            while (mine.size() > keep) mine.pop_back();
            if (last) return;
        }
    });
    std::size_t got = 0;
    for (;;) {
        item it = ch.reader.next(10s);
        if (it.is_error() && it.error() == errc::held_limit) {
            {
                std::lock_guard g(mu);
                starved = true;
            }
            cv.notify_one();
            std::this_thread::sleep_for(100us);
            continue;
        }
        if (it.is_end()) break;
        REQUIRE(it.is_frame());
        const auto want = record_of(1 + got * 97 % 6000, got);
        REQUIRE(it.data().size() == want.size());
        REQUIRE(std::memcmp(it.data().data(), want.data(), want.size()) == 0);
        if (got % 2 == 0) CHECK(it.meta().pts == static_cast<std::int64_t>(got));
        ++got;
        {
            std::lock_guard g(mu);
            handed.push_back(std::move(it));
        }
        cv.notify_one();
    }
    {
        std::lock_guard g(mu);
        done = true;
    }
    cv.notify_one();
    releaser.join();
    writer.join();
    CHECK(got == frames);
    CHECK(werr == std::error_code{});
}
