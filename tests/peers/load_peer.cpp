// The client processes of the load tests (tests/load/load_test.cpp). One line of output per event.
//
//   load_peer ends URL
//       stdin, one end per line, then OPEN, then GO:
//         W <idx> shm|socket <size> <chunk> <ref>   a writer: <size> bytes of the test pattern
//                                                    in writes of <chunk> bytes, then close
//         R <idx> shm|socket <size> <ref>            a reader: expects exactly that stream
//         OPEN   opens (claims) every end, one after another -> "OPENED <n>" | "ERR open ..."
//         GO     one thread per end moves the data -> "OK W <idx> <bytes>" / "OK R <idx> <bytes>"
//                or "FAIL <W|R> <idx> <errc> <detail>" per end, then "DONE <ok> <failed>"
//   load_peer nospace CLI SIZE_MIB
//       in a new mount namespace with a tmpfs of SIZE_MIB on /dev/shm, an engine process (the
//       `shmchan` at CLI) and this process as its client: fill /dev/shm with channels until
//       creation fails with no_space, check that the engine still serves, that the channels
//       held still move every byte, and that closing some makes room for new ones. One line
//       per step; "PASS" and exit 0, or "FAIL <why>" and exit 1, or "SKIP <why>" and exit 77
//       when mount namespaces are not permitted here.
#include <shmchan/engine.hpp>
#include <shmchan/shmchan.hpp>
#include <shmchan/testkit/checksum.hpp>
#include <shmchan/worker.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <fcntl.h>
#include <functional>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <sched.h>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "support/helpers.hpp"
#include "support/proc_stats.hpp"
#include "support/streams.hpp"
#include "peer_io.hpp"

extern char** environ;

using namespace shmchan;
using namespace std::chrono_literals;

namespace {

using shmchan::peers::name;
using shmchan::peers::say;
using test::pattern_sum;
using testkit::expected_checksum;
using test::raise_fd_limit;  // many ends in one process: each socket end has its own connection and event loop
using test::read_result;

// `size` bytes of the pattern, `chunk` at a time, then close; the error, if any.
std::error_code write_pattern(writer& w, std::uint64_t size, std::size_t chunk) {
    return test::write_pattern(w, size, chunk, 60s);
}
// The whole stream: its byte count and checksum, or the error that ended it.
read_result read_stream(reader& r) { return test::read_stream(r, 60s); }

// --- ends --------------------------------------------------------------------------------------
struct end_spec {
    bool is_writer = false;
    int idx = 0;
    transport via = transport::shm;
    std::uint64_t size = 0;
    std::size_t chunk = 0;
    channel_ref ref;
    writer w;
    reader r;
};

int do_ends(const std::string& url) {
    raise_fd_limit();
    std::vector<end_spec> ends;
    std::string line;
    bool opened = false;
    while (std::getline(std::cin, line)) {
        if (line == "OPEN") {
            channel_options o;
            o.engine = url;
            for (auto& e : ends) {
                o.via = e.via;
                try {
                    if (e.is_writer) e.w = open_writer(e.ref, o);
                    else e.r = open_reader(e.ref, o);
                } catch (const error& x) {
                    say("ERR open " + std::to_string(e.idx) + " " + to_string(x.kind()) + " " + x.what());
                    return 3;
                }
            }
            opened = true;
            say("OPENED " + std::to_string(ends.size()));
            continue;
        }
        if (line == "GO") break;
        std::istringstream in(line);
        end_spec e;
        std::string kind, via;
        in >> kind >> e.idx >> via >> e.size;
        if (kind == "W") in >> e.chunk;
        std::string ref;
        std::getline(in >> std::ws, ref);
        if ((kind != "W" && kind != "R") || (via != "shm" && via != "socket") || ref.empty()) {
            say("ERR bad line: " + line);
            return 2;
        }
        e.is_writer = kind == "W";
        e.via = via == "shm" ? transport::shm : transport::socket;
        e.ref = channel_ref::parse(ref);
        ends.push_back(std::move(e));
    }
    if (!opened) {
        say("ERR no OPEN before GO");
        return 2;
    }
    std::map<std::uint64_t, std::uint64_t> sums;  // expected checksum per stream size
    for (auto& e : ends)
        if (!e.is_writer && !sums.count(e.size)) sums[e.size] = expected_checksum(e.size);
    std::atomic<int> ok{0}, failed{0};
    std::vector<std::thread> threads;
    threads.reserve(ends.size());
    for (auto& e : ends) {
        threads.emplace_back([&e, &ok, &failed, &sums] {
            const std::string who = std::string(e.is_writer ? "W " : "R ") + std::to_string(e.idx);
            if (e.is_writer) {
                const std::error_code err = write_pattern(e.w, e.size, e.chunk);
                if (err) {
                    ++failed;
                    return say("FAIL " + who + " " + name(err) + " after " + std::to_string(e.w.bytes_written()));
                }
                ++ok;
                return say("OK " + who + " " + std::to_string(e.w.bytes_written()));
            }
            const read_result r = read_stream(e.r);
            if (r.error || r.bytes != e.size || r.sum != sums.at(e.size)) {
                ++failed;
                return say("FAIL " + who + " " + (r.error ? name(r.error) : "mismatch") + " bytes " +
                           std::to_string(r.bytes) + " " + r.reason);
            }
            ++ok;
            say("OK " + who + " " + std::to_string(r.bytes));
        });
    }
    for (auto& t : threads) t.join();
    ends.clear();  // every end finished before we say so
    say("DONE " + std::to_string(ok.load()) + " " + std::to_string(failed.load()));
    return failed ? 3 : 0;
}

// --- nospace -------------------------------------------------------------------------------------
struct step_failure {
    std::string why;
};
void expect(bool cond, const std::string& why) {
    if (!cond) throw step_failure{why};
}

std::uint64_t shm_free() {
    struct statvfs v{};
    if (::statvfs("/dev/shm", &v) != 0) return 0;
    return static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
}

std::size_t segments_in_dev_shm() {
    std::size_t n = 0;
    for (const auto& s : list_segments()) n += s.name.rfind("/shmchan-", 0) == 0;
    return n;
}

// The engine as a process of its own inside the namespace: `shmchan engine`, port 0.
struct engine_process {
    pid_t pid = -1;
    int out = -1;
    std::string url;

    explicit engine_process(const std::string& cli) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) throw step_failure{"pipe failed"};
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        std::vector<std::string> args = {cli, "engine", "--listen", "127.0.0.1:0"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const int rc = ::posix_spawn(&pid, cli.c_str(), &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        ::close(p[1]);
        out = p[0];
        if (rc != 0) throw step_failure{"cannot start the engine: " + std::string(std::strerror(rc))};
        std::string line;
        char c;
        while (::read(out, &c, 1) == 1 && c != '\n') line += c;
        const auto at = line.find("ws://");
        if (at == std::string::npos) throw step_failure{"engine said \"" + line + "\""};
        url = line.substr(at);
    }
    // SIGTERM, then its exit status (128 + signal if a signal killed it).
    int stop() {
        if (pid < 0) return -1;
        ::kill(pid, SIGTERM);
        int st = 0;
        ::waitpid(pid, &st, 0);
        pid = -1;
        ::close(out);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    ~engine_process() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

std::string invocation_code(const std::function<void()>& f, std::string* message = nullptr) {
    try {
        f();
    } catch (const invocation_error& e) {
        if (message) *message = e.what();
        return e.code();
    } catch (const error& e) {
        if (message) *message = e.what();
        return to_string(e.kind());
    }
    return "none";
}

// Moves `size` bytes through a channel: a writer thread, the reader here; true if every byte
// arrived in order and the stream ended cleanly.
bool move_data(writer& w, reader& r, std::uint64_t size, std::size_t chunk, std::string* why) {
    std::error_code werr;
    std::thread t([&] { werr = write_pattern(w, size, chunk); });
    const read_result got = read_stream(r);
    t.join();
    if (werr || got.error || got.bytes != size || got.sum != expected_checksum(size)) {
        *why = std::string("writer ") + (werr ? name(werr) : "ok") + ", reader " +
               (got.error ? name(got.error) : "ok") + " " + std::to_string(got.bytes) + " bytes";
        return false;
    }
    return true;
}

channel_options mib(std::size_t n) {
    channel_options o;
    o.capacity = n << 20;
    return o;
}

struct held_channel {
    channel ch;
    bool via_engine = false;  // made by engine::channels::create (else create_channel here)
};

int do_nospace(const std::string& cli, std::uint64_t size_mib) {
    // A mount namespace of our own, mounts private (nothing leaks to the host), a small tmpfs
    // on /dev/shm. Every process started from here (the engine) sees the same small tmpfs.
    if (::unshare(CLONE_NEWNS) != 0) {
        say(std::string("SKIP unshare(CLONE_NEWNS) is not permitted here: ") + std::strerror(errno));
        return 77;
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        say(std::string("SKIP cannot make mounts private: ") + std::strerror(errno));
        return 77;
    }
    const std::string opts = "size=" + std::to_string(size_mib) + "m,mode=1777";
    if (::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
        say(std::string("SKIP cannot mount a tmpfs on /dev/shm: ") + std::strerror(errno));
        return 77;
    }
    const std::uint64_t total_free = shm_free();
    say("TMPFS " + std::to_string(size_mib) + " MiB, " + std::to_string(total_free) + " bytes free, " +
        std::to_string(segments_in_dev_shm()) + " segments");
    // Space comes back once a finished segment is unlinked and unmapped everywhere (the engine
    // unmaps its own at its next sweep, within a second).
    auto wait_free = [](std::uint64_t at_least) {
        for (int i = 0; i < 100 && shm_free() < at_least; ++i) std::this_thread::sleep_for(50ms);
        return shm_free() >= at_least;
    };
    try {
        engine_process eng(cli);
        say("ENGINE " + eng.url);
        worker w(eng.url);
        const std::uint64_t size = 1536u << 10;  // more than a 1 MiB ring: every page is written
        const std::uint64_t per_channel = (1u << 20) + 4096;  // ring + header page

        // 1. Asking for more than the tmpfs holds: no_space at creation, directly and through
        //    the engine (buffer_size 1024 = a 64 MiB ring).
        std::string msg;
        std::string code = invocation_code([&] { create_channel(mib(size_mib * 2)); }, &msg);
        say("DIRECT_TOO_BIG " + code + " " + msg);
        expect(code == "no_space", "direct create of twice the tmpfs gave " + code);
        code = invocation_code([&] { w.create_channel(1024); }, &msg);
        say("ENGINE_TOO_BIG " + code + " " + msg);
        expect(code == "no_space", "engine::channels::create of 64 MiB gave " + code);

        // 2. Fill it with 1 MiB rings, half through the engine, half directly, four threads at
        //    once (so that several may pass the free-space check together and the last loses at
        //    posix_fallocate).
        std::mutex mu;
        std::vector<held_channel> held;
        std::map<std::string, int> failures;
        std::atomic<bool> full{false};
        std::vector<std::thread> fillers;
        for (int t = 0; t < 4; ++t) {
            fillers.emplace_back([&, t] {
                for (int i = 0; !full.load(); ++i) {
                    std::string why;
                    held_channel h;
                    h.via_engine = (t + i) % 2;
                    const std::string c = invocation_code([&] {
                        h.ch = h.via_engine ? w.create_channel(16) : create_channel(mib(1));  // 16 x 64 KiB
                    }, &why);
                    std::lock_guard lk(mu);
                    if (c == "none") {
                        held.push_back(std::move(h));
                        continue;
                    }
                    ++failures[c + (why.find("reserve") != std::string::npos ? "(fallocate)" : "")];
                    if (c != "no_space") say("UNEXPECTED " + c + " " + why);
                    full = true;
                }
            });
        }
        for (auto& t : fillers) t.join();
        std::string fs;
        for (auto& [c, n] : failures) fs += " " + c + "=" + std::to_string(n);
        const std::uint64_t free_when_full = shm_free();
        say("FILLED " + std::to_string(held.size()) + " channels, failures" + fs + ", " +
            std::to_string(free_when_full) + " bytes free, " + std::to_string(segments_in_dev_shm()) + " segments");
        for (auto& [c, n] : failures) expect(c.rfind("no_space", 0) == 0, "filling failed with " + c);
        expect(held.size() >= 2, "fewer than two 1 MiB channels fit");
        // A failed creation leaves nothing behind: every segment here is one we hold.
        expect(segments_in_dev_shm() == held.size(), "a failed creation left a segment");
        // Still full, one at a time, both ways in.
        code = invocation_code([&] { w.create_channel(16); }, &msg);
        say("ENGINE_FULL " + code + " " + msg);
        expect(code == "no_space", "engine create on a full tmpfs gave " + code);
        code = invocation_code([&] { create_channel(mib(1)); }, &msg);
        say("DIRECT_FULL " + code + " " + msg);
        expect(code == "no_space", "direct create on a full tmpfs gave " + code);

        // 3. The engine still serves: a function registered now, and invoked below.
        w.register_function("nospace::sum", [](invocation& call) {
            const read_result r = read_stream(call.reader("reader"));
            if (r.error) throw error(static_cast<errc>(r.error.value()), "reading: " + r.reason);
            return nlohmann::json{{"bytes", r.bytes}, {"sum", r.sum}};
        });
        std::this_thread::sleep_for(100ms);

        // 4. Every channel held still moves data, more than its ring, so every page of it is
        //    written (no SIGBUS: the pages were reserved at creation). Half of them now: engine
        //    channels with a socket writer and a function reading through shared memory,
        //    direct channels from a writer thread to a reader here; then they are dropped.
        channel_options sock;
        sock.via = transport::socket;
        sock.engine = eng.url;
        const std::size_t half = held.size() / 2;
        {
            std::vector<held_channel> first(std::make_move_iterator(held.begin()),
                                            std::make_move_iterator(held.begin() + static_cast<std::ptrdiff_t>(half)));
            held.erase(held.begin(), held.begin() + static_cast<std::ptrdiff_t>(half));
            for (std::size_t i = 0; i < first.size(); ++i) {
                held_channel& h = first[i];
                std::string why;
                if (h.via_engine) {
                    writer sw = open_writer(h.ch.writer_ref, sock);
                    std::error_code werr;
                    std::thread t([&] { werr = write_pattern(sw, size, 4000); });
                    nlohmann::json r;
                    code = invocation_code([&] { r = w.trigger({"nospace::sum", {{"reader", h.ch.reader_ref}}, 60s}); }, &why);
                    t.join();
                    expect(code == "none" && !werr && r.value("bytes", 0ull) == size &&
                               r.value("sum", 0ull) == expected_checksum(size),
                           "engine channel " + std::to_string(i) + ": " + code + " " + why);
                } else {
                    expect(move_data(h.ch.writer, h.ch.reader, size, 3000, &why), "direct channel " + std::to_string(i) + ": " + why);
                }
            }
            say("MOVED " + std::to_string(first.size()) + " channels of " + std::to_string(first.size() + held.size()) +
                ", " + std::to_string(size) + " bytes each, checksums equal");
        }
        const auto t0 = std::chrono::steady_clock::now();
        const bool room = wait_free(free_when_full + half * per_channel);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
        say("AFTER_CLOSE " + std::to_string(segments_in_dev_shm()) + " segments, " + std::to_string(shm_free()) +
            " bytes free after " + std::to_string(ms) + " ms");
        expect(room && segments_in_dev_shm() == held.size(), "finished channels did not give their space back");

        // 5. Room again for `half` channels. First a burst: 2 x half creators at once, engine
        //    and direct. Concurrent reservations can fail together (each holds part of the
        //    space when the tmpfs runs dry), so at most `half` succeed, every failure is
        //    no_space, and a failure leaves nothing behind. Then one at a time up to `half`.
        std::vector<held_channel> fresh;
        {
            std::atomic<bool> go{false};
            std::vector<std::string> codes(2 * half);
            std::vector<held_channel> got(2 * half);
            std::vector<std::thread> burst;
            for (std::size_t i = 0; i < 2 * half; ++i)
                burst.emplace_back([&, i] {
                    while (!go.load()) std::this_thread::yield();
                    got[i].via_engine = i % 2;
                    std::string why;
                    codes[i] = invocation_code([&] {
                        got[i].ch = got[i].via_engine ? w.create_channel(16) : create_channel(mib(1));
                    }, &why);
                    if (codes[i] == "no_space" && why.find("reserve") != std::string::npos) codes[i] += "(fallocate)";
                });
            go = true;
            for (auto& t : burst) t.join();
            std::map<std::string, int> tally;
            for (std::size_t i = 0; i < codes.size(); ++i) {
                ++tally[codes[i]];
                if (codes[i] == "none") fresh.push_back(std::move(got[i]));
            }
            std::string ts;
            for (auto& [c, n] : tally) ts += " " + c + "=" + std::to_string(n);
            say("BURST " + std::to_string(2 * half) + " creators at once for room of " + std::to_string(half) + ":" + ts +
                "; " + std::to_string(segments_in_dev_shm()) + " segments");
            for (auto& [c, n] : tally) expect(c == "none" || c.rfind("no_space", 0) == 0, "burst creation failed with " + c);
            expect(fresh.size() <= half, "more channels than fit");
            expect(segments_in_dev_shm() == held.size() + fresh.size(), "a failed creation left a segment");
        }
        while (fresh.size() < half) {
            held_channel h;
            h.via_engine = fresh.size() % 2;
            code = invocation_code([&] { h.ch = h.via_engine ? w.create_channel(16) : create_channel(mib(1)); }, &msg);
            expect(code == "none", "new channel " + std::to_string(fresh.size()) + " after closing: " + code + " " + msg);
            fresh.push_back(std::move(h));
        }
        code = invocation_code([&] { create_channel(mib(1)); }, &msg);
        say("NEW " + std::to_string(fresh.size()) + " channels created after closing; one more: " + code);
        expect(code == "no_space", "the tmpfs should be full again, got " + code);
        // The other half of the old ones and the new ones move data (both ends here; engine
        // channels open their lazy ends through shared memory).
        for (auto* group : {&held, &fresh})
            for (std::size_t i = 0; i < group->size(); ++i) {
                std::string why;
                expect(move_data((*group)[i].ch.writer, (*group)[i].ch.reader, size, 5000 + i, &why),
                       "channel " + std::to_string(i) + ": " + why);
            }
        say("MOVED_ALL " + std::to_string(held.size() + fresh.size()) + " channels");
        held.clear();
        fresh.clear();
        const bool all_back = wait_free(total_free);
        say("EMPTY " + std::to_string(segments_in_dev_shm()) + " segments, " + std::to_string(shm_free()) + " bytes free");
        expect(segments_in_dev_shm() == 0 && all_back, "segments or space left at the end");

        const int st = eng.stop();
        say("ENGINE_EXIT " + std::to_string(st));
        expect(st == 0, "the engine exited with " + std::to_string(st));
    } catch (const step_failure& f) {
        say("FAIL " + f.why);
        return 1;
    } catch (const std::exception& e) {
        say(std::string("FAIL exception: ") + e.what());
        return 1;
    }
    say("PASS");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    std::vector<std::string> a(argv + 1, argv + argc);
    try {
        if (a.size() == 2 && a[0] == "ends") return do_ends(a[1]);
        if (a.size() == 3 && a[0] == "nospace") return do_nospace(a[1], std::stoull(a[2]));
    } catch (const std::exception& e) {
        say(std::string("ERR ") + e.what());
        return 3;
    }
    std::fprintf(stderr, "usage: see load_peer.cpp\n");
    return 2;
}
