// The other process of the cross-process tests. One line of output per event, so the test
// can follow along:
//   read REF [--transcript [--hex]] [--stop-after BYTES [--hold-view]] [--timeout-ms N]
//          [--engine URL] [--hold-at start|open] [--announce] [--mark BYTES] [--verify]
//          [--keep-after-timeout]
//       -> (with --transcript: "B <len> <sum>" / "T <text>" per record; with --hex as well,
//          "B <len> <sum> <hex bytes>")
//          "READY <bytes>" and sleep forever once --stop-after bytes are read (to be killed;
//          with --hold-view the last chunk's view is kept, not released)
//          "MARK <bytes>" once --mark bytes are read (and it reads on)
//          "TIMEOUT <bytes> <checksum>" with --keep-after-timeout when a next() timed out (it
//          reads on)
//          "MISMATCH <offset>" (exit 4) with --verify when a byte differs from fill_pattern
//          "END <bytes> <checksum>" | "ERR <errc> <bytes> <checksum> <reason>"
//   write REF --size N [--chunk C] [--loan] [--then close|close-hang|abort:REASON|hang|drop|exit]
//          [--pause-after BYTES [--stop-in-loan]] [--engine URL] [--hold-at start|open]
//          [--announce] [--mark BYTES] [--report-block MS]
//       -> "READY <bytes>" when pausing (sleeps forever), "MARK <bytes>" once --mark bytes are
//          committed (it writes on), "BLOCKED <bytes>" when a write waited --report-block ms
//          for room (it waits on), "WROTE <bytes>", then "CLOSED" / "ABORTED" / "HANG" /
//          "DRAINED" or "ERR <errc> <written>"; with --stop-in-loan, "IN-LOAN <bytes>" instead of
//          READY, holding a loan half filled (with 0xEE), never committed. BLOCKED is said once
//          per wait: again only after a write went through in time
//   read and write, --engine URL: through the engine's channel socket (transport::socket);
//          --hold-at start: "STARTED" before opening the end, then sleep forever; --hold-at
//          open: "OPEN" once the end is claimed, then sleep forever (the crash matrix kills them);
//          --announce: "OPENING" just before the end is opened
//   read, write and any error line, --stamp: "AT <last> <now>" just before each ERR, END,
//          TIMEOUT or BLOCKED line: steady-clock nanoseconds (CLOCK_MONOTONIC, the same clock in
//          every process) of the last chunk read or written (0: none yet) and of the report, so
//          that a test can tell when an end noticed a fault apart from how long it was busy
//          delivering bytes buffered before it
//   handshake URL REF --stage connect|partial|request
//       -> a raw client of the engine's channel socket that stops part way: "CONNECTED" after
//          the TCP connect, "PARTIAL" after half of the HTTP upgrade request, "SENT" after all
//          of it (the answer is never read); then sleeps forever
//   mixed REF COUNT   -> interleaved text and binary records, then close; "CLOSED"
//   frames REF COUNT  -> as mixed, with frames: record i is the text "msg i" when i % 3 == 0, a
//          frame of 1 + (i * 7919) % 70000 pattern bytes when i % 3 == 1 (pts i * 1000, flags i,
//          user "u<i>" when i is odd; duration 40 ms when i % 5 == 0), else a chunk of
//          1 + (i * 7919) % 4999 pattern bytes; the pattern continues across frames and chunks.
//          Then close; "CLOSED"
//   read-file REF FILE -> every received byte into FILE (text messages are skipped);
//          "END <bytes>" | "ERR <errc> <bytes> <reason>"
//   write-file REF FILE [--chunk N] -> FILE streamed with writer.write, then close and wait
//          until drained; "WROTE <bytes>", "CLOSED", "DRAINED" or "ERR <errc> <written> [<what>]"
//   open-reader REF | open-writer REF  -> "OK" then waits for stdin EOF, or "ERR <errc> <what>"
#include <shmchan/shmchan.hpp>
#include <shmchan/testkit/checksum.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "peer.hpp"
#include "peer_io.hpp"

using namespace shmchan;
using namespace shmchan::peers;

namespace shmchan::peers {
namespace {

// --stamp: when the last chunk moved, and when a report is made (see the header).
bool stamping = false;
std::int64_t last_progress_ns = 0;
std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
void progress() {
    if (stamping) last_progress_ns = steady_ns();
}
void stamp() {
    if (stamping) say("AT " + std::to_string(last_progress_ns) + " " + std::to_string(steady_ns()));
}

// --engine URL: the socket path through that engine; otherwise the defaults.
channel_options end_options(const std::vector<std::string>& a) {
    channel_options o;
    o.engine = arg_after(a, "--engine");
    if (!o.engine.empty()) o.via = transport::socket;
    return o;
}

// --hold-at start: stop before opening the end; --hold-at open: once it is claimed.
// --announce: say "OPENING" just before opening (a test may then act during the open).
void hold_if(const std::vector<std::string>& a, const char* where) {
    if (std::string(where) == "start" && has(a, "--announce")) say("OPENING");
    if (arg_after(a, "--hold-at") != where) return;
    say(std::string(where) == "start" ? "STARTED" : "OPEN");
    sleep_forever();
}

std::string hex(std::uint64_t v) {
    char b[32];
    std::snprintf(b, sizeof b, "%016" PRIx64, v);
    return b;
}

std::string hex_bytes(std::span<const std::byte> d) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s(2 * d.size(), '0');
    for (std::size_t i = 0; i < d.size(); ++i) {
        const auto b = std::to_integer<unsigned>(d[i]);
        s[2 * i] = digits[b >> 4];
        s[2 * i + 1] = digits[b & 15];
    }
    return s;
}

}  // namespace

int close_and_drain(writer& w) {
    if (auto e = w.close()) {
        stamp();
        say(std::string("ERR ") + name(e) + " " + std::to_string(w.bytes_written()));
        return 3;
    }
    say("CLOSED");
    if (auto e = w.wait_drained()) {
        stamp();
        say(std::string("ERR ") + name(e) + " " + std::to_string(w.bytes_written()));
        return 3;
    }
    say("DRAINED");
    return 0;
}

}  // namespace shmchan::peers

namespace {

int do_read(const std::vector<std::string>& a) {
    hold_if(a, "start");
    reader r = open_reader(channel_ref::parse(a[0]), end_options(a));
    hold_if(a, "open");
    const bool transcript = has(a, "--transcript");
    const bool with_hex = has(a, "--hex");
    const bool verify = has(a, "--verify");
    const bool hold_view = has(a, "--hold-view");
    const bool keep_after_timeout = has(a, "--keep-after-timeout");
    const std::uint64_t stop_after = std::stoull(arg_after(a, "--stop-after", "0"));
    std::uint64_t mark = std::stoull(arg_after(a, "--mark", "0"));
    const long timeout_ms = std::stol(arg_after(a, "--timeout-ms", "-1"));
    const nanoseconds t = timeout_ms < 0 ? forever : std::chrono::milliseconds(timeout_ms);
    stream_checksum sum;
    std::vector<std::byte> expect;
    bool timed_out = false;
    for (;;) {
        item it = r.next(t);
        if (it.is_error() && it.error() == errc::timeout && keep_after_timeout) {
            if (!timed_out) {
                stamp();
                say("TIMEOUT " + std::to_string(sum.bytes()) + " " + hex(sum.value()));
            }
            timed_out = true;
            continue;
        }
        timed_out = false;
        if (it.is_chunk()) {
            if (verify) {  // every byte is the one written at its position
                expect.resize(it.data().size());
                fill_pattern(expect, sum.bytes());
                const auto m = std::mismatch(expect.begin(), expect.end(), it.data().begin());
                if (m.first != expect.end()) {
                    say("MISMATCH " + std::to_string(sum.bytes() + static_cast<std::uint64_t>(m.first - expect.begin())));
                    return 4;
                }
            }
            sum.update(it.data());
            progress();
            if (mark && sum.bytes() >= mark) {
                say("MARK " + std::to_string(sum.bytes()));
                mark = 0;
            }
            if (transcript) {
                stream_checksum one;
                one.update(it.data());
                say("B " + std::to_string(it.data().size()) + " " + hex(one.value()) +
                    (with_hex ? " " + hex_bytes(it.data()) : std::string()));
            }
            if (stop_after && sum.bytes() >= stop_after) {
                if (!hold_view) it.release();
                say("READY " + std::to_string(sum.bytes()));
                sleep_forever();
            }
        } else if (it.is_message()) {
            if (transcript) say("T " + std::string(it.text()));
        } else if (it.is_end()) {
            stamp();
            say("END " + std::to_string(sum.bytes()) + " " + hex(sum.value()));
            return 0;
        } else {
            stamp();
            say(std::string("ERR ") + name(it.error()) + " " + std::to_string(sum.bytes()) + " " +
                hex(sum.value()) + " " + r.abort_reason());
            return 3;
        }
    }
}

int do_write(const std::vector<std::string>& a) {
    hold_if(a, "start");
    writer w = open_writer(channel_ref::parse(a[0]), end_options(a));
    hold_if(a, "open");
    const std::uint64_t size = std::stoull(arg_after(a, "--size", "0"));
    const std::size_t chunk =
        std::min<std::size_t>(std::stoull(arg_after(a, "--chunk", "65536")), w.max_record());
    const std::uint64_t pause_after = std::stoull(arg_after(a, "--pause-after", "0"));
    std::uint64_t mark = std::stoull(arg_after(a, "--mark", "0"));
    const long block_ms = std::stol(arg_after(a, "--report-block", "-1"));
    const bool use_loan = has(a, "--loan");
    const bool stop_in_loan = has(a, "--stop-in-loan");
    const std::string then = arg_after(a, "--then", "close");
    bool blocked_told = false;  // "BLOCKED" is said once per wait for room
    std::vector<std::byte> buf(chunk);
    for (std::uint64_t off = 0; off < size;) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - off));
        std::error_code e;
        if (use_loan) {
            loan l = w.get_loan(n);
            if (!l) e = l.error();
            else {
                fill_pattern(l.data(), off);
                l.commit();
            }
        } else {
            fill_pattern(std::span(buf.data(), n), off);
            std::size_t done = 0;
            if (block_ms >= 0) {
                // A write with a deadline may commit part of the chunk: bytes_written() says
                // how much; the rest goes with a blocking write.
                e = w.write(std::span(buf.data(), n), std::chrono::milliseconds(block_ms));
                if (e == errc::timeout) {
                    done = static_cast<std::size_t>(w.bytes_written() - off);
                    if (!std::exchange(blocked_told, true)) {
                        stamp();
                        say("BLOCKED " + std::to_string(w.bytes_written()));
                    }
                    e = {};
                } else {
                    done = n;
                    blocked_told = false;  // the next wait is a new episode
                }
            }
            if (!e && done < n) e = w.write(std::span(buf.data() + done, n - done));
        }
        if (e) {
            stamp();
            say(std::string("ERR ") + name(e) + " " + std::to_string(w.bytes_written()));
            return 3;
        }
        progress();
        off += n;
        if (mark && off >= mark) {
            say("MARK " + std::to_string(off));
            mark = 0;
        }
        if (pause_after && off >= pause_after) {
            if (stop_in_loan) {
                // Dies (or hangs) with a record claimed and half filled, never committed.
                loan l = w.get_loan(chunk);
                if (!l) {
                    say(std::string("ERR ") + name(l.error()) + " " + std::to_string(w.bytes_written()));
                    return 3;
                }
                std::memset(l.data().data(), 0xEE, l.size() / 2);
                say("IN-LOAN " + std::to_string(w.bytes_written()));
                sleep_forever();
            }
            say("READY " + std::to_string(off));
            sleep_forever();
        }
    }
    say("WROTE " + std::to_string(w.bytes_written()));
    if (then == "close") {
        if (int rc = close_and_drain(w)) return rc;
    } else if (then == "close-hang") {
        if (auto e = w.close()) {
            say(std::string("ERR ") + name(e) + " " + std::to_string(w.bytes_written()));
            return 3;
        }
        say("CLOSED");
        sleep_forever();
    } else if (then.rfind("abort:", 0) == 0) {
        w.abort(then.substr(6));
        say("ABORTED");
    } else if (then == "hang") {
        say("HANG");
        sleep_forever();
    } else if (then == "exit") {
        std::fflush(stdout);
        ::_exit(0);  // dies without closing: like a crash, but a clean exit code
    }
    // "drop": the writer's destructor runs without close()
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> a(argv + 1, argv + argc);
    if (a.size() < 2) {
        std::fprintf(stderr, "usage: see peer.cpp\n");
        return 2;
    }
    const std::string cmd = a[0];
    a.erase(a.begin());
    stamping = has(a, "--stamp");
    try {
        if (cmd == "read") return do_read(a);
        if (cmd == "write") return do_write(a);
        if (cmd == "mixed") return do_mixed(a, false);
        if (cmd == "frames") return do_mixed(a, true);
        if (cmd == "read-file") return do_read_file(a);
        if (cmd == "write-file") return do_write_file(a);
        if (cmd == "open-reader") return do_open(a, true);
        if (cmd == "open-writer") return do_open(a, false);
        if (cmd == "handshake") return do_handshake(a);
    } catch (const error& e) {
        stamp();
        say(std::string("ERR ") + to_string(e.kind()) + " " + e.what());
        return 3;
    }
    std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
    return 2;
}

