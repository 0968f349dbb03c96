// Event fds (issue 10, items 7 and 8): one watcher thread per process serves every end's fd,
// idle ends cost it no wake-up, ends leave while it runs, a peer's death is told, and a
// watcher thread that cannot start gives a typed error and a later retry.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"

using namespace shmchan;
using namespace std::chrono_literals;

namespace {

bool readable_within(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1;
}
void drain(int fd) {
    std::uint64_t v;
    while (::read(fd, &v, sizeof v) == sizeof v) {
    }
}
std::vector<std::string> tasks() {
    std::vector<std::string> ids;
    if (DIR* d = ::opendir("/proc/self/task")) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') ids.emplace_back(e->d_name);
        ::closedir(d);
    }
    return ids;
}
std::string task_field(const std::string& tid, const std::string& file, const std::string& key = "") {
    std::ifstream f("/proc/self/task/" + tid + "/" + file);
    std::string line;
    while (std::getline(f, line))
        if (key.empty()) return line;
        else if (line.rfind(key, 0) == 0) return line.substr(key.size());
    return "";
}
// The watcher threads of this process, by name.
std::vector<std::string> watchers() {
    std::vector<std::string> w;
    for (const auto& t : tasks())
        if (task_field(t, "comm") == "shmchan-watch") w.push_back(t);
    return w;
}
// Sleeps the watcher threads took (voluntary context switches): wake-ups, give or take one.
long watcher_sleeps() {
    long n = 0;
    for (const auto& t : watchers()) n += std::stol(task_field(t, "status", "voluntary_ctxt_switches:"));
    return n;
}
// Polls every fd until each has been readable once; false if some stay silent for `ms`.
bool all_readable(const std::vector<int>& fds, int ms) {
    std::vector<bool> seen(fds.size(), false);
    std::size_t left = fds.size();
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (left && std::chrono::steady_clock::now() < until) {
        std::vector<pollfd> p;
        for (std::size_t i = 0; i < fds.size(); ++i)
            if (!seen[i]) p.push_back({fds[i], POLLIN, 0});
        if (::poll(p.data(), p.size(), 100) <= 0) continue;
        for (const auto& q : p)
            if (q.revents & POLLIN)
                for (std::size_t i = 0; i < fds.size(); ++i)
                    if (fds[i] == q.fd && !seen[i]) seen[i] = true, --left;
    }
    return left == 0;
}
// Clears the initial "maybe" and drains to would_block, which arms the fd.
void arm(reader& r, int fd) {
    readable_within(fd, 1000);
    drain(fd);
    REQUIRE(r.try_next().error() == errc::would_block);
}

}  // namespace

TEST_CASE("event fds: 100 readers share one watcher thread and each is signalled", "[event_fd][concurrency]") {
    const std::size_t tasks_before = tasks().size();
    const std::size_t watchers_before = watchers().size();  // shards stay once started
    std::vector<channel> chans;
    std::vector<int> fds;
    for (int i = 0; i < 100; ++i) {
        chans.push_back(create_channel(test::opts(4096, 0)));
        fds.push_back(chans.back().reader.event_fd());
    }
    // At most the watcher (a sanitizer runtime may start one background thread of its own).
    CHECK(tasks().size() <= tasks_before + 1 + (test::sanitized ? 1 : 0));
    CHECK(watchers().size() == std::max<std::size_t>(1, watchers_before));  // < 128 ends here
    for (std::size_t i = 0; i < chans.size(); ++i) arm(chans[i].reader, fds[i]);

    // Armed and idle: liveness checks only (every 200 ms, shared by all ends); not armed: none.
    long before = watcher_sleeps();
    std::this_thread::sleep_for(1s);
    // (SHMCHAN_NO_FUTEX_WAITV=1 makes the watcher poll: the wake-up counts do not apply.)
    const char* poll_env = std::getenv("SHMCHAN_NO_FUTEX_WAITV");
    const bool polling = poll_env && *poll_env == '1';
    if (!polling) CHECK(watcher_sleeps() - before <= 12);

    for (auto& c : chans) REQUIRE_FALSE(c.writer.write("ping"));
    REQUIRE(all_readable(fds, 5000));
    for (std::size_t i = 0; i < chans.size(); ++i) {
        drain(fds[i]);
        item it = chans[i].reader.try_next();
        if (it.error() == errc::would_block) it = chans[i].reader.next(1s);
        REQUIRE(it.is_chunk());
        CHECK(it.text() == "ping");
    }
    // Signalled, not re-armed: the watcher sleeps until something changes.
    before = watcher_sleeps();
    std::this_thread::sleep_for(600ms);
    if (!polling) CHECK(watcher_sleeps() - before <= 1);

    // A state change is told without arming (close: the end record; abort).
    for (std::size_t i = 0; i < chans.size(); ++i)
        if (i % 2) REQUIRE_FALSE(chans[i].writer.close());
        else chans[i].writer.abort("bye");
    REQUIRE(all_readable(fds, 5000));
    for (std::size_t i = 0; i < chans.size(); ++i) {
        item it = chans[i].reader.try_next();
        CHECK((i % 2 ? it.is_end() : it.error() == errc::aborted));
    }
}

// The watcher pays the sleeper's barrier once per line and then asks the line's wakers for the
// read-modify-write form (shm/wake.hpp): messages sent one at a time, each after the previous
// was read, make it sleep once per message. A wake-up lost there would be found only by the
// 200 ms liveness look: count the messages that took that long.
TEST_CASE("event fds: messages one at a time are each signalled at once", "[event_fd][concurrency]") {
    channel ch = create_channel(test::opts(4096, 0));
    const int fd = ch.reader.event_fd();
    arm(ch.reader, fd);
    constexpr int rounds = 3000;
    const test::paced_run r = test::one_at_a_time(ch.writer, rounds, 0us, 150ms, [&] {
        if (!readable_within(fd, 2000)) return -1;
        drain(fd);
        int got = 0;
        for (;;) {
            item it = ch.reader.try_next();  // released before the next try
            if (!it.is_chunk()) break;
            ++got;
        }
        return got;
    });
    CHECK(r.taken == rounds);
    CHECK(r.slow <= 5);  // the odd descheduling on a loaded machine; a lost wake-up each time would be 20
}

TEST_CASE("event fds: more ends than one futex_waitv takes are all served", "[event_fd][concurrency]") {
    std::vector<channel> chans;
    std::vector<int> fds;
    for (int i = 0; i < 300; ++i) {
        chans.push_back(create_channel(test::opts(4096, 0)));
        fds.push_back(chans.back().reader.event_fd());
        arm(chans.back().reader, fds.back());
    }
    CHECK(watchers().size() <= 3);  // 127 ends per thread (fewer than 81 elsewhere in this process)
    for (std::size_t i = 0; i < chans.size(); i += 7) REQUIRE_FALSE(chans[i].writer.write("x"));
    std::vector<int> some;
    for (std::size_t i = 0; i < chans.size(); i += 7) some.push_back(fds[i]);
    CHECK(all_readable(some, 5000));
}

TEST_CASE("event fds: ends leave while the watcher serves them", "[event_fd][concurrency]") {
    // Readers are dropped while their writers publish and the watcher sleeps on their lines:
    // the watcher must be done with an end before its segment goes (ASan/TSan watch this).
    std::vector<channel> keep;  // a few long-lived ends in the same watcher
    for (int i = 0; i < 5; ++i) {
        keep.push_back(create_channel(test::opts(4096, 0)));
        arm(keep.back().reader, keep.back().reader.event_fd());
    }
    for (int round = 0; round < 200; ++round) {
        channel ch = create_channel(test::opts(4096, 0));
        const int fd = ch.reader.event_fd();
        if (round % 2) arm(ch.reader, fd);
        std::atomic<bool> stop{false};
        std::thread w([&] {
            while (!stop.load() && !ch.writer.try_write(std::as_bytes(std::span("abc", 3)))) {
            }
        });
        if (round % 3 == 0) std::this_thread::sleep_for(100us);
        ch.reader = reader();  // leaves as the writer writes
        stop = true;
        w.join();
    }
    REQUIRE_FALSE(keep[0].writer.write("still here"));
    CHECK(readable_within(keep[0].reader.event_fd(), 5000));
}

TEST_CASE("event fds: an armed reader is told when its writer's process dies", "[event_fd][concurrency]") {
    channel ch = create_channel(test::opts(4096, 0));
    const int fd = ch.reader.event_fd();
    arm(ch.reader, fd);
    const pid_t pid = ::fork();
    if (pid == 0) {
        writer w = open_writer(ch.writer_ref);
        (void)w.write("last words");
        ::_exit(0);  // no close, no abort: its end stays active
    }
    REQUIRE(pid > 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(readable_within(fd, 5000));  // the record
    drain(fd);
    item it = ch.reader.try_next();
    REQUIRE(it.is_chunk());
    it.release();
    // Liveness is checked every 200 ms while armed.
    const auto t0 = std::chrono::steady_clock::now();
    std::error_code e;
    while ((e = ch.reader.try_next().error()) == errc::would_block) {
        REQUIRE(readable_within(fd, 5000));
        drain(fd);
    }
    CHECK(e == errc::peer_lost);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
}

TEST_CASE("event fds: a watcher thread that cannot start gives a typed error, then a retry", "[event_fd][concurrency]") {
    // A forked child starts with no watcher; under RLIMIT_NPROC it cannot create one. Root is
    // not bound by RLIMIT_NPROC, so a root child becomes nobody first.
#if defined(__SANITIZE_THREAD__)
    WARN("skipped: ThreadSanitizer does not start threads after a multi-threaded fork");
    return;
#endif
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(10);
        rlimit lim{};
        ::getrlimit(RLIMIT_NPROC, &lim);
        const rlimit none{0, lim.rlim_max};
        if (::setrlimit(RLIMIT_NPROC, &none) != 0) ::_exit(11);
        const int code = [&] {  // the ends finish before _exit, so no segment is left
            channel ch = create_channel(test::opts(4096, 0));
            for (int attempt = 0; attempt < 2; ++attempt) {
                try {
                    (void)ch.reader.event_fd();
                    return 12;  // a thread started after all
                } catch (const shmchan::error& x) {
                    if (x.kind() != errc::system_error) return 13;
                    if (std::string(x.what()).find("watcher thread") == std::string::npos) return 14;
                } catch (...) {
                    return 15;  // std::system_error, say
                }
            }
            lim.rlim_cur = lim.rlim_max;
            if (::setrlimit(RLIMIT_NPROC, &lim) != 0) return 16;
            const int fd = ch.reader.event_fd();  // retried: a served fd
            readable_within(fd, 1000);
            drain(fd);
            if (ch.reader.try_next().error() != errc::would_block) return 17;
            if (ch.writer.write("x")) return 18;
            return readable_within(fd, 5000) ? 0 : 19;
        }();
        ::_exit(code);
    }
    REQUIRE(pid > 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
