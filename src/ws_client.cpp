#include "ws_client.hpp"

#include <openssl/evp.h>

#include <vector>

#include "ids.hpp"
#include "tls.hpp"
#include "wire/frame_meta_json.hpp"  // base64_encode

namespace shmchan::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

engine_address parse_engine_url(const std::string& url) {
    std::string rest;
    engine_address a;
    if (url.rfind("ws://", 0) == 0) rest = url.substr(5);
    else if (url.rfind("wss://", 0) == 0) rest = url.substr(6), a.tls = true;
    else throw error(errc::invalid_argument, "engine address must look like ws://host:port or wss://host:port, got \"" + url + "\"");
    const auto slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    a.base = slash == std::string::npos ? "" : rest.substr(slash);
    while (!a.base.empty() && a.base.back() == '/') a.base.pop_back();
    const auto colon = hostport.rfind(':');
    if (colon == std::string::npos) {
        a.host = hostport;
        a.port = a.tls ? "443" : "80";
    } else {
        a.host = hostport.substr(0, colon);
        a.port = hostport.substr(colon + 1);
    }
    if (a.host.empty() || a.port.empty())
        throw error(errc::invalid_argument, "engine address must look like ws://host:port or wss://host:port, got \"" + url + "\"");
    return a;
}

ws_client::ws_client(const std::string& url, const std::string& target, std::chrono::milliseconds timeout,
                     const tls_client_options& tls, upgrade how) {
    const engine_address a = parse_engine_url(url);
    const deadline until(timeout);
    beast::error_code ec;
    bool done = false;

    // A numeric address needs no resolver: Asio's asynchronous resolver starts a thread that
    // lives as long as the io_context, i.e. one idle thread per socket end.
    std::vector<tcp::endpoint> endpoints;
    beast::error_code numeric;
    const auto addr = asio::ip::make_address(a.host, numeric);
    const bool port_digits = a.port.size() <= 5 && a.port.find_first_not_of("0123456789") == std::string::npos;
    if (!numeric && port_digits && std::stoul(a.port) <= 65535) {
        endpoints.emplace_back(addr, static_cast<unsigned short>(std::stoul(a.port)));
    } else {
        tcp::resolver resolver(ioc_);
        resolver.async_resolve(a.host, a.port, [&](beast::error_code e, tcp::resolver::results_type r) {
            ec = e;
            for (const auto& entry : r) endpoints.push_back(entry.endpoint());
            done = true;
        });
        if (!run_until([&] { return done; }, until) || ec)
            throw error(errc::engine_unreachable, "cannot resolve engine host " + a.host + ": " +
                                                      (ec ? ec.message() : std::string("timed out")));
        done = false;
    }
    ws_.next_layer().tcp().async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
        ec = e;
        done = true;
    });
    if (!run_until([&] { return done; }, until) || ec)
        throw error(errc::engine_unreachable, "no engine at " + url + ": " +
                                                  (ec ? ec.message() : std::string("connect timed out")));
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true));
    if (a.tls) handshake_tls(a, url, tls, until);
    done = false;
    websocket::response_type& res = response_;
    if (how == upgrade::raw) {
        ec = upgrade_raw(a, target, until, done);
    } else {
        ws_.async_handshake(res, a.host + ":" + a.port, a.base + target, [&](beast::error_code e) {
            ec = e;
            done = true;
        });
        run_until([&] { return done; }, until);
    }
    if (!done) throw error(errc::engine_unreachable, "engine at " + url + " did not answer the upgrade in time");
    if (ec) {
        // No answer at all (the connection was reset or closed before a response): the engine
        // died or is going away, which is not a refusal.
        // TLS failing after the handshake (TLS 1.3 refuses a client certificate only then).
        if (a.tls && is_tls_error(ec))
            throw error(errc::engine_unreachable,
                        "TLS with the engine at " + url + " failed: " + tls_failure(*ws_.next_layer().tls(), ec));
        if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
            ec.category() == asio::error::get_system_category() ||
            ec.category() == asio::error::get_misc_category())
            throw error(errc::engine_unreachable, "engine at " + url +
                                                      " closed the connection during the upgrade: " + ec.message());
        const std::string body = res.body();
        switch (res.result()) {
            case http::status::not_found:
                throw error(errc::segment_missing,
                            "engine: channel not found (unknown channel, wrong key, or finished)");
            case http::status::forbidden:
                throw error(errc::wrong_direction, "engine: " + body);
            case http::status::bad_request:
                if (body.rfind(tls_only_body, 0) == 0)
                    throw error(errc::engine_unreachable, "the engine at " + url + " serves TLS only: connect with wss://");
                [[fallthrough]];
            default:  // the target without its query: it holds the access key
                throw error(errc::protocol_error, "engine refused the upgrade to " + target.substr(0, target.find('?')) + ": " +
                                                      ec.message() + (body.empty() ? "" : " (" + body + ")"));
        }
    }
    beast::get_lowest_layer(ws_).expires_never();
    ws_.read_message_max(std::size_t{64} << 20);
    ws_.auto_fragment(false);
    // A client masks what it sends, through this buffer: at the default 4 KiB a 1 MiB frame
    // would cost 256 send calls.
    ws_.write_buffer_bytes(std::size_t{1} << 20);
}

std::string sec_websocket_accept(std::string_view key) {
    std::string salted(key);
    salted += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455's GUID
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(salted.data(), salted.size(), md, &n, EVP_sha1(), nullptr) != 1) return {};
    return base64_encode(std::as_bytes(std::span(md, n)));
}

// The upgrade as Beast's handshake does it (RFC 6455 4.1), but reading the answer into early_,
// so that what follows it stays ours. `answered` is false when the deadline came first.
beast::error_code ws_client::upgrade_raw(const engine_address& a, const std::string& target, const deadline& until,
                                         bool& answered) {
    const shm::key nonce = random_key();
    const std::string key = base64_encode(std::as_bytes(std::span(nonce)));
    http::request<http::empty_body> req{http::verb::get, a.base + target, 11};
    req.set(http::field::host, a.host + ":" + a.port);
    req.set(http::field::upgrade, "websocket");
    req.set(http::field::connection, "Upgrade");
    req.set(http::field::sec_websocket_key, key);
    req.set(http::field::sec_websocket_version, "13");
    req.set(http::field::user_agent, "shmchan");
    beast::error_code ec;
    bool done = false;
    http::async_write(ws_.next_layer(), req, [&](beast::error_code e, std::size_t) {
        ec = e;
        done = true;
    });
    if (!run_until([&] { return done; }, until)) return ec;
    if (ec) return answered = true, ec;
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    done = false;
    http::async_read(ws_.next_layer(), buf, parser, [&](beast::error_code e, std::size_t) {
        ec = e;
        done = true;
    });
    if (!run_until([&] { return done; }, until)) return ec;
    answered = true;
    if (ec) return ec;
    response_ = parser.release();
    // The checks of Beast's own handshake, in its order.
    if (response_.version() != 11) return websocket::error::bad_http_version;
    if (response_.result() != http::status::switching_protocols) return websocket::error::upgrade_declined;
    if (!http::token_list{response_[http::field::connection]}.exists("upgrade"))
        return websocket::error::no_connection_upgrade;
    if (!http::token_list{response_[http::field::upgrade]}.exists("websocket"))
        return websocket::error::no_upgrade_websocket;
    const std::string accept = sec_websocket_accept(key);
    if (accept.empty() || response_[http::field::sec_websocket_accept] != accept) return websocket::error::bad_sec_accept;
    const auto early = buf.data();
    early_.assign(static_cast<const char*>(early.data()), early.size());
    return {};
}

// TLS over the connected socket: the engine's certificate must verify against the trusted CAs
// and carry the URL's host name or address.
void ws_client::handshake_tls(const engine_address& a, const std::string& url, const tls_client_options& tls,
                              const deadline& until) {
    ws_.next_layer().start_tls(client_tls_context(tls));
    net_stream::tls_stream& s = *ws_.next_layer().tls();
    expect_server_name(s, a.host);
    beast::error_code ec;
    bool done = false;
    s.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code e) {
        ec = e;
        done = true;
    });
    if (!run_until([&] { return done; }, until))
        throw error(errc::engine_unreachable, "engine at " + url + " did not finish the TLS handshake in time");
    if (ec) throw error(errc::engine_unreachable, "TLS handshake with the engine at " + url + " failed: " + tls_failure(s, ec));
}

void ws_client::shutdown() noexcept {
    beast::error_code ignore;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignore);
    beast::get_lowest_layer(ws_).socket().close(ignore);
}

}  // namespace shmchan::detail
