// The test peer's commands beyond streaming one end (peer.cpp, whose header lists them all):
// handshake, mixed, frames, read-file, write-file, open-reader and open-writer.
#include <shmchan/shmchan.hpp>
#include <shmchan/testkit/checksum.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.hpp"
#include "peer_io.hpp"

namespace shmchan::peers {

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

// Deterministic mix of record kinds and sizes; the test rebuilds the same sequence. With
// frames (the interop test), every third record from the second on is a frame.
int do_mixed(const std::vector<std::string>& a, bool with_frames) {
    writer w = open_writer(channel_ref::parse(a[0]));
    const int count = std::stoi(a[1]);
    std::vector<std::byte> buf(70000);
    std::uint64_t off = 0;
    for (int i = 0; i < count; ++i) {
        std::error_code e;
        if (i % 3 == 0) {
            e = w.send_message("msg " + std::to_string(i));
        } else {
            const bool frame = with_frames && i % 3 == 1;
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


}  // namespace shmchan::peers
