// Load and resource exhaustion: 256 channels open at once through one engine process with
// mixed transports, and a channel larger than /dev/shm (tests/peers/load_peer.cpp is the other side;
// its `nospace` mode, run by ctest directly, fills a small tmpfs in a mount namespace).
#include <catch2/catch.hpp>

#include <bit>
#include <csignal>
#include <functional>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <thread>
#include <unistd.h>

#include "shmchan/shmchan.hpp"
#include "shmchan/worker.hpp"
#include "support/engine_process.hpp"
#include "support/helpers.hpp"
#include "support/proc_stats.hpp"
#include "support/process.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::child;
using shmchan::test::segment_exists;
using clock_type = std::chrono::steady_clock;

namespace {

using test::engine_channels;
using test::eventually;
using test::raise_fd_limit;
using test::sanitized;
using test::engine_process;
using test::proc_sample;
using test::sample_process;

void note(const std::string& s) {
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
}

}  // namespace

TEST_CASE("256 channels open at once through one engine process, mixed transports, every byte checked",
          "[load][256]") {
    // 256 channels need about three descriptors each in the engine (socket, event fd and its
    // duplicate) and four per socket end in a client (socket, epoll, eventfd, timerfd): more
    // than the usual soft limit of 1024. Children inherit the raised limit.
    const rlim_t limit = raise_fd_limit();
    constexpr int channels = 256, peers = 4;
    // Per channel four rings' worth (256 MiB in all); two under sanitizers (unoptimized, and
    // 2-10x slower per byte), still enough to wrap every ring.
    const std::uint64_t size = sanitized ? 512u << 10 : 1u << 20;
    note("load: fd soft limit now " + std::to_string(limit));

    engine_process eng;
    const auto t_start = clock_type::now();
    worker creator(eng.url);
    std::this_thread::sleep_for(200ms);
    const proc_sample engine_before = sample_process(eng.proc.pid());

    // Channel i: writer in peer i % 4, reader in peer (i + 1) % 4; transports by i % 4:
    // shm -> shm, shm -> socket, socket -> shm, socket -> socket.
    std::vector<channel> chans;
    for (int i = 0; i < channels; ++i) chans.push_back(creator.create_channel(4));  // 256 KiB rings
    const char* via_w[] = {"shm", "shm", "socket", "socket"};
    const char* via_r[] = {"shm", "socket", "shm", "socket"};
    std::vector<child> ps;
    for (int p = 0; p < peers; ++p) ps.push_back(child::spawn({SHMCHAN_TEST_LOAD_PEER, "ends", eng.url}, true));
    for (int i = 0; i < channels; ++i) {
        const std::size_t chunk = 1000 + static_cast<std::size_t>((i * 7919) % 60000);
        ps[static_cast<std::size_t>(i % peers)].write_stdin("W " + std::to_string(i) + " " + via_w[i % 4] + " " +
                                                            std::to_string(size) + " " + std::to_string(chunk) + " " +
                                                            chans[static_cast<std::size_t>(i)].writer_ref.dump() + "\n");
        ps[static_cast<std::size_t>((i + 1) % peers)].write_stdin("R " + std::to_string(i) + " " + via_r[i % 4] + " " +
                                                                  std::to_string(size) + " " +
                                                                  chans[static_cast<std::size_t>(i)].reader_ref.dump() + "\n");
    }
    for (auto& p : ps) p.write_stdin("OPEN\n");
    for (auto& p : ps) REQUIRE(p.read_line(120s) == "OPENED " + std::to_string(2 * channels / peers));

    // Every end of every channel is held now, by a process or by the engine for a socket.
    int active = 0;
    for (auto& ch : chans) {
        const channel_info in = inspect(ch.reader_ref);
        active += in.writer.st == end_info::state::active && in.reader.st == end_info::state::active;
    }
    CHECK(active == channels);
    int peer_threads = 0;
    for (auto& p : ps) peer_threads += sample_process(p.pid()).threads;
    CHECK(peer_threads < 8 * peers);  // no thread per socket end (Asio's resolver, once)
    const long listed = engine_channels(eng.port);
    CHECK(listed == channels);
    const proc_sample engine_open = sample_process(eng.proc.pid());
    proc_sample peers_open{0, 0, 0, 0, 0};  // sums
    for (auto& p : ps) {
        const proc_sample s = sample_process(p.pid());
        peers_open.fds += s.fds;
        peers_open.rss_kib += s.rss_kib;
        peers_open.threads += s.threads;
    }
    note("load: " + std::to_string(active) + " channels with both ends held at once, engine lists " +
         std::to_string(listed) + "; engine fds " + std::to_string(engine_before.fds) + " -> " +
         std::to_string(engine_open.fds) + ", threads " + std::to_string(engine_before.threads) + " -> " +
         std::to_string(engine_open.threads) + ", rss " + std::to_string(engine_before.rss_kib / 1024) + " -> " +
         std::to_string(engine_open.rss_kib / 1024) + " MiB; the 4 client processes hold " +
         std::to_string(peers_open.fds) + " fds, " + std::to_string(peers_open.threads) + " threads, " +
         std::to_string(peers_open.rss_kib / 1024) + " MiB");

    // Go: 256 streams at once.
    const auto t_go = clock_type::now();
    for (auto& p : ps) p.write_stdin("GO\n");
    int ok = 0;
    std::vector<std::string> failures;
    for (auto& p : ps) {
        for (;;) {
            const std::string line = p.read_line(120s);
            if (line.rfind("OK ", 0) == 0) ++ok;
            else if (line.rfind("DONE ", 0) == 0) {
                CHECK(line == "DONE " + std::to_string(2 * channels / peers) + " 0");
                break;
            } else {
                failures.push_back(line);
                if (line.empty()) break;  // timed out or died
            }
        }
    }
    const double secs = std::chrono::duration<double>(clock_type::now() - t_go).count();
    for (auto& f : failures) UNSCOPED_INFO(f);
    CHECK(failures.empty());
    CHECK(ok == 2 * channels);
    for (auto& p : ps) CHECK(p.wait(30s) == 0);
    note("load: " + std::to_string(ok) + " ends OK, " + std::to_string(channels * size >> 20) + " MiB through " +
         std::to_string(channels) + " channels in " + std::to_string(secs) + " s (" +
         std::to_string(double(channels * size) / secs / 1048576.0) + " MiB/s)");

    // Everything is gone again: segments, the engine's table, its descriptors.
    std::vector<std::string> ids;
    for (auto& ch : chans) ids.push_back(ch.reader_ref.channel_id);
    chans.clear();
    CHECK(eventually([&] { return engine_channels(eng.port) == 0; }, 10s));
    proc_sample engine_after;
    CHECK(eventually([&] { return (engine_after = sample_process(eng.proc.pid())).fds == engine_before.fds; }, 10s));
    int left = 0;
    for (auto& id : ids) left += segment_exists(id);
    CHECK(left == 0);
    note("load: after: engine fds " + std::to_string(engine_after.fds) + " (before " + std::to_string(engine_before.fds) +
         "), threads " + std::to_string(engine_after.threads) + ", rss " + std::to_string(engine_after.rss_kib / 1024) +
         " MiB; whole test " + std::to_string(std::chrono::duration<double>(clock_type::now() - t_start).count()) + " s");
    eng.proc.kill(SIGTERM);
    CHECK(eng.proc.wait(30s) == 0);
}

TEST_CASE("no_space: a channel larger than /dev/shm's free space fails at creation, the next one works",
          "[load][no_space]") {
    struct statvfs v{};
    REQUIRE(::statvfs("/dev/shm", &v) == 0);
    const std::uint64_t avail = static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
    const std::uint64_t cap = std::bit_ceil(avail + 1);
    if (cap > (std::uint64_t{1} << 40)) {
        WARN("skipped: /dev/shm has more than 1 TiB free, above the largest channel");
        return;
    }
    channel_options big;
    big.capacity = static_cast<std::size_t>(cap);
    std::string what;
    errc e = errc::ok;
    try {
        create_channel(big);
    } catch (const error& x) {
        e = x.kind();
        what = x.what();
    }
    CHECK(e == errc::no_space);
    CHECK(what.find("/dev/shm") != std::string::npos);
    note("no_space: direct create of " + std::to_string(cap) + " bytes with " + std::to_string(avail) +
         " free: " + what);

    // Through an engine process: the next normal channel works, both ways in.
    engine_process eng;
    worker w(eng.url);
    channel ch = w.create_channel(4);
    channel_options sock;
    sock.via = transport::socket;
    sock.engine = eng.url;
    reader r = open_reader(ch.reader_ref, sock);
    REQUIRE_FALSE(ch.writer.write("after no_space"));
    REQUIRE_FALSE(ch.writer.close());
    const auto got = r.read_all(10s);
    CHECK(std::string(reinterpret_cast<const char*>(got.data()), got.size()) == "after no_space");
    channel direct = create_channel();
    REQUIRE_FALSE(direct.writer.write("x"));
    REQUIRE_FALSE(direct.writer.close());
    CHECK(direct.reader.read_all(1s).size() == 1);
}

TEST_CASE("a socket end to a numeric engine address starts no thread of its own", "[load][threads]") {
    // Found by the load test: each socket end's private io_context ran Asio's asynchronous
    // resolver, whose service keeps a thread for the io_context's life (256 ends, 256 threads).
    engine_process eng;
    worker w(eng.url);
    std::vector<channel> chans;
    for (int i = 0; i < 16; ++i) chans.push_back(w.create_channel(4));
    channel_options sock;
    sock.via = transport::socket;
    sock.engine = eng.url;
    const int before = sample_process(::getpid()).threads;
    std::vector<reader> readers;
    for (auto& ch : chans) readers.push_back(open_reader(ch.reader_ref, sock));
    const int after = sample_process(::getpid()).threads;
    CHECK(after - before < 4);
    for (auto& ch : chans) REQUIRE_FALSE(ch.writer.close());
    for (auto& r : readers) CHECK(r.read_all(10s).empty());
}

TEST_CASE("a socket writer whose reader left learns it at close(), not success", "[load][close]") {
    // Found by the soak: the engine answers with close 1011 "peer_closed: ..." when it cannot
    // deliver, but a writer that had already put its whole stream into socket buffers took the
    // close handshake for success.
    engine_process eng;
    worker w(eng.url);
    channel_options sock;
    sock.via = transport::socket;
    sock.engine = eng.url;
    channel_options shm_only;
    shm_only.via = transport::shm;
    for (int round = 0; round < 3; ++round) {
        channel ch = w.create_channel(4);  // 256 KiB ring
        reader r = open_reader(ch.reader_ref, shm_only);
        writer sw = open_writer(ch.writer_ref, sock);
        std::error_code werr;
        std::thread t([&] {
            std::vector<std::byte> buf(64 << 10);
            for (std::uint64_t off = 0; off < (2u << 20) && !werr; off += buf.size()) {
                fill_pattern(buf, off);
                werr = sw.write(buf);
            }
            if (!werr) werr = sw.close();
        });
        REQUIRE(r.next(10s).is_chunk());
        r = reader();  // the reader leaves after one record
        t.join();
        CHECK(werr == errc::peer_closed);
    }
}
