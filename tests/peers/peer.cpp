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
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace shmchan;

namespace {

const char* name(std::error_code e) {
    return e.category() == error_category() ? to_string(static_cast<errc>(e.value())) : "other";
}

[[noreturn]] void sleep_forever() {
    for (;;) ::pause();
}

std::string arg_after(const std::vector<std::string>& a, const std::string& flag,
                      const std::string& def = {}) {
    for (std::size_t i = 0; i + 1 < a.size(); ++i)
        if (a[i] == flag) return a[i + 1];
    return def;
}
bool has(const std::vector<std::string>& a, const std::string& flag) {
    for (auto& s : a)
        if (s == flag) return true;
    return false;
}

void say(const std::string& line) {
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

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

// Closes, waits until the reader has everything, says so: "CLOSED", "DRAINED" or "ERR ...".
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

// A raw client of the channel socket that stops part way through the upgrade.
int do_handshake(const std::vector<std::string>& a) {
    if (a.size() < 2) throw error(errc::invalid_argument, "handshake needs URL REF");
    const std::string url = a[0];
    const channel_ref ref = channel_ref::parse(a[1]);
    const std::string stage = arg_after(a, "--stage", "request");
    const auto colon = url.rfind(':');
    if (url.rfind("ws://127.0.0.1:", 0) != 0 || colon == std::string::npos)
        throw error(errc::invalid_argument, "handshake takes ws://127.0.0.1:PORT");
    const int port = std::stoi(url.substr(colon + 1));
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        say(std::string("ERR engine_unreachable ") + std::strerror(errno));
        return 3;
    }
    const std::string req = "GET /ws/channels/" + ref.channel_id + "?key=" + ref.access_key +
                            "&dir=" + to_string(ref.dir) + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                            std::to_string(port) +
                            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    std::string_view part = req;
    if (stage == "connect") {
        say("CONNECTED");
        sleep_forever();
    }
    if (stage == "partial") part = part.substr(0, part.size() / 2);
    else if (stage != "request") throw error(errc::invalid_argument, "--stage connect|partial|request");
    while (!part.empty()) {
        const ssize_t n = ::send(fd, part.data(), part.size(), MSG_NOSIGNAL);
        if (n <= 0) {
            say(std::string("ERR system_error ") + std::strerror(errno));
            return 3;
        }
        part.remove_prefix(static_cast<std::size_t>(n));
    }
    say(stage == "partial" ? "PARTIAL" : "SENT");
    sleep_forever();
}

// Deterministic mix of record kinds and sizes; the test rebuilds the same sequence.
int do_mixed(const std::vector<std::string>& a) {
    writer w = open_writer(channel_ref::parse(a[0]));
    const int count = std::stoi(a[1]);
    std::vector<std::byte> buf(5000);
    std::uint64_t off = 0;
    for (int i = 0; i < count; ++i) {
        std::error_code e;
        if (i % 3 == 0) {
            e = w.send_message("msg " + std::to_string(i));
        } else {
            const std::size_t n = 1 + static_cast<std::size_t>((i * 7919) % 4999);
            fill_pattern(std::span(buf.data(), n), off);
            off += n;
            e = w.write(std::span(buf.data(), n));
        }
        if (e) {
            say(std::string("ERR ") + name(e));
            return 3;
        }
    }
    if (auto e = w.close()) {
        say(std::string("ERR ") + name(e));
        return 3;
    }
    say("CLOSED");
    return 0;
}

// Frames among messages and chunks; the interop test rebuilds the same sequence.
int do_frames(const std::vector<std::string>& a) {
    writer w = open_writer(channel_ref::parse(a[0]));
    const int count = std::stoi(a[1]);
    std::vector<std::byte> buf(70000);
    std::uint64_t off = 0;
    for (int i = 0; i < count; ++i) {
        std::error_code e;
        if (i % 3 == 0) {
            e = w.send_message("msg " + std::to_string(i));
        } else {
            const bool frame = i % 3 == 1;
            const std::size_t n = 1 + static_cast<std::size_t>((i * 7919) % (frame ? 70000 : 4999));
            fill_pattern(std::span(buf.data(), n), off);
            off += n;
            if (frame) {
                frame_meta m;
                m.pts = i * 1000;
                m.flags = static_cast<std::uint32_t>(i);
                if (i % 5 == 0) m.duration = 40'000'000;
                const std::string user = "u" + std::to_string(i);
                if (i % 2) m.user = std::as_bytes(std::span(user.data(), user.size()));
                e = w.write_frame(std::span(buf.data(), n), m);
            } else {
                e = w.write(std::span(buf.data(), n));
            }
        }
        if (e) {
            say(std::string("ERR ") + name(e));
            return 3;
        }
    }
    if (auto e = w.close()) {
        say(std::string("ERR ") + name(e));
        return 3;
    }
    say("CLOSED");
    return 0;
}

// Every byte received goes into a file, so that another program can hash it.
int do_read_file(const std::vector<std::string>& a) {
    if (a.size() < 2) throw error(errc::invalid_argument, "read-file needs REF FILE");
    reader r = open_reader(channel_ref::parse(a[0]));
    std::FILE* f = std::fopen(a[1].c_str(), "wb");
    if (!f) {
        say("ERR io 0 cannot open " + a[1] + ": " + std::strerror(errno));
        return 3;
    }
    std::vector<char> fbuf(1 << 20);
    std::setvbuf(f, fbuf.data(), _IOFBF, fbuf.size());
    std::uint64_t bytes = 0;
    for (;;) {
        item it = r.next();
        if (it.is_chunk()) {
            const auto d = it.data();
            if (std::fwrite(d.data(), 1, d.size(), f) != d.size()) {
                say("ERR io " + std::to_string(bytes) + " write to " + a[1] + " failed: " +
                    std::strerror(errno));
                std::fclose(f);
                return 3;
            }
            bytes += d.size();
        } else if (it.is_message()) {
            continue;
        } else if (it.is_end()) {
            if (std::fclose(f) != 0) {
                say("ERR io " + std::to_string(bytes) + " close of " + a[1] + " failed");
                return 3;
            }
            say("END " + std::to_string(bytes));
            return 0;
        } else {
            std::fclose(f);
            say(std::string("ERR ") + name(it.error()) + " " + std::to_string(bytes) + " " +
                r.abort_reason());
            return 3;
        }
    }
}

// A file streamed into the writer with writer.write, then a clean close.
int do_write_file(const std::vector<std::string>& a) {
    if (a.size() < 2) throw error(errc::invalid_argument, "write-file needs REF FILE");
    writer w = open_writer(channel_ref::parse(a[0]));
    const std::size_t chunk = std::max<std::size_t>(1, std::stoull(arg_after(a, "--chunk", "1048576")));
    std::FILE* f = std::fopen(a[1].c_str(), "rb");
    if (!f) {
        w.abort("test peer cannot open its input file");
        say("ERR io 0 cannot open " + a[1] + ": " + std::strerror(errno));
        return 3;
    }
    std::vector<std::byte> buf(chunk);
    for (;;) {
        const std::size_t n = std::fread(buf.data(), 1, buf.size(), f);
        if (n > 0) {
            if (auto e = w.write(std::span(buf.data(), n))) {
                std::fclose(f);
                say(std::string("ERR ") + name(e) + " " + std::to_string(w.bytes_written()));
                return 3;
            }
        }
        if (n < buf.size()) {
            if (std::ferror(f)) {
                std::fclose(f);
                w.abort("test peer could not read its input file");
                say("ERR io " + std::to_string(w.bytes_written()) + " read of " + a[1] + " failed");
                return 3;
            }
            break;
        }
    }
    std::fclose(f);
    say("WROTE " + std::to_string(w.bytes_written()));
    return close_and_drain(w);
}

int do_open(const std::vector<std::string>& a, bool as_reader) {
    try {
        auto ref = channel_ref::parse(a[0]);
        reader r;
        writer w;
        if (as_reader) r = open_reader(ref);
        else w = open_writer(ref);
        say("OK");
        std::string line;
        std::getline(std::cin, line);  // hold the end until the test closes our stdin
        if (!as_reader) w.abort("test peer released the writer");
        return 0;
    } catch (const error& e) {
        say(std::string("ERR ") + to_string(e.kind()) + " " + e.what());
        return 3;
    }
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
        if (cmd == "mixed") return do_mixed(a);
        if (cmd == "frames") return do_frames(a);
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
