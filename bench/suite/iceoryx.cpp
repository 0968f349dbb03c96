// iceoryx 2.0.x transport for the benchmark suite (see transport.hpp for the contract).
//
// Build: needs iceoryx 2.0 (Debian: packages `iceoryx` for the iox-roudi daemon and
// `libiceoryx-posh-dev`); CMake `find_package(iceoryx_posh)` and link
// `iceoryx_posh::iceoryx_posh` (its include dir, /usr/include/iceoryx/v2.0.3, should be a
// SYSTEM include: the headers are not -Wpedantic clean). By hand:
//   g++ -std=c++20 -O2 -I include -I bench/suite -isystem /usr/include/iceoryx/v2.0.3 ...
//       bench/suite/iceoryx.cpp ... -liceoryx_posh -liceoryx_hoofs -liceoryx_platform
//       -lpthread -lrt -latomic
//
// RouDi (the iceoryx daemon) is started by prepare() in the harness process and stopped by
// teardown(); it is found in $SHMCHAN_IOX_ROUDI or on PATH as `iox-roudi`. prepare() writes
// its config into spec.scratch_dir/iox-roudi.toml: one shared-memory segment (named after the
// current group, /dev/shm/<group>) with one mempool of chunks of exactly spec.payload bytes
// (rounded up to 8; each chunk also carries a 40-byte chunk header), and
// queue_depth(payload) + 8 chunks of it, where queue_depth = clamp(32 MiB / payload, 4, 256)
// is the subscriber queue capacity (the in-flight window of the throughput runs). So
// 16 MiB payloads use 12 chunks (~200 MiB), 1 MiB 40 chunks, 4 KiB and 64 B 264 chunks, plus
// RouDi's ~63 MiB management segment (/dev/shm/iceoryx_mgmt). RouDi touches the whole data
// segment at startup, so this is real tmpfs usage while it runs. A prepare() for another
// payload size restarts RouDi with a pool for that size. Startup waits for RouDi's log line
// "RouDi is ready for clients" (~1 s here, bounded by 30 s) and then checks that its socket
// /tmp/roudi accepts connections. RouDi is a per-host singleton in 2.0 (it flocks
// /tmp/iox-unique-roudi.lock, binds /tmp/roudi and owns /dev/shm/iceoryx_mgmt): when one is
// already running, prepare() returns a skip reason instead of touching it. teardown() sends
// SIGTERM (SIGKILL after 10 s), reaps it, and removes whatever it left in /dev/shm and /tmp
// (iceoryx_mgmt, the data segment, /tmp/roudi{,.lock}, /tmp/iox-unique-roudi.lock and the
// sockets /tmp/<runtime> of this run's processes). RouDi gets PR_SET_PDEATHSIG=SIGTERM, so
// it also goes away if the harness dies without teardown (this ties it to the thread that
// called prepare(): call prepare/teardown from the main thread). RouDi is a child of the
// harness process: the harness must wait for its own children by pid, not waitpid(-1).
//
// Children (produce/consume/ping/pong) each register their own runtime lazily
// (PoshRuntime::initRuntime, once per process, named after spec.endpoint and the role) after
// checking that RouDi's socket answers (initRuntime would otherwise wait 60 s for it).
// Services: ("shmchan_bench", <endpoint tag>, "data" | "ping" | "pong").
// Throughput: an UntypedPublisher loans a chunk of spec.payload bytes, fill_payload writes it
// in place, publish; WAIT_FOR_CONSUMER + BLOCK_PRODUCER, so nothing is lost (a blocked
// publish spins with sched_yield inside iceoryx). The subscriber takes each chunk, digests it
// in place and releases it; it spins on take() when spec.busy_wait, else blocks in a WaitSet.
// The producer starts only once hasSubscribers() (RouDi connects ports in its 100 ms
// discovery loop), and keeps its publisher until the subscriber is gone, so that no queued
// chunk outlives its publisher. The producer's checksum covers the stream it generated; it is
// computed after end_ns by regenerating the stream (the digest does not depend on how the
// stream is cut), so the timed loop does fill + publish only.
// Latency: ping loans+fills+publishes on "ping", waits for the echo on "pong" (spin on take()
// or WaitSet), digests it in place; rtt = from before the loan to after the echo is digested
// and released. pong digests each ping in place, releases it, loans and fills an echo of the
// same size with the same sequence number (so ping's digest of the echoes equals the digest of
// what it sent and what pong received), publishes it.
#include "transport.hpp"

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

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
        .count();
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

constexpr const char* roudi_ready_line = "RouDi is ready for clients";
constexpr const char* roudi_socket = "/tmp/roudi";
constexpr const char* roudi_lock_files[] = {"/tmp/iox-unique-roudi.lock", "/tmp/roudi.lock"};
constexpr const char* mgmt_segment = "/dev/shm/iceoryx_mgmt";
constexpr std::size_t chunk_header_bytes = 40;     // iox::mepoo::ChunkHeader, no user header
constexpr std::size_t mgmt_segment_bytes = 66u << 20;  // ~63 MiB with the Debian build
constexpr auto roudi_start_timeout = std::chrono::seconds(30);
constexpr auto roudi_stop_timeout = std::chrono::seconds(10);
constexpr auto connect_timeout = std::chrono::seconds(30);   // subscribe / hasSubscribers
constexpr auto stall_timeout = std::chrono::seconds(60);     // no message for this long: fail
constexpr auto linger_timeout = std::chrono::seconds(30);    // publisher waits for unsubscribe

// The subscriber queue capacity (the throughput in-flight window) for a payload size; the
// pool has this many chunks plus pool_spare.
std::uint64_t queue_depth(std::size_t payload) {
    const std::size_t window = 32u << 20;
    return std::clamp<std::uint64_t>(window / std::max<std::size_t>(payload, 1), 4,
                                     iox::MAX_SUBSCRIBER_QUEUE_CAPACITY);
}
constexpr std::uint64_t pool_spare = 8;  // loaned by publishers, held by subscribers, ping/pong
std::size_t pool_chunk_payload(std::size_t payload) {
    return (std::max<std::size_t>(payload, 8) + 7) & ~std::size_t(7);
}

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

std::string runtime_name(const run_spec& spec, const char* role) {
    return "shb_" + endpoint_tag(spec.endpoint) + "_" + role;
}
constexpr const char* all_roles[] = {"prod", "cons", "ping", "pong"};

iox::capro::IdString_t id_string(const std::string& s) {
    return {iox::cxx::TruncateToCapacity, s.c_str(), s.size()};
}

iox::capro::ServiceDescription service(const run_spec& spec, const std::string& event) {
    return {id_string("shmchan_bench"), id_string(endpoint_tag(spec.endpoint)), id_string(event)};
}

// True when something accepts on the Unix socket at `path` (a live RouDi; a stale socket file
// is refused).
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

// The lazily created runtime of this (child) process.
std::string ensure_runtime(const run_spec& spec, const char* role) {
    static bool initialized = false;
    if (initialized) return {};
    if (!socket_answers(roudi_socket))
        return std::string("iceoryx: RouDi does not answer on ") + roudi_socket +
               " (prepare() not run, or RouDi died)";
    // Only warnings and errors from the library, on its log stream (not our stdout protocol).
    iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                              iox::log::LogLevelOutput::kHideLogLevel);
    const std::string name = runtime_name(spec, role);
    iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str(), name.size()));
    initialized = true;
    return {};
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
bool wait_until(Pred pred, std::chrono::steady_clock::duration limit) {
    const auto deadline = clock_type::now() + limit;
    while (!pred()) {
        if (clock_type::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// The subscriber's request has reached RouDi (it waits for an offer, or is connected).
bool subscription_registered(const iox::popo::UntypedSubscriber& sub) {
    const auto s = sub.getSubscriptionState();
    return s == iox::SubscribeState::WAIT_FOR_OFFER || s == iox::SubscribeState::SUBSCRIBED;
}

// Loans a chunk of `size` bytes; retries briefly if the pool is momentarily exhausted.
void* loan_chunk(iox::popo::UntypedPublisher& pub, std::size_t size, std::string& error) {
    const auto deadline = clock_type::now() + stall_timeout;
    for (;;) {
        auto r = pub.loan(static_cast<std::uint32_t>(size));
        if (!r.has_error()) return r.value();
        if (r.get_error() != iox::popo::AllocationError::RUNNING_OUT_OF_CHUNKS ||
            clock_type::now() > deadline) {
            error = "iceoryx: loan(" + std::to_string(size) + ") failed, AllocationError " +
                    std::to_string(static_cast<int>(r.get_error()));
            return nullptr;
        }
        std::this_thread::yield();
    }
}

// Waits for the next chunk: spins on take() or blocks in `ws`. Returns nullptr with `error`
// set on failure or after stall_timeout without a chunk.
const void* take_chunk(iox::popo::UntypedSubscriber& sub, iox::popo::WaitSet<>* ws,
                       std::string& error) {
    auto last_progress = clock_type::now();
    for (unsigned spins = 0;; ++spins) {
        auto r = sub.take();
        if (!r.has_error()) return r.value();
        if (r.get_error() != iox::popo::ChunkReceiveResult::NO_CHUNK_AVAILABLE) {
            error = "iceoryx: take() failed, ChunkReceiveResult " +
                    std::to_string(static_cast<int>(r.get_error()));
            return nullptr;
        }
        if (ws) {
            ws->timedWait(iox::units::Duration::fromMilliseconds(200));
        } else {
            cpu_relax();
            if ((spins & 0xffff) != 0) continue;
        }
        if (clock_type::now() - last_progress > stall_timeout) {
            error = "iceoryx: no message for " + std::to_string(stall_timeout.count()) + " s";
            return nullptr;
        }
    }
}

std::span<const std::byte> payload_of(const void* p) {
    const auto* h = iox::mepoo::ChunkHeader::fromUserPayload(p);
    return {static_cast<const std::byte*>(p), h->userPayloadSize()};
}

// The digest of the stream the producer generated: `messages` payloads of `payload` bytes of
// fill_payload's pattern, regenerated (the digest does not depend on how the stream is cut).
std::uint64_t generated_checksum(std::size_t payload, std::uint64_t messages) {
    digest d;
    std::vector<std::byte> buf(std::min<std::size_t>(std::max<std::size_t>(payload, 1), 256u << 10));
    const std::uint64_t total = std::uint64_t(payload) * messages;
    for (std::uint64_t off = 0; off < total;) {
        const std::size_t n = std::min<std::uint64_t>(buf.size(), total - off);
        std::span<std::byte> s(buf.data(), n);
        shmchan::fill_pattern(s, off);
        d.update(s);
        off += n;
    }
    return d.value();
}

class iceoryx_transport final : public transport {
public:
    ~iceoryx_transport() override { teardown(); }

    std::string name() const override { return "iceoryx"; }

    std::string describe() const override {
        return "iceoryx 2.0.3: publisher loans a chunk from RouDi's shared-memory pool and fills "
               "it in place, subscriber digests it in place; no copies; RouDi daemon brokers "
               "ports and owns the memory; WAIT_FOR_CONSUMER/BLOCK_PRODUCER (blocked publish "
               "yields); receiver spins on take() when busy_wait, else blocks in a WaitSet";
    }

    std::string prepare(const run_spec& spec) override {
        if (spec.payload > (std::size_t(1) << 31))
            return "iceoryx: payload " + std::to_string(spec.payload) +
                   " B exceeds the 32-bit chunk size";
        const std::size_t chunk = pool_chunk_payload(spec.payload);
        const std::uint64_t count = queue_depth(spec.payload) + pool_spare;
        remember_runtimes(spec);
        if (started_) {
            if (alive() && chunk == pool_chunk_ && count == pool_count_) return {};
            teardown();
            remember_runtimes(spec);
        }

        const std::string roudi = find_roudi();
        if (roudi.empty()) {
            if (const char* env = std::getenv("SHMCHAN_IOX_ROUDI"); env && *env)
                return std::string("iceoryx: $SHMCHAN_IOX_ROUDI=") + env + " is not executable";
            return "iceoryx: iox-roudi not found on PATH (Debian package `iceoryx`; or set "
                   "$SHMCHAN_IOX_ROUDI)";
        }
        if (std::string other = foreign_roudi(); !other.empty())
            return "iceoryx: another RouDi is already running (" + other +
                   "); RouDi 2.0 is a per-host singleton, not touching it";
        const std::uint64_t data_bytes = count * (chunk + chunk_header_bytes);
        struct statvfs vfs;
        if (::statvfs("/dev/shm", &vfs) == 0) {
            const std::uint64_t avail = std::uint64_t(vfs.f_bavail) * vfs.f_frsize;
            const std::uint64_t need = data_bytes + mgmt_segment_bytes + (16u << 20);
            if (avail < need)
                return "iceoryx: /dev/shm has " + std::to_string(avail >> 20) + " MiB free, RouDi needs " +
                       std::to_string(need >> 20) + " MiB";
        }
        if (spec.scratch_dir.empty()) return "iceoryx: no scratch_dir for the RouDi config";

        config_path_ = spec.scratch_dir + "/iox-roudi.toml";
        log_path_ = spec.scratch_dir + "/iox-roudi.log";
        {
            std::ofstream cfg(config_path_, std::ios::trunc);
            cfg << "# written by shmchan_bench (bench/suite/iceoryx.cpp) for payload " << spec.payload
                << " B\n[general]\nversion = 1\n\n[[segment]]\n\n[[segment.mempool]]\nsize = " << chunk
                << "\ncount = " << count << "\n";
            if (!cfg) return "iceoryx: cannot write " + config_path_;
        }
        if (const group* g = ::getgrgid(::getegid())) data_segment_ = std::string("/dev/shm/") + g->gr_name;

        pool_chunk_ = chunk;
        pool_count_ = count;
        const std::string err = start_roudi(roudi);
        if (!err.empty()) {
            teardown();
            return err;
        }
        return {};
    }

    void teardown() override {
        if (roudi_pid_ > 0) {
            ::kill(roudi_pid_, SIGTERM);
            if (!reap(roudi_stop_timeout)) {
                std::fprintf(stderr, "iceoryx: RouDi (pid %d) ignored SIGTERM for %lld s, SIGKILL\n",
                             static_cast<int>(roudi_pid_),
                             static_cast<long long>(roudi_stop_timeout.count()));
                ::kill(roudi_pid_, SIGKILL);
                reap(std::chrono::seconds(5));
            }
            roudi_pid_ = -1;
        }
        if (started_) {
            started_ = false;
            // RouDi removes its files on a clean exit; whatever is left is ours (prepare()
            // made sure no other RouDi was running) and stale.
            std::vector<std::string> leftovers = {mgmt_segment, roudi_socket};
            for (const char* l : roudi_lock_files) leftovers.emplace_back(l);
            if (!data_segment_.empty()) leftovers.push_back(data_segment_);
            for (const auto& p : leftovers)
                if (::unlink(p.c_str()) == 0)
                    std::fprintf(stderr, "iceoryx: removed %s left by RouDi\n", p.c_str());
            if (!config_path_.empty()) ::unlink(config_path_.c_str());
            if (!log_path_.empty()) ::unlink(log_path_.c_str());
        }
        // Sockets of runtimes that did not shut down cleanly (a child killed mid-run).
        for (const auto& n : runtimes_) {
            const std::string sock = "/tmp/" + n, lock = sock + ".lock";
            if (path_exists(sock) && !socket_answers(sock.c_str()) && ::unlink(sock.c_str()) == 0)
                std::fprintf(stderr, "iceoryx: removed stale %s\n", sock.c_str());
            if (path_exists(lock) && !lock_held(lock.c_str()) && ::unlink(lock.c_str()) == 0)
                std::fprintf(stderr, "iceoryx: removed stale %s\n", lock.c_str());
        }
        runtimes_.clear();
        pool_chunk_ = pool_count_ = 0;
    }

    side_result produce(const run_spec& spec) override {
        side_result res;
        if (res.error = ensure_runtime(spec, "prod"); !res.error.empty()) return res;
        iox::popo::UntypedPublisher pub(service(spec, "data"), publisher_options());
        if (!wait_until([&] { return pub.hasSubscribers(); }, connect_timeout)) {
            res.error = "iceoryx: no subscriber connected within 30 s";
            return res;
        }
        res.start_ns = now_ns();
        for (std::uint64_t seq = 0; seq < spec.messages; ++seq) {
            void* p = loan_chunk(pub, spec.payload, res.error);
            if (!p) return res;
            fill_payload({static_cast<std::byte*>(p), spec.payload}, seq);
            pub.publish(p);
        }
        res.end_ns = now_ns();
        res.messages = spec.messages;
        res.bytes = spec.messages * spec.payload;
        res.checksum = generated_checksum(spec.payload, spec.messages);
        // Keep the publisher until the subscriber has taken everything and gone.
        wait_until([&] { return !pub.hasSubscribers(); }, linger_timeout);
        return res;
    }

    side_result consume(const run_spec& spec) override {
        side_result res;
        if (res.error = ensure_runtime(spec, "cons"); !res.error.empty()) return res;
        iox::popo::UntypedSubscriber sub(service(spec, "data"), subscriber_options(queue_depth(spec.payload)));
        std::optional<iox::popo::WaitSet<>> ws;
        if (!spec.busy_wait && !attach(ws, sub, res.error)) return res;
        if (!wait_until([&] { return subscription_registered(sub); }, connect_timeout)) {
            res.error = "iceoryx: subscription not registered with RouDi within 30 s";
            return res;
        }
        if (spec.ready) spec.ready();
        digest d;
        for (std::uint64_t i = 0; i < spec.messages; ++i) {
            const void* p = take_chunk(sub, ws ? &*ws : nullptr, res.error);
            if (!p) break;
            if (i == 0) res.start_ns = now_ns();
            const auto bytes = payload_of(p);
            d.update(bytes);
            sub.release(p);
            res.bytes += bytes.size();
            ++res.messages;
        }
        res.end_ns = now_ns();
        res.checksum = d.value();
        return res;
    }

    side_result ping(const run_spec& spec) override {
        side_result res;
        if (res.error = ensure_runtime(spec, "ping"); !res.error.empty()) return res;
        iox::popo::UntypedPublisher pub(service(spec, "ping"), publisher_options());
        iox::popo::UntypedSubscriber sub(service(spec, "pong"), subscriber_options(queue_depth(spec.payload)));
        std::optional<iox::popo::WaitSet<>> ws;
        if (!spec.busy_wait && !attach(ws, sub, res.error)) return res;
        if (!wait_until([&] { return pub.hasSubscribers() &&
                                     sub.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; },
                        connect_timeout)) {
            res.error = "iceoryx: ping/pong ports not connected within 30 s";
            return res;
        }
        res.rtt_ns.reserve(spec.messages);
        digest d;
        res.start_ns = now_ns();
        for (std::uint64_t seq = 0; seq < spec.messages; ++seq) {
            const std::int64_t t0 = now_ns();
            void* out = loan_chunk(pub, spec.payload, res.error);
            if (!out) break;
            fill_payload({static_cast<std::byte*>(out), spec.payload}, seq);
            pub.publish(out);
            const void* in = take_chunk(sub, ws ? &*ws : nullptr, res.error);
            if (!in) break;
            const auto bytes = payload_of(in);
            d.update(bytes);
            sub.release(in);
            res.rtt_ns.push_back(now_ns() - t0);
            res.bytes += bytes.size();
            ++res.messages;
        }
        res.end_ns = now_ns();
        res.checksum = d.value();
        return res;
    }

    side_result pong(const run_spec& spec) override {
        side_result res;
        if (res.error = ensure_runtime(spec, "pong"); !res.error.empty()) return res;
        iox::popo::UntypedSubscriber sub(service(spec, "ping"), subscriber_options(queue_depth(spec.payload)));
        iox::popo::UntypedPublisher pub(service(spec, "pong"), publisher_options());
        std::optional<iox::popo::WaitSet<>> ws;
        if (!spec.busy_wait && !attach(ws, sub, res.error)) return res;
        if (!wait_until([&] { return subscription_registered(sub); }, connect_timeout)) {
            res.error = "iceoryx: subscription not registered with RouDi within 30 s";
            return res;
        }
        if (spec.ready) spec.ready();
        digest d;
        for (std::uint64_t seq = 0; seq < spec.messages; ++seq) {
            const void* in = take_chunk(sub, ws ? &*ws : nullptr, res.error);
            if (!in) break;
            if (seq == 0) res.start_ns = now_ns();
            const auto bytes = payload_of(in);
            d.update(bytes);
            sub.release(in);
            void* out = loan_chunk(pub, bytes.size(), res.error);
            if (!out) break;
            fill_payload({static_cast<std::byte*>(out), bytes.size()}, seq);
            pub.publish(out);
            res.bytes += bytes.size();
            ++res.messages;
        }
        res.end_ns = now_ns();
        res.checksum = d.value();
        if (res.error.empty()) wait_until([&] { return !pub.hasSubscribers(); }, linger_timeout);
        return res;
    }

private:
    static bool attach(std::optional<iox::popo::WaitSet<>>& ws, iox::popo::UntypedSubscriber& sub,
                       std::string& error) {
        ws.emplace();
        if (ws->attachState(sub, iox::popo::SubscriberState::HAS_DATA).has_error()) {
            error = "iceoryx: cannot attach the subscriber to a WaitSet";
            return false;
        }
        return true;
    }

    void remember_runtimes(const run_spec& spec) {
        for (const char* r : all_roles) {
            std::string n = runtime_name(spec, r);
            if (std::find(runtimes_.begin(), runtimes_.end(), n) == runtimes_.end())
                runtimes_.push_back(std::move(n));
        }
    }

    static std::string find_roudi() {
        if (const char* env = std::getenv("SHMCHAN_IOX_ROUDI"); env && *env)
            return ::access(env, X_OK) == 0 ? env : "";
        const char* path = std::getenv("PATH");
        std::stringstream ss(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
        for (std::string dir; std::getline(ss, dir, ':');) {
            const std::string p = (dir.empty() ? "." : dir) + "/iox-roudi";
            if (::access(p.c_str(), X_OK) == 0) return p;
        }
        return {};
    }

    // A description of a RouDi that is not ours, or empty.
    std::string foreign_roudi() const {
        if (DIR* d = ::opendir("/proc")) {
            std::string found;
            while (dirent* e = ::readdir(d)) {
                char* end = nullptr;
                const long pid = std::strtol(e->d_name, &end, 10);
                if (pid <= 0 || *end || pid == roudi_pid_) continue;
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
        const pid_t pid = ::fork();
        if (pid < 0) {
            ::close(log);
            return std::string("iceoryx: fork failed: ") + std::strerror(errno);
        }
        if (pid == 0) {
            // Async-signal-safe calls only until exec.
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(127);
            const int devnull = ::open("/dev/null", O_RDONLY);
            if (devnull >= 0) ::dup2(devnull, 0);
            ::dup2(log, 1);
            ::dup2(log, 2);
            ::syscall(SYS_close_range, 3u, ~0u, 0u);
            const char* argv[] = {roudi.c_str(), "-c", config_path_.c_str(), "-l", "warning",
                                  "-m", "on", "-k", "2", nullptr};
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
                std::string why = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                                    : "killed by signal " + std::to_string(WTERMSIG(status));
                return "iceoryx: iox-roudi " + why + " before it was ready: " + log_tail();
            }
            if (log_contains(roudi_ready_line)) break;
            if (clock_type::now() - t0 > roudi_start_timeout)
                return "iceoryx: iox-roudi not ready within " + std::to_string(roudi_start_timeout.count()) +
                       " s: " + log_tail();
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (!wait_until([] { return socket_answers(roudi_socket); }, std::chrono::seconds(5)))
            return std::string("iceoryx: iox-roudi reported ready but ") + roudi_socket + " does not answer";
        startup_ms_ = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        if (std::getenv("SHMCHAN_IOX_VERBOSE"))
            std::fprintf(stderr, "iceoryx: RouDi pid %d ready after %.0f ms (pool %zu B x %llu)\n",
                         static_cast<int>(pid), startup_ms_, pool_chunk_,
                         static_cast<unsigned long long>(pool_count_));
        return {};
    }

    // Reaps RouDi if it has exited (its files are still cleaned up by teardown()).
    bool alive() {
        if (roudi_pid_ <= 0) return false;
        if (::waitpid(roudi_pid_, nullptr, WNOHANG) == 0) return true;
        roudi_pid_ = -1;
        return false;
    }

    bool reap(std::chrono::steady_clock::duration limit) {
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
    bool log_contains(const char* what) const { return read_log().find(what) != std::string::npos; }
    std::string log_tail() const {
        std::string s = read_log();
        std::string out;  // one line for the report, without the terminal colour codes
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (s[i] == '\x1b') {
                while (i < s.size() && s[i] != 'm') ++i;
                continue;
            }
            out += (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
        }
        if (out.size() > 300) out = "..." + out.substr(out.size() - 300);
        return out.empty() ? "(no output)" : out;
    }

    pid_t roudi_pid_ = -1;  // our RouDi, until reaped
    bool started_ = false;  // we started a RouDi whose files teardown() has not cleaned yet
    std::size_t pool_chunk_ = 0;
    std::uint64_t pool_count_ = 0;
    double startup_ms_ = 0;
    std::string config_path_, log_path_, data_segment_;
    std::vector<std::string> runtimes_;
};

}  // namespace

std::unique_ptr<transport> make_iceoryx() { return std::make_unique<iceoryx_transport>(); }

}  // namespace shmchan_bench
