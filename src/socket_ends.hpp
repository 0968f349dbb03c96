#pragma once
#include <memory>
#include <string>

#include "ends.hpp"
#include "shmchan/channel_ref.hpp"

namespace shmchan::detail {
// Connect to the engine's channel socket for the ref's end. Throw shmchan::error
// (engine_unreachable, segment_missing for 404, wrong_direction for 403, ...).
std::unique_ptr<writer_impl> open_socket_writer(const channel_ref& ref, const std::string& engine);
std::unique_ptr<reader_impl> open_socket_reader(const channel_ref& ref, const std::string& engine);
}  // namespace shmchan::detail
