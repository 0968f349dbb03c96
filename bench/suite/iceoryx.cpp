// iceoryx 2.0.x transport for the benchmark suite (see transport.hpp for the contract).
//
// Build: iceoryx 2.0 (Debian: `iceoryx` for the iox-roudi daemon, `libiceoryx-posh-dev`);
// bench/CMakeLists.txt compiles this file when find_package(iceoryx_posh) succeeds and links
// iceoryx_posh::iceoryx_posh (an imported target, so its headers are SYSTEM includes: they are
// not -Wpedantic clean). By hand:
//   g++ -std=c++20 -O2 -I include -I bench/suite -isystem /usr/include/iceoryx/v2.0.3
//       bench/suite/iceoryx.cpp bench/suite/iceoryx_roudi.cpp bench/suite/support.cpp ...
//       -liceoryx_posh -liceoryx_hoofs -liceoryx_platform -lpthread -lrt -latomic
//
// RouDi, the iceoryx daemon (iceoryx_roudi.cpp), is started by the first prepare() in the
// harness process and stopped by teardown(); it is $SHMCHAN_IOX_ROUDI or `iox-roudi` on PATH, a child of the
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
#include "iceoryx_roudi.hpp"
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

constexpr auto connect_timeout = std::chrono::seconds(30);  // subscription / hasSubscribers
constexpr auto stall_timeout = std::chrono::seconds(60);    // no message for this long: fail
constexpr auto linger_timeout = std::chrono::seconds(10);   // producer waits for the consumer to go

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
constexpr std::size_t max_subscribers = 64;  // --readers: one runtime ("cons", "cons1", ...) each
std::string runtime_name(const run_spec& spec, const char* role) {
    return "shb_" + endpoint_tag(spec.endpoint) + "_" + role;
}

iox::capro::IdString_t id_string(const std::string& s) { return {iox::cxx::TruncateToCapacity, s.c_str(), s.size()}; }
iox::capro::ServiceDescription service(const run_spec& spec, const std::string& event) {
    return {id_string("shmchan_bench"), id_string(endpoint_tag(spec.endpoint)), id_string(event)};
}

// This (child) process's runtime, registered with RouDi on first use.
std::string subscribed_file(const run_spec& spec, std::size_t i) {
    return spec.scratch_dir + "/iox.subscribed." + std::to_string(i);
}

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
        return roudi_.ensure(spec.payload);
    }

    void cleanup(const run_spec& spec) override {
        for (const char* role : all_roles) remove_runtime_files(runtime_name(spec, role));
        for (std::size_t i = 1; i < std::min(spec.readers, max_subscribers); ++i)
            remove_runtime_files(runtime_name(spec, ("cons" + std::to_string(i)).c_str()));
    }

    // N subscribers of the one publisher (WAIT_FOR_CONSUMER: it waits for the slowest).
    bool fan_out() const override { return true; }

    void teardown() override { roudi_.stop(); }

    std::vector<int> daemon_pids() const override {
        if (roudi_.pid() > 0) return {static_cast<int>(roudi_.pid())};
        return {};
    }

    side_result produce(const run_spec& spec) override {
        ensure_runtime(spec, "prod");
        side_result r;
        {
            iox::popo::UntypedPublisher pub(service(spec, "data"), publisher_options());
            if (!wait_until([&] { return pub.hasSubscribers(); }, connect_timeout))
                fail("no subscriber connected within " + std::to_string(connect_timeout.count()) + " s");
            // hasSubscribers() says one is: with several, each says it is subscribed by a file
            // (history 0: one that subscribed late would miss messages).
            if (spec.readers > 1 &&
                !wait_until([&] {
                    for (std::size_t i = 0; i < spec.readers; ++i)
                        if (::access(subscribed_file(spec, i).c_str(), F_OK) != 0) return false;
                    return true;
                }, connect_timeout))
                fail("not every subscriber connected within " + std::to_string(connect_timeout.count()) + " s");
            r = produce_loop(spec, [&](std::uint64_t i) {
                void* p = loan_chunk(pub, spec.payload);
                fill_payload({static_cast<std::byte*>(p), spec.payload}, i);
                pub.publish(p);
            });
            // Queued chunks do outlive their publisher, but keep it until the consumer is done.
            wait_until([&] { return !pub.hasSubscribers(); }, linger_timeout);
        }
        generated(r, spec);
        return r;
    }

    side_result consume(const run_spec& spec) override {
        const std::string role = spec.reader_index ? "cons" + std::to_string(spec.reader_index) : "cons";
        ensure_runtime(spec, role.c_str());
        iox::popo::UntypedSubscriber sub(service(spec, "data"), subscriber_options(queue_depth(spec.payload)));
        std::optional<iox::popo::WaitSet<>> ws;
        attach(ws, sub, true);
        if (!wait_until([&] { return subscription_registered(sub); }, connect_timeout))
            fail("RouDi did not take the subscription within " + std::to_string(connect_timeout.count()) + " s");
        spec.ready();
        if (spec.readers > 1) {
            if (!wait_until([&] { return sub.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; }, connect_timeout))
                fail("not subscribed within " + std::to_string(connect_timeout.count()) + " s");
            write_file(subscribed_file(spec, spec.reader_index), "");
        }
        side_result r;
        digest d;
        const void* p = nullptr;
        consume_loop(
            spec, r, [&](std::uint64_t) { p = take_chunk(sub, &*ws); },
            [&](std::uint64_t i) {
                const auto bytes = payload_of(p);
                d.update(bytes);
                sub.release(p);
                if (bytes.size() != spec.payload)
                    fail("message " + std::to_string(i) + " has " + std::to_string(bytes.size()) + " bytes");
            });
        finish(r, d);
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
        std::size_t got = 0;  // the echo's size, checked after its sample
        ping_loop(
            spec, r,
            [&](std::uint64_t i) {
                void* out = loan_chunk(pub, spec.payload);
                fill_payload({static_cast<std::byte*>(out), spec.payload}, i);
                pub.publish(out);
                const void* in = take_chunk(sub, ws ? &*ws : nullptr);
                const auto bytes = payload_of(in);
                d.update(bytes);
                sub.release(in);
                got = bytes.size();
            },
            [&](std::uint64_t i) {
                if (got != spec.payload) fail("echo " + std::to_string(i) + " has " + std::to_string(got) + " bytes");
            });
        finish(r, d);
        pub.publish(loan_chunk(pub, 0));  // the end of the exchange
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
        finish(r, d);
        return r;
    }

private:
    roudi_daemon roudi_;
};

}  // namespace

std::unique_ptr<transport> make_iceoryx() { return std::make_unique<iceoryx_transport>(); }

}  // namespace shmchan_bench
