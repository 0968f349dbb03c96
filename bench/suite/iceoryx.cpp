// iceoryx 2.0.x transport for the benchmark suite (see transport.hpp for the contract).
//
// Build: iceoryx 2.0 (Debian: `iceoryx` for the iox-roudi daemon, `libiceoryx-posh-dev`);
// bench/CMakeLists.txt compiles this file when find_package(iceoryx_posh) succeeds and links
// iceoryx_posh::iceoryx_posh (an imported target, so its headers are SYSTEM includes: they are
// not -Wpedantic clean). By hand:
//   g++ -std=c++20 -O2 -I include -I bench/suite -isystem /usr/include/iceoryx/v2.0.3
//       bench/suite/iceoryx.cpp bench/suite/support.cpp ...
//       -liceoryx_posh -liceoryx_hoofs -liceoryx_platform -lpthread -lrt -latomic
//
// RouDi, the iceoryx daemon, is started by the first prepare() in the harness process and
// stopped by teardown(); it is $SHMCHAN_IOX_ROUDI or `iox-roudi` on PATH, a child of the
// harness with PR_SET_PDEATHSIG=SIGTERM (it goes away with the harness even without
// teardown(); call prepare() from the main thread, the signal follows the forking thread).
// Its config (written with its log to a directory of ours, /tmp/shmchan-iox-XXXXXX: RouDi
// outlives the run's scratch_dir, which the harness removes after each run) has one
// shared-memory segment (/dev/shm/<group of the harness>) with one mempool per payload size:
// the harness's default sizes (64 B, 256 B, ... 4 MiB, 16 MiB) and any other size a spec asks
// for (a new size restarts RouDi, between two runs, with the pools so far plus that one). Each
// pool has chunks of exactly the payload (rounded up to 8, plus iceoryx's 40-byte chunk
// header) and queue_depth(payload) + 4 of them, queue_depth = clamp(32 MiB / payload, 4, 256)
// being the subscriber queue capacity, i.e. the in-flight window of a throughput run (at most
// depth + 2 chunks are out: depth queued, one being filled, one being digested). With the
// default sizes that is ~270 MiB of chunks (16 MiB: 8 chunks, 128 MiB; 4 MiB: 12; 1 MiB: 36;
// 64 B .. 64 KiB: 260 each) plus RouDi's ~63 MiB management segment (/dev/shm/iceoryx_mgmt).
// RouDi writes all of it at startup, so it is resident tmpfs while RouDi runs, and startup
// takes ~0.3-1 s on an idle 2-vCPU VM, several seconds on a loaded one. prepare() waits for
// RouDi's "RouDi is ready for clients" line (at most 30 s) and for its socket /tmp/roudi to
// accept. RouDi 2.0 is a per-host singleton (it flocks /tmp/iox-unique-roudi.lock, binds
// /tmp/roudi, owns /dev/shm/iceoryx_mgmt): if one runs that is not ours, prepare() returns a
// skip reason and touches nothing. teardown() sends SIGTERM (SIGKILL after 10 s), reaps it and
// removes whatever is left of it (iceoryx_mgmt, the data segment, /tmp/roudi,
// /tmp/roudi.lock, /tmp/iox-unique-roudi.lock); cleanup(spec) removes the sockets
// /tmp/<runtime>{,.lock} of a run's processes if they were killed. RouDi is the harness's
// child: the harness must reap its own children by pid, not waitpid(-1).
//
// Each child process (produce/consume/ping/pong) registers its own runtime, lazily, named
// after spec.endpoint and its role, once it has seen RouDi's socket answer (initRuntime would
// otherwise wait 60 s for it). Services ("shmchan_bench", <endpoint>, "data" | "ping" |
// "pong"). Publishers use WAIT_FOR_CONSUMER and subscribers BLOCK_PRODUCER, so no message is
// dropped (a blocked publish() loops on sched_yield inside iceoryx). Throughput: an
// UntypedPublisher loans a chunk of spec.payload bytes, fill_payload writes it in place,
// publish(); the UntypedSubscriber blocks in a WaitSet when its queue is empty (busy_wait does
// not apply to throughput), digests each chunk in place and releases it. The consumer calls
// ready() once RouDi has its subscription; the producer starts once hasSubscribers() (RouDi
// connects ports in its 100 ms discovery loop) and keeps its publisher until the consumer has
// gone. Latency: ping loans, fills and publishes on "ping", waits for the echo on "pong" and
// digests it in place; pong digests each ping in place, releases it, and publishes an echo of
// the same size filled with fill_payload(echo, seq). Both wait by spinning on take() with
// busy_wait, else in a WaitSet. The ping side ends the exchange (after spec.messages round
// trips, or at spec.time_limit_ns) with an empty chunk.
#include "support.hpp"

#include <iceoryx_hoofs/log/logmanager.hpp>
#include <iceoryx_posh/mepoo/chunk_header.hpp>
#include <iceoryx_posh/popo/untyped_publisher.hpp>
#include <iceoryx_posh/popo/untyped_subscriber.hpp>
#include <iceoryx_posh/popo/wait_set.hpp>
#include <iceoryx_posh/runtime/posh_runtime.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace shmchan_bench {
namespace {

using clock_type = std::chrono::steady_clock;

constexpr const char* roudi_ready_line = "RouDi is ready for clients";
constexpr const char* roudi_socket = "/tmp/roudi";
constexpr const char* roudi_lock_files[] = {"/tmp/iox-unique-roudi.lock", "/tmp/roudi.lock"};
constexpr const char* mgmt_segment = "/dev/shm/iceoryx_mgmt";
constexpr std::size_t chunk_header_bytes = 40;       // iox::mepoo::ChunkHeader, no user header
constexpr std::size_t mgmt_segment_bytes = 66 * MiB;  // ~63 MiB with the Debian build
constexpr auto roudi_start_timeout = std::chrono::seconds(30);
constexpr auto roudi_stop_timeout = std::chrono::seconds(10);
constexpr auto connect_timeout = std::chrono::seconds(30);  // subscription / hasSubscribers
constexpr auto stall_timeout = std::chrono::seconds(60);    // no message for this long: fail
constexpr auto linger_timeout = std::chrono::seconds(10);   // producer waits for the consumer to go

// The harness's default payloads (throughput and latency): pools made up front.
constexpr std::size_t default_payloads[] = {64,       256,       KiB,     4 * KiB, 16 * KiB,
                                            64 * KiB, 256 * KiB, MiB,     4 * MiB, 16 * MiB};

// The subscriber queue capacity (the throughput in-flight window) for a payload size.
std::uint64_t queue_depth(std::size_t payload) {
    return std::clamp<std::uint64_t>(32 * MiB / std::max<std::size_t>(payload, 1), 4,
                                     iox::MAX_SUBSCRIBER_QUEUE_CAPACITY);
}
// Chunks beyond the window: one being filled, one being digested, and the ping/pong pairs.
constexpr std::uint64_t pool_spare = 4;
std::size_t pool_chunk(std::size_t payload) { return (std::max<std::size_t>(payload, 8) + 7) & ~std::size_t(7); }

// A short, file-name-safe tag for the run from spec.endpoint: [A-Za-z0-9_-] only, at most
// 48 characters (long endpoints keep their tail and gain a hash of the whole).
std::string endpoint_tag(const std::string& endpoint) {
    std::string s;
    for (char c : endpoint) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '_' || c == '-';
        s += ok ? c : '_';
    }
    if (s.empty()) s = "default";
    if (s.size() > 48) {
        std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
        for (unsigned char c : endpoint) h = (h ^ c) * 0x100000001b3ULL;
        char hex[17];
        std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
        s = s.substr(s.size() - 31) + "_" + hex;
    }
    return s;
}

constexpr const char* all_roles[] = {"prod", "cons", "ping", "pong"};
std::string runtime_name(const run_spec& spec, const char* role) {
    return "shb_" + endpoint_tag(spec.endpoint) + "_" + role;
}

iox::capro::IdString_t id_string(const std::string& s) { return {iox::cxx::TruncateToCapacity, s.c_str(), s.size()}; }
iox::capro::ServiceDescription service(const run_spec& spec, const std::string& event) {
    return {id_string("shmchan_bench"), id_string(endpoint_tag(spec.endpoint)), id_string(event)};
}

// True when something accepts on the Unix socket at `path` (a stale socket file is refused).
bool socket_answers(const char* path) {
    for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
        const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
        const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
        const int err = errno;
        ::close(fd);
        if (rc == 0) return true;
        if (err != EPROTOTYPE) return false;
    }
    return false;
}

// True when a process holds the flock on `path` (iceoryx's FileLock).
bool lock_held(const char* path) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);  // drops our lock, if we got it
    return held;
}

bool path_exists(const std::string& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0;
}

// The sockets of a runtime whose process was killed; nothing while one is in use.
void remove_runtime_files(const std::string& name) {
    const std::string sock = "/tmp/" + name, lock = sock + ".lock";
    if (path_exists(sock) && !socket_answers(sock.c_str())) ::unlink(sock.c_str());
    if (path_exists(lock) && !lock_held(lock.c_str())) ::unlink(lock.c_str());
}

// This (child) process's runtime, registered with RouDi on first use.
void ensure_runtime(const run_spec& spec, const char* role) {
    static bool initialized = false;
    if (initialized) return;
    if (!socket_answers(roudi_socket))
        fail(std::string("RouDi does not answer on ") + roudi_socket + " (not started, or gone)");
    // Warnings and errors only; iceoryx logs to stderr, never to the harness's stdout.
    iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                              iox::log::LogLevelOutput::kHideLogLevel);
    const std::string name = runtime_name(spec, role);
    iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str(), name.size()));
    initialized = true;
}

iox::popo::PublisherOptions publisher_options() {
    iox::popo::PublisherOptions o;
    o.historyCapacity = 0;
    o.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
    return o;
}

iox::popo::SubscriberOptions subscriber_options(std::uint64_t capacity) {
    iox::popo::SubscriberOptions o;
    o.queueCapacity = capacity;
    o.historyRequest = 0;
    o.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
    return o;
}

template <class Pred>
bool wait_until(Pred pred, clock_type::duration limit) {
    const auto deadline = clock_type::now() + limit;
    while (!pred()) {
        if (clock_type::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// RouDi has the subscription (it waits for an offer, or is connected).
bool subscription_registered(const iox::popo::UntypedSubscriber& sub) {
    const auto s = sub.getSubscriptionState();
    return s == iox::SubscribeState::WAIT_FOR_OFFER || s == iox::SubscribeState::SUBSCRIBED;
}

// A chunk of `size` bytes (the pools are sized so that it does not run out; if it did, wait).
void* loan_chunk(iox::popo::UntypedPublisher& pub, std::size_t size) {
    const auto deadline = clock_type::now() + stall_timeout;
    for (;;) {
        auto r = pub.loan(static_cast<std::uint32_t>(size));
        if (!r.has_error()) return r.value();
        if (r.get_error() != iox::popo::AllocationError::RUNNING_OUT_OF_CHUNKS || clock_type::now() > deadline)
            fail("loan(" + std::to_string(size) + ") failed: AllocationError " +
                 std::to_string(static_cast<int>(r.get_error())));
        std::this_thread::yield();
    }
}

// The next chunk: spins on take() (with a sched_yield every 1024 empty polls, as the
// in-process ceiling does, so that a spinning side lets its peer run on a loaded machine), or
// blocks in `ws` while the queue is empty.
const void* take_chunk(iox::popo::UntypedSubscriber& sub, iox::popo::WaitSet<>* ws) {
    const auto since = clock_type::now();
    for (unsigned polls = 1;; ++polls) {
        auto r = sub.take();
        if (!r.has_error()) return r.value();
        if (r.get_error() != iox::popo::ChunkReceiveResult::NO_CHUNK_AVAILABLE)
            fail("take() failed: ChunkReceiveResult " + std::to_string(static_cast<int>(r.get_error())));
        if (ws) {
            ws->timedWait(iox::units::Duration::fromMilliseconds(200));
        } else {
            cpu_relax();
            if ((polls & 1023) != 0) continue;
            std::this_thread::yield();
        }
        if (clock_type::now() - since > stall_timeout)
            fail("no message for " + std::to_string(stall_timeout.count()) + " s");
    }
}

std::span<const std::byte> payload_of(const void* p) {
    return {static_cast<const std::byte*>(p), iox::mepoo::ChunkHeader::fromUserPayload(p)->userPayloadSize()};
}

// A WaitSet that wakes when `sub` has data (empty unless `wanted`).
void attach(std::optional<iox::popo::WaitSet<>>& ws, iox::popo::UntypedSubscriber& sub, bool wanted) {
    if (!wanted) return;
    ws.emplace();
    if (ws->attachState(sub, iox::popo::SubscriberState::HAS_DATA).has_error())
        fail("cannot attach the subscriber to a WaitSet");
}

class iceoryx_transport final : public transport {
public:
    ~iceoryx_transport() override { teardown(); }

    std::string name() const override { return "iceoryx"; }

    std::string describe() const override {
        return "iceoryx 2.0.3 (RouDi daemon brokers the ports and owns the shared-memory pools): "
               "publisher loans a chunk and fills it in place, subscriber digests it in place, "
               "no copies; WAIT_FOR_CONSUMER + BLOCK_PRODUCER (a blocked publish yields in a "
               "loop); throughput receiver blocks in a WaitSet; latency spins on take() "
               "(sched_yield every 1024 polls) or blocks in a WaitSet";
    }

    std::string prepare(const run_spec& spec) override {
        if (spec.payload == 0) return "iceoryx: payload 0 is this transport's end marker";
        if (spec.payload > 0xffffffffu - 2 * chunk_header_bytes)
            return "iceoryx: payload " + std::to_string(spec.payload) + " B does not fit iceoryx's 32-bit chunk size";
        const std::size_t chunk = pool_chunk(spec.payload);
        if (roudi_pid_ > 0 && !alive()) {
            const std::string why = "iceoryx: RouDi died (log: " + log_tail() + ")";
            stop_roudi();
            return why;
        }
        if (roudi_pid_ > 0 && pools_.count(chunk)) return {};

        std::map<std::size_t, std::uint64_t> pools = pools_;
        for (std::size_t p : default_payloads) pools.emplace(pool_chunk(p), queue_depth(p) + pool_spare);
        pools.emplace(chunk, queue_depth(spec.payload) + pool_spare);
        if (roudi_pid_ > 0) stop_roudi();  // a new size: restart with one pool more

        const std::string roudi = find_roudi();
        if (roudi.empty()) {
            if (const char* env = std::getenv("SHMCHAN_IOX_ROUDI"); env && *env)
                return std::string("iceoryx: $SHMCHAN_IOX_ROUDI=") + env + " is not executable";
            return "iceoryx: iox-roudi not found on PATH (Debian package `iceoryx`; or set $SHMCHAN_IOX_ROUDI)";
        }
        if (std::string other = foreign_roudi(); !other.empty())
            return "iceoryx: another RouDi is already running (" + other +
                   "); RouDi 2.0 is one per host, so it is left alone";
        std::uint64_t data_bytes = 0;
        for (auto [size, count] : pools) data_bytes += count * (size + chunk_header_bytes);
        struct statvfs vfs;
        if (::statvfs("/dev/shm", &vfs) == 0) {
            const std::uint64_t avail = std::uint64_t(vfs.f_bavail) * vfs.f_frsize;
            const std::uint64_t need = data_bytes + mgmt_segment_bytes + 16 * MiB;
            if (avail < need)
                return "iceoryx: /dev/shm has " + std::to_string(avail / MiB) + " MiB free, RouDi's pools need " +
                       std::to_string(need / MiB) + " MiB";
        }

        // RouDi outlives the run's scratch_dir (the harness removes it after each run): its
        // config and log go to a directory of ours.
        char dir[] = "/tmp/shmchan-iox-XXXXXX";
        if (!::mkdtemp(dir)) return std::string("iceoryx: mkdtemp: ") + std::strerror(errno);
        dir_ = dir;
        config_path_ = dir_ + "/roudi.toml";
        log_path_ = dir_ + "/roudi.log";
        std::ostringstream cfg;
        cfg << "# shmchan_bench (bench/suite/iceoryx.cpp): one pool per payload size\n"
               "[general]\nversion = 1\n\n[[segment]]\n";
        for (auto [size, count] : pools) cfg << "\n[[segment.mempool]]\nsize = " << size << "\ncount = " << count << "\n";
        try {
            write_file(config_path_, cfg.str());
        } catch (const std::exception& e) {
            return std::string("iceoryx: ") + e.what();
        }
        if (const group* g = ::getgrgid(::getegid())) data_segment_ = std::string("/dev/shm/") + g->gr_name;
        if (std::string err = start_roudi(roudi); !err.empty()) {
            stop_roudi();
            return err;
        }
        pools_ = std::move(pools);
        return {};
    }

    void cleanup(const run_spec& spec) override {
        for (const char* role : all_roles) remove_runtime_files(runtime_name(spec, role));
    }

    void teardown() override { stop_roudi(); }

    std::vector<int> daemon_pids() const override {
        if (roudi_pid_ > 0) return {static_cast<int>(roudi_pid_)};
        return {};
    }

    side_result produce(const run_spec& spec) override {
        ensure_runtime(spec, "prod");
        side_result r;
        {
            iox::popo::UntypedPublisher pub(service(spec, "data"), publisher_options());
            if (!wait_until([&] { return pub.hasSubscribers(); }, connect_timeout))
                fail("no subscriber connected within " + std::to_string(connect_timeout.count()) + " s");
            for (std::uint64_t i = 0; i < spec.messages; ++i) {
                if (i == spec.warmup) r.start_ns = now_ns();
                void* p = loan_chunk(pub, spec.payload);
                fill_payload({static_cast<std::byte*>(p), spec.payload}, i);
                pub.publish(p);
            }
            r.end_ns = now_ns();
            // Queued chunks do outlive their publisher, but keep it until the consumer is done.
            wait_until([&] { return !pub.hasSubscribers(); }, linger_timeout);
        }
        r.messages = spec.messages;
        r.bytes = spec.messages * spec.payload;
        r.checksum = pattern_checksum(spec.payload, spec.messages);
        return r;
    }

    side_result consume(const run_spec& spec) override {
        ensure_runtime(spec, "cons");
        iox::popo::UntypedSubscriber sub(service(spec, "data"), subscriber_options(queue_depth(spec.payload)));
        std::optional<iox::popo::WaitSet<>> ws;
        attach(ws, sub, true);
        if (!wait_until([&] { return subscription_registered(sub); }, connect_timeout))
            fail("RouDi did not take the subscription within " + std::to_string(connect_timeout.count()) + " s");
        spec.ready();
        side_result r;
        digest d;
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            const void* p = take_chunk(sub, &*ws);
            if (i == 0) r.start_ns = now_ns();
            const auto bytes = payload_of(p);
            d.update(bytes);
            sub.release(p);
            if (bytes.size() != spec.payload)
                fail("message " + std::to_string(i) + " has " + std::to_string(bytes.size()) + " bytes");
            ++r.messages;
        }
        r.end_ns = now_ns();
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }

    side_result ping(const run_spec& spec) override {
        ensure_runtime(spec, "ping");
        iox::popo::UntypedPublisher pub(service(spec, "ping"), publisher_options());
        iox::popo::UntypedSubscriber sub(service(spec, "pong"), subscriber_options(4));
        std::optional<iox::popo::WaitSet<>> ws;
        attach(ws, sub, !spec.busy_wait);
        if (!wait_until([&] { return pub.hasSubscribers() && sub.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; },
                        connect_timeout))
            fail("ping and pong not connected within " + std::to_string(connect_timeout.count()) + " s");
        side_result r;
        digest d;
        r.rtt_ns.reserve(spec.messages);
        r.start_ns = now_ns();
        const std::int64_t stop = spec.time_limit_ns ? r.start_ns + spec.time_limit_ns : INT64_MAX;
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            const std::int64_t t0 = now_ns();
            if (t0 > stop) break;
            void* out = loan_chunk(pub, spec.payload);
            fill_payload({static_cast<std::byte*>(out), spec.payload}, i);
            pub.publish(out);
            const void* in = take_chunk(sub, ws ? &*ws : nullptr);
            const auto bytes = payload_of(in);
            d.update(bytes);
            sub.release(in);
            r.rtt_ns.push_back(now_ns() - t0);
            if (bytes.size() != spec.payload)
                fail("echo " + std::to_string(i) + " has " + std::to_string(bytes.size()) + " bytes");
            ++r.messages;
        }
        r.end_ns = now_ns();
        pub.publish(loan_chunk(pub, 0));  // the end of the exchange
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }

    side_result pong(const run_spec& spec) override {
        ensure_runtime(spec, "pong");
        iox::popo::UntypedSubscriber sub(service(spec, "ping"), subscriber_options(4));
        iox::popo::UntypedPublisher pub(service(spec, "pong"), publisher_options());
        std::optional<iox::popo::WaitSet<>> ws;
        attach(ws, sub, !spec.busy_wait);
        if (!wait_until([&] { return subscription_registered(sub); }, connect_timeout))
            fail("RouDi did not take the subscription within " + std::to_string(connect_timeout.count()) + " s");
        spec.ready();
        side_result r;
        digest d;
        for (std::uint64_t i = 0;; ++i) {
            const void* in = take_chunk(sub, ws ? &*ws : nullptr);
            const auto bytes = payload_of(in);
            if (bytes.empty()) {  // the ping side is done
                sub.release(in);
                break;
            }
            if (i == 0) r.start_ns = now_ns();
            d.update(bytes);
            sub.release(in);
            if (i == spec.messages) fail("more than " + std::to_string(spec.messages) + " pings");
            void* out = loan_chunk(pub, bytes.size());
            fill_payload({static_cast<std::byte*>(out), bytes.size()}, i);
            pub.publish(out);
            ++r.messages;
        }
        r.end_ns = now_ns();
        r.bytes = d.bytes();
        r.checksum = d.value();
        return r;
    }

private:
    static std::string find_roudi() { return find_program(env_or("SHMCHAN_IOX_ROUDI", "iox-roudi")); }

    // A RouDi that is not ours, described; empty if there is none.
    std::string foreign_roudi() const {
        if (DIR* d = ::opendir("/proc")) {
            std::string found;
            while (dirent* e = ::readdir(d)) {
                char* end = nullptr;
                const long pid = std::strtol(e->d_name, &end, 10);
                if (pid <= 0 || *end) continue;
                std::ifstream comm(std::string("/proc/") + e->d_name + "/comm");
                std::string c;
                if (std::getline(comm, c) && c == "iox-roudi") {
                    found = "iox-roudi pid " + std::to_string(pid);
                    break;
                }
            }
            ::closedir(d);
            if (!found.empty()) return found;
        }
        for (const char* l : roudi_lock_files)
            if (lock_held(l)) return std::string(l) + " is locked";
        if (socket_answers(roudi_socket)) return std::string(roudi_socket) + " answers";
        return {};
    }

    std::string start_roudi(const std::string& roudi) {
        const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (log < 0) return "iceoryx: cannot create " + log_path_ + ": " + std::strerror(errno);
        const pid_t parent = ::getpid();
        const char* argv[] = {roudi.c_str(), "-c", config_path_.c_str(), "-l", "warning", "-m", "on", "-k", "2", nullptr};
        const pid_t pid = ::fork();
        if (pid < 0) {
            ::close(log);
            return std::string("iceoryx: fork: ") + std::strerror(errno);
        }
        if (pid == 0) {  // async-signal-safe calls only, until exec
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(127);
            sigset_t none;  // RouDi must see SIGTERM whatever the harness blocks or ignores
            ::sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
            const int devnull = ::open("/dev/null", O_RDONLY);
            if (devnull >= 0) ::dup2(devnull, 0);
            ::dup2(log, 1);
            ::dup2(log, 2);
            ::syscall(SYS_close_range, 3u, ~0u, 0u);
            ::execv(roudi.c_str(), const_cast<char* const*>(argv));
            ::_exit(127);
        }
        ::close(log);
        roudi_pid_ = pid;
        started_ = true;

        const auto t0 = clock_type::now();
        for (;;) {
            int status = 0;
            if (::waitpid(pid, &status, WNOHANG) == pid) {
                roudi_pid_ = -1;
                const std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                                          : "was killed by signal " + std::to_string(WTERMSIG(status));
                return "iceoryx: iox-roudi " + how + " before it was ready (log: " + log_tail() + ")";
            }
            if (read_log().find(roudi_ready_line) != std::string::npos) break;
            if (clock_type::now() - t0 > roudi_start_timeout)
                return "iceoryx: iox-roudi not ready within " + std::to_string(roudi_start_timeout.count()) +
                       " s (log: " + log_tail() + ")";
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (!wait_until([] { return socket_answers(roudi_socket); }, std::chrono::seconds(5)))
            return std::string("iceoryx: iox-roudi said it was ready, but ") + roudi_socket + " does not answer";
        if (std::getenv("SHMCHAN_IOX_VERBOSE"))
            std::fprintf(stderr, "iceoryx: RouDi (pid %d) ready after %.0f ms\n", static_cast<int>(pid),
                         std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
        return {};
    }

    // Stops our RouDi, if any, and removes whatever it left.
    void stop_roudi() {
        if (roudi_pid_ > 0) {
            ::kill(roudi_pid_, SIGTERM);
            if (!reap(roudi_stop_timeout)) {
                std::fprintf(stderr, "iceoryx: RouDi (pid %d) still there %lld s after SIGTERM: SIGKILL\n",
                             static_cast<int>(roudi_pid_), static_cast<long long>(roudi_stop_timeout.count()));
                ::kill(roudi_pid_, SIGKILL);
                reap(std::chrono::seconds(5));
            }
            roudi_pid_ = -1;
        }
        if (started_) {
            // RouDi removes these on a clean exit; what is left is stale and ours (prepare()
            // made sure that no other RouDi was running).
            std::vector<std::string> left = {mgmt_segment, roudi_socket};
            for (const char* l : roudi_lock_files) left.emplace_back(l);
            if (!data_segment_.empty()) left.push_back(data_segment_);
            for (const auto& p : left)
                if (::unlink(p.c_str()) == 0) std::fprintf(stderr, "iceoryx: removed %s, left by RouDi\n", p.c_str());
            started_ = false;
        }
        if (!dir_.empty()) {
            ::unlink(config_path_.c_str());
            ::unlink(log_path_.c_str());
            ::rmdir(dir_.c_str());
            dir_.clear();
        }
        pools_.clear();
    }

    // Reaps RouDi if it has exited (stop_roudi() still removes its files).
    bool alive() {
        if (roudi_pid_ <= 0) return false;
        if (::waitpid(roudi_pid_, nullptr, WNOHANG) == 0) return true;
        roudi_pid_ = -1;
        return false;
    }

    bool reap(clock_type::duration limit) {
        const auto deadline = clock_type::now() + limit;
        for (;;) {
            const pid_t r = ::waitpid(roudi_pid_, nullptr, WNOHANG);
            if (r == roudi_pid_ || (r < 0 && errno == ECHILD)) return true;
            if (clock_type::now() > deadline) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }

    std::string read_log() const {
        std::ifstream f(log_path_);
        std::stringstream ss;
        ss << f.rdbuf();
        return ss.str();
    }
    // The end of RouDi's log on one line, without its colour codes.
    std::string log_tail() const {
        const std::string s = read_log();
        std::string out;
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (s[i] == '\x1b') {
                while (i < s.size() && s[i] != 'm') ++i;
                continue;
            }
            out += (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
        }
        if (out.size() > 300) out = "..." + out.substr(out.size() - 300);
        return out.empty() ? "(empty)" : out;
    }

    pid_t roudi_pid_ = -1;                       // our RouDi, until reaped
    bool started_ = false;                       // files of a RouDi of ours may be left
    std::map<std::size_t, std::uint64_t> pools_; // chunk payload size -> count, while it runs
    std::string dir_, config_path_, log_path_, data_segment_;
};

}  // namespace

std::unique_ptr<transport> make_iceoryx() { return std::make_unique<iceoryx_transport>(); }

}  // namespace shmchan_bench
