// The crash matrix (issue 5): the writer, the reader, the engine and a socket client, each a
// real process, killed (SIGKILL) or hung (SIGSTOP) at chosen and random points of a stream.
// For every row the survivor must report a clear error within a stated bound (peer_lost,
// peer_closed, aborted, engine_unreachable, or timeout when it set a deadline), never a clean
// end for a truncated stream, and every byte it got must be the byte written at that position
// (fill_pattern). No segment this test made may stay in /dev/shm, except where the engine died
// holding both ends: then `shmchan gc` restricted to that channel must remove it.
//
//   SHMCHAN_CRASH_SEED=N     replays the random points of a run (each process prints its seed)
//   SHMCHAN_CRASH_ROUNDS=N   every row N times with new random points (long runs; default 1)
//   SHMCHAN_CRASH_REPORT=F   appends a markdown row per survivor to F (victim, fault, point,
//                            survivor, outcome, time until it noticed, bound)
//
// The rows are in `matrix` below, the combinations left out (and why) in `skipped`.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shmchan/admin.hpp"
#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"
#include "support/process.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::child;
using shmchan::test::cli_path;
using shmchan::test::pattern_sum;
using shmchan::test::peer_path;
using shmchan::test::segment_exists;
using clock_type = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

namespace {

// --- bounds ------------------------------------------------------------------------------------
// Sanitizer builds run the processes several times slower (TSan most); bounds scale with them.
// What grows is mostly draining: a survivor first delivers every byte the dead peer committed,
// and on the socket paths that includes the megabytes the kernel had buffered.
#if defined(__SANITIZE_THREAD__)
constexpr int slowdown = 5;
#elif defined(__SANITIZE_ADDRESS__)
constexpr int slowdown = 3;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int slowdown = 5;
#elif __has_feature(address_sanitizer)
constexpr int slowdown = 3;
#else
constexpr int slowdown = 1;
#endif
#else
constexpr int slowdown = 1;
#endif

// SIGKILL of the peer -> the survivor's clear error (the design's target is 250 ms; the margin
// is for a loaded 2-CPU machine).
constexpr ms notice_bound = 2000ms * slowdown;
// The deadline a survivor of a SIGSTOP passes to each call, and when it must have given up.
constexpr ms deadline = 300ms;
constexpr ms timeout_bound = deadline + 1500ms * slowdown;
// A socket end opening against a hung engine gives up after the transport's connect timeout.
constexpr ms connect_bound = 10000ms + 2000ms * slowdown;
// How long this test waits for anything at all before it calls the row hung (a failure).
constexpr ms patience = 20000ms * slowdown;

constexpr std::uint64_t endless = std::uint64_t{1} << 40;  // a writer that never finishes
constexpr std::size_t direct_ring = std::size_t{1} << 16;  // channels without an engine
constexpr std::size_t engine_buffer = 4;                   // 4 SDK frames: a 256 KiB ring
constexpr std::uint64_t resume_bytes = std::uint64_t{1} << 20;  // read after SIGCONT

// --- the matrix --------------------------------------------------------------------------------
enum class victim { writer, reader, engine, socket_writer, socket_reader, socket_client };
enum class fault { kill, stop };
enum class point {
    before_claim,       // the process started but has not claimed its end
    before_first_byte,  // claimed (or connected), nothing written or read yet
    mid_stream,         // at a random byte of a stream in full flow
    mid_record,         // writer: a loan taken and half filled, never committed; reader: a view held
    full_ring,          // the writer blocked on a full ring (the reader stopped reading)
    after_close,        // the writer closed cleanly; the reader has not read the end yet
    handshake_connect,  // socket client: TCP connected, nothing sent
    handshake_partial,  // socket client: half of the HTTP upgrade request sent
    handshake_request,  // socket client: the whole upgrade request sent, the answer not read
};
// Where the ends are. The test process holds the end that is not named as a process.
enum class path {
    shm,            // writer and reader attached to the ring (no engine)
    socket_writer,  // a socket writer process -> engine -> this process reading the ring
    socket_reader,  // this process writing the ring -> engine -> a socket reader process
    both_sockets,   // a socket writer process -> engine -> a socket reader process
};

struct row {
    victim who;
    fault how;
    point when;
    path via;
};

const row matrix[] = {
    // A writer process attached to the ring; this process reads.
    {victim::writer, fault::kill, point::before_claim, path::shm},
    {victim::writer, fault::kill, point::before_first_byte, path::shm},
    {victim::writer, fault::kill, point::mid_stream, path::shm},
    {victim::writer, fault::kill, point::mid_record, path::shm},
    {victim::writer, fault::kill, point::full_ring, path::shm},
    {victim::writer, fault::kill, point::after_close, path::shm},
    {victim::writer, fault::stop, point::before_first_byte, path::shm},
    {victim::writer, fault::stop, point::mid_stream, path::shm},
    {victim::writer, fault::stop, point::mid_record, path::shm},
    {victim::writer, fault::stop, point::full_ring, path::shm},
    {victim::writer, fault::stop, point::after_close, path::shm},
    // A reader process attached to the ring; this process writes.
    {victim::reader, fault::kill, point::before_claim, path::shm},
    {victim::reader, fault::kill, point::before_first_byte, path::shm},
    {victim::reader, fault::kill, point::mid_stream, path::shm},
    {victim::reader, fault::kill, point::mid_record, path::shm},
    {victim::reader, fault::kill, point::full_ring, path::shm},
    {victim::reader, fault::kill, point::after_close, path::shm},
    {victim::reader, fault::stop, point::mid_stream, path::shm},
    {victim::reader, fault::stop, point::mid_record, path::shm},
    {victim::reader, fault::stop, point::after_close, path::shm},
    // The engine process (`shmchan engine`) between socket ends and the ring.
    {victim::engine, fault::kill, point::before_first_byte, path::both_sockets},
    {victim::engine, fault::kill, point::mid_stream, path::socket_writer},
    {victim::engine, fault::kill, point::mid_stream, path::socket_reader},
    {victim::engine, fault::kill, point::mid_stream, path::both_sockets},
    {victim::engine, fault::kill, point::full_ring, path::socket_writer},
    {victim::engine, fault::kill, point::after_close, path::socket_writer},
    {victim::engine, fault::kill, point::handshake_request, path::socket_reader},
    {victim::engine, fault::stop, point::mid_stream, path::socket_writer},
    {victim::engine, fault::stop, point::mid_stream, path::socket_reader},
    {victim::engine, fault::stop, point::after_close, path::socket_writer},
    {victim::engine, fault::stop, point::handshake_request, path::socket_reader},
    // A C++ socket writer process (transport::socket) through a live engine; this process reads.
    {victim::socket_writer, fault::kill, point::before_first_byte, path::socket_writer},
    {victim::socket_writer, fault::kill, point::mid_stream, path::socket_writer},
    {victim::socket_writer, fault::kill, point::mid_record, path::socket_writer},
    {victim::socket_writer, fault::kill, point::full_ring, path::socket_writer},
    {victim::socket_writer, fault::kill, point::after_close, path::socket_writer},
    {victim::socket_writer, fault::stop, point::before_first_byte, path::socket_writer},
    {victim::socket_writer, fault::stop, point::mid_stream, path::socket_writer},
    {victim::socket_writer, fault::stop, point::after_close, path::socket_writer},
    // A C++ socket reader process through a live engine; this process writes.
    {victim::socket_reader, fault::kill, point::before_first_byte, path::socket_reader},
    {victim::socket_reader, fault::kill, point::mid_stream, path::socket_reader},
    {victim::socket_reader, fault::kill, point::full_ring, path::socket_reader},
    {victim::socket_reader, fault::kill, point::after_close, path::socket_reader},
    {victim::socket_reader, fault::kill, point::mid_stream, path::both_sockets},
    {victim::socket_reader, fault::stop, point::mid_stream, path::socket_reader},
    // A raw socket client stopped part way through the upgrade of a channel socket.
    {victim::socket_client, fault::kill, point::handshake_connect, path::socket_writer},
    {victim::socket_client, fault::kill, point::handshake_partial, path::socket_writer},
    {victim::socket_client, fault::kill, point::handshake_request, path::socket_writer},
    {victim::socket_client, fault::kill, point::handshake_request, path::socket_reader},
    {victim::socket_client, fault::stop, point::handshake_request, path::socket_writer},
};

struct skipped_row {
    victim who;
    fault how;
    const char* points;
    const char* why;
};
const skipped_row skipped[] = {
    {victim::writer, fault::stop, "before it claims its end",
     "to the reader, a writer stopped before its claim is the same as one killed there: an "
     "unclaimed end (the SIGKILL row)"},
    {victim::reader, fault::stop, "before it claims its end",
     "the same as the SIGKILL row: the writer sees an unclaimed reader"},
    {victim::reader, fault::stop, "before the first byte, writer blocked on a full ring",
     "a reader that does not read looks the same whether stopped or idle: the ring fills and the "
     "writer times out, which the SIGSTOP mid-stream row covers"},
    {victim::writer, fault::kill, "handshake", "no handshake on the shared-memory path: a claim is one "
     "compare-and-swap, so before it is 'before it claims', after it 'before the first byte'"},
    {victim::engine, fault::kill, "mid-record",
     "the engine never holds a record half written: it copies whole frames into the ring "
     "(try_write); a frame cut by the crash is a mid-stream row (frames up to 256 KiB)"},
    {victim::engine, fault::stop, "before the first byte, full ring",
     "a hung engine with no end connected is met at the next connect (the handshake row); with "
     "a full ring it looks like the mid-stream row to both survivors: bytes stop moving"},
    {victim::engine, fault::kill, "handshake: connect, partial request",
     "the engine is the server: a client either reaches it or not; the 'request sent' row "
     "covers a client waiting in the upgrade"},
    {victim::socket_writer, fault::stop, "mid-record, full ring",
     "a socket writer's loan is its own buffer, and a stopped one is the mid-stream row"},
    {victim::socket_reader, fault::kill, "mid-record",
     "a socket reader's view is its own frame buffer, not the ring: the mid-stream row"},
    {victim::socket_reader, fault::stop, "before the first byte, full ring, after close",
     "covered by the SIGSTOP mid-stream row (the writer ends up blocked on the full ring)"},
    {victim::socket_client, fault::stop, "handshake: connect, partial request",
     "nothing is claimed before the request is complete, so no survivor waits on such a client; "
     "the engine drops it after 30 s (too long for CI)"},
};

const char* name(victim v) {
    switch (v) {
        case victim::writer: return "writer process";
        case victim::reader: return "reader process";
        case victim::engine: return "engine process";
        case victim::socket_writer: return "socket writer process";
        case victim::socket_reader: return "socket reader process";
        case victim::socket_client: return "socket client (raw, mid-handshake)";
    }
    return "?";
}
const char* name(fault f) { return f == fault::kill ? "SIGKILL" : "SIGSTOP"; }
const char* name(point p) {
    switch (p) {
        case point::before_claim: return "before it claims its end";
        case point::before_first_byte: return "before the first byte";
        case point::mid_stream: return "mid-stream (random byte)";
        case point::mid_record: return "mid-record";
        case point::full_ring: return "writer blocked on a full ring";
        case point::after_close: return "after a clean close";
        case point::handshake_connect: return "handshake: TCP connected";
        case point::handshake_partial: return "handshake: half the upgrade request";
        case point::handshake_request: return "handshake: upgrade request sent";
    }
    return "?";
}
const char* name(path p) {
    switch (p) {
        case path::shm: return "shm";
        case path::socket_writer: return "socket writer -> engine -> shm reader";
        case path::socket_reader: return "shm writer -> engine -> socket reader";
        case path::both_sockets: return "socket writer -> engine -> socket reader";
    }
    return "?";
}

// --- seeds and reports ---------------------------------------------------------------------------
std::uint64_t crash_seed() {
    static const std::uint64_t seed = [] {
        std::uint64_t s;
        if (const char* e = std::getenv("SHMCHAN_CRASH_SEED"); e && *e) {
            s = std::strtoull(e, nullptr, 10);
        } else {
            std::random_device rd;
            s = (std::uint64_t{rd()} << 32) ^ rd();
        }
        std::printf("crash matrix: seed %llu (replay with SHMCHAN_CRASH_SEED=%llu)\n",
                    static_cast<unsigned long long>(s), static_cast<unsigned long long>(s));
        std::fflush(stdout);
        return s;
    }();
    return seed;
}

int rounds() {
    const char* e = std::getenv("SHMCHAN_CRASH_ROUNDS");
    return e && *e ? std::max(1, std::atoi(e)) : 1;
}

long long millis(clock_type::duration d) { return std::chrono::duration_cast<ms>(d).count(); }

// One row being run: its random points, the channels it made, what the survivors reported.
struct the_case {
    const row& r;
    int round;
    std::mt19937_64 rng;
    std::vector<std::string> ids;      // channels this row made: none may stay in /dev/shm
    std::vector<std::string> orphans;  // left because both ends died with the engine: gc them

    the_case(const row& rw, std::size_t index, int rnd)
        : r(rw), round(rnd), rng(crash_seed() ^ (0x9E3779B97F4A7C15ULL * (index + 1)) ^
                                 (std::uint64_t(rnd) << 48)) {}

    // Whatever happened (a failed REQUIRE included), nothing of this row stays in /dev/shm: every
    // process it started is gone by now, and these names are its own. (On success run() has
    // already checked that they are gone, so this removes nothing.)
    ~the_case() {
        for (const auto& id : ids) ::shm_unlink(("/shmchan-" + id).c_str());
    }
    the_case(const the_case&) = delete;
    the_case& operator=(const the_case&) = delete;

    std::uint64_t pick(std::uint64_t lo, std::uint64_t hi) {
        return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
    }
    std::string title() const {
        return std::string(name(r.who)) + ", " + name(r.how) + ", " + name(r.when) + " [" + name(r.via) + "]";
    }
    // One survivor's line: what it reported, how long after the fault, and how long after its
    // last delivered byte (the bound is on that one).
    void report(const std::string& survivor, const std::string& outcome, clock_type::duration noticed,
                ms bound, clock_type::duration quiet = clock_type::duration(-1)) {
        auto text = [](clock_type::duration d) { return d < clock_type::duration::zero() ? std::string("-") : std::to_string(millis(d)); };
        const std::string t = text(noticed), q = text(quiet);
        const std::string b = bound.count() ? std::to_string(bound.count()) : "-";
        std::printf("crash matrix | %s | %s | %s | %s | %s | %s | %s ms | %s ms after its last byte | <= %s ms\n",
                    name(r.who), name(r.how), name(r.when), name(r.via), survivor.c_str(), outcome.c_str(), t.c_str(),
                    q.c_str(), b.c_str());
        std::fflush(stdout);
        if (const char* f = std::getenv("SHMCHAN_CRASH_REPORT"); f && *f) {
            std::ofstream out(f, std::ios::app);
            out << "| " << name(r.who) << " | " << name(r.how) << " | " << name(r.when) << " | " << name(r.via)
                << " | " << survivor << " | " << outcome << " | " << t << " | " << q << " | " << b << " |\n";
        }
    }
};

// --- what survivors saw ----------------------------------------------------------------------------
struct seen {
    bool clean = false;    // a clean end of stream (or a successful close/drain)
    bool reached = false;  // the byte target came first: the stream is still flowing
    std::error_code err;   // the error reported, timeout included
    std::string reason;    // the writer's, after aborted
    clock_type::time_point at = clock_type::now();
    clock_type::time_point last_data{};  // when it last delivered (or wrote) a byte, if it did
};
// The test itself gave up waiting: a hang, never an acceptable outcome.
const std::error_code gave_up = std::make_error_code(std::errc::timed_out);

std::string describe(const seen& s) {
    if (s.clean) return "clean end";
    if (s.reached) return "still streaming";
    if (s.err == gave_up) return "HUNG (no outcome within the test's patience)";
    if (s.err.category() != error_category()) return "unexpected error " + s.err.message();
    std::string d = to_string(static_cast<errc>(s.err.value()));
    if (!s.reason.empty()) d += " (\"" + s.reason + "\")";
    return d;
}

std::error_code code_named(const std::string& n) {
    for (int i = 0; i <= static_cast<int>(errc::protocol_error); ++i)
        if (n == to_string(static_cast<errc>(i))) return static_cast<errc>(i);
    return std::make_error_code(std::errc::invalid_argument);  // matches no shmchan code
}

// Checks every byte against the pattern at its position.
struct verifier {
    std::uint64_t bytes = 0;
    clock_type::time_point last_at{};  // when the last chunk came
    std::uint64_t first_bad = ~std::uint64_t{0};
    int messages = 0;
    std::vector<std::byte> expect;
    void check(std::span<const std::byte> d) {
        if (first_bad == ~std::uint64_t{0}) {
            expect.resize(d.size());
            fill_pattern(expect, bytes);
            const auto m = std::mismatch(expect.begin(), expect.end(), d.begin());
            if (m.first != expect.end()) first_bad = bytes + static_cast<std::uint64_t>(m.first - expect.begin());
        }
        bytes += d.size();
        last_at = clock_type::now();
    }
    bool intact() const { return first_bad == ~std::uint64_t{0} && messages == 0; }
};

// Reads until the end, an error (a timeout included: `per_call` is each call's deadline), or
// `until` bytes. Never longer than the test's patience.
seen drain(reader& r, verifier& v, nanoseconds per_call, std::uint64_t until = ~std::uint64_t{0}) {
    const auto give_up = clock_type::now() + patience;
    for (;;) {
        seen s;
        if (v.bytes >= until) {
            s.reached = true;
            return s;
        }
        if (clock_type::now() > give_up) {
            s.err = gave_up;
            return s;
        }
        item it = r.next(std::min<nanoseconds>(per_call, patience));
        if (it.is_chunk()) {
            v.check(it.data());
            continue;
        }
        if (it.is_message()) {
            ++v.messages;
            continue;
        }
        s.at = clock_type::now();
        s.last_data = v.last_at;
        s.clean = it.is_end();
        if (!s.clean) s.err = it.error();
        if (s.err == errc::aborted) s.reason = r.abort_reason();
        if (s.err == errc::timeout && per_call >= patience) s.err = gave_up;
        return s;
    }
}

// Writes the pattern from bytes_written() on, in chunks of random size, until an error (a
// timeout included) or `until` bytes.
seen pump(writer& w, std::mt19937_64& rng, nanoseconds per_call, std::uint64_t until = endless) {
    std::vector<std::byte> buf(std::size_t{1} << 16);
    // At least 256 bytes a write, so that a short stream fits the ring with its record headers.
    std::uniform_int_distribution<std::size_t> size(256, buf.size());
    const auto give_up = clock_type::now() + patience;
    clock_type::time_point last{};
    for (;;) {
        seen s;
        s.last_data = last;
        const std::uint64_t off = w.bytes_written();
        if (off >= until) {
            s.reached = true;
            return s;
        }
        if (clock_type::now() > give_up) {
            s.err = gave_up;
            return s;
        }
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(size(rng), until - off));
        fill_pattern(std::span(buf.data(), n), off);
        if (auto e = w.write(std::span(buf.data(), n), std::min<nanoseconds>(per_call, patience))) {
            s.at = clock_type::now();
            s.err = e == errc::timeout && per_call >= patience ? gave_up : e;
            return s;
        }
        last = clock_type::now();
    }
}

seen outcome_of(std::error_code e) {
    seen s;
    s.clean = !e;
    s.err = e;
    return s;
}

// A survivor in this process (reader or writer), running beside the fault. `faulted` tells it
// whether a timeout counts: one before the fault is a slow machine, so it goes on.
struct survivor_thread {
    std::atomic<bool> faulted{false};
    seen result;
    std::thread t;
    template <class F>
    void start(F f) {
        t = std::thread([this, f]() mutable {
            for (;;) {
                result = f();
                if (result.err == errc::timeout && !faulted.load()) continue;
                return;
            }
        });
    }
    seen join() {
        if (t.joinable()) t.join();
        return result;
    }
    ~survivor_thread() {
        if (t.joinable()) t.join();
    }
};

// --- verdicts -----------------------------------------------------------------------------------
// What a survivor delivered (a reader here: its verifier; a writer here: bytes_written(); a
// process: what it said), read when the verdict is given, i.e. after the survivor returned.
struct delivered {
    const verifier* v = nullptr;
    const writer* w = nullptr;
    std::uint64_t n = 0;
    bool ok = true;
    delivered(const verifier& x) : v(&x) {}
    delivered(const writer& x) : w(&x) {}
    delivered(std::uint64_t bytes, bool intact = true) : n(bytes), ok(intact) {}
    std::uint64_t bytes() const { return v ? v->bytes : w ? w->bytes_written() : n; }
    bool intact() const { return v ? v->intact() : ok; }
};

// The survivor reported `want` within `bound` of the fault, never a clean end, and every byte it
// delivered was the byte written there.
void verdict(the_case& c, const std::string& survivor, const seen& s, clock_type::time_point fault_at,
             errc want, ms bound, delivered d) {
    const std::uint64_t bytes = d.bytes();
    const bool intact = d.intact();
    const auto noticed = std::max(clock_type::duration::zero(), s.at - fault_at);
    // A survivor first delivers what the peer committed before the fault, which on the socket
    // paths includes what the kernel buffered (megabytes, slow under sanitizers). The bound is
    // on how long it took to report once it had nothing more to deliver.
    const auto quiet = std::max(clock_type::duration::zero(), s.at - std::max(fault_at, s.last_data));
    c.report(survivor, describe(s) + ", " + std::to_string(bytes) + " bytes" + (intact ? "" : " NOT INTACT"),
             noticed, bound, quiet);
    INFO(c.title() << ": " << survivor << " reported " << describe(s) << " after " << millis(noticed)
                   << " ms, " << millis(quiet) << " ms after its last byte");
    CHECK_FALSE(s.clean);
    CHECK(s.err == want);
    CHECK(millis(quiet) <= bound.count());
    CHECK(millis(noticed) <= patience.count());  // and never a hang, however much it had to deliver
    CHECK(intact);
}
// The stream must end cleanly with all `want_bytes`, each the byte written there.
void verdict_clean(the_case& c, const std::string& survivor, const seen& s, const verifier& v,
                   std::uint64_t want_bytes) {
    c.report(survivor, describe(s) + ", " + std::to_string(v.bytes) + " of " + std::to_string(want_bytes) + " bytes",
             clock_type::duration(-1), ms(0));
    INFO(c.title() << ": " << survivor << " reported " << describe(s));
    CHECK(s.clean);
    CHECK(v.bytes == want_bytes);
    CHECK(v.intact());
}

// --- processes ----------------------------------------------------------------------------------
std::vector<std::string> words(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> w;
    for (std::string s; in >> s;) w.push_back(s);
    return w;
}

// A peer's "AT <last> <now>" (--stamp): steady-clock times, the same clock in every process.
struct stamp {
    bool valid = false;
    clock_type::time_point last{}, at{};
};

// The next line starting with `prefix`, or the first error line ("ERR ..", "MISMATCH .."), or ""
// when the process says nothing more within `limit`; `st` gets the "AT" line said before it.
std::string await(child& p, const std::string& prefix, ms limit = patience, stamp* st = nullptr) {
    const auto until = clock_type::now() + limit;
    for (;;) {
        const auto left = std::chrono::duration_cast<ms>(until - clock_type::now());
        if (left.count() <= 0) return {};
        const std::string line = p.read_line(left);
        if (line.empty()) return {};
        if (line.rfind("AT ", 0) == 0) {
            if (st) {
                std::istringstream in(line.substr(3));
                long long last = 0, at = 0;
                in >> last >> at;
                st->valid = true;
                st->last = last ? clock_type::time_point(std::chrono::nanoseconds(last)) : clock_type::time_point{};
                st->at = clock_type::time_point(std::chrono::nanoseconds(at));
            }
            continue;
        }
        if (line.rfind(prefix, 0) == 0 || line.rfind("ERR ", 0) == 0 || line.rfind("MISMATCH", 0) == 0)
            return line;
    }
}
std::uint64_t number_in(const std::string& line, std::size_t word = 1) {
    const auto w = words(line);
    return w.size() > word ? std::stoull(w[word]) : 0;
}

// A peer's final "ERR <errc> <bytes> ..." line as a verdict; the time is the peer's own (its
// stamp), or when we read the line.
seen seen_in(const std::string& line, const stamp& st = {}) {
    seen s;
    if (st.valid) {
        s.at = st.at;
        s.last_data = st.last;
    }
    const auto w = words(line);
    if (line.empty()) s.err = gave_up;
    else if (w[0] == "END" || w[0] == "CLOSED" || w[0] == "DRAINED") s.clean = true;
    else if (w[0] == "ERR" && w.size() > 1) s.err = code_named(w[1]);
    else if (w[0] == "TIMEOUT" || w[0] == "BLOCKED") s.err = errc::timeout;
    else s.err = std::make_error_code(std::errc::protocol_error);
    return s;
}
// A peer reader's "ERR <errc> <bytes> <checksum>" or "END <bytes> <checksum>": its bytes were
// the pattern's prefix (the checksum is position-sensitive; with --verify it also said MISMATCH
// at the first wrong byte).
bool peer_bytes_intact(const std::string& line) {
    const auto w = words(line);
    const std::size_t at = w.size() > 0 && w[0] == "ERR" ? 2 : 1;
    if (w.size() < at + 2) return false;
    char want[32];
    std::snprintf(want, sizeof want, "%016llx", static_cast<unsigned long long>(pattern_sum(std::stoull(w[at]))));
    return w[at + 1] == want;
}

void send_fault(child& p, fault f) { p.kill(f == fault::kill ? SIGKILL : SIGSTOP); }

// `shmchan engine` on a free port, as its own process.
struct engine_proc {
    child proc;
    std::string url;
    bool dead = false;

    // Returns when the signal went, before the reaping.
    clock_type::time_point kill() {
        proc.kill(SIGKILL);
        const auto at = clock_type::now();
        proc.wait(patience);
        dead = true;
        return at;
    }
    // The end of a row: a hung engine resumes, then stops cleanly (which finishes its channels).
    void stop() {
        if (dead) return;
        proc.kill(SIGCONT);
        proc.kill(SIGTERM);
        CHECK(proc.wait(patience) == 0);
        dead = true;
    }
};
engine_proc start_engine() {
    child p = child::spawn({cli_path(), "engine", "--listen", "127.0.0.1:0"});
    const std::string line = p.read_line(patience);  // "shmchan engine: listening on ws://..."
    const auto at = line.find("ws://");
    REQUIRE(at != std::string::npos);
    return engine_proc{std::move(p), line.substr(at)};
}

channel_options socket_via(const std::string& url) {
    channel_options o;
    o.via = transport::socket;
    o.engine = url;
    return o;
}
worker_options shm_ends() {  // this process's own ends go through shared memory
    worker_options o;
    o.via = transport::shm;
    return o;
}

bool eventually(const std::function<bool()>& cond, ms limit = patience) {
    const auto until = clock_type::now() + limit;
    while (clock_type::now() < until) {
        if (cond()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return cond();
}

// The engine still serves channel sockets: a fresh channel, a socket writer here, the ring read.
void check_engine_serves(the_case& c, const std::string& url) {
    INFO(c.title() << ": the engine must keep serving");
    worker w(url, shm_ends());
    channel ch = w.create_channel(engine_buffer);
    c.ids.push_back(ch.reader_ref.channel_id);
    writer sw = open_writer(ch.writer_ref, socket_via(url));
    CHECK_FALSE(sw.write("still serving"));
    CHECK_FALSE(sw.close(patience));
    std::vector<std::byte> got;
    CHECK_FALSE(ch.reader.read_all(got, patience));
    CHECK(got.size() == 13);
}

// --- rows: a writer process on the ring, this process reading --------------------------------------
void writer_victim(the_case& c) {
    channel ch = create_channel(test::opts(direct_ring, 50));
    c.ids.push_back(ch.reader_ref.channel_id);
    std::vector<std::string> args{peer_path(), "write", ch.writer_ref.dump(), "--chunk",
                                  std::to_string(c.pick(512, 20000))};
    auto add = [&](std::initializer_list<std::string> more) { args.insert(args.end(), more); };
    const std::string me = "reader (this process)";
    const bool kill = c.r.how == fault::kill;
    verifier v;
    switch (c.r.when) {
        case point::before_claim: {  // SIGKILL only
            add({"--size", "1000", "--hold-at", "start"});
            child w = child::spawn(args);
            REQUIRE(w.read_line(patience) == "STARTED");
            w.kill(SIGKILL);
            const auto t0 = clock_type::now();
            // Nobody ever claimed the writer: without an engine (whose TTL would end it) only a
            // deadline ends the wait; the end is not dead, just absent.
            verdict(c, me + ", next(300 ms)", drain(ch.reader, v, deadline), t0, errc::timeout, timeout_bound, v);
            // The creator still holds the writer's ref: it can end the channel.
            ch.writer.abort("crash matrix: the writer never came");
            const seen s = drain(ch.reader, v, patience);
            CHECK(s.err == errc::aborted);
            CHECK(v.bytes == 0);
            break;
        }
        case point::before_first_byte: {
            add({"--size", "1000", "--hold-at", "open"});
            child w = child::spawn(args);
            REQUIRE(w.read_line(patience) == "OPEN");
            send_fault(w, c.r.how);
            const auto t0 = clock_type::now();
            if (kill) {
                verdict(c, me, drain(ch.reader, v, patience), t0, errc::peer_lost, notice_bound, v);
            } else {
                verdict(c, me + ", next(300 ms)", drain(ch.reader, v, deadline), t0, errc::timeout, timeout_bound, v);
                w.kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, me + ", then SIGKILL", drain(ch.reader, v, patience), t1, errc::peer_lost, notice_bound, v);
            }
            CHECK(v.bytes == 0);
            break;
        }
        case point::mid_stream: {
            const std::uint64_t k = c.pick(1, 8u << 20);
            add({"--size", std::to_string(endless), "--mark", std::to_string(k)});
            child w = child::spawn(args);
            survivor_thread rd;
            rd.start([&] { return drain(ch.reader, v, kill ? nanoseconds(patience) : nanoseconds(deadline)); });
            const std::string mark = await(w, "MARK");
            send_fault(w, c.r.how);
            const auto t0 = clock_type::now();
            rd.faulted = true;
            const seen s = rd.join();
            REQUIRE(mark.rfind("MARK", 0) == 0);
            if (kill) {
                verdict(c, me, s, t0, errc::peer_lost, notice_bound, v);
            } else {
                verdict(c, me + ", next(300 ms)", s, t0, errc::timeout, timeout_bound, v);
                // Resumed, the stream goes on where it stopped, in order.
                w.kill(SIGCONT);
                const seen more = drain(ch.reader, v, patience, v.bytes + resume_bytes);
                CHECK(more.reached);
                w.kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, me + ", SIGCONT then SIGKILL", drain(ch.reader, v, patience), t1, errc::peer_lost,
                        notice_bound, v);
            }
            CHECK(v.bytes >= k);
            break;
        }
        case point::mid_record: {
            const std::uint64_t k = c.pick(1, 4u << 20);
            add({"--size", std::to_string(endless), "--pause-after", std::to_string(k), "--stop-in-loan"});
            child w = child::spawn(args);
            survivor_thread rd;
            rd.start([&] { return drain(ch.reader, v, kill ? nanoseconds(patience) : nanoseconds(deadline)); });
            const std::string loaned = await(w, "IN-LOAN");
            send_fault(w, c.r.how);
            const auto t0 = clock_type::now();
            rd.faulted = true;
            const seen s = rd.join();
            REQUIRE(loaned.rfind("IN-LOAN", 0) == 0);
            const std::uint64_t committed = number_in(loaned);
            if (kill) {
                verdict(c, me, s, t0, errc::peer_lost, notice_bound, v);
            } else {
                verdict(c, me + ", next(300 ms)", s, t0, errc::timeout, timeout_bound, v);
                w.kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, me + ", then SIGKILL", drain(ch.reader, v, patience), t1, errc::peer_lost, notice_bound,
                        v);
            }
            CHECK(v.bytes == committed);  // the half-filled loan never reaches the reader
            break;
        }
        case point::full_ring: {
            // This process does not read until the writer says it waits for room.
            const std::uint64_t size = kill ? endless : c.pick(1u << 20, 4u << 20);
            add({"--size", std::to_string(size), "--report-block", "100"});
            child w = child::spawn(args);
            const std::string blocked = await(w, "BLOCKED");
            REQUIRE(blocked.rfind("BLOCKED", 0) == 0);
            send_fault(w, c.r.how);
            const auto t0 = clock_type::now();
            if (kill) {
                verdict(c, me, drain(ch.reader, v, patience), t0, errc::peer_lost, notice_bound, v);
                CHECK(v.bytes >= number_in(blocked));
            } else {
                verdict(c, me + ", next(300 ms)", drain(ch.reader, v, deadline), t0, errc::timeout, timeout_bound,
                        v);
                // Resumed, the writer finishes the stream: all of it arrives, then a clean end.
                w.kill(SIGCONT);
                verdict_clean(c, me + ", after SIGCONT", drain(ch.reader, v, patience), v, size);
                CHECK(await(w, "DRAINED") == "DRAINED");
                CHECK(w.wait(patience) == 0);
            }
            break;
        }
        case point::after_close: {
            const std::uint64_t k = c.pick(0, 32u << 10);  // fits the ring: no reader needed
            add({"--size", std::to_string(k), "--then", "close-hang"});
            child w = child::spawn(args);
            REQUIRE(await(w, "CLOSED") == "CLOSED");
            send_fault(w, c.r.how);
            verdict_clean(c, me, drain(ch.reader, v, patience), v, k);
            break;
        }
        default: FAIL("no such writer row");
    }
}

// --- rows: a reader process on the ring, this process writing ---------------------------------------
void reader_victim(the_case& c) {
    channel ch = create_channel(test::opts(direct_ring, 50));
    c.ids.push_back(ch.reader_ref.channel_id);
    std::vector<std::string> args{peer_path(), "read", ch.reader_ref.dump(), "--verify"};
    auto add = [&](std::initializer_list<std::string> more) { args.insert(args.end(), more); };
    std::mt19937_64 wrng(c.rng());
    const std::string me = "writer (this process)";
    const bool kill = c.r.how == fault::kill;
    switch (c.r.when) {
        case point::before_claim: {  // SIGKILL only
            add({"--hold-at", "start"});
            child r = child::spawn(args);
            REQUIRE(r.read_line(patience) == "STARTED");
            r.kill(SIGKILL);
            const auto t0 = clock_type::now();
            // An absent reader is not a dead one: the ring fills, and a deadline ends the wait.
            verdict(c, me + ", write(300 ms)", pump(ch.writer, wrng, deadline), t0, errc::timeout, timeout_bound,
                    ch.writer);
            // The creator holds the reader's ref too: it claims and leaves, the writer learns.
            {
                reader mine = std::move(ch.reader);
                (void)mine.try_next();
            }
            CHECK(pump(ch.writer, wrng, patience).err == errc::peer_closed);
            break;
        }
        case point::before_first_byte: {  // SIGKILL only
            add({"--hold-at", "open"});
            child r = child::spawn(args);
            REQUIRE(r.read_line(patience) == "OPEN");
            r.kill(SIGKILL);
            const auto t0 = clock_type::now();
            verdict(c, me, pump(ch.writer, wrng, patience), t0, errc::peer_lost, notice_bound, ch.writer);
            break;
        }
        case point::mid_stream:
        case point::mid_record:
        case point::full_ring: {
            const std::uint64_t k = c.pick(1, c.r.when == point::mid_stream ? 8u << 20 : 2u << 20);
            if (c.r.when == point::mid_stream) add({"--mark", std::to_string(k)});
            else add({"--stop-after", std::to_string(k)});
            if (c.r.when == point::mid_record) add({"--hold-view"});  // dies holding a view into the ring
            child r = child::spawn(args);
            survivor_thread wr;
            wr.start([&] { return pump(ch.writer, wrng, kill ? nanoseconds(patience) : nanoseconds(deadline)); });
            const std::string at = await(r, c.r.when == point::mid_stream ? "MARK" : "READY");
            send_fault(r, c.r.how);
            const auto t0 = clock_type::now();
            wr.faulted = true;
            const seen s = wr.join();
            INFO("reader said: " << at);
            CHECK(number_in(at) >= k);
            if (kill) {
                verdict(c, me, s, t0, errc::peer_lost, notice_bound, ch.writer);
            } else {
                verdict(c, me + ", write(300 ms)", s, t0, errc::timeout, timeout_bound, ch.writer);
                if (c.r.when == point::mid_stream) {
                    // Resumed, the reader takes everything, in order, and the clean end.
                    r.kill(SIGCONT);
                    const std::uint64_t total = ch.writer.bytes_written() + resume_bytes;
                    CHECK(pump(ch.writer, wrng, patience, total).reached);
                    CHECK_FALSE(ch.writer.close(patience));
                    CHECK_FALSE(ch.writer.wait_drained(patience));
                    const std::string end = await(r, "END");
                    CHECK(end.rfind("END " + std::to_string(total) + " ", 0) == 0);
                    CHECK(peer_bytes_intact(end));
                    CHECK(r.wait(patience) == 0);
                } else {
                    r.kill(SIGKILL);
                    const auto t1 = clock_type::now();
                    verdict(c, me + ", then SIGKILL", pump(ch.writer, wrng, patience), t1, errc::peer_lost,
                            notice_bound, ch.writer);
                }
            }
            break;
        }
        case point::after_close: {
            const std::uint64_t k = c.pick(1, 32u << 10);  // fits the ring
            if (kill) add({"--hold-at", "open"});
            else add({"--mark", "1"});
            child r = child::spawn(args);
            if (kill) {
                REQUIRE(r.read_line(patience) == "OPEN");
                CHECK(pump(ch.writer, wrng, patience, k).reached);
            } else {
                CHECK(pump(ch.writer, wrng, patience, 1).reached);
                REQUIRE(await(r, "MARK").rfind("MARK", 0) == 0);  // reading: stop it now
                send_fault(r, fault::stop);
                CHECK(pump(ch.writer, wrng, patience, k).reached);
            }
            CHECK_FALSE(ch.writer.close(patience));  // the end record fits: close succeeds
            if (kill) r.kill(SIGKILL);
            const auto t0 = clock_type::now();
            if (kill) {
                verdict(c, me + ", wait_drained()", outcome_of(ch.writer.wait_drained(patience)), t0, errc::peer_lost,
                        notice_bound, k);
            } else {
                verdict(c, me + ", wait_drained(300 ms)", outcome_of(ch.writer.wait_drained(deadline)), t0,
                        errc::timeout, timeout_bound, k);
                r.kill(SIGCONT);
                CHECK_FALSE(ch.writer.wait_drained(patience));
                const std::string end = await(r, "END");
                CHECK(end.rfind("END " + std::to_string(k) + " ", 0) == 0);
                CHECK(peer_bytes_intact(end));
                c.report("reader process, after SIGCONT", end, clock_type::duration(-1), ms(0));
            }
            break;
        }
        default: FAIL("no such reader row");
    }
}

// --- rows: the engine process ---------------------------------------------------------------------
void engine_victim(the_case& c) {
    engine_proc eng = start_engine();
    worker w(eng.url, shm_ends());
    channel ch = w.create_channel(engine_buffer);
    const std::string id = ch.reader_ref.channel_id;
    c.ids.push_back(id);
    const bool kill = c.r.how == fault::kill;
    auto fault_engine = [&] {
        if (kill) return eng.kill();
        eng.proc.kill(SIGSTOP);
        return clock_type::now();
    };
    std::vector<std::string> wargs{peer_path(), "write", ch.writer_ref.dump(), "--engine", eng.url, "--stamp",
                                   "--chunk", std::to_string(c.pick(512, 256u << 10))};
    std::vector<std::string> rargs{peer_path(), "read", ch.reader_ref.dump(), "--engine", eng.url, "--verify", "--stamp"};
    std::mt19937_64 wrng(c.rng());
    verifier v;
    switch (c.r.when) {
        case point::before_first_byte: {  // SIGKILL, no end connected yet
            const auto t0 = eng.kill();
            seen s;
            s.err = test::thrown([&] { (void)w.create_channel(engine_buffer); });
            s.at = clock_type::now();
            verdict(c, "worker (this process), create_channel", s, t0, errc::engine_unreachable, notice_bound, 0);
            const auto t1 = clock_type::now();
            s.err = test::thrown([&] { (void)open_writer(ch.writer_ref, socket_via(eng.url)); });
            s.at = clock_type::now();
            verdict(c, "socket writer (this process), open", s, t1, errc::engine_unreachable, notice_bound, 0);
            c.orphans.push_back(id);  // the engine made it and died holding it
            break;
        }
        case point::mid_stream: {
            const std::uint64_t k = c.pick(1, 8u << 20);
            std::optional<child> sw, sr;
            survivor_thread here;
            const nanoseconds per_call = kill ? nanoseconds(patience) : nanoseconds(deadline);
            if (c.r.via != path::socket_reader) {
                wargs.insert(wargs.end(), {"--size", std::to_string(endless), "--report-block", "300"});
                if (c.r.via == path::socket_writer) wargs.insert(wargs.end(), {"--mark", std::to_string(k)});
                sw.emplace(child::spawn(wargs));
            }
            if (c.r.via != path::socket_writer) {
                rargs.insert(rargs.end(), {"--mark", std::to_string(k)});
                if (!kill) rargs.insert(rargs.end(), {"--timeout-ms", "300", "--keep-after-timeout"});
                sr.emplace(child::spawn(rargs));
            }
            if (c.r.via == path::socket_writer) here.start([&] { return drain(ch.reader, v, per_call); });
            if (c.r.via == path::socket_reader) here.start([&] { return pump(ch.writer, wrng, per_call); });
            const std::string mark = await(sr ? *sr : *sw, "MARK");
            const auto t0 = fault_engine();
            here.faulted = true;
            const seen s = here.join();
            REQUIRE(mark.rfind("MARK", 0) == 0);
            const errc lost = kill ? errc::peer_lost : errc::timeout;
            const ms bound = kill ? notice_bound : timeout_bound;
            const std::string how = kill ? "" : ", 300 ms deadline";
            if (c.r.via == path::socket_writer)
                verdict(c, "shm reader (this process)" + how, s, t0, lost, bound, v);
            if (c.r.via == path::socket_reader)
                verdict(c, "shm writer (this process)" + how, s, t0, lost, bound, ch.writer);
            std::uint64_t sent = 0;
            if (sw) {
                stamp st;
                const std::string line = await(*sw, kill ? "ERR" : "BLOCKED", patience, &st);
                verdict(c, "socket writer process" + how, seen_in(line, st), t0, lost, bound, number_in(line, kill ? 2 : 1));
                sent = number_in(line, kill ? 2 : 1);
            }
            if (sr) {
                stamp st;
                const std::string line = await(*sr, kill ? "ERR" : "TIMEOUT", patience, &st);
                const std::uint64_t got = number_in(line, kill ? 2 : 1);
                verdict(c, "socket reader process" + how, seen_in(line, st), t0, lost, bound,
                        delivered(got, peer_bytes_intact(line)));
                if (sw && kill) CHECK(got <= sent);
            }
            if (sw && c.r.via == path::socket_writer && kill) CHECK(v.bytes <= sent);
            if (kill) {
                if (c.r.via == path::both_sockets) c.orphans.push_back(id);  // both ends died with the engine
                break;
            }
            // Resumed, the engine carries on with the same stream, in order.
            eng.proc.kill(SIGCONT);
            if (c.r.via == path::socket_writer) {
                CHECK(drain(ch.reader, v, patience, v.bytes + resume_bytes).reached);
                sw->kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, "shm reader (this process), socket writer then killed", drain(ch.reader, v, patience), t1,
                        errc::aborted, notice_bound, v);
            } else {
                const std::uint64_t total = ch.writer.bytes_written() + resume_bytes;
                CHECK(pump(ch.writer, wrng, patience, total).reached);
                CHECK_FALSE(ch.writer.close(patience));
                CHECK_FALSE(ch.writer.wait_drained(patience));
                const std::string end = await(*sr, "END");
                CHECK(end.rfind("END " + std::to_string(total) + " ", 0) == 0);
                CHECK(peer_bytes_intact(end));
                c.report("socket reader process, after SIGCONT", end, clock_type::duration(-1), ms(0));
            }
            check_engine_serves(c, eng.url);
            break;
        }
        case point::full_ring: {  // SIGKILL; this process does not read until the writer waits
            wargs.insert(wargs.end(), {"--size", std::to_string(endless), "--report-block", "100"});
            child sw = child::spawn(wargs);
            const std::string blocked = await(sw, "BLOCKED");
            REQUIRE(blocked.rfind("BLOCKED", 0) == 0);
            const auto t0 = eng.kill();
            stamp st;
            const std::string line = await(sw, "ERR", patience, &st);
            verdict(c, "socket writer process", seen_in(line, st), t0, errc::peer_lost, notice_bound, number_in(line, 2));
            verdict(c, "shm reader (this process)", drain(ch.reader, v, patience), t0, errc::peer_lost, notice_bound,
                    v);
            CHECK(v.bytes <= number_in(line, 2));
            break;
        }
        case point::after_close: {
            const std::uint64_t k = c.pick(1, 128u << 10);  // fits the ring
            wargs.insert(wargs.end(), {"--size", std::to_string(k), "--then", "close-hang"});
            child sw = child::spawn(wargs);
            REQUIRE(await(sw, "CLOSED") == "CLOSED");
            // The socket writer's close completes when the engine took it; the end record is in
            // the ring a moment later: the fault comes after that.
            CHECK(eventually([&] {
                try {
                    return inspect(ch.reader_ref).writer.st == end_info::state::closed;
                } catch (const error&) {
                    return false;
                }
            }));
            fault_engine();
            verdict_clean(c, "shm reader (this process)", drain(ch.reader, v, patience), v, k);
            break;
        }
        case point::handshake_request: {
            // The engine hangs (or dies) while a socket reader waits for its upgrade.
            eng.proc.kill(SIGSTOP);
            rargs.push_back("--announce");
            child sr = child::spawn(rargs);
            REQUIRE(await(sr, "OPENING") == "OPENING");
            if (kill) {
                std::this_thread::sleep_for(300ms * slowdown);  // connected, request sent, no answer
                const auto t0 = eng.kill();
                stamp st;
                const std::string line = await(sr, "ERR", patience, &st);
                verdict(c, "socket reader process, opening", seen_in(line, st), t0, errc::engine_unreachable,
                        notice_bound, 0);
                c.orphans.push_back(id);
            } else {
                const auto t0 = clock_type::now();
                stamp st;
                const std::string line = await(sr, "ERR", connect_bound + patience, &st);
                verdict(c, "socket reader process, opening (10 s connect timeout)", seen_in(line, st),
                        t0, errc::engine_unreachable, connect_bound, 0);
                eng.proc.kill(SIGCONT);
                check_engine_serves(c, eng.url);
            }
            break;
        }
        default: FAIL("no such engine row");
    }
    eng.stop();
}

// --- rows: a socket writer or reader process through a live engine ------------------------------------
void socket_end_victim(the_case& c) {
    engine_proc eng = start_engine();
    worker w(eng.url, shm_ends());
    channel ch = w.create_channel(engine_buffer);
    c.ids.push_back(ch.reader_ref.channel_id);
    const bool kill = c.r.how == fault::kill;
    const bool writer_dies = c.r.who == victim::socket_writer;
    std::vector<std::string> args;
    if (writer_dies)
        args = {peer_path(), "write", ch.writer_ref.dump(), "--engine", eng.url, "--chunk",
                std::to_string(c.pick(512, 256u << 10))};
    else
        args = {peer_path(), "read", ch.reader_ref.dump(), "--engine", eng.url, "--verify"};
    auto add = [&](std::initializer_list<std::string> more) { args.insert(args.end(), more); };
    std::mt19937_64 wrng(c.rng());
    verifier v;
    const std::string me = writer_dies ? "shm reader (this process)" : "shm writer (this process)";
    // What this process's end must report once the socket end is gone: the engine aborts the
    // ring for a socket writer that disconnects, and leaves it for a socket reader.
    const errc gone = writer_dies ? errc::aborted : errc::peer_closed;
    auto survive = [&](nanoseconds per_call) {
        return writer_dies ? drain(ch.reader, v, per_call) : pump(ch.writer, wrng, per_call);
    };
    auto mine = [&] { return writer_dies ? delivered(v) : delivered(ch.writer); };
    if (c.r.via == path::both_sockets) {  // SIGKILL mid-stream of the socket reader; a socket writer survives
        const std::uint64_t k = c.pick(1, 4u << 20);
        child sw = child::spawn({peer_path(), "write", ch.writer_ref.dump(), "--engine", eng.url, "--stamp", "--chunk",
                                 std::to_string(c.pick(512, 256u << 10)), "--size", std::to_string(endless)});
        add({"--mark", std::to_string(k)});
        child p = child::spawn(args);
        REQUIRE(await(p, "MARK").rfind("MARK", 0) == 0);
        p.kill(SIGKILL);
        const auto t0 = clock_type::now();
        // The engine can no longer deliver: it closes the writer's socket with the reason, which
        // the writer's next write reports.
        stamp st;
        const std::string line = await(sw, "ERR", patience, &st);
        verdict(c, "socket writer process", seen_in(line, st), t0, errc::peer_closed, notice_bound, number_in(line, 2));
        check_engine_serves(c, eng.url);
        eng.stop();
        return;
    }
    switch (c.r.when) {
        case point::before_first_byte: {
            add({"--size", "1000", "--hold-at", "open"});
            child p = child::spawn(args);
            REQUIRE(p.read_line(patience) == "OPEN");
            send_fault(p, c.r.how);
            const auto t0 = clock_type::now();
            if (kill) {
                verdict(c, me, survive(patience), t0, gone, notice_bound, mine());
            } else {
                verdict(c, me + ", 300 ms deadline", survive(deadline), t0, errc::timeout, timeout_bound, mine());
                check_engine_serves(c, eng.url);
                p.kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, me + ", then SIGKILL", survive(patience), t1, gone, notice_bound, mine());
            }
            check_engine_serves(c, eng.url);
            break;
        }
        case point::mid_stream:
        case point::mid_record:
        case point::full_ring: {
            const std::uint64_t k = c.pick(1, 4u << 20);
            const bool full = c.r.when == point::full_ring;
            if (writer_dies) {
                add({"--size", std::to_string(endless)});
                if (c.r.when == point::mid_stream) add({"--mark", std::to_string(k)});
                if (c.r.when == point::mid_record) add({"--pause-after", std::to_string(k), "--stop-in-loan"});
                if (full) add({"--report-block", "100"});
            } else {
                if (c.r.when == point::mid_stream) add({"--mark", std::to_string(k)});
                if (full) add({"--stop-after", std::to_string(k)});
            }
            child p = child::spawn(args);
            survivor_thread here;
            // Blocked on a full ring: a writer here writes (and blocks); a reader here waits.
            if (!writer_dies || !full)
                here.start([&] { return survive(kill ? nanoseconds(patience) : nanoseconds(deadline)); });
            const char* said = c.r.when == point::mid_stream ? "MARK"
                               : c.r.when == point::mid_record ? "IN-LOAN"
                               : writer_dies ? "BLOCKED" : "READY";
            const std::string at = await(p, said);
            send_fault(p, c.r.how);
            const auto t0 = clock_type::now();
            here.faulted = true;
            REQUIRE(at.rfind(said, 0) == 0);
            const seen s = writer_dies && full ? survive(patience) : here.join();
            if (kill) {
                verdict(c, me, s, t0, gone, notice_bound, mine());
                if (c.r.when == point::mid_record) CHECK(v.bytes == number_in(at));  // nothing of the loan
                check_engine_serves(c, eng.url);
                break;
            }
            verdict(c, me + ", 300 ms deadline", s, t0, errc::timeout, timeout_bound, mine());
            check_engine_serves(c, eng.url);  // one hung client does not hang the engine
            p.kill(SIGCONT);
            if (writer_dies) {
                CHECK(drain(ch.reader, v, patience, v.bytes + resume_bytes).reached);
                p.kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, me + ", SIGCONT then SIGKILL", drain(ch.reader, v, patience), t1, errc::aborted,
                        notice_bound, v);
            } else {
                const std::uint64_t total = ch.writer.bytes_written() + resume_bytes;
                CHECK(pump(ch.writer, wrng, patience, total).reached);
                CHECK_FALSE(ch.writer.close(patience));
                CHECK_FALSE(ch.writer.wait_drained(patience));
                const std::string end = await(p, "END");
                CHECK(end.rfind("END " + std::to_string(total) + " ", 0) == 0);
                CHECK(peer_bytes_intact(end));
                c.report("socket reader process, after SIGCONT", end, clock_type::duration(-1), ms(0));
            }
            break;
        }
        case point::after_close: {
            const std::uint64_t k = c.pick(1, 128u << 10);  // fits the ring
            if (writer_dies) {
                add({"--size", std::to_string(k), "--then", "close-hang"});
                child p = child::spawn(args);
                REQUIRE(await(p, "CLOSED") == "CLOSED");
                send_fault(p, c.r.how);
                verdict_clean(c, me, drain(ch.reader, v, patience), v, k);
            } else {  // SIGKILL of a socket reader that never read, after the writer's close
                add({"--hold-at", "open"});
                child p = child::spawn(args);
                REQUIRE(p.read_line(patience) == "OPEN");
                CHECK(pump(ch.writer, wrng, patience, k).reached);
                CHECK_FALSE(ch.writer.close(patience));
                p.kill(SIGKILL);
                const auto t0 = clock_type::now();
                // The engine is the ring's reader: it has sent every record and the close into
                // the client's socket, so the ring is drained. The writer cannot learn that the
                // client died before reading them (no end-to-end acknowledgement over the
                // socket, as in iii): documented, not an error here.
                const std::error_code e = ch.writer.wait_drained(patience);
                seen s = outcome_of(e);
                s.at = clock_type::now();
                c.report(me + ", wait_drained()", e ? describe(s) : std::string("ok (documented: the engine sent it all)"),
                         s.at - t0, notice_bound);
                CHECK((!e || e == errc::peer_closed || e == errc::peer_lost));
                CHECK(millis(s.at - t0) <= notice_bound.count());
            }
            check_engine_serves(c, eng.url);
            break;
        }
        default: FAIL("no such socket-end row");
    }
    eng.stop();
}

// --- rows: a raw client stopped part way through the upgrade of a channel socket ------------------------
void handshake_victim(the_case& c) {
    engine_proc eng = start_engine();
    worker w(eng.url, shm_ends());
    channel ch = w.create_channel(engine_buffer);
    c.ids.push_back(ch.reader_ref.channel_id);
    const bool writer_end = c.r.via == path::socket_writer;
    const channel_ref& ref = writer_end ? ch.writer_ref : ch.reader_ref;
    const char* stage = c.r.when == point::handshake_connect ? "connect"
                        : c.r.when == point::handshake_partial ? "partial" : "request";
    child p = child::spawn({peer_path(), "handshake", eng.url, ref.dump(), "--stage", stage});
    const std::string said = p.read_line(patience);
    REQUIRE((said == "CONNECTED" || said == "PARTIAL" || said == "SENT"));
    std::mt19937_64 wrng(c.rng());
    verifier v;
    const std::string me = writer_end ? "shm reader (this process)" : "shm writer (this process)";
    auto survive = [&](nanoseconds per_call) {
        return writer_end ? drain(ch.reader, v, per_call) : pump(ch.writer, wrng, per_call);
    };
    auto mine = [&] { return writer_end ? delivered(v) : delivered(ch.writer); };
    const errc gone = writer_end ? errc::aborted : errc::peer_closed;
    if (c.r.when != point::handshake_request) {
        // Nothing was claimed: after the kill, the end is still there for a real client.
        p.kill(SIGKILL);
        p.wait(patience);
        check_engine_serves(c, eng.url);
        const std::uint64_t k = c.pick(1, 1u << 20);
        child sw = child::spawn({peer_path(), "write", ch.writer_ref.dump(), "--engine", eng.url, "--size",
                                 std::to_string(k), "--then", "close"});
        verdict_clean(c, me + ", then a new socket writer claims the end", drain(ch.reader, v, patience), v, k);
        CHECK(await(sw, "CLOSED") == "CLOSED");
        CHECK(sw.wait(patience) == 0);
        eng.stop();
        return;
    }
    // The request was complete: the engine claimed the end for this client.
    send_fault(p, c.r.how);
    const auto t0 = clock_type::now();
    if (c.r.how == fault::stop) {
        verdict(c, me + ", 300 ms deadline", survive(deadline), t0, errc::timeout, timeout_bound, mine());
        check_engine_serves(c, eng.url);
        p.kill(SIGKILL);
        const auto t1 = clock_type::now();
        verdict(c, me + ", then SIGKILL", survive(patience), t1, gone, notice_bound, mine());
    } else {
        verdict(c, me, survive(patience), t0, gone, notice_bound, mine());
    }
    check_engine_serves(c, eng.url);
    // The end was spent on the dead client: a second client is refused, clearly (the channel is
    // still listed: already_claimed; or already swept away: segment_missing).
    std::vector<std::string> again{peer_path(), writer_end ? "write" : "read", ref.dump(), "--engine", eng.url};
    if (writer_end) again.insert(again.end(), {"--size", "1000"});
    child second = child::spawn(again);
    const std::string refused = await(second, "ERR");
    INFO("a second client for the spent end said: " << refused);
    const std::error_code e = seen_in(refused).err;
    CHECK((e == errc::already_claimed || e == errc::segment_missing));
    c.report("a second socket client for the same end", refused.substr(0, refused.find(' ', 4)),
             clock_type::duration(-1), ms(0));
    eng.stop();
}

// --- running rows -----------------------------------------------------------------------------------
// A channel left because every process that could finish it died (the engine, holding both its
// ends): listed as orphaned, and removed by `shmchan gc` restricted to it.
void collect_orphan(the_case& c, const std::string& id) {
    INFO("orphaned channel " << id);
    const auto all = list_segments();
    const auto it = std::find_if(all.begin(), all.end(), [&](const segment_entry& s) { return s.name == "/shmchan-" + id; });
    REQUIRE(it != all.end());
    CHECK(it->orphaned);
    child gc = child::spawn({cli_path(), "gc", "--min-age", "0", id});
    const std::string out = gc.read_all(patience);
    CHECK(gc.wait(patience) == 0);
    CHECK(out.find("removed " + id) != std::string::npos);
    CHECK(out.find("removed 1 segment(s)") != std::string::npos);
    CHECK_FALSE(segment_exists(id));
    c.report("`shmchan gc --min-age 0 <id>` (the engine died holding the channel)",
             segment_exists(id) ? "NOT removed" : "orphan removed", clock_type::duration(-1), ms(0));
}

void run(the_case& c) {
    switch (c.r.who) {
        case victim::writer: writer_victim(c); break;
        case victim::reader: reader_victim(c); break;
        case victim::engine: engine_victim(c); break;
        case victim::socket_writer:
        case victim::socket_reader: socket_end_victim(c); break;
        case victim::socket_client: handshake_victim(c); break;
    }
    for (const auto& id : c.orphans) collect_orphan(c, id);
    for (const auto& id : c.ids) {
        INFO(c.title() << ": channel " << id << " must be gone from /dev/shm");
        CHECK(eventually([&] { return !segment_exists(id); }, 2000ms * slowdown));
    }
}

void run_rows(victim a, victim b = victim::writer, bool two = false) {
    const int n = rounds();
    for (std::size_t i = 0; i < std::size(matrix); ++i) {
        const row& r = matrix[i];
        if (r.who != a && !(two && r.who == b)) continue;
        for (int round = 0; round < n; ++round) {
            the_case c(r, i, round);
            DYNAMIC_SECTION(c.title() << (n > 1 ? " round " + std::to_string(round) : std::string())) {
                run(c);
            }
        }
    }
}

}  // namespace

TEST_CASE("crash matrix: writer process", "[crash][fault]") { run_rows(victim::writer); }
TEST_CASE("crash matrix: reader process", "[crash][fault]") { run_rows(victim::reader); }
TEST_CASE("crash matrix: engine process", "[crash][fault]") { run_rows(victim::engine); }
TEST_CASE("crash matrix: socket client", "[crash][fault]") {
    run_rows(victim::socket_writer, victim::socket_reader, true);
}
TEST_CASE("crash matrix: socket client mid-handshake", "[crash][fault]") { run_rows(victim::socket_client); }

TEST_CASE("crash matrix: the combinations left out, and why", "[crash]") {
    for (const auto& s : skipped)
        std::printf("crash matrix: skipped %s, %s, %s: %s\n", name(s.who), name(s.how), s.points, s.why);
    // No combination is both run and skipped for the same reason: each skipped line names
    // points that no row of that victim and fault covers.
    for (const auto& s : skipped)
        for (const auto& r : matrix)
            if (r.who == s.who && r.how == s.how) CHECK(std::string(s.points).find(name(r.when)) == std::string::npos);
}

// --- regressions: the bugs the matrix found, each in its smallest form ------------------------------
TEST_CASE("crash matrix regression: a writer that closed and then saw its reader die removes the segment",
          "[crash][regression]") {
    channel ch = create_channel(test::opts(direct_ring, 50));
    const std::string id = ch.reader_ref.channel_id;
    child r = child::spawn({peer_path(), "open-reader", ch.reader_ref.dump()}, true);
    REQUIRE(r.read_line(patience) == "OK");
    REQUIRE_FALSE(ch.writer.write("never read"));
    REQUIRE_FALSE(ch.writer.close());
    r.kill(SIGKILL);
    r.wait(patience);
    CHECK(ch.writer.wait_drained(patience) == errc::peer_lost);
    CHECK_FALSE(segment_exists(id));  // before: left in /dev/shm for as long as this process lived
}

TEST_CASE("crash matrix regression: an engine that hangs up during the upgrade is engine_unreachable",
          "[crash][regression]") {
    // A listener that takes the upgrade request and hangs up without an answer, as a dying engine.
    const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(lfd >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(lfd, 4) == 0);
    REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    std::thread server([lfd] {
        const int conn = ::accept(lfd, nullptr, nullptr);
        char buf[4096];
        [[maybe_unused]] const auto n = ::recv(conn, buf, sizeof buf, 0);
        ::close(conn);
    });
    const channel_ref ref{"6f2a1c3e-0000-4000-8000-000000000001", "k", direction::read, std::nullopt};
    const errc e = test::thrown([&] {
        (void)open_reader(ref, socket_via("ws://127.0.0.1:" + std::to_string(ntohs(sa.sin_port))));
    });
    server.join();
    ::close(lfd);
    CHECK(e == errc::engine_unreachable);  // before: protocol_error, "engine refused the upgrade"
}

TEST_CASE("crash matrix regression: a socket writer refused by the engine does not report success",
          "[crash][regression]") {
    engine_options eo;
    eo.port = 0;
    engine eng(eo);
    worker w(eng.url(), shm_ends());
    channel ch = w.create_channel(engine_buffer);
    REQUIRE_FALSE(ch.writer.write("mine"));  // the writer end is held here, through shared memory
    writer second = open_writer(ch.writer_ref, socket_via(eng.url()));  // upgraded, then closed 1008
    std::error_code e = second.write("lost?");
    if (!e) e = second.close(patience);
    CHECK(e == errc::already_claimed);  // before: write and close both succeeded
    REQUIRE_FALSE(ch.writer.close());
    std::vector<std::byte> got;
    CHECK_FALSE(ch.reader.read_all(got, patience));
    CHECK(got.size() == 4);
}

TEST_CASE("crash matrix regression: a socket writer learns, while writing, that its reader left",
          "[crash][regression]") {
    engine_options eo;
    eo.port = 0;
    engine eng(eo);
    worker w(eng.url(), shm_ends());
    channel ch = w.create_channel(engine_buffer);
    writer sw = open_writer(ch.writer_ref, socket_via(eng.url()));
    REQUIRE_FALSE(sw.write("first"));
    REQUIRE(ch.reader.next(patience).is_chunk());
    ch.reader = reader();  // the reader leaves
    std::vector<std::byte> buf(std::size_t{64} << 10);
    std::error_code e;
    const auto until = clock_type::now() + patience;
    while (!e && clock_type::now() < until) e = sw.write(buf, 1s);
    CHECK(e == errc::peer_closed);  // before: every write succeeded, into a channel nobody read
}
