// Channel ends over the engine's channel socket (what stock iii SDKs use), behind the same
// writer/reader interfaces as the shared-memory ends: socket_writer.cpp, socket_reader.cpp.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "ends.hpp"
#include "shmchan/channel_ref.hpp"
#include "shmchan/tls.hpp"

namespace shmchan::detail {
// Connect to the engine's channel socket for the ref's end. Throw shmchan::error
// (engine_unreachable, segment_missing for 404, wrong_direction for 403, ...).
std::unique_ptr<writer_impl> open_socket_writer(const channel_ref& ref, const std::string& engine,
                                                const tls_client_options& tls = {});
std::unique_ptr<reader_impl> open_socket_reader(const channel_ref& ref, const std::string& engine,
                                                std::size_t max_held = 1, const tls_client_options& tls = {});

// The channel socket's path for the ref's end.
inline std::string channel_socket_target(const channel_ref& ref) {
    return "/ws/channels/" + ref.channel_id + "?key=" + ref.access_key + "&dir=" + to_string(ref.dir);
}
inline constexpr std::chrono::seconds socket_connect_timeout{10};
}  // namespace shmchan::detail
