// The client side of wss://: trust (the system's store, or a CA file), the engine's name checked
// against its certificate, and handshake failures in words. The engine's side:
// engine/tls_context.hpp.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "net_stream.hpp"
#include "shmchan/tls.hpp"

namespace shmchan::detail {

// A client context for these options ($SHMCHAN_TLS_CA, _CERT, _KEY fill what is empty), shared
// by every connection with the same files (loading the system store takes milliseconds).
// Throws error(invalid_argument) naming a file that cannot be read or used.
std::shared_ptr<boost::asio::ssl::context> client_tls_context(const tls_client_options& opt);

// Before the handshake: the server name sent (SNI) and the DNS name or IP address the
// engine's certificate must carry.
void expect_server_name(net_stream::tls_stream& s, const std::string& host);

// Why a TLS handshake (or the first bytes after it) failed, in words, e.g.
// "certificate verify failed: self-signed certificate".
std::string tls_failure(net_stream::tls_stream& s, const boost::system::error_code& ec);

// Whether `ec` comes from TLS (OpenSSL) rather than from the connection or HTTP.
bool is_tls_error(const boost::system::error_code& ec);

// The body of the engine's 400 to plain HTTP on a TLS listener (engine/http_session.cpp).
inline constexpr std::string_view tls_only_body = "This engine serves TLS only: connect with wss://";

// Reads a PEM file's readability first, so that a missing file is named as such rather than as
// an OpenSSL decoding error. Throws error(invalid_argument).
void check_readable(const std::string& path, const char* what);

}  // namespace shmchan::detail
