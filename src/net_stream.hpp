// A TCP connection that is plain or TLS, chosen at run time: the next layer of every WebSocket
// in shmchan (the engine's sessions, the worker's socket, the socket ends), so that ws:// and
// wss:// share everything above the bytes. Its lowest-layer calls (socket(), expires_*(),
// cancel()) mirror beast::tcp_stream's, so code written for a tcp_stream keeps working.
#pragma once

#include <utility>  // before Asio (Boost 1.74's C++20 headers need it)

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>

#include <memory>
#include <stdexcept>

namespace shmchan::detail {

// A completion condition for asio::async_write of large payloads: each write_some is offered
// all that is left. asio::transfer_all offers 64 KiB at most (its default_max_transfer_size),
// so a 1 MiB record left in 16 sendmsg(2) calls, each a trip through the event loop; the
// kernel takes what fits either way.
struct transfer_all_at_once {
    std::size_t operator()(const boost::system::error_code& ec, std::size_t) const noexcept {
        return ec ? 0 : std::size_t{1} << 30;
    }
};

class net_stream {
public:
    using tcp_stream = boost::beast::tcp_stream;
    using tls_stream = boost::beast::ssl_stream<tcp_stream>;
    using executor_type = tcp_stream::executor_type;

    explicit net_stream(boost::asio::ip::tcp::socket s) : tcp_(std::move(s)) {}
    explicit net_stream(boost::asio::io_context& ioc) : tcp_(ioc) {}
    explicit net_stream(tcp_stream&& s) : tcp_(std::move(s)) {}

    // Wraps the connection in TLS before any byte of it goes through this stream (bytes already
    // read, by beast::async_detect_ssl say, go to the handshake). The handshake is the caller's.
    void start_tls(std::shared_ptr<boost::asio::ssl::context> ctx) {
        ctx_ = std::move(ctx);
        tls_ = std::make_unique<tls_stream>(std::move(tcp_), *ctx_);
    }
    bool is_tls() const noexcept { return tls_ != nullptr; }
    tls_stream* tls() noexcept { return tls_.get(); }

    tcp_stream& tcp() noexcept { return tls_ ? tls_->next_layer() : tcp_; }
    // The bare socket, for a plain connection only (a TLS one's bytes are not the stream's).
    boost::asio::ip::tcp::socket release_socket() {
        if (tls_) throw std::logic_error("net_stream::release_socket() on a TLS connection");
        return tcp_.release_socket();
    }
    boost::asio::ip::tcp::socket& socket() noexcept { return tcp().socket(); }
    void expires_never() { tcp().expires_never(); }
    void expires_after(std::chrono::steady_clock::duration d) { tcp().expires_after(d); }
    void cancel() { tcp().cancel(); }
    executor_type get_executor() noexcept { return tcp().get_executor(); }

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& b, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
            [this](auto handler, const MutableBuffers& bufs) {
                if (tls_) tls_->async_read_some(bufs, std::move(handler));
                else tcp_.async_read_some(bufs, std::move(handler));
            },
            token, b);
    }
    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& b, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
            [this](auto handler, const ConstBuffers& bufs) {
                if (tls_) tls_->async_write_some(bufs, std::move(handler));
                else tcp_.async_write_some(bufs, std::move(handler));
            },
            token, b);
    }
    template <class MutableBuffers>
    std::size_t read_some(const MutableBuffers& b, boost::beast::error_code& ec) {
        return tls_ ? tls_->read_some(b, ec) : tcp_.read_some(b, ec);
    }
    template <class MutableBuffers>
    std::size_t read_some(const MutableBuffers& b) {
        return tls_ ? tls_->read_some(b) : tcp_.read_some(b);
    }
    template <class ConstBuffers>
    std::size_t write_some(const ConstBuffers& b, boost::beast::error_code& ec) {
        return tls_ ? tls_->write_some(b, ec) : tcp_.write_some(b, ec);
    }
    template <class ConstBuffers>
    std::size_t write_some(const ConstBuffers& b) {
        return tls_ ? tls_->write_some(b) : tcp_.write_some(b);
    }

    // What the WebSocket stream calls to end the connection (found by argument-dependent
    // lookup): TLS sends its close_notify first.
    friend void teardown(boost::beast::role_type role, net_stream& s, boost::beast::error_code& ec) {
        using boost::beast::websocket::teardown;
        if (s.tls_) teardown(role, *s.tls_, ec);
        else teardown(role, s.tcp_, ec);
    }
    template <class Handler>
    friend void async_teardown(boost::beast::role_type role, net_stream& s, Handler&& h) {
        using boost::beast::websocket::async_teardown;
        if (s.tls_) async_teardown(role, *s.tls_, std::forward<Handler>(h));
        else async_teardown(role, s.tcp_, std::forward<Handler>(h));
    }
    // A WebSocket timeout closes the socket through this.
    friend void beast_close_socket(net_stream& s) {
        boost::beast::error_code ignore;
        s.socket().close(ignore);
    }

private:
    tcp_stream tcp_;  // moved into tls_ by start_tls()
    std::shared_ptr<boost::asio::ssl::context> ctx_;  // outlives tls_
    std::unique_ptr<tls_stream> tls_;
};

}  // namespace shmchan::detail
