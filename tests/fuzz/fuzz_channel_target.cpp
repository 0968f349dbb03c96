// Fuzzes route_target (src/engine/protocol.cpp): the request target of an HTTP request to the
// engine -> status, worker socket, telemetry socket, a channel end, or an HTTP error.
//   Never throws. An error is 400, 404 or 414 with a printable one-line body. A channel route
//   has a canonical (lower-case) UUID id, and the URL rebuilt from it (as the SDKs build
//   channel URLs) routes to the same channel, key and direction. Only an upgrade reaches a
//   socket; a target above max_target_bytes is always 414.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/protocol.hpp"
#include "ids.hpp"

namespace d = shmchan::detail;

namespace {
[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_channel_target: %s\n", what);
    std::abort();
}
bool printable_ascii(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) return false;
    return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const bool upgrade = data[0] & 1;
    const std::string_view target(reinterpret_cast<const char*>(data + 1), size - 1);
    d::route r;
    try {
        r = d::route_target(target, upgrade);
    } catch (...) {
        fail("route_target threw");
    }
    if (target.size() > d::max_target_bytes && (r.what != d::route::kind::error || r.status != 414))
        fail("an overlong target was not refused with 414");
    switch (r.what) {
        case d::route::kind::error:
            if (r.status != 400 && r.status != 404 && r.status != 414) fail("unexpected HTTP status");
            if (r.message.empty() || !printable_ascii(r.message)) fail("error body empty or not printable");
            break;
        case d::route::kind::status:
            if (upgrade) fail("an upgrade routed to /status");
            break;
        case d::route::kind::worker:
        case d::route::kind::otel:
            if (!upgrade) fail("a plain request routed to a socket");
            break;
        case d::route::kind::channel: {
            if (!upgrade) fail("a plain request routed to a channel");
            const auto id = d::parse_uuid(r.channel_id);
            if (!id || d::format_uuid(id->data()) != r.channel_id) fail("channel id not a canonical UUID");
            const std::string again = "/ws/channels/" + r.channel_id + "?key=" + d::format_uuid(r.key.data()) +
                                      "&dir=" + (r.read ? "read" : "write");
            const d::route s = d::route_target(again, true);
            if (s.what != d::route::kind::channel || s.channel_id != r.channel_id || s.key != r.key || s.read != r.read)
                fail("the rebuilt channel URL routes elsewhere");
            break;
        }
    }
    return 0;
}
