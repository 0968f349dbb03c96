#include "engine_process.hpp"

#include <arpa/inet.h>
#include <chrono>
#include <netinet/in.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

namespace shmchan::test {

namespace {
std::vector<std::string> engine_argv(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {cli_path(), "engine", "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}
}  // namespace

engine_process::engine_process(const std::vector<std::string>& extra_args)
    : proc(child::spawn(engine_argv(extra_args))) {
    const std::string line = proc.read_line(std::chrono::seconds(30));
    const auto tls = line.find("wss://");
    const auto at = tls != std::string::npos ? tls : line.find("ws://");
    if (at == std::string::npos) throw std::runtime_error("the engine said \"" + line + "\"");
    url = line.substr(at);
    port = static_cast<std::uint16_t>(std::stoul(url.substr(url.rfind(':') + 1)));
}

std::string listening_line(child& eng) {
    std::string line = eng.read_line();
    for (int i = 0; i < 3 && !line.empty() && line.find("listening on ws") == std::string::npos; ++i)
        line = eng.read_line();
    return line;
}

nlohmann::json engine_status(std::uint16_t port) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return {};
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string resp;
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        const std::string req = "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if (::send(s, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
            char tmp[4096];
            for (ssize_t n; (n = ::recv(s, tmp, sizeof tmp, 0)) > 0;) resp.append(tmp, static_cast<std::size_t>(n));
        }
    }
    ::close(s);
    const auto body = resp.find("\r\n\r\n");
    return body == std::string::npos ? nlohmann::json() : nlohmann::json::parse(resp.substr(body + 4), nullptr, false);
}

long engine_channels(std::uint16_t port) {
    const nlohmann::json j = engine_status(port);
    return j.is_object() && j.contains("channels") ? j["channels"].get<long>() : -1;
}

}  // namespace shmchan::test
