// A blocking-with-deadline WebSocket client on a private io_context: what the socket
// transport's ends use. Not thread-safe: one end, one thread.
#pragma once

#include <utility>  // before Asio (Boost 1.74's C++20 headers need it)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "net_stream.hpp"
#include "shmchan/error.hpp"
#include "shmchan/tls.hpp"
#include "waiting.hpp"

namespace shmchan::detail {

struct engine_address {
    bool tls = false;  // wss://
    std::string host;
    std::string port;
    std::string base;  // path prefix, without a trailing '/'
};
// "ws://host:port[/path]" or "wss://..."; throws error(invalid_argument).
engine_address parse_engine_url(const std::string& url);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455's GUID)); empty
// if OpenSSL fails.
std::string sec_websocket_accept(std::string_view key);

class ws_client {
public:
    using stream = boost::beast::websocket::stream<net_stream>;

    // Connects (with TLS for wss://, the engine's certificate verified) and upgrades. Throws
    // error: engine_unreachable (no answer, or TLS failed: the message says why),
    // segment_missing (HTTP 404), wrong_direction (403), protocol_error (anything else).
    //
    // upgrade::raw: the upgrade is done here, not by Beast, for an end that reads and writes its
    // own frames after it (the socket writer): whatever the engine sent right after its answer
    // (a refusal's close frame can come in the same segment) is kept for take_early_bytes()
    // instead of staying in Beast's own buffer, out of that end's reach.
    enum class upgrade : std::uint8_t { beast, raw };
    ws_client(const std::string& url, const std::string& target, std::chrono::milliseconds timeout,
              const tls_client_options& tls = {}, upgrade how = upgrade::beast);

    stream& ws() { return ws_; }
    // The engine's answer to the upgrade (its headers say what the end may send).
    const boost::beast::websocket::response_type& upgrade_response() const { return response_; }
    boost::asio::io_context& ioc() { return ioc_; }
    // upgrade::raw: the bytes read past the engine's answer (the start of its first frames).
    std::string take_early_bytes() { return std::exchange(early_, {}); }

    // Runs the io_context until `done` or the deadline (false then).
    template <class Pred>
    bool run_until(Pred done, const deadline& dl) {
        while (!done()) {
            ioc_.restart();
            if (dl.infinite()) {
                ioc_.run_one();
            } else {
                const auto now = clock::now();
                if (now >= dl.at()) return false;
                ioc_.run_one_for(dl.at() - now);
            }
        }
        return true;
    }
    void poll() {
        ioc_.restart();
        ioc_.poll();
    }
    void shutdown() noexcept;  // drops the TCP connection at once

private:
    void handshake_tls(const engine_address& a, const std::string& url, const tls_client_options& tls,
                       const deadline& until);
    boost::beast::error_code upgrade_raw(const engine_address& a, const std::string& target, const deadline& until,
                                         bool& answered);

    boost::asio::io_context ioc_;
    stream ws_{ioc_};
    boost::beast::websocket::response_type response_;
    std::string early_;
};

}  // namespace shmchan::detail
