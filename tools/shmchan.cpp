// shmchan: send, receive and demonstrate shared-memory channels from the command line.
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

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

const char* usage_text =
    "usage:\n"
    "  shmchan send [--engine URL] [--capacity BYTES] [--chunk BYTES] FILE|-\n"
    "      create a channel (through the engine at URL, or directly in shared memory), print\n"
    "      its reader ref (one JSON line) on stdout, stream FILE (or stdin) into it; exit 0\n"
    "      once the reader has consumed everything\n"
    "  shmchan recv [--engine URL] [--transport auto|shm|socket] [-o FILE] REF_JSON|-\n"
    "      read the channel named by REF_JSON (or the first line of stdin) to stdout or FILE\n"
    "  shmchan demo [--size BYTES] [--chunk BYTES] [--transport shm|socket|both] [--direct [--copy]]\n"
    "      the seed scenario: an embedded engine, a worker process registering files::process,\n"
    "      and a caller that creates a channel, writes generated data (1 GiB by default),\n"
    "      triggers files::process with {filename, reader} and checks the byte count and\n"
    "      checksum it returns, over shared memory and over the socket; --direct streams\n"
    "      between two processes without an engine\n"
    "  shmchan engine [--listen HOST:PORT] [--channel-ttl SECONDS] [--verbose]\n"
    "      an iii-compatible engine (worker protocol and channel sockets) on HOST:PORT\n"
    "      (default 127.0.0.1:49134); port 0 picks a free port. Stops on SIGINT/SIGTERM\n"
    "  shmchan ls\n"
    "      the channels in /dev/shm: ends, owners, bytes moved, fill level\n"
    "  shmchan gc [--dry-run] [--min-age SECONDS] [CHANNEL_ID...]\n"
    "      remove segments no live process created or holds (after crashes), untouched for\n"
    "      SECONDS (default 10); with channel ids, only those (the others are not touched)\n"
    "  shmchan bench [--quick] [--transports LIST] [--sizes LIST] [--rounds N] [--out DIR] [...]\n"
    "      the benchmark suite: every transport side by side between two processes, a table,\n"
    "      CSV/JSON and plots (shmchan bench --help for all options)\n"
    "  shmchan --version\n"
    "BYTES accepts K, M, G suffixes (powers of 1024).\n";

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using shmchan::testkit::human;
using shmchan::testkit::parse_bytes;
using shmchan::testkit::write_all;

// Progress on stderr, only when stderr is a terminal, at most a few times a second.
class progress {
public:
    explicit progress(const char* what, std::uint64_t total = 0)
        : what_(what), total_(total), on_(::isatty(2)), start_(clock_type::now()), last_(start_) {}
    void update(std::uint64_t done) {
        if (!on_) return;
        auto now = clock_type::now();
        if (now - last_ < 250ms) return;
        last_ = now;
        double s = std::chrono::duration<double>(now - start_).count();
        if (total_)
            std::fprintf(stderr, "\r%s: %s / %s (%.0f%%), %s/s   ", what_, human(double(done)).c_str(),
                         human(double(total_)).c_str(), 100.0 * double(done) / double(total_),
                         human(double(done) / s).c_str());
        else
            std::fprintf(stderr, "\r%s: %s, %s/s   ", what_, human(double(done)).c_str(),
                         human(double(done) / s).c_str());
    }
    void done() {
        if (on_ && last_ != start_) std::fputc('\n', stderr);
    }

private:
    const char* what_;
    std::uint64_t total_;
    bool on_;
    clock_type::time_point start_, last_;
};

// Thrown, not exit()ed: unwinding runs the channel ends' destructors, which finish them.
struct cli_failure {
    std::string line;
};

[[noreturn]] void fail(const char* cmd, std::error_code e, const std::string& detail = {}) {
    std::string name = e.category() == shmchan::error_category()
                           ? shmchan::to_string(static_cast<shmchan::errc>(e.value()))
                           : e.category().name();
    throw cli_failure{std::string("shmchan ") + cmd + ": " + name + ": " + e.message() +
                      (detail.empty() ? "" : ": ") + detail};
}

int cmd_send(std::vector<std::string> args) {
    shmchan::channel_options opt;
    opt.loan_claim = shmchan::channel_options::claim_policy::never;  // read(2) fills loans with full-line copies
    std::size_t chunk = 1 << 20;
    std::optional<std::string> file, engine_url;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--capacity" && i + 1 < args.size()) opt.capacity = parse_bytes(args[++i]);
        else if (args[i] == "--engine" && i + 1 < args.size()) engine_url = args[++i];
        else if (args[i] == "--chunk" && i + 1 < args.size()) chunk = parse_bytes(args[++i]);
        else if (!file && (args[i] == "-" || args[i][0] != '-')) file = args[i];
        else throw usage_error("send: unexpected argument " + args[i]);
    }
    if (!file) throw usage_error("send: FILE or - is required");
    if (chunk == 0) throw usage_error("send: --chunk must be positive");
    int fd = 0;
    if (*file != "-") {
        fd = ::open(file->c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail("send", std::error_code(errno, std::generic_category()), *file);
    }
    std::unique_ptr<shmchan::worker> via_engine;
    shmchan::channel ch;
    if (engine_url) {
        // The engine creates the channel; buffer_size counts 64 KiB frames.
        via_engine = std::make_unique<shmchan::worker>(*engine_url);
        ch = via_engine->create_channel(std::clamp<std::size_t>(opt.capacity >> 16, 1, 1024));
    } else {
        ch = shmchan::create_channel(opt);
    }
    std::printf("%s\n", ch.reader_ref.dump().c_str());
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
    if (auto e = w.wait_drained()) fail("send", e, "waiting for the reader");
    prog.done();
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
                if (!write_all(fd, it.data().data(), it.data().size()))
                    fail("recv", std::error_code(errno, std::generic_category()), "writing output");
                prog.update(r.bytes_read());
                break;
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

int cmd_engine(std::vector<std::string> args) {
    shmchan::engine_options opt;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--listen" && i + 1 < args.size()) {
            const std::string hp = args[++i];
            const auto colon = hp.rfind(':');
            if (colon == std::string::npos) throw usage_error("engine: --listen takes HOST:PORT");
            opt.host = hp.substr(0, colon);
            if (opt.host.size() > 2 && opt.host.front() == '[' && opt.host.back() == ']')  // [::1]:port
                opt.host = opt.host.substr(1, opt.host.size() - 2);
            const unsigned long port = std::strtoul(hp.c_str() + colon + 1, nullptr, 10);
            if (port > 65535) throw usage_error("engine: port out of range in " + hp);
            opt.port = static_cast<std::uint16_t>(port);
        } else if (args[i] == "--channel-ttl" && i + 1 < args.size()) {
            opt.channel_ttl = std::chrono::milliseconds(
                static_cast<long long>(std::stod(args[++i]) * 1000));
        } else if (args[i] == "--verbose") {
            opt.verbose = true;
        } else {
            throw usage_error("engine: unexpected argument " + args[i]);
        }
    }
    // Signals are taken by this thread (sigwait), never by the engine's threads.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    shmchan::engine eng(opt);
    std::printf("shmchan engine: listening on %s\n", eng.url().c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "shmchan engine: stopping (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    eng.stop();
    return 0;
}

const char* state_name(shmchan::end_info::state s) {
    switch (s) {
        case shmchan::end_info::state::unclaimed: return "unclaimed";
        case shmchan::end_info::state::active: return "active";
        case shmchan::end_info::state::closed: return "closed";
        case shmchan::end_info::state::aborted: return "aborted";
        case shmchan::end_info::state::dead: return "dead";
    }
    return "?";
}

std::string end_text(const shmchan::end_info& e) {
    std::string t = state_name(e.st);
    if (e.pid) t += " pid " + std::to_string(e.pid);
    return t;
}

void print_segment(const shmchan::segment_entry& s) {
    if (!s.readable) {
        std::printf("%s  (%s)\n", s.name.c_str(), s.problem.c_str());
        return;
    }
    const auto& i = s.info;
    const double fill = i.capacity ? double(i.committed - i.released) / double(i.capacity) : 0;
    std::printf("%s  capacity %s  moved %s  fill %.0f%%  writer %s  reader %s  creator pid %d%s%s\n",
                i.channel_id.c_str(), human(double(i.capacity)).c_str(), human(double(i.released)).c_str(),
                100 * fill, end_text(i.writer).c_str(), end_text(i.reader).c_str(), i.creator_pid,
                i.creator_alive ? "" : " (gone)", s.orphaned ? "  ORPHANED" : "");
}

int cmd_ls(const std::vector<std::string>& args) {
    if (!args.empty()) throw usage_error("ls takes no arguments");
    const auto all = shmchan::list_segments();
    for (const auto& s : all) print_segment(s);
    std::printf("%zu channel segment(s) in %s\n", all.size(), shmchan::segment_directory().c_str());
    return 0;
}

int cmd_gc(const std::vector<std::string>& args) {
    bool dry = false;
    std::chrono::seconds min_age(10);
    std::vector<std::string> only;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--dry-run") dry = true;
        else if (args[i] == "--min-age" && i + 1 < args.size()) min_age = std::chrono::seconds(std::stoll(args[++i]));
        else if (!args[i].empty() && args[i][0] != '-') only.push_back(args[i]);
        else throw usage_error("gc: unexpected argument " + args[i]);
    }
    const auto removed = only.empty() ? shmchan::collect_garbage(dry, min_age)
                                      : shmchan::collect_garbage(only, dry, min_age);
    for (const auto& s : removed) {
        std::printf("%s ", dry ? "would remove" : "removed");
        print_segment(s);
    }
    std::printf("%s %zu segment(s)\n", dry ? "would remove" : "removed", removed.size());
    return 0;
}

// Hidden: the consumer process of the demo. Prints "<bytes> <checksum>".
int cmd_consume(std::vector<std::string> args) {
    if (args.size() != 1) throw usage_error("_consume REF");
    shmchan::reader r = shmchan::open_reader(shmchan::channel_ref::parse(args[0]));
    shmchan::stream_checksum sum;
    for (auto c : r.chunks()) sum.update(c);
    if (auto e = r.status()) fail("demo consumer", e, r.abort_reason());
    std::printf("%" PRIu64 " %016" PRIx64 "\n", sum.bytes(), sum.value());
    return 0;
}

struct demo_args {
    std::uint64_t size = 1ULL << 30;
    std::size_t chunk = 1 << 20;
    bool copy = false, direct = false;
    std::string transports = "both";
    shmchan::channel_options opt;
};

using shmchan::testkit::expected_checksum;

// Writes `size` generated bytes (zero-copy loans, or write() copies) and closes.
std::error_code produce(shmchan::writer& w, std::uint64_t size, std::size_t chunk, bool copy,
                        progress* prog) {
    std::vector<std::byte> scratch(copy ? chunk : 0);
    for (std::uint64_t off = 0; off < size;) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - off));
        if (copy) {
            shmchan::fill_pattern(std::span(scratch.data(), n), off);
            if (auto e = w.write(std::span(scratch.data(), n))) return e;
        } else {
            shmchan::loan l = w.get_loan(n);
            if (!l) return l.error();
            shmchan::fill_pattern(l.data(), off);  // the producer writes every byte in place
            l.commit();
        }
        off += n;
        if (prog) prog->update(off);
    }
    return w.close();
}

int demo_direct(const demo_args& a, const char* self);

// The seed scenario through an embedded engine.
int demo_engine(const demo_args& a, const char* self) {
    shmchan::engine_options eo;
    eo.port = 0;
    shmchan::engine eng(eo);
    std::printf("demo: engine listening on %s\n", eng.url().c_str());
    const std::uint64_t expect = expected_checksum(a.size);
    bool all_ok = true;
    std::vector<shmchan::transport> paths;
    if (a.transports == "both" || a.transports == "shm") paths.push_back(shmchan::transport::shm);
    if (a.transports == "both" || a.transports == "socket") paths.push_back(shmchan::transport::socket);
    if (paths.empty()) throw usage_error("demo: --transport must be shm, socket or both");
    for (auto path : paths) {
        const char* name = path == shmchan::transport::shm ? "shared memory" : "socket";
        const char* env = path == shmchan::transport::shm ? "shm" : "socket";
        // The worker is its own process; its transport is chosen the way a user would.
        std::string sub = "_files_worker", url = eng.url();
        std::string envvar = std::string("SHMCHAN_TRANSPORT=") + env;
        std::vector<char*> envp;
        for (char** e = environ; *e; ++e)
            if (std::strncmp(*e, "SHMCHAN_TRANSPORT=", 18) != 0) envp.push_back(*e);
        envp.push_back(envvar.data());
        envp.push_back(nullptr);
        int pipefd[2];
        if (::pipe2(pipefd, O_CLOEXEC) != 0) fail("demo", std::error_code(errno, std::generic_category()));
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
        char* argv[] = {const_cast<char*>(self), sub.data(), url.data(), nullptr};
        pid_t child = 0;
        const int rc = posix_spawn(&child, self, &fa, nullptr, argv, envp.data());
        posix_spawn_file_actions_destroy(&fa);
        ::close(pipefd[1]);
        if (rc != 0) fail("demo", std::error_code(rc, std::generic_category()), "starting the worker");
        char ready[16] = {};
        [[maybe_unused]] auto got = ::read(pipefd[0], ready, sizeof ready - 1);
        ::close(pipefd[0]);

        shmchan::worker_options wo;
        wo.via = path;
        shmchan::worker caller(eng.url(), wo);
        shmchan::channel ch = caller.create_channel();
        std::printf("demo [%s]: worker pid %d registered files::process; writing %s in %s chunks\n",
                    name, int(child), human(double(a.size)).c_str(), human(double(a.chunk)).c_str());
        std::fflush(stdout);
        progress prog("demo", a.size);
        std::error_code werr;
        const auto t0 = clock_type::now();
        std::thread producer([&] { werr = produce(ch.writer, a.size, a.chunk, a.copy, &prog); });
        nlohmann::json result;
        std::string call_error;
        try {
            result = caller.trigger({"files::process", {{"filename", "generated.bin"}, {"reader", ch.reader_ref}},
                                     std::chrono::minutes(10)});
        } catch (const std::exception& e) {
            call_error = e.what();
            ch.writer.abort("files::process failed");
        }
        producer.join();
        const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
        prog.done();
        ::kill(child, SIGTERM);
        ::waitpid(child, nullptr, 0);
        if (!call_error.empty()) {
            std::fprintf(stderr, "shmchan demo [%s]: files::process failed: %s\n", name, call_error.c_str());
            all_ok = false;
            continue;
        }
        if (werr) {
            std::fprintf(stderr, "shmchan demo [%s]: writing failed: %s\n", name, werr.message().c_str());
            all_ok = false;
            continue;
        }
        const std::uint64_t bytes = result.value("bytes", std::uint64_t{0});
        const std::uint64_t sum = result.value("checksum", std::uint64_t{0});
        const bool ok = bytes == a.size && sum == expect;
        all_ok = all_ok && ok;
        std::printf("demo [%s]: files::process returned %" PRIu64 " bytes, checksum %016" PRIx64
                    " (expected %016" PRIx64 "): %s; %.3f s, %.2f GB/s\n",
                    name, bytes, sum, expect, ok ? "verified" : "MISMATCH", secs, double(a.size) / secs / 1e9);
        std::fflush(stdout);
    }
    return all_ok ? 0 : 1;
}

// Hidden: the demo's worker process. Registers files::process (bytes and checksum of the
// stream behind input.reader), prints READY, serves until killed.
int cmd_files_worker(std::vector<std::string> args) {
    if (args.size() != 1) throw usage_error("_files_worker URL");
    shmchan::worker w(args[0]);
    w.register_function("files::process", [](shmchan::invocation& call) {
        shmchan::stream_checksum sum;
        auto& r = call.reader("reader");
        for (auto c : r.chunks()) sum.update(c);
        if (auto e = r.status())
            throw shmchan::error(static_cast<shmchan::errc>(e.value()), "reading the stream: " + e.message() +
                                                                             " " + r.abort_reason());
        return nlohmann::json{{"bytes", sum.bytes()}, {"checksum", sum.value()},
                              {"filename", call.input().value("filename", "")}};
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the registration is on its way
    std::puts("READY");
    std::fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    int sig = 0;
    sigwait(&set, &sig);
    return 0;
}

int cmd_demo(std::vector<std::string> args, const char* self) {
    demo_args a;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--size" && i + 1 < args.size()) a.size = parse_bytes(args[++i]);
        else if (args[i] == "--chunk" && i + 1 < args.size()) a.chunk = parse_bytes(args[++i]);
        else if (args[i] == "--capacity" && i + 1 < args.size()) a.opt.capacity = parse_bytes(args[++i]);
        else if (args[i] == "--transport" && i + 1 < args.size()) a.transports = args[++i];
        else if (args[i] == "--copy") a.copy = true;
        else if (args[i] == "--direct") a.direct = true;
        else throw usage_error("demo: unexpected argument " + args[i]);
    }
    if (a.chunk == 0) throw usage_error("demo: --chunk must be positive");
    return a.direct ? demo_direct(a, self) : demo_engine(a, self);
}

int demo_direct(const demo_args& a, const char* self) {
    const std::uint64_t size = a.size;
    std::size_t chunk = a.chunk;
    const bool copy = a.copy;
    shmchan::channel_options opt = a.opt;
    shmchan::channel ch = shmchan::create_channel(opt);
    chunk = std::min(chunk, ch.writer.max_record());

    // The consumer is a separate process image: it gets only the reader ref, as JSON.
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) fail("demo", std::error_code(errno, std::generic_category()));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    std::string ref = ch.reader_ref.dump();
    std::string sub = "_consume";
    char* argv[] = {const_cast<char*>(self), sub.data(), ref.data(), nullptr};
    pid_t child = 0;
    if (int rc = posix_spawn(&child, self, &fa, nullptr, argv, environ); rc != 0)
        fail("demo", std::error_code(rc, std::generic_category()), "starting the consumer");
    posix_spawn_file_actions_destroy(&fa);
    ::close(pipefd[1]);

    std::printf("demo: streaming %s in %s chunks (%s) through a %s ring, producer pid %d, "
                "consumer pid %d\n",
                human(double(size)).c_str(), human(double(chunk)).c_str(),
                copy ? "write() copies" : "zero-copy loans", human(double(ch.writer.capacity())).c_str(),
                int(::getpid()), int(child));
    std::fflush(stdout);
    auto& w = ch.writer;
    progress prog("demo", size);
    const auto t0 = clock_type::now();
    if (auto e = produce(w, size, chunk, copy, &prog)) fail("demo", e);
    if (auto e = w.wait_drained()) fail("demo", e, "waiting for the consumer");
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    prog.done();

    char buf[128] = {};
    std::string result;
    for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) result.append(buf, std::size_t(n));
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "shmchan demo: consumer failed (status %d)\n", status);
        return 1;
    }
    const std::uint64_t expect = expected_checksum(size);  // outside the timed part
    unsigned long long got_bytes = 0, got_sum = 0;
    if (std::sscanf(result.c_str(), "%llu %llx", &got_bytes, &got_sum) != 2) {
        std::fprintf(stderr, "shmchan demo: consumer said \"%s\"\n", result.c_str());
        return 1;
    }
    const bool ok = got_bytes == size && got_sum == expect;
    std::printf("demo: consumer received %llu bytes, checksum %016llx, expected %016" PRIx64 ": %s\n",
                got_bytes, got_sum, expect, ok ? "verified" : "MISMATCH");
    std::printf("demo: %.3f s, %.2f GB/s (%.2f GiB/s)\n", secs, double(size) / secs / 1e9,
                double(size) / secs / double(1ULL << 30));
    return ok ? 0 : 1;
}

// `shmchan bench ARGS`: execs the suite (shmchan_bench) with the same arguments, from next to
// this binary (an installation) or from the build tree it was built in.
int cmd_bench(const std::vector<std::string>& args) {
    std::vector<std::string> candidates;
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        std::string dir(self, static_cast<std::size_t>(n));
        dir.erase(dir.rfind('/') + 1);
        candidates.push_back(dir + "shmchan_bench");
    }
#ifdef SHMCHAN_BENCH_SUITE
    candidates.push_back(SHMCHAN_BENCH_SUITE);
#endif
    for (const auto& path : candidates) {
        if (::access(path.c_str(), X_OK) != 0) continue;
        std::vector<char*> argv{const_cast<char*>(path.c_str())};
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::setenv("SHMCHAN_BENCH_COMMAND", "shmchan bench", 1);  // how the report names the command
        ::execv(path.c_str(), argv.data());
        std::fprintf(stderr, "shmchan bench: cannot run %s: %s\n", path.c_str(), std::strerror(errno));
        return 1;
    }
    std::string looked;
    for (const auto& c : candidates) looked += (looked.empty() ? "" : ", ") + c;
    std::fprintf(stderr, "shmchan bench: the benchmark suite is not built (looked for %s); build with "
                         "-DSHMCHAN_BUILD_BENCH=ON\n", looked.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
            std::fputs(usage_text, args.empty() ? stderr : stdout);
            return args.empty() ? 2 : 0;
        }
        if (args[0] == "--version") {
            std::printf("shmchan %s\n", shmchan::version_string);
            return 0;
        }
        std::string cmd = args[0];
        args.erase(args.begin());
        if (cmd == "send") return cmd_send(args);
        if (cmd == "recv") return cmd_recv(args);
        if (cmd == "demo") return cmd_demo(args, "/proc/self/exe");
        if (cmd == "engine") return cmd_engine(args);
        if (cmd == "ls") return cmd_ls(args);
        if (cmd == "gc") return cmd_gc(args);
        if (cmd == "bench") return cmd_bench(args);
        if (cmd == "_consume") return cmd_consume(args);
        if (cmd == "_files_worker") return cmd_files_worker(args);
        throw usage_error("unknown command " + cmd);
    } catch (const cli_failure& f) {
        std::fprintf(stderr, "%s\n", f.line.c_str());
        return 1;
    } catch (const usage_error& e) {
        std::fprintf(stderr, "shmchan: %s\n%s", e.what(), usage_text);
        return 2;
    } catch (const shmchan::testkit::bad_byte_count& e) {
        std::fprintf(stderr, "shmchan: %s\n%s", e.what(), usage_text);
        return 2;
    } catch (const shmchan::error& e) {
        std::fprintf(stderr, "shmchan: %s: %s\n", shmchan::to_string(e.kind()), e.what());
        return 1;
    }
}
