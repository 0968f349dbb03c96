// The crash matrix's driver (crash_matrix_test.cpp has the rows and the test cases): bounds,
// the kinds of row, a row being run, what survivors saw and the verdicts on it, the peer and
// engine processes. The rows themselves: crash_matrix_shm_ends.cpp (a writer or reader process
// on the ring) and crash_matrix_engine_ends.cpp (the engine, socket ends, handshakes).
#pragma once

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

namespace shmchan::crash {

using namespace std::chrono_literals;
using test::child;
using test::cli_path;
using test::pattern_sum;
using test::peer_path;
using test::segment_exists;
using clock_type = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

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

const char* name(victim v);
const char* name(fault f);
const char* name(point p);
const char* name(path p);

// --- seeds and reports ---------------------------------------------------------------------------
// The run's seed: SHMCHAN_CRASH_SEED, or a random one (printed once).
std::uint64_t crash_seed();
// SHMCHAN_CRASH_ROUNDS, at least 1.
int rounds();
inline long long millis(clock_type::duration d) { return std::chrono::duration_cast<ms>(d).count(); }

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
    // last delivered byte (the bound is on that one); appended to SHMCHAN_CRASH_REPORT too.
    void report(const std::string& survivor, const std::string& outcome, clock_type::duration noticed,
                ms bound, clock_type::duration quiet = clock_type::duration(-1));
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
extern const std::error_code gave_up;

std::string describe(const seen& s);
// The shmchan error named `n` (as to_string prints it); an error matching no shmchan code else.
std::error_code code_named(const std::string& n);

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
seen drain(reader& r, verifier& v, nanoseconds per_call, std::uint64_t until = ~std::uint64_t{0});
// Writes the pattern from bytes_written() on, in chunks of random size, until an error (a
// timeout included) or `until` bytes.
seen pump(writer& w, std::mt19937_64& rng, nanoseconds per_call, std::uint64_t until = endless);
seen outcome_of(std::error_code e);

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
             errc want, ms bound, delivered d);
// The stream must end cleanly with all `want_bytes`, each the byte written there.
void verdict_clean(the_case& c, const std::string& survivor, const seen& s, const verifier& v,
                   std::uint64_t want_bytes);

// --- processes ----------------------------------------------------------------------------------
std::vector<std::string> words(const std::string& line);

// A peer's "AT <last> <now>" (--stamp): steady-clock times, the same clock in every process.
struct stamp {
    bool valid = false;
    clock_type::time_point last{}, at{};
};

// The next line starting with `prefix`, or the first error line ("ERR ..", "MISMATCH .."), or ""
// when the process says nothing more within `limit`; `st` gets the "AT" line said before it.
std::string await(child& p, const std::string& prefix, ms limit = patience, stamp* st = nullptr);
std::uint64_t number_in(const std::string& line, std::size_t word = 1);
// A peer's final "ERR <errc> <bytes> ..." line as a verdict; the time is the peer's own (its
// stamp), or when we read the line.
seen seen_in(const std::string& line, const stamp& st = {});
// A peer reader's "ERR <errc> <bytes> <checksum>" or "END <bytes> <checksum>": its bytes were
// the pattern's prefix (the checksum is position-sensitive; with --verify it also said MISMATCH
// at the first wrong byte).
bool peer_bytes_intact(const std::string& line);
void send_fault(child& p, fault f);

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
engine_proc start_engine();

channel_options socket_via(const std::string& url);
worker_options shm_ends();  // this process's own ends go through shared memory
bool eventually(const std::function<bool()>& cond, ms limit = patience);
// The engine still serves channel sockets: a fresh channel, a socket writer here, the ring read.
void check_engine_serves(the_case& c, const std::string& url);

// --- the rows, by victim -------------------------------------------------------------------------
void writer_victim(the_case& c);      // crash_matrix_shm_ends.cpp
void reader_victim(the_case& c);      // crash_matrix_shm_ends.cpp
void engine_victim(the_case& c);      // crash_matrix_engine_ends.cpp
void socket_end_victim(the_case& c);  // crash_matrix_engine_ends.cpp
void handshake_victim(the_case& c);   // crash_matrix_engine_ends.cpp

}  // namespace shmchan::crash
