// An iii-compatible engine: the worker protocol on "/" and channel sockets on
// "/ws/channels/{id}?key=..&dir=read|write", over WebSocket (TLS optional). Channels it creates live in this
// host's shared memory, so a C++ end on the same host attaches to the ring directly while
// stock iii SDKs and remote ends go through the socket, which the engine bridges onto the
// same ring.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace shmchan {

struct engine_options {
    std::string host = "127.0.0.1";  // loopback unless told otherwise
    std::uint16_t port = 49134;      // 0: any free port (see engine::port())
    // A channel with an end that never connected is removed after this long (the writer, if
    // it never came, is aborted; a reader that never came is closed).
    std::chrono::milliseconds channel_ttl = std::chrono::minutes(5);
    // An invocation whose worker does not answer fails with code "timeout" after this long,
    // unless the invocation carries its own timeout_ms.
    std::chrono::milliseconds invocation_timeout = std::chrono::seconds(30);
    int threads = 2;  // each runs its own share of the connections (at least 1)
    bool verbose = false;  // log every message to stderr

    // Limits on what clients may make the engine hold (docs/engine.md, "Limits").
    // A WebSocket message (worker socket) or frame (channel socket) above this: the socket is
    // closed with 1009. Worker messages are also refused (error reply) when nested deeper than
    // 128 levels or made of more than 2^20 JSON values.
    std::size_t max_message_bytes = std::size_t{16} << 20;
    // Invocations awaiting an answer, per calling worker and in all; above: "too_many_pending".
    std::size_t max_pending_per_worker = 4096;
    std::size_t max_pending = 65536;
    std::size_t max_functions_per_worker = 1024;  // above: "too_many_functions"
    std::size_t max_channels = 4096;  // live channels made by engine::channels::create ("too_many_channels")
    // Bytes queued for a worker socket that does not read them; above, it is disconnected.
    std::size_t max_outbound_bytes = std::size_t{64} << 20;

    // TLS (wss://) for every socket, worker and channel, when both are given: the certificate
    // (PEM, with any intermediates after it) and its key. Empty: plain ws://.
    std::string tls_cert_file;
    std::string tls_key_file;
    // With TLS: clients must show a certificate issued by a CA of this PEM file (mutual TLS).
    std::string tls_ca_file;
};

class engine {
public:
    // Binds the listener (throws shmchan::error on failure: system_error, or invalid_argument
    // for TLS files that cannot be used) and starts serving on background threads.
    explicit engine(engine_options options = {});
    ~engine();  // stops
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    std::uint16_t port() const noexcept;
    std::string url() const;  // "ws://host:port", or "wss://host:port" with TLS
    std::size_t live_channels() const;
    std::size_t connected_workers() const;
    void stop();
    void wait();  // until stop() (from another thread or a signal handler's thread)

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

}  // namespace shmchan
