#include "ws_client.hpp"

#include <vector>

namespace shmchan::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

engine_address parse_engine_url(const std::string& url) {
    std::string rest;
    if (url.rfind("ws://", 0) == 0) rest = url.substr(5);
    else throw error(errc::invalid_argument, "engine address must look like ws://host:port, got \"" + url + "\"");
    engine_address a;
    const auto slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    a.base = slash == std::string::npos ? "" : rest.substr(slash);
    while (!a.base.empty() && a.base.back() == '/') a.base.pop_back();
    const auto colon = hostport.rfind(':');
    if (colon == std::string::npos) {
        a.host = hostport;
        a.port = "80";
    } else {
        a.host = hostport.substr(0, colon);
        a.port = hostport.substr(colon + 1);
    }
    if (a.host.empty() || a.port.empty())
        throw error(errc::invalid_argument, "engine address must look like ws://host:port, got \"" + url + "\"");
    return a;
}

ws_client::ws_client(const std::string& url, const std::string& target, std::chrono::milliseconds timeout) {
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
    beast::get_lowest_layer(ws_).async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
        ec = e;
        done = true;
    });
    if (!run_until([&] { return done; }, until) || ec)
        throw error(errc::engine_unreachable, "no engine at " + url + ": " +
                                                  (ec ? ec.message() : std::string("connect timed out")));
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true));
    done = false;
    websocket::response_type& res = response_;
    ws_.async_handshake(res, a.host + ":" + a.port, a.base + target, [&](beast::error_code e) {
        ec = e;
        done = true;
    });
    if (!run_until([&] { return done; }, until))
        throw error(errc::engine_unreachable, "engine at " + url + " did not answer the upgrade in time");
    if (ec) {
        // No answer at all (the connection was reset or closed before a response): the engine
        // died or is going away, which is not a refusal.
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
            default:
                throw error(errc::protocol_error, "engine refused the upgrade to " + target + ": " +
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

void ws_client::shutdown() noexcept {
    beast::error_code ignore;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignore);
    beast::get_lowest_layer(ws_).socket().close(ignore);
}

}  // namespace shmchan::detail
