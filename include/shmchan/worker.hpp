// A C++ iii worker: connect to an engine, register functions, trigger functions, and create
// channels through the engine. Channel refs in a handler's input arrive as live ends: on this
// host through shared memory, otherwise (or when forced) through the engine's socket.
//
//   shmchan::worker w("ws://127.0.0.1:49134");
//   w.register_function("files::process", [](shmchan::invocation& call) {
//       std::size_t n = 0;
//       for (auto chunk : call.reader("reader").chunks()) n += chunk.size();
//       return nlohmann::json{{"bytes", n}};
//   });
//   auto ch = w.create_channel();
//   ch.writer.write(data); ch.writer.close();
//   auto result = w.trigger({"files::process", {{"reader", ch.reader_ref}}});
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "shmchan/channel.hpp"
#include "shmchan/error.hpp"

namespace shmchan {

// A failed invocation: `code()` is the engine's or the handler's code ("function_not_found",
// "timeout", "worker_disconnected", "handler_error", ...), what() its message.
class invocation_error : public std::runtime_error {
public:
    invocation_error(std::string code, const std::string& message)
        : std::runtime_error(message), code_(std::move(code)) {}
    const std::string& code() const noexcept { return code_; }

private:
    std::string code_;
};

// What a handler gets: the input as JSON, and every channel ref found in it (iii's path
// syntax: "reader", "a.b[0]") already opened as a live reader or writer, as the Node and
// Python SDKs do. Ends the handler does not take are closed when it returns (a reader) or
// aborted (a writer left open).
class invocation {
public:
    const nlohmann::json& input() const noexcept { return input_; }
    const std::string& function_id() const noexcept { return function_id_; }
    bool has_reader(const std::string& path) const { return readers_.count(path) != 0; }
    bool has_writer(const std::string& path) const { return writers_.count(path) != 0; }
    // Throws shmchan::error(invalid_argument) naming the paths there are.
    shmchan::reader& reader(const std::string& path = "reader");
    shmchan::writer& writer(const std::string& path = "writer");
    std::map<std::string, shmchan::reader>& readers() noexcept { return readers_; }
    std::map<std::string, shmchan::writer>& writers() noexcept { return writers_; }

private:
    friend struct worker_access;
    nlohmann::json input_;
    std::string function_id_;
    std::map<std::string, shmchan::reader> readers_;
    std::map<std::string, shmchan::writer> writers_;
};

using function_handler = std::function<nlohmann::json(invocation&)>;

struct trigger_request {
    std::string function_id;
    nlohmann::json payload = nlohmann::json::object();
    std::chrono::milliseconds timeout = std::chrono::seconds(30);
};

struct worker_options {
    std::string name = "shmchan-cpp";
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
    // For ends opened from refs (handlers' inputs, create_channel): the transport; the engine
    // address is the worker's. SHMCHAN_TRANSPORT=socket forces the socket.
    transport via = transport::automatic;
    // After the connection to the engine is lost (engine restarted, network), reconnect with
    // a backoff up to this delay and register every function again. Invocations pending at
    // the loss fail with engine_unreachable; calls made while disconnected fail at once.
    bool reconnect = true;
    std::chrono::milliseconds reconnect_delay_max = std::chrono::seconds(2);
    // For a wss:// engine (the worker's socket and its ends' channel sockets): whom to trust,
    // and a client certificate if it asks for one.
    tls_client_options tls;
};

class worker {
public:
    // Connects to the engine ("ws://host:port", or "wss://host:port" over TLS). Throws
    // shmchan::error(engine_unreachable), also when the engine's certificate does not verify.
    explicit worker(const std::string& engine_url, worker_options options = {});
    ~worker();  // disconnects; waits for running handlers
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // Handlers run on their own threads; a handler that throws answers with an error
    // (code "handler_error", or the shmchan error's name).
    void register_function(const std::string& id, function_handler handler);
    void unregister_function(const std::string& id);

    // Throws invocation_error (the function failed, was not found, timed out) or
    // shmchan::error(engine_unreachable) when the connection is gone.
    nlohmann::json trigger(const trigger_request& request);
    // Fire and forget.
    void trigger_void(const std::string& function_id, const nlohmann::json& payload);

    // A channel created by the engine (engine::channels::create). Its local writer and reader
    // open on first use, each by the transport the options choose.
    channel create_channel(std::size_t buffer_size = 64);

    const std::string& address() const noexcept;
    bool connected() const noexcept;
    // Waits until connected (after a loss, the next reconnect); false if not within timeout.
    bool wait_connected(std::chrono::milliseconds timeout);

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

}  // namespace shmchan
