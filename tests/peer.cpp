// The other process of the cross-process tests. One line of output per event, so the test
// can follow along:
//   read REF [--transcript [--hex]] [--stop-after BYTES] [--timeout-ms N]
//       -> (with --transcript: "B <len> <sum>" / "T <text>" per record; with --hex as well,
//          "B <len> <sum> <hex bytes>")
//          "READY <bytes>" and sleep forever once --stop-after bytes are read (to be killed)
//          "END <bytes> <checksum>" | "ERR <errc> <bytes> <checksum> <reason>"
//   write REF --size N [--chunk C] [--loan] [--then close|abort:REASON|hang|drop|exit]
//          [--pause-after BYTES]
//       -> "READY <bytes>" when pausing (sleeps forever), "WROTE <bytes>", then "CLOSED" /
//          "ABORTED" / "HANG" / "DRAINED" or "ERR <errc> <written>"
//   mixed REF COUNT   -> interleaved text and binary records, then close; "CLOSED"
//   read-file REF FILE -> every received byte into FILE (text messages are skipped);
//          "END <bytes>" | "ERR <errc> <bytes> <reason>"
//   write-file REF FILE [--chunk N] -> FILE streamed with writer.write, then close and wait
//          until drained; "WROTE <bytes>", "CLOSED", "DRAINED" or "ERR <errc> <written> [<what>]"
//   open-reader REF | open-writer REF  -> "OK" then waits for stdin EOF, or "ERR <errc> <what>"
#include <shmchan/shmchan.hpp>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <unistd.h>
#include <vector>

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
        say(std::string("ERR ") + name(e) + " " + std::to_string(w.bytes_written()));
        return 3;
    }
    say("CLOSED");
    if (auto e = w.wait_drained()) {
        say(std::string("ERR ") + name(e) + " " + std::to_string(w.bytes_written()));
        return 3;
    }
    say("DRAINED");
    return 0;
}

int do_read(const std::vector<std::string>& a) {
    reader r = open_reader(channel_ref::parse(a[0]));
    const bool transcript = has(a, "--transcript");
    const bool with_hex = has(a, "--hex");
    const std::uint64_t stop_after = std::stoull(arg_after(a, "--stop-after", "0"));
    const long timeout_ms = std::stol(arg_after(a, "--timeout-ms", "-1"));
    const nanoseconds t = timeout_ms < 0 ? forever : std::chrono::milliseconds(timeout_ms);
    stream_checksum sum;
    for (;;) {
        item it = r.next(t);
        if (it.is_chunk()) {
            sum.update(it.data());
            if (transcript) {
                stream_checksum one;
                one.update(it.data());
                say("B " + std::to_string(it.data().size()) + " " + hex(one.value()) +
                    (with_hex ? " " + hex_bytes(it.data()) : std::string()));
            }
            if (stop_after && sum.bytes() >= stop_after) {
                it.release();
                say("READY " + std::to_string(sum.bytes()));
                sleep_forever();
            }
        } else if (it.is_message()) {
            if (transcript) say("T " + std::string(it.text()));
        } else if (it.is_end()) {
            say("END " + std::to_string(sum.bytes()) + " " + hex(sum.value()));
            return 0;
        } else {
            say(std::string("ERR ") + name(it.error()) + " " + std::to_string(sum.bytes()) + " " +
                hex(sum.value()) + " " + r.abort_reason());
            return 3;
        }
    }
}

int do_write(const std::vector<std::string>& a) {
    writer w = open_writer(channel_ref::parse(a[0]));
    const std::uint64_t size = std::stoull(arg_after(a, "--size", "0"));
    const std::size_t chunk =
        std::min<std::size_t>(std::stoull(arg_after(a, "--chunk", "65536")), w.max_record());
    const std::uint64_t pause_after = std::stoull(arg_after(a, "--pause-after", "0"));
    const bool use_loan = has(a, "--loan");
    const std::string then = arg_after(a, "--then", "close");
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
            e = w.write(std::span(buf.data(), n));
        }
        if (e) {
            say(std::string("ERR ") + name(e) + " " + std::to_string(w.bytes_written()));
            return 3;
        }
        off += n;
        if (pause_after && off >= pause_after) {
            say("READY " + std::to_string(off));
            sleep_forever();
        }
    }
    say("WROTE " + std::to_string(w.bytes_written()));
    if (then == "close") {
        if (int rc = close_and_drain(w)) return rc;
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
    try {
        if (cmd == "read") return do_read(a);
        if (cmd == "write") return do_write(a);
        if (cmd == "mixed") return do_mixed(a);
        if (cmd == "read-file") return do_read_file(a);
        if (cmd == "write-file") return do_write_file(a);
        if (cmd == "open-reader") return do_open(a, true);
        if (cmd == "open-writer") return do_open(a, false);
    } catch (const error& e) {
        say(std::string("ERR ") + to_string(e.kind()) + " " + e.what());
        return 3;
    }
    std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
    return 2;
}
