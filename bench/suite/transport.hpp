// The contract between the benchmark harness (bench/suite/main.cpp) and each transport under
// test. A transport moves `messages` payloads of `payload` bytes from a producer process to a
// consumer process (throughput), or bounces one payload back and forth (latency). The harness
// starts both sides as separate processes (this binary again, with a hidden role argument),
// collects their side_result as JSON, and checks bytes and checksums.
//
// Every transport does the same work on every byte: the producer generates each payload with
// fill_payload (every byte written, in place when the transport lends its memory), the
// consumer runs digest over every byte it receives (in place when it can), so that zero-copy
// is not credited for work nobody did.
#pragma once

#include <shmchan/channel.hpp>
#include <shmchan/memory.hpp>
#include <shmchan/testkit/checksum.hpp>

#include "shmchan/shm/claim_chooser.hpp"  // the loans' chooser, shared with the ceiling

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace shmchan_bench {

struct run_spec {
    std::size_t payload = 0;      // bytes per message
    bool latency = false;         // a ping-pong run (ping/pong), else throughput (produce/consume)
    std::uint64_t messages = 0;   // throughput: messages to move; latency: round trips
    std::uint64_t warmup = 0;     // the first `warmup` of `messages` warm the transport up (a lap
                                  // of its buffers: page faults, connections) and are not
                                  // timed: the producer takes start_ns when message #warmup
                                  // begins; the harness drops the first `warmup` round trips.
                                  // Every message, warm-up included, is moved and checksummed.
    std::int64_t time_limit_ns = 0;  // latency: the ping side starts no round trip once this
                                  // long has passed since its first one, and ends the exchange
                                  // early as it would at the end (closes, or sends its end
                                  // marker); both sides report the round trips done (the pong
                                  // side echoes until the exchange ends). 0: no limit.
    bool busy_wait = true;        // latency: spin on the transport (true) or block/sleep in it;
                                  // throughput (produce/consume) ignores it: each transport
                                  // waits its ordinary, default way there
    std::string endpoint;         // unique rendezvous name for this run (path/name/port base),
                                  // made by the harness; a transport derives its names from it
    std::string scratch_dir;      // a private directory for this run (sockets, configs)
    std::size_t readers = 1;      // throughput: consumer processes, each receiving every message
                                  // (only transports with fan_out(); docs/benchmarks.md)
    std::size_t reader_index = 0; // which of them this consumer is; the harness starts them in
                                  // order, each once the previous said ready
    std::function<void()> ready;  // the consuming / pong side calls this once it can accept;
                                  // the harness starts the other side only then
    std::vector<std::string> env; // --ab's "NAME=value" for the B variant (else empty): the
                                  // sides get them, and so does a daemon a transport starts
                                  // for the run (the engine-* transports' engine)
};

// The suite's stream: word i (little-endian) is x ^ (x >> 29) with x = (i + 1) * K. Cheaper
// than shmchan::fill_pattern (two 64-bit multiplies per word, ~12-16 GB/s on one core, which
// capped every transport near that at 1 MiB): four 2 x 64-bit vectors step by an add, so a core
// writes it at 45-65 GB/s and the figures measure the transports. Every byte is still written.
// Distinct words for distinct i (both steps are bijections), so a lost, repeated or misplaced
// piece changes the order-sensitive digest.
inline std::uint64_t bench_word(std::uint64_t i) noexcept {
    const std::uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL;
    return x ^ (x >> 29);
}
inline void fill_stream(std::span<std::byte> out, std::uint64_t offset) noexcept {
    constexpr std::uint64_t K = 0x9E3779B97F4A7C15ULL;
    std::byte* p = out.data();
    std::size_t n = out.size();
    for (; n && (offset & 7); --n, ++offset) *p++ = std::byte(bench_word(offset >> 3) >> (8 * (offset & 7)));
    const std::uint64_t i = offset >> 3;
    std::size_t k = 0;
    const std::size_t words = n / 8;
    if (words >= 8) {
        using u64x2 [[gnu::vector_size(16)]] = std::uint64_t;
        u64x2 x0 = {(i + 1) * K, (i + 2) * K}, x1 = {(i + 3) * K, (i + 4) * K}, x2 = {(i + 5) * K, (i + 6) * K},
              x3 = {(i + 7) * K, (i + 8) * K};
        const u64x2 step = {8 * K, 8 * K};
        for (; k + 8 <= words; k += 8, x0 += step, x1 += step, x2 += step, x3 += step) {
            const u64x2 w0 = x0 ^ (x0 >> 29), w1 = x1 ^ (x1 >> 29), w2 = x2 ^ (x2 >> 29), w3 = x3 ^ (x3 >> 29);
            std::memcpy(p + 8 * k, &w0, 16);
            std::memcpy(p + 8 * k + 16, &w1, 16);
            std::memcpy(p + 8 * k + 32, &w2, 16);
            std::memcpy(p + 8 * k + 48, &w3, 16);
        }
    }
    for (; k < words; ++k) {
        const std::uint64_t w = bench_word(i + k);
        std::memcpy(p + 8 * k, &w, 8);
    }
    p += 8 * words;
    offset += 8 * words;
    n -= 8 * words;
    for (; n; --n, ++offset) *p++ = std::byte(bench_word(offset >> 3) >> (8 * (offset & 7)));
}

// The work both sides do per message. fill_payload writes every byte of `out` (the bytes of the
// stream above at offset seq * payload); digest folds every byte of a message into the running
// checksum of the stream (order-sensitive, independent of how it is cut; shmchan's
// stream_checksum, eight lanes wide, ~50 GB/s on one core).
inline void fill_payload(std::span<std::byte> out, std::uint64_t seq) noexcept { fill_stream(out, seq * out.size()); }
using digest = shmchan::stream_checksum;  // digest.update(bytes) per message; value() at the end

// The ceiling fills its slots as shmchan's loans are filled (channel_options::loan_claim and
// loan_claim_min, with the same SHMCHAN_LOAN_CLAIM / SHMCHAN_LOAN_CLAIM_MIN overrides): from
// 16 KiB up, claimed or not as the same measuring chooser decides, so that the two differ only
// by the process boundary.
class claim_like_loans {
public:
    using policy = shmchan::channel_options::claim_policy;
    claim_like_loans() {
        const auto c = shmchan::effective_loan_claim(shmchan::channel_options{});
        policy_ = c.policy;
        min_ = c.min;
    }
    // fill_payload(slot, seq), after claiming the slot when the policy says so. `learning`:
    // the slots have all been written once (as shmchan, the first lap does not teach).
    void fill(std::span<std::byte> slot, std::uint64_t seq, bool learning) noexcept {
        if (slot.size() < min_ || policy_ == policy::never) return fill_payload(slot, seq);
        const bool adaptive = policy_ == policy::adaptive;
        learning = learning && adaptive;
        const bool claim = !adaptive || (learning ? chooser_.next() : chooser_.claiming());
        const std::uint64_t t0 = shmchan::shm::ticks();
        if (claim) shmchan::claim_for_writing(slot);
        fill_payload(slot, seq);
        if (learning) chooser_.took(shmchan::shm::ticks() - t0, slot.size());
    }

private:
    policy policy_;
    std::size_t min_;
    shmchan::shm::claim_chooser chooser_;
};

// The checksum of `messages` payloads of `payload` bytes made by fill_payload: what every side
// must report. A producer calls it for its side_result *after* taking end_ns (it regenerates
// the stream), never inside the timed loop: producers only fill, consumers only digest.
inline std::uint64_t pattern_checksum(std::size_t payload, std::uint64_t messages) {
    digest d;
    std::vector<std::byte> buf(std::size_t{256} << 10);
    const std::uint64_t total = std::uint64_t(payload) * messages;
    for (std::uint64_t off = 0; off < total; off += buf.size()) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - off));
        fill_stream(std::span(buf.data(), n), off);
        d.update(std::span(buf.data(), n));
    }
    return d.value();
}

// CLOCK_MONOTONIC in ns, for side_result::start_ns / end_ns.
inline std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

struct side_result {
    std::uint64_t messages = 0;       // messages sent / received
    std::uint64_t bytes = 0;          // payload bytes sent / received
    std::uint64_t checksum = 0;       // digest(...).value() over everything sent / received
    std::int64_t start_ns = 0;        // CLOCK_MONOTONIC (steady_clock) when message #warmup
                                      // began (producer) / the first byte arrived (consumer)
    std::int64_t end_ns = 0;          // ... when the last message was handed over / digested
    double cpu_s = 0;                 // producer: its process's CPU time from start_ns to end_ns
    std::vector<std::int64_t> rtt_ns; // latency (ping side): one round trip per sample, from
                                      // before filling the payload to after digesting the echo
    std::string error;                // non-empty: the side failed, with this reason
};

class transport {
public:
    virtual ~transport() = default;
    virtual std::string name() const = 0;
    // One line for the report: what moves the bytes (copies, syscalls, daemons).
    virtual std::string describe() const = 0;

    // In the harness process, before each run (spec.scratch_dir exists, spec.ready is unset):
    // start daemons the first time, check that the transport can run this spec. Returns an
    // empty string when it can, otherwise the reason it is skipped (shown in the report; a
    // transport is never silently left out). May leave files in scratch_dir for the children.
    virtual std::string prepare(const run_spec&) { return {}; }
    // In the harness, after each run, whether it worked or not (its processes are gone, killed
    // if they hung): remove what the run may have left (segments, queues, names).
    virtual void cleanup(const run_spec&) {}
    // In the harness, once after the last run (also after a failure or an interrupt): stop
    // the daemons prepare() started.
    virtual void teardown() {}
    // Daemons this transport runs (pids), so the harness can report their CPU and memory.
    virtual std::vector<int> daemon_pids() const { return {}; }
    // Variables ("NAME=value") added to the environment of this transport's side processes.
    virtual std::vector<std::string> side_environment() const { return {}; }
    // True for the in-process ceiling: the harness runs both sides as two threads of one child
    // process instead of two processes.
    virtual bool in_one_process() const { return false; }
    // True when one producer can feed spec.readers > 1 consumer processes, each receiving
    // every message (throughput only); other transports are skipped for several readers.
    virtual bool fan_out() const { return false; }

    // In the child processes. The consumer / pong side calls spec.ready() once it can accept.
    // The producer sends a producer-side checksum of what it generated (pattern_checksum,
    // after end_ns); the consumer's must match. A side that fails throws or sets `error`.
    virtual side_result produce(const run_spec&) = 0;
    virtual side_result consume(const run_spec&) = 0;
    // Latency: ping sends a payload, waits for the echo, records the round trip; pong echoes
    // every payload it receives (reading every byte, and writing every byte of the echo with
    // fill_payload(echo, seq)) until the ping side ends the exchange.
    virtual side_result ping(const run_spec&) = 0;
    virtual side_result pong(const run_spec&) = 0;
};

// Each transport source file defines one factory; the harness lists them all.
std::unique_ptr<transport> make_shmchan_write();
std::unique_ptr<transport> make_shmchan_loan_noclaim();
std::unique_ptr<transport> make_shmchan_loan();
std::unique_ptr<transport> make_shmchan_loan_nomb();
std::unique_ptr<transport> make_shmchan_write_nomb();
std::unique_ptr<transport> make_shmchan_separate();
std::unique_ptr<transport> make_engine_socket();
std::unique_ptr<transport> make_engine_shm();
std::unique_ptr<transport> make_engine_socket_shm();
std::unique_ptr<transport> make_engine_shm_socket();
std::unique_ptr<transport> make_engine_socket_unbatched();      // SHMCHAN_ENGINE_BATCH=0 engine
std::unique_ptr<transport> make_engine_shm_socket_unbatched();
std::unique_ptr<transport> make_node_socket();
std::unique_ptr<transport> make_iceoryx();
std::unique_ptr<transport> make_zeromq();
std::unique_ptr<transport> make_unix_socket();
std::unique_ptr<transport> make_pipe();
std::unique_ptr<transport> make_tcp_loopback();
std::unique_ptr<transport> make_tcp_relay();
std::unique_ptr<transport> make_tcp_splice_relay();
// The relays' daemon (`_relay PARENT_PID [splice]`, tcp_relay.cpp): prints "port N", relays
// (copying, or splicing through a pipe) until stdin closes.
int relay_daemon_main(int parent_pid, bool splice);
std::unique_ptr<transport> make_message_queue();
// The ceiling: the same work with two threads of one process handing buffers over through an
// in-process queue (in_one_process() is true).
std::unique_ptr<transport> make_inprocess();

}  // namespace shmchan_bench
