// `shmchan engine` as a process of its own on a free loopback port, and its GET /status.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "process.hpp"

namespace shmchan::test {

struct engine_process {
    child proc;
    std::string url;  // ws://127.0.0.1:PORT (wss:// with --tls-cert)
    std::uint16_t port = 0;

    // `shmchan engine --listen 127.0.0.1:0` and `extra_args`; throws std::runtime_error when
    // the engine does not print its address within 30 s.
    explicit engine_process(const std::vector<std::string>& extra_args = {});
};

// The "listening on ws://..." (or wss://) line of an engine started as `child` with its stderr read too
// (empty after a few other lines): a notice of orphaned segments the engine removed at start,
// or its warning about a non-loopback address, may come before it.
std::string listening_line(child& eng);

// GET /status of the engine at `port`, parsed (null when there is no answer).
nlohmann::json engine_status(std::uint16_t port);
// Its count of live channels, or -1.
long engine_channels(std::uint16_t port);

}  // namespace shmchan::test
