// shmchan send / recv: a file through a channel, from the command line.
#include "cli.hpp"

#include <shmchan/shmchan.hpp>
#include <shmchan/engine.hpp>
#include <shmchan/worker.hpp>
#include <shmchan/testkit/bytes.hpp>
#include <shmchan/testkit/checksum.hpp>
#include <shmchan/testkit/io.hpp>

#include <algorithm>
#include <memory>
#include <thread>

#include <pthread.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <optional>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;


namespace shmchan_cli {

int cmd_send(std::vector<std::string> args) {
    shmchan::channel_options opt;
    opt.loan_claim = shmchan::channel_options::claim_policy::never;  // read(2) fills loans with full-line copies
    std::size_t chunk = 1 << 20;
    std::optional<std::string> file, engine_url;
    shmchan::worker_options wo;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (tls_arg(args, i, wo.tls)) continue;
        if (args[i] == "--capacity" && i + 1 < args.size()) opt.capacity = parse_bytes(args[++i]);
        else if (args[i] == "--engine" && i + 1 < args.size()) engine_url = args[++i];
        else if (args[i] == "--chunk" && i + 1 < args.size()) chunk = parse_bytes(args[++i]);
        else if (args[i] == "--readers" && i + 1 < args.size()) opt.readers = parse_count(args[++i], "--readers");
        else if (args[i] == "--overflow" && i + 1 < args.size()) opt.overflow = parse_overflow(args[++i]);
        else if (!file && (args[i] == "-" || args[i][0] != '-')) file = args[i];
        else throw usage_error("send: unexpected argument " + args[i]);
    }
    if (!file) throw usage_error("send: FILE or - is required");
    if (chunk == 0) throw usage_error("send: --chunk must be positive");
    if (opt.readers < 1 || opt.readers > 64) throw usage_error("send: --readers must be 1 to 64");
    if (engine_url && (opt.readers != 1 || opt.overflow != shmchan::channel_options::overflow_policy::block))
        throw usage_error("send: --readers and --overflow need a local channel (not --engine)");
    int fd = 0;
    if (*file != "-") {
        fd = ::open(file->c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail("send", std::error_code(errno, std::generic_category()), *file);
    }
    std::unique_ptr<shmchan::worker> via_engine;
    shmchan::channel ch;
    if (engine_url) {
        // The engine creates the channel; buffer_size counts 64 KiB frames.
        via_engine = std::make_unique<shmchan::worker>(*engine_url, wo);
        ch = via_engine->create_channel(std::clamp<std::size_t>(opt.capacity >> 16, 1, 1024));
    } else {
        try {
            ch = shmchan::create_channel(opt);
        } catch (const shmchan::error& e) {
            fail("send", e.code(), e.what());
        }
    }
    if (ch.reader_refs.empty()) ch.reader_refs.push_back(ch.reader_ref);  // the engine's channel
    for (const auto& ref : ch.reader_refs) std::printf("%s\n", ref.dump().c_str());
    std::fflush(stdout);

    auto& w = ch.writer;
    if (auto e = w.write(std::span<const std::byte>())) fail("send", e, "opening the writer");
    chunk = std::min(chunk, w.max_record());
    progress prog("send");
    for (;;) {
        // Zero-copy: read(2) straight into a region of the ring.
        shmchan::loan l = w.get_loan(chunk);
        if (!l) fail("send", l.error());
        ssize_t n = ::read(fd, l.data().data(), l.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            l.abandon();
            w.abort(std::string("read error: ") + std::strerror(err));
            fail("send", std::error_code(err, std::generic_category()), "reading input");
        }
        if (n == 0) break;
        l.commit(static_cast<std::size_t>(n));
        prog.update(w.bytes_written());
    }
    if (auto e = w.close()) fail("send", e);
    const std::error_code drained = w.wait_drained();
    prog.done();
    if (drained && ch.reader_refs.size() > 1) {
        // Name each reader that did not get everything; the others did.
        const auto all = w.readers();
        for (std::size_t i = 0; i < all.size(); ++i)
            if (all[i].st != shmchan::reader_status::state::done && all[i].st != shmchan::reader_status::state::reading)
                std::fprintf(stderr, "shmchan send: reader %zu %s\n", i,
                             all[i].st == shmchan::reader_status::state::lost ? "was lost (its process died): it did not get everything"
                             : all[i].st == shmchan::reader_status::state::left ? "left early: it did not get everything"
                                                                                 : "never attached");
    }
    if (drained) fail("send", drained, "waiting for the readers");
    return 0;
}

shmchan::transport parse_transport(const std::string& t) {
    if (t == "auto") return shmchan::transport::automatic;
    if (t == "shm") return shmchan::transport::shm;
    if (t == "socket") return shmchan::transport::socket;
    throw usage_error("--transport must be auto, shm or socket, not " + t);
}

std::string read_ref_arg(const std::string& arg) {
    if (arg != "-") return arg;
    std::string line;
    if (!std::getline(std::cin, line)) throw usage_error("recv: no ref on stdin");
    return line;
}

int cmd_recv(std::vector<std::string> args) {
    std::optional<std::string> out, ref_arg;
    shmchan::channel_options opt;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (tls_arg(args, i, opt.tls)) continue;
        if (args[i] == "-o" && i + 1 < args.size()) out = args[++i];
        else if (args[i] == "--engine" && i + 1 < args.size()) opt.engine = args[++i];
        else if (args[i] == "--transport" && i + 1 < args.size()) opt.via = parse_transport(args[++i]);
        else if (!ref_arg && (args[i] == "-" || args[i][0] != '-')) ref_arg = args[i];
        else throw usage_error("recv: unexpected argument " + args[i]);
    }
    if (!ref_arg) throw usage_error("recv: REF_JSON or - is required");
    shmchan::reader r;
    try {
        r = shmchan::open_reader(shmchan::channel_ref::parse(read_ref_arg(*ref_arg)), opt);
    } catch (const shmchan::error& e) {
        fail("recv", e.code(), e.what());
    }
    int fd = 1;
    if (out) {
        fd = ::open(out->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) fail("recv", std::error_code(errno, std::generic_category()), *out);
    }
    progress prog("recv");
    for (;;) {
        shmchan::item it = r.next();
        switch (it.type()) {
            case shmchan::item::kind::chunk:
            case shmchan::item::kind::frame:  // its bytes, as a stream (the meta is not kept)
                if (!write_all(fd, it.data().data(), it.data().size()))
                    fail("recv", std::error_code(errno, std::generic_category()), "writing output");
                // Overflow drop-oldest: the writer may have overwritten the view meanwhile.
                if (!it.intact()) {
                    prog.done();
                    throw cli_failure{"shmchan recv: data lost: the writer overwrote a chunk while it was being written out, after " +
                                      std::to_string(r.bytes_read() - it.data().size()) + " bytes (overflow drop-oldest: this reader fell a ring behind)"};
                }
                prog.update(r.bytes_read());
                break;
            case shmchan::item::kind::gap:  // never a file with a hole in it, silently
                prog.done();
                throw cli_failure{"shmchan recv: data lost: " + std::to_string(it.gap().records) + " records (" +
                                  std::to_string(it.gap().bytes) + " bytes) after " + std::to_string(r.bytes_read()) +
                                  " bytes were overwritten before this reader got them (overflow drop-oldest)"};
            case shmchan::item::kind::message:
                std::fprintf(stderr, "shmchan recv: message: %.*s\n", int(it.text().size()),
                             it.text().data());
                break;
            case shmchan::item::kind::end:
                prog.done();
                if (out && ::close(fd) != 0)
                    fail("recv", std::error_code(errno, std::generic_category()), *out);
                return 0;
            case shmchan::item::kind::error: {
                prog.done();
                std::string detail = "after " + std::to_string(r.bytes_read()) + " bytes";
                if (it.error() == shmchan::errc::aborted)
                    detail = "\"" + r.abort_reason() + "\" " + detail;
                fail("recv", it.error(), detail);
            }
        }
    }
}

}  // namespace shmchan_cli
