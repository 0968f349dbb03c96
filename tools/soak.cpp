// shmchan _soak: channels opened and closed continuously through an engine for a bounded time,
// with descriptors, memory, segments and throughput measured before, during and after.
//
// Processes: this one (the client: creates channels, writes, reads, triggers), an engine
// (`shmchan engine`, port 0, a short channel TTL) and two workers (`shmchan _soak_worker`) that
// read the streams handed to them, one through shared memory, one through the engine's socket.
// Lanes (threads here) run a fixed rotation of scenarios; every byte read is checked.
// Passing criteria are printed at the start and checked at the end; exit 0 only if all hold.
#include <shmchan/shmchan.hpp>
#include <shmchan/shm/segment.hpp>
#include <shmchan/worker.hpp>
#include <shmchan/testkit/checksum.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <set>
#include <spawn.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;
using shmchan::errc;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

const char* soak_usage_text =
    "usage: shmchan _soak [--seconds N] [--lanes N] [--size BYTES] [--interval SECONDS]\n"
    "                     [--rss-bound MIB] [--throughput-factor F]\n"
    "  channels opened and closed continuously through an engine for N seconds (default 20;\n"
    "  SHMCHAN_SOAK_SECONDS overrides), with descriptors, memory, segments and throughput\n"
    "  measured; exit 0 if every criterion printed at the start holds\n";

struct soak_usage : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// --- measuring a process ---------------------------------------------------------------------
struct proc_sample {
    int fds = -1;
    long rss_kib = -1, hwm_kib = -1;
    int threads = -1;
    int shm_maps = -1;  // mappings of shmchan segments
};

proc_sample sample(pid_t pid) {
    proc_sample s;
    const std::string base = "/proc/" + std::to_string(pid);
    if (DIR* d = ::opendir((base + "/fd").c_str())) {
        s.fds = 0;
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') ++s.fds;
        ::closedir(d);
        if (pid == ::getpid()) --s.fds;  // the directory we were reading
    }
    std::ifstream st(base + "/status");
    for (std::string line; std::getline(st, line);) {
        auto num = [&](const char* key) { return std::strtol(line.c_str() + std::strlen(key), nullptr, 10); };
        if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = num("VmRSS:");
        else if (line.rfind("VmHWM:", 0) == 0) s.hwm_kib = num("VmHWM:");
        else if (line.rfind("Threads:", 0) == 0) s.threads = static_cast<int>(num("Threads:"));
    }
    std::ifstream maps(base + "/maps");
    s.shm_maps = 0;
    for (std::string line; std::getline(maps, line);) s.shm_maps += line.find("/dev/shm/shmchan-") != std::string::npos;
    return s;
}

// --- child processes ---------------------------------------------------------------------------
struct child_proc {
    std::string name;
    pid_t pid = -1;
    int out = -1;
    std::string buf;

    std::string read_line(std::chrono::milliseconds timeout) {
        const auto until = clock_type::now() + timeout;
        for (;;) {
            if (auto nl = buf.find('\n'); nl != std::string::npos) {
                std::string l = buf.substr(0, nl);
                buf.erase(0, nl + 1);
                return l;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now());
            if (left.count() <= 0) return {};
            pollfd p{out, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char tmp[512];
            const ssize_t n = ::read(out, tmp, sizeof tmp);
            if (n <= 0) return {};
            buf.append(tmp, static_cast<std::size_t>(n));
        }
    }
    // SIGTERM, then the exit status (128 + signal when killed by one; -1 after 30 s, killed).
    int stop() {
        if (pid < 0) return -1;
        ::kill(pid, SIGTERM);
        int st = 0;
        for (int i = 0; i < 3000; ++i) {
            if (::waitpid(pid, &st, WNOHANG) == pid) {
                pid = -1;
                return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
            std::this_thread::sleep_for(10ms);
        }
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &st, 0);
        pid = -1;
        return -1;
    }
    ~child_proc() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        if (out >= 0) ::close(out);
    }
};

std::unique_ptr<child_proc> spawn(const std::string& name, const std::vector<std::string>& args,
                                  const std::string& extra_env = {}) {
    auto c = std::make_unique<child_proc>();
    c->name = name;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    std::vector<std::string> a = args;
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_store;
    std::vector<char*> envp;
    for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
    if (!extra_env.empty()) env_store.push_back(extra_env);
    for (auto& s : env_store) envp.push_back(s.data());
    envp.push_back(nullptr);
    const int rc = ::posix_spawn(&c->pid, "/proc/self/exe", &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    c->out = p[0];
    if (rc != 0) throw std::runtime_error("cannot start " + name + ": " + std::strerror(rc));
    return c;
}

// GET /status from the engine: its count of live channels, or -1.
long engine_channels(std::uint16_t port) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string resp;
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        const std::string req = "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if (::send(s, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
            char tmp[4096];
            for (ssize_t n; (n = ::recv(s, tmp, sizeof tmp, 0)) > 0;) resp.append(tmp, static_cast<std::size_t>(n));
        }
    }
    ::close(s);
    const auto body = resp.find("\r\n\r\n");
    if (body == std::string::npos) return -1;
    const json j = json::parse(resp.substr(body + 4), nullptr, false);
    return j.is_object() && j.contains("channels") ? j["channels"].get<long>() : -1;
}

// --- data ----------------------------------------------------------------------------------------
const char* name_of(std::error_code e) {
    if (!e) return "ok";
    return e.category() == shmchan::error_category() ? shmchan::to_string(static_cast<errc>(e.value())) : "other";
}

// `size` bytes of the pattern in writes of `chunk`; then close, or abort with `abort_reason`.
std::error_code write_pattern(shmchan::writer& w, std::uint64_t size, std::size_t chunk,
                              const std::string& abort_reason = {}) {
    std::vector<std::byte> buf(chunk);
    for (std::uint64_t off = 0; off < size;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - off));
        shmchan::fill_pattern(std::span(buf.data(), n), off);
        if (auto e = w.write(std::span(buf.data(), n), 30s)) return e;
        off += n;
    }
    if (!abort_reason.empty()) {
        w.abort(abort_reason);
        return {};
    }
    return w.close(30s);
}

struct read_result {
    std::uint64_t bytes = 0, sum = 0;
    std::error_code error;
    std::string reason;
    bool stopped = false;
};
// Reads the stream, or only its first `stop_after` bytes (then the reader is dropped: it left).
read_result read_stream(shmchan::reader& r, std::uint64_t stop_after = 0) {
    read_result out;
    shmchan::stream_checksum s;
    for (;;) {
        shmchan::item it = r.next(30s);
        if (it.is_chunk()) {
            s.update(it.data());
            if (stop_after && s.bytes() >= stop_after) {
                out.stopped = true;
                break;
            }
        } else if (it.is_end()) {
            break;
        } else if (it.is_error()) {
            out.error = it.error();
            out.reason = r.abort_reason();
            break;
        }
    }
    out.bytes = s.bytes();
    out.sum = s.value();
    return out;
}

// --- the run ---------------------------------------------------------------------------------------
struct soak_options {
    double seconds = 20;
    int lanes = 4;
    // Bytes per channel: four rings' worth; two under sanitizers (unoptimized and 5-20x slower
    // per byte), so that an interval still holds enough channels to measure.
    std::uint64_t size = sanitized ? 512 << 10 : 1 << 20;
    double interval = 0;  // 0: seconds / 12 (/ 8 under sanitizers), within [1, 10]
    double rss_bound_mib = 16;     // growth allowed after warm-up, per process (unsanitized)
    double throughput_factor = 5;  // each interval at least median / this
    double ttl = 5;                // the engine's channel TTL (unused channels expire)
};

enum scenario : int {
    fn_shm_shm,       // engine channel: shm writer here -> function reading through shm
    fn_socket_socket, // socket writer here -> function reading through the socket
    fn_shm_socket,    // shm writer here -> function reading through the socket
    local_socket,     // socket writer and socket reader, both here
    direct,           // create_channel here (no engine): writer thread -> reader
    aborted,          // engine channel; the writer (shm or socket) aborts half-way
    fn_early_close,   // the function's reader leaves after a quarter; the writer learns it
    direct_early,     // the same on a direct channel, here
    unused,           // an engine channel nobody opens: it expires after the TTL
    scenario_count
};
const char* scenario_names[] = {"fn-shm-shm", "fn-socket-socket", "fn-shm-socket", "local-socket",
                                "direct", "aborted", "fn-early-close", "direct-early", "unused"};

struct soak_state {
    soak_options opt;
    std::string url;
    shmchan::worker* caller = nullptr;
    std::uint64_t full_sum = 0, half_sum = 0;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> bytes{0}, channels{0}, failures{0};
    std::atomic<std::uint64_t> per_scenario[scenario_count] = {};
    std::mutex mu;
    std::set<std::string> ids;             // channels of this run whose segment may still exist
    std::uint64_t created = 0;             // channels this run created
    std::vector<std::string> failure_log;  // the first few failures
    std::map<std::string, std::uint64_t> early_close_outcomes;  // what writers saw in fn-early-close

    shmchan::channel_options via(shmchan::transport t) const {
        shmchan::channel_options o;
        o.via = t;
        o.engine = url;
        return o;
    }
    void remember(const shmchan::channel& ch) {
        std::lock_guard lk(mu);
        ids.insert(ch.reader_ref.channel_id);  // its segment exists now: nobody has finished it yet
        ++created;
    }
    void fail(const std::string& what) {
        ++failures;
        std::lock_guard lk(mu);
        if (failure_log.size() < 20) failure_log.push_back(what);
    }
};

void check(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

void run_one(soak_state& s, scenario sc, std::uint64_t iter) {
    using shmchan::transport;
    const std::uint64_t size = s.opt.size;
    const std::size_t chunk = 1000 + static_cast<std::size_t>((iter * 7919) % 60000);
    const bool alt = (iter / scenario_count) % 2;  // alternates the transport of some scenarios
    auto engine_channel = [&] {
        shmchan::channel ch = s.caller->create_channel(4);  // 256 KiB ring
        s.remember(ch);
        return ch;
    };
    auto fn_read = [&](const shmchan::channel& ch, const char* fn, std::uint64_t stop_after = 0) {
        json in = {{"reader", ch.reader_ref}};
        if (stop_after) in["stop_after"] = stop_after;
        return s.caller->trigger({fn, in, 60s});
    };
    switch (sc) {
        case fn_shm_shm:
        case fn_socket_socket:
        case fn_shm_socket: {
            shmchan::channel ch = engine_channel();
            shmchan::writer w = shmchan::open_writer(ch.writer_ref, s.via(sc == fn_socket_socket ? transport::socket : transport::shm));
            std::error_code werr;
            json r;
            {
                std::jthread t([&] { werr = write_pattern(w, size, chunk); });
                r = fn_read(ch, sc == fn_shm_shm ? "soak::shm" : "soak::socket");
            }
            check(!werr, std::string("writer: ") + name_of(werr));
            check(r.value("error", "") == "" && r.value("bytes", 0ull) == size && r.value("sum", 0ull) == s.full_sum,
                  "function read " + r.dump());
            s.bytes += size;
            break;
        }
        case local_socket: {
            shmchan::channel ch = engine_channel();
            shmchan::reader rd = shmchan::open_reader(ch.reader_ref, s.via(transport::socket));
            shmchan::writer w = shmchan::open_writer(ch.writer_ref, s.via(transport::socket));
            std::error_code werr;
            read_result r;
            {
                std::jthread t([&] { werr = write_pattern(w, size, chunk); });
                r = read_stream(rd);
            }
            check(!werr, std::string("writer: ") + name_of(werr));
            check(!r.error && r.bytes == size && r.sum == s.full_sum,
                  std::string("reader: ") + name_of(r.error) + " " + std::to_string(r.bytes));
            s.bytes += size;
            break;
        }
        case direct:
        case direct_early: {
            shmchan::channel_options o;
            o.capacity = 256 << 10;
            shmchan::channel ch = shmchan::create_channel(o);
            s.remember(ch);
            const bool early = sc == direct_early;
            std::error_code werr;
            read_result r;
            {
                std::jthread t([&] { werr = write_pattern(ch.writer, size, chunk); });
                r = read_stream(ch.reader, early ? size / 4 : 0);
                if (early) ch.reader = shmchan::reader();  // leaves: the writer must learn it
            }
            if (early) {
                check(r.stopped && werr == errc::peer_closed, std::string("writer after the reader left: ") + name_of(werr));
            } else {
                check(!werr, std::string("writer: ") + name_of(werr));
                check(!r.error && r.bytes == size && r.sum == s.full_sum, std::string("reader: ") + name_of(r.error));
            }
            s.bytes += r.bytes;
            break;
        }
        case aborted: {
            shmchan::channel ch = engine_channel();
            shmchan::writer w = shmchan::open_writer(ch.writer_ref, s.via(alt ? transport::socket : transport::shm));
            std::error_code werr;
            json r;
            {
                std::jthread t([&] { werr = write_pattern(w, size / 2, chunk, "soak: aborted on purpose"); });
                r = fn_read(ch, alt ? "soak::shm" : "soak::socket");
            }
            check(!werr, std::string("writer: ") + name_of(werr));
            check(r.value("error", "") == "aborted" && r.value("reason", "") == "soak: aborted on purpose" &&
                      r.value("bytes", 0ull) == size / 2 && r.value("sum", 0ull) == s.half_sum,
                  "aborted stream read as " + r.dump());
            s.bytes += size / 2;
            break;
        }
        case fn_early_close: {
            shmchan::channel ch = engine_channel();
            const bool socket_writer = alt;
            shmchan::writer w = shmchan::open_writer(ch.writer_ref, s.via(socket_writer ? transport::socket : transport::shm));
            std::error_code werr;
            json r;
            {
                std::jthread t([&] { werr = write_pattern(w, size, chunk); });
                r = fn_read(ch, (iter % 2) ? "soak::shm" : "soak::socket", size / 4);
            }
            check(r.value("stopped", false) && r.value("bytes", 0ull) >= size / 4, "early reader: " + r.dump());
            // The writer learns that its reader left (peer_closed; a socket writer may see its
            // connection dropped, peer_lost), unless every byte had already left the ring: a
            // socket reader's engine drains the ring into socket buffers, and a socket writer's
            // close() succeeds once the engine has taken every byte (docs/engine.md).
            check(werr == errc::peer_closed || (socket_writer && werr == errc::peer_lost) || !werr,
                  std::string("writer after the reader left: ") + name_of(werr));
            {
                std::lock_guard lk(s.mu);
                ++s.early_close_outcomes[std::string(socket_writer ? "socket" : "shm") + " writer " + name_of(werr)];
            }
            s.bytes += r.value("bytes", 0ull);
            break;
        }
        case unused: {
            shmchan::channel ch = engine_channel();
            break;
        }
        case scenario_count: break;
    }
}

void lane(soak_state& s, int id) {
    for (std::uint64_t iter = static_cast<std::uint64_t>(id); !s.stop.load(); ++iter) {
        const auto sc = static_cast<scenario>(iter % scenario_count);
        try {
            run_one(s, sc, iter);
            ++s.channels;
            ++s.per_scenario[sc];
        } catch (const std::exception& e) {
            s.fail(std::string(scenario_names[sc]) + ": " + e.what());
        }
    }
}

// Segments of this run still in /dev/shm (other programs' segments there are not counted).
// A segment once gone never comes back, so its id is forgotten: the set stays small.
std::size_t our_segments(soak_state& s) {
    std::lock_guard lk(s.mu);
    for (auto it = s.ids.begin(); it != s.ids.end();)
        it = ::access((shmchan::shm::shm_dir() + shmchan::shm::segment_name_for(*it)).c_str(), F_OK) == 0
                 ? std::next(it)
                 : s.ids.erase(it);
    return s.ids.size();
}

double mib(long kib) { return double(kib) / 1024.0; }

void raise_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

}  // namespace

// The worker processes of the soak: soak::<transport> reads the stream behind input.reader
// (all of it, or input.stop_after bytes) and answers bytes, checksum, error and reason.
int soak_worker_main(const std::vector<std::string>& args) {
    if (args.size() != 2) {
        std::fprintf(stderr, "usage: shmchan _soak_worker URL FUNCTION_ID\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread: sigwait below takes them
    {
        shmchan::worker w(args[0]);
        w.register_function(args[1], [](shmchan::invocation& call) {
            const std::uint64_t stop_after = call.input().value("stop_after", 0ull);
            const read_result r = read_stream(call.reader("reader"), stop_after);
            return json{{"bytes", r.bytes}, {"sum", r.sum}, {"stopped", r.stopped},
                        {"error", r.error ? name_of(r.error) : ""}, {"reason", r.reason}};
        });
        std::this_thread::sleep_for(100ms);  // the registration is on its way
        std::puts("READY");
        std::fflush(stdout);
        int sig = 0;
        sigwait(&set, &sig);
    }
    return 0;
}

namespace {
int run_soak(const std::vector<std::string>& args);
}

int soak_main(const std::vector<std::string>& args) {
    try {
        return run_soak(args);
    } catch (const soak_usage& e) {
        std::fprintf(stderr, "shmchan %s\n%s", e.what(), soak_usage_text);
        return 2;
    }
}

namespace {
int run_soak(const std::vector<std::string>& args) {
    soak_options opt;
    for (std::size_t i = 0; i < args.size(); ++i) {
        auto num = [&](const char* flag) {
            if (i + 1 >= args.size()) throw soak_usage(std::string(flag) + " needs a value");
            return std::stod(args[++i]);
        };
        if (args[i] == "--seconds") opt.seconds = num("--seconds");
        else if (args[i] == "--lanes") opt.lanes = static_cast<int>(num("--lanes"));
        else if (args[i] == "--size") opt.size = static_cast<std::uint64_t>(num("--size"));
        else if (args[i] == "--interval") opt.interval = num("--interval");
        else if (args[i] == "--rss-bound") opt.rss_bound_mib = num("--rss-bound");
        else if (args[i] == "--throughput-factor") opt.throughput_factor = num("--throughput-factor");
        else throw soak_usage("_soak: unexpected argument " + args[i]);
    }
    if (const char* env = std::getenv("SHMCHAN_SOAK_SECONDS"); env && *env) opt.seconds = std::stod(env);
    if (opt.seconds <= 0 || opt.lanes < 1 || opt.size < 1024) throw soak_usage("_soak: bad option values");
    if (opt.interval <= 0) opt.interval = std::clamp(opt.seconds / (sanitized ? 8 : 12), 1.0, 10.0);
    raise_fd_limit();
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);

    std::printf("soak: %.0f s, %d lanes, %" PRIu64 " bytes per channel, intervals of %.1f s (the first is warm-up), "
                "fd limit %llu%s\n",
                opt.seconds, opt.lanes, opt.size, opt.interval, static_cast<unsigned long long>(rl.rlim_cur),
                sanitized ? ", sanitizer build" : "");
    std::printf("soak: passes if no scenario fails; descriptors of every process back to their count before "
                "the run, exactly; no segment of this run left in /dev/shm and none mapped; RSS growth after "
                "warm-up <= %.0f MiB per process%s; every interval after warm-up moves at least 1/%.0f of the "
                "median; the engine and workers exit 0 on SIGTERM\n",
                opt.rss_bound_mib, sanitized ? " (reported, not checked: the sanitizer's allocator keeps freed memory)" : "",
                opt.throughput_factor);
    std::fflush(stdout);

    soak_state s;
    s.opt = opt;
    s.full_sum = shmchan::testkit::expected_checksum(opt.size);
    s.half_sum = shmchan::testkit::expected_checksum(opt.size / 2);

    char ttl[32];
    std::snprintf(ttl, sizeof ttl, "%g", opt.ttl);
    auto eng = spawn("engine", {"shmchan", "engine", "--listen", "127.0.0.1:0", "--channel-ttl", ttl});
    const std::string first = eng->read_line(30s);
    const auto at = first.find("ws://");
    if (at == std::string::npos) {
        std::fprintf(stderr, "soak: the engine said \"%s\"\n", first.c_str());
        return 1;
    }
    s.url = first.substr(at);
    const auto port = static_cast<std::uint16_t>(std::stoul(s.url.substr(s.url.rfind(':') + 1)));
    auto w_shm = spawn("worker-shm", {"shmchan", "_soak_worker", s.url, "soak::shm"}, "SHMCHAN_TRANSPORT=shm");
    auto w_sock = spawn("worker-socket", {"shmchan", "_soak_worker", s.url, "soak::socket"}, "SHMCHAN_TRANSPORT=socket");
    for (auto* w : {w_shm.get(), w_sock.get()})
        if (w->read_line(30s) != "READY") {
            std::fprintf(stderr, "soak: %s did not start\n", w->name.c_str());
            return 1;
        }
    std::optional<shmchan::worker> caller(std::in_place, s.url);
    s.caller = &*caller;

    struct watched {
        const char* name;
        pid_t pid;
        proc_sample before, warm, after, peak;
    };
    std::vector<watched> procs = {{"client", ::getpid(), {}, {}, {}, {}},
                                  {"engine", eng->pid, {}, {}, {}, {}},
                                  {"worker-shm", w_shm->pid, {}, {}, {}, {}},
                                  {"worker-socket", w_sock->pid, {}, {}, {}, {}}};
    std::this_thread::sleep_for(200ms);
    for (auto& p : procs) p.before = p.peak = sample(p.pid);

    std::vector<std::thread> lanes;
    const auto t0 = clock_type::now();
    for (int i = 0; i < opt.lanes; ++i) lanes.emplace_back([&s, i] { lane(s, i); });

    struct interval_stat {
        double t, mib_s, ch_s;
    };
    std::vector<interval_stat> stats;
    std::uint64_t last_bytes = 0, last_channels = 0;
    auto last_t = t0;
    const auto end = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(opt.seconds));
    for (int k = 1;; ++k) {
        const auto next = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(opt.interval * k));
        if (next > end + 100ms) break;
        std::this_thread::sleep_until(next);
        const auto now = clock_type::now();
        const double dt = std::chrono::duration<double>(now - last_t).count();
        const std::uint64_t b = s.bytes.load(), c = s.channels.load();
        stats.push_back({std::chrono::duration<double>(now - t0).count(), double(b - last_bytes) / dt / 1048576.0,
                         double(c - last_channels) / dt});
        last_bytes = b;
        last_channels = c;
        last_t = now;
        std::string line;
        char tmp[160];
        std::snprintf(tmp, sizeof tmp, "soak [%6.1f s] %8" PRIu64 " channels %7.1f/s %8.1f MiB/s  segments %3zu  failures %" PRIu64 " ",
                      stats.back().t, c, stats.back().ch_s, stats.back().mib_s, our_segments(s), s.failures.load());
        line = tmp;
        for (auto& p : procs) {
            const proc_sample x = sample(p.pid);
            p.peak.fds = std::max(p.peak.fds, x.fds);
            p.peak.threads = std::max(p.peak.threads, x.threads);
            p.peak.rss_kib = std::max(p.peak.rss_kib, x.rss_kib);
            if (k == 1) p.warm = x;
            std::snprintf(tmp, sizeof tmp, " | %s fds %d rss %.1f MiB thr %d", p.name, x.fds, mib(x.rss_kib), x.threads);
            line += tmp;
        }
        std::printf("%s%s\n", line.c_str(), k == 1 ? "  (warm-up)" : "");
        std::fflush(stdout);
    }
    s.stop = true;
    for (auto& t : lanes) t.join();
    const double ran = std::chrono::duration<double>(clock_type::now() - t0).count();

    // Quiesce: unused channels expire after the TTL; the engine drops finished ones at its
    // next sweep; then every process should be back where it started.
    const auto settle_until = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                                      std::chrono::duration<double>(opt.ttl + 10));
    auto settled = [&] {
        if (our_segments(s) != 0 || engine_channels(port) != 0) return false;
        for (auto& p : procs) {
            const proc_sample x = sample(p.pid);
            if (x.shm_maps != 0 || x.fds != p.before.fds) return false;
        }
        return true;
    };
    while (!settled() && clock_type::now() < settle_until) std::this_thread::sleep_for(100ms);
    for (auto& p : procs) p.after = sample(p.pid);
    const std::size_t left = our_segments(s);
    const long engine_left = engine_channels(port);

    std::vector<std::string> problems;
    std::printf("soak: ran %.1f s: %" PRIu64 " channels (%.1f/s), %.1f MiB checked, %" PRIu64 " failures\n", ran,
                s.channels.load(), double(s.channels.load()) / ran, double(s.bytes.load()) / 1048576.0, s.failures.load());
    std::string per;
    for (int i = 0; i < scenario_count; ++i)
        per += std::string(i ? ", " : "") + scenario_names[i] + " " + std::to_string(s.per_scenario[i].load());
    std::string outcomes;
    for (auto& [k, n] : s.early_close_outcomes) outcomes += (outcomes.empty() ? "" : ", ") + k + " " + std::to_string(n);
    std::printf("soak: per scenario: %s\nsoak: fn-early-close, what the writer saw: %s\n", per.c_str(), outcomes.c_str());
    for (auto& f : s.failure_log) std::printf("soak: failure: %s\n", f.c_str());
    if (s.failures) problems.push_back(std::to_string(s.failures.load()) + " scenario failures");
    if (s.channels == 0) problems.push_back("no channel completed");

    std::printf("soak: segments of this run: %" PRIu64 " created, %zu left in /dev/shm; engine channels left: %ld\n",
                s.created, left, engine_left);
    if (left) problems.push_back(std::to_string(left) + " segments of this run left in /dev/shm");
    if (engine_left != 0) problems.push_back("the engine still lists " + std::to_string(engine_left) + " channels");
    for (auto& p : procs) {
        const double growth = mib(p.after.rss_kib - p.warm.rss_kib);
        std::printf("soak: %-13s fds %d -> %d (peak %d)  rss %.1f -> %.1f (after warm-up) -> %.1f MiB (peak %.1f, hwm %.1f)"
                    "  growth after warm-up %+.1f MiB  threads %d -> %d (peak %d)  segment mappings %d\n",
                    p.name, p.before.fds, p.after.fds, p.peak.fds, mib(p.before.rss_kib), mib(p.warm.rss_kib),
                    mib(p.after.rss_kib), mib(p.peak.rss_kib), mib(p.after.hwm_kib), growth, p.before.threads,
                    p.after.threads, p.peak.threads, p.after.shm_maps);
        if (p.after.fds != p.before.fds)
            problems.push_back(std::string(p.name) + " fds " + std::to_string(p.before.fds) + " -> " + std::to_string(p.after.fds));
        if (p.after.shm_maps != 0)
            problems.push_back(std::string(p.name) + " still maps " + std::to_string(p.after.shm_maps) + " segments");
        if (!sanitized && growth > opt.rss_bound_mib)
            problems.push_back(std::string(p.name) + " RSS grew " + std::to_string(growth) + " MiB after warm-up");
    }

    // Throughput after warm-up (the last interval may be cut short by the end: it counts too).
    std::vector<double> tp;
    for (std::size_t i = 1; i < stats.size(); ++i) tp.push_back(stats[i].mib_s);
    if (!tp.empty()) {
        std::vector<double> sorted = tp;
        std::sort(sorted.begin(), sorted.end());
        const double median = sorted[sorted.size() / 2];
        std::printf("soak: throughput after warm-up over %zu intervals: min %.1f, median %.1f, max %.1f MiB/s "
                    "(min/median %.2f; bound 1/%.0f)\n",
                    tp.size(), sorted.front(), median, sorted.back(), median > 0 ? sorted.front() / median : 0.0,
                    opt.throughput_factor);
        if (sorted.front() < median / opt.throughput_factor)
            problems.push_back("an interval moved less than 1/" + std::to_string(int(opt.throughput_factor)) + " of the median");
    }

    caller.reset();  // disconnect before the engine stops
    for (auto* c : {w_shm.get(), w_sock.get(), eng.get()}) {
        const int st = c->stop();
        std::printf("soak: %s exited with %d\n", c->name.c_str(), st);
        if (st != 0) problems.push_back(c->name + " exited with " + std::to_string(st));
    }
    for (auto& p : problems) std::printf("soak: FAIL: %s\n", p.c_str());
    std::printf("soak: %s\n", problems.empty() ? "PASS" : "FAIL");
    return problems.empty() ? 0 : 1;
}

}  // namespace
