// The send queue (src/send_queue.cpp) on a socketpair: units arrive whole and in order however
// they batch; a unit that does not fit is refused whole; a peer that went away is a sticky
// error; stop() ends a sender that waits for room in the socket.
#include <catch2/catch.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "send_queue.hpp"
#include "support/helpers.hpp"

using shmchan::detail::send_queue;
using shmchan::test::eventually;
using namespace std::chrono_literals;

namespace {

struct socket_pair {
    int a = -1, b = -1;  // a: the queue's end, b: the peer's
    socket_pair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        a = fds[0];
        b = fds[1];
    }
    ~socket_pair() {
        if (a >= 0) ::close(a);
        if (b >= 0) ::close(b);
    }
};

// Unit i: its index (4 bytes), then i % 61 bytes of (i & 0xff), as two pieces.
std::uint32_t unit_size(std::uint32_t i) { return 4 + i % 61; }
std::size_t stream_size(std::uint32_t units) {
    std::size_t n = 0;
    for (std::uint32_t i = 0; i < units; ++i) n += unit_size(i);
    return n;
}
bool append_unit(send_queue& q, std::uint32_t i) {
    std::byte head[4];
    std::memcpy(head, &i, 4);
    const std::vector<std::byte> body(i % 61, static_cast<std::byte>(i & 0xff));
    const std::span<const std::byte> pieces[2] = {head, body};
    return q.try_append(pieces);
}
// The first unit index at which `got` differs from the stream of units, or `units` when whole.
std::uint32_t first_bad_unit(const std::vector<std::byte>& got, std::uint32_t units) {
    std::size_t off = 0;
    for (std::uint32_t i = 0; i < units; ++i) {
        if (off + unit_size(i) > got.size()) return i;
        std::uint32_t idx = 0;
        std::memcpy(&idx, got.data() + off, 4);
        if (idx != i) return i;
        for (std::size_t k = 4; k < unit_size(i); ++k)
            if (got[off + k] != static_cast<std::byte>(i & 0xff)) return i;
        off += unit_size(i);
    }
    return off == got.size() ? units : 0;
}
// Reads `n` bytes from fd (at most 30 s); fewer when the peer stops.
std::vector<std::byte> read_bytes(int fd, std::size_t n) {
    std::vector<std::byte> got(n);
    std::size_t have = 0;
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (have < n && std::chrono::steady_clock::now() < until) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const ssize_t r = ::read(fd, got.data() + have, n - have);
        if (r <= 0) break;
        have += static_cast<std::size_t>(r);
    }
    got.resize(have);
    return got;
}
}  // namespace

TEST_CASE("send queue: units appended while the sender sends arrive whole and in order", "[send_queue]") {
    socket_pair p;
    std::atomic<int> notified{0};
    constexpr std::uint32_t units = 200000;
    const std::size_t total = stream_size(units);
    std::vector<std::byte> got;
    std::thread peer([&] { got = read_bytes(p.b, total); });
    {
        send_queue q(p.a, 16 << 10, [&] { ++notified; });
        std::size_t refused = 0;
        for (std::uint32_t i = 0; i < units; ++i) {
            while (!append_unit(q, i)) {  // full: the sender is behind
                REQUIRE_FALSE(q.error());
                ++refused;
                std::this_thread::yield();
            }
        }
        CHECK(eventually([&] { return q.idle(); }, 20s));
        CHECK_FALSE(q.error());
        INFO("appends refused for room: " << refused);
    }
    peer.join();
    CHECK(got.size() == total);
    CHECK(first_bad_unit(got, units) == units);
    CHECK(notified >= 1);  // it went idle at least once, and said so
}

TEST_CASE("send queue: a unit that does not fit is refused whole, room freed is told", "[send_queue]") {
    socket_pair p;
    std::atomic<int> notified{0};
    send_queue q(p.a, 4096, [&] { ++notified; });
    std::vector<std::byte> big(4097, std::byte{1});
    const std::span<const std::byte> too_big[1] = {big};
    CHECK_FALSE(q.try_append(too_big));  // larger than the capacity: never fits
    CHECK(q.idle());
    // The peer does not read: the socket fills, then the staging buffer.
    std::uint32_t n = 0;
    while (append_unit(q, n)) {
        ++n;
        if (n % 64 == 0) std::this_thread::sleep_for(1ms);  // lets the sender move batches into the socket
        REQUIRE(n < 10'000'000);
    }
    CHECK_FALSE(q.has_room(4096));
    CHECK_FALSE(q.idle());
    const int before = notified;
    q.want_room();
    // The peer reads: the batch in flight ends, and the owner waiting for room hears of it.
    std::vector<std::byte> got;
    const std::size_t total = stream_size(n + 1);  // with the unit refused now, appended below
    std::thread peer([&got, fd = p.b, total] { got = read_bytes(fd, total); });
    CHECK(eventually([&] { return notified > before; }));
    CHECK(eventually([&] { return append_unit(q, n); }));  // the unit refused before
    ++n;
    CHECK(eventually([&] { return q.idle(); }));
    peer.join();
    CHECK(got.size() == stream_size(n));
    CHECK(first_bad_unit(got, n) == n);
}

TEST_CASE("send queue: a peer that went away is a sticky error, stop() ends a sender waiting for room",
          "[send_queue]") {
    SECTION("peer gone") {
        socket_pair p;
        std::atomic<int> notified{0};
        send_queue q(p.a, 4096, [&] { ++notified; });
        ::close(p.b);
        p.b = -1;
        std::uint32_t i = 0;
        CHECK(eventually([&] { return !append_unit(q, i++) && q.error(); }));
        CHECK(q.error().category() == std::system_category());
        CHECK((q.error().value() == EPIPE || q.error().value() == ECONNRESET));
        CHECK(notified >= 1);
        CHECK_FALSE(append_unit(q, i));  // nothing after a failure
        CHECK(q.idle());                 // what was staged is dropped: nothing waits for it
    }
    SECTION("stop while the socket is full") {
        socket_pair p;
        send_queue q(p.a, 4096, [] {});
        std::uint32_t n = 0;
        while (append_unit(q, n)) {
            ++n;
            if (n % 64 == 0) std::this_thread::sleep_for(1ms);
            REQUIRE(n < 10'000'000);
        }
        const auto t0 = std::chrono::steady_clock::now();
        q.stop();  // the sender sits in poll() for room: it must come back
        CHECK(std::chrono::steady_clock::now() - t0 < 2s);
        CHECK(q.idle());
        CHECK_FALSE(append_unit(q, n));
        q.stop();  // again: nothing
    }
}
