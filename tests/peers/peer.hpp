// What the test peer's two files share (peer.cpp, peer_commands.cpp).
#pragma once

#include <string>
#include <vector>

#include <shmchan/writer.hpp>

namespace shmchan::peers {

// Closes, waits until the reader has everything, says so: "CLOSED", "DRAINED" or "ERR ...".
int close_and_drain(writer& w);

// The commands of peer_commands.cpp; `a` is the command line after the command's name.
int do_handshake(const std::vector<std::string>& a);
int do_mixed(const std::vector<std::string>& a, bool with_frames);  // mixed, frames
int do_read_file(const std::vector<std::string>& a);
int do_write_file(const std::vector<std::string>& a);
int do_open(const std::vector<std::string>& a, bool as_reader);

}  // namespace shmchan::peers
