// Issue 10: liveness from the kernel (open-file-description locks), ends that belong to the
// process that claimed them (fork), and channels dropped unused.
#include <catch2/catch.hpp>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"
#include "support/process.hpp"

using namespace shmchan;
using namespace std::chrono_literals;

namespace {
std::vector<std::byte> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), reinterpret_cast<const std::byte*>(s.data()) + s.size()};
}
int reap(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
}  // namespace

TEST_CASE("a forked child's copies of claimed ends are inert: the parent's stream goes on", "[fork][liveness]") {
    channel ch = create_channel();
    REQUIRE_FALSE(ch.writer.write("before "));
    item first = ch.reader.next(1s);
    REQUIRE(first.is_chunk());
    first.release();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // As a child that returns from main: its copies are destroyed. They must neither
        // abort nor close the parent's ends, and every call says why it cannot act.
        int rc = 0;
        {
            writer w = std::move(ch.writer);
            reader r = std::move(ch.reader);
            if (w.write("child") != errc::forked) rc |= 1;
            if (w.close() != errc::forked) rc |= 2;
            item it = r.next(0ns);
            if (!it.is_error() || it.error() != errc::forked) rc |= 4;
            w.abort("child abort");
        }
        std::_Exit(rc);
    }
    CHECK(reap(pid) == 0);
    REQUIRE_FALSE(ch.writer.write("after"));
    REQUIRE_FALSE(ch.writer.close());
    std::vector<std::byte> rest;
    REQUIRE_FALSE(ch.reader.read_all(rest, 5s));
    CHECK(rest == bytes_of("after"));
}

TEST_CASE("an end claimed in a forked child belongs to the child", "[fork][liveness]") {
    channel ch = create_channel();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const bool ok = !ch.writer.write("from the child") && !ch.writer.close();
        std::_Exit(ok ? 0 : 1);
    }
    std::vector<std::byte> got;
    CHECK_FALSE(ch.reader.read_all(got, 10s));
    CHECK(got == bytes_of("from the child"));
    CHECK(reap(pid) == 0);
}

TEST_CASE("a writer whose main thread called pthread_exit is alive while its other threads run", "[liveness]") {
    channel ch = create_channel();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The leader becomes a zombie in /proc while the process lives on: not a death.
        static writer w;
        w = std::move(ch.writer);
        std::thread([] {
            for (int i = 0; i < 8; ++i) {
                std::this_thread::sleep_for(100ms);
                if (w.write("tick ")) std::_Exit(1);
            }
            std::_Exit(w.close() ? 1 : 0);
        }).detach();
        // The leader thread alone exits (pthread_exit's effect, without unwinding through the
        // test framework's frames): it shows as a zombie while the process lives on.
        ::syscall(SYS_exit, 0);
    }
    std::vector<std::byte> got;
    CHECK_FALSE(ch.reader.read_all(got, 10s));
    CHECK(got.size() == 8 * 5);
    CHECK(reap(pid) == 0);
}

TEST_CASE("a writer killed while holding its end is reported dead by the kernel's lock", "[liveness]") {
    channel ch = create_channel();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (ch.writer.write("x")) std::_Exit(1);
        ::pause();
        std::_Exit(0);
    }
    item it = ch.reader.next(5s);
    REQUIRE(it.is_chunk());
    it.release();
    ::kill(pid, SIGKILL);
    reap(pid);
    const auto t0 = std::chrono::steady_clock::now();
    it = ch.reader.next(5s);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::peer_lost);
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
}

TEST_CASE("channels dropped without using either end leave nothing in /dev/shm", "[unused]") {
    std::vector<std::string> ids;
    for (int i = 0; i < 50; ++i) {
        channel ch = create_channel();
        ids.push_back(ch.reader_ref.channel_id);
    }
    for (const auto& id : ids) CHECK_FALSE(test::segment_exists(id));

    // One end claimed elsewhere: the channel is in use and stays.
    channel ch = create_channel();
    const std::string id = ch.reader_ref.channel_id;
    reader r = open_reader(ch.reader_ref);
    writer w = std::move(ch.writer);
    ch = channel();
    CHECK(test::segment_exists(id));
    REQUIRE_FALSE(w.write("still here"));
    REQUIRE_FALSE(w.close());
    std::vector<std::byte> got;
    CHECK_FALSE(r.read_all(got, 5s));
    CHECK(got == bytes_of("still here"));
}
