// Typed errors. Hot-path calls return std::error_code (never throw); setup calls throw
// shmchan::error, a std::system_error whose code() is one of these and whose what() says
// exactly what went wrong.
#pragma once

#include <string>
#include <system_error>

namespace shmchan {

enum class errc : int {
    ok = 0,
    would_block,      // try_* call: not possible right now
    timeout,          // the deadline passed first
    invalid_ref,      // malformed or forged ref JSON
    wrong_direction,  // a read ref used to open a writer, or the reverse
    bad_key,          // access key does not match the channel
    already_claimed,  // this end of the channel is held by someone else
    segment_missing,  // the channel's shared memory is gone (or never existed here)
    no_space,         // /dev/shm cannot hold the segment
    permission_denied,// the segment belongs to another user
    peer_lost,        // the other end's process died
    peer_closed,      // the reader went away before the writer finished
    aborted,          // the writer aborted the stream (see the reader's abort_reason())
    closed,           // this end was already closed
    too_large,        // a single message or loan larger than one record can hold
    corrupt,          // the segment holds impossible values (bug, version skew, or hostile peer)
    invalid_argument, // a bad option value
    system_error,     // an unexpected OS failure
    engine_unreachable,  // no engine answers at the given address
    protocol_error,   // the engine or a peer broke the wire protocol
    forked,           // the end was claimed by the parent of this forked process: it is theirs
    held_limit,       // the reader holds channel_options::max_held items: release one first
    data_lost,        // overflow drop_oldest: records were overwritten before this reader got them
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

// Short stable name of a code, e.g. "peer_lost" (for logs and the command line).
const char* to_string(errc e) noexcept;

class error : public std::system_error {
public:
    error(errc code, const std::string& what) : std::system_error(make_error_code(code), what) {}
    errc kind() const noexcept { return static_cast<errc>(code().value()); }
};

}  // namespace shmchan

template <>
struct std::is_error_code_enum<shmchan::errc> : std::true_type {};
