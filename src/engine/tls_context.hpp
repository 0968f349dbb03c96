// The engine's side of wss://: its certificate and key, and, with a CA file, the client
// certificates it requires (mutual TLS). The client side: src/tls.hpp.
#pragma once

#include <memory>

#include "net_stream.hpp"
#include "shmchan/engine.hpp"

namespace shmchan::detail {

// The server context for the engine's options, or null when they ask for no TLS. Throws
// error(invalid_argument) naming a file that cannot be read or used, or a certificate without
// its key.
std::shared_ptr<boost::asio::ssl::context> server_tls_context(const engine_options& opt);

}  // namespace shmchan::detail
