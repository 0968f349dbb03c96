// What can go wrong setting up a segment. The shm layer knows nothing of channels, engines or
// the public shmchan::errc: src/ translates these where it calls in (src/shm_errors.hpp).
// Hot-path calls of the ring return ring_status instead and never throw.
#pragma once

#include <stdexcept>
#include <string>

namespace shmchan::shm {

enum class fault {
    missing,            // no segment of that name (finished, removed, or on another host)
    permission_denied,  // it belongs to another user
    no_space,           // /dev/shm cannot hold it
    bad_name,           // not a name of the shape segment_name_for() makes
    invalid_argument,   // a size out of range, or the name is taken
    corrupt,            // the header holds impossible values
    system_error,       // any other OS failure
};

const char* to_string(fault f) noexcept;

class error : public std::runtime_error {
public:
    error(fault f, const std::string& what) : std::runtime_error(what), fault_(f) {}
    fault kind() const noexcept { return fault_; }

private:
    fault fault_;
};

}  // namespace shmchan::shm
