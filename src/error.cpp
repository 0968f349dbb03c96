#include "shmchan/error.hpp"

namespace shmchan {

const char* to_string(errc e) noexcept {
    switch (e) {
        case errc::ok: return "ok";
        case errc::would_block: return "would_block";
        case errc::timeout: return "timeout";
        case errc::invalid_ref: return "invalid_ref";
        case errc::wrong_direction: return "wrong_direction";
        case errc::bad_key: return "bad_key";
        case errc::already_claimed: return "already_claimed";
        case errc::segment_missing: return "segment_missing";
        case errc::no_space: return "no_space";
        case errc::permission_denied: return "permission_denied";
        case errc::peer_lost: return "peer_lost";
        case errc::peer_closed: return "peer_closed";
        case errc::aborted: return "aborted";
        case errc::closed: return "closed";
        case errc::too_large: return "too_large";
        case errc::corrupt: return "corrupt";
        case errc::invalid_argument: return "invalid_argument";
        case errc::system_error: return "system_error";
        case errc::engine_unreachable: return "engine_unreachable";
        case errc::protocol_error: return "protocol_error";
        case errc::forked: return "forked";
        case errc::held_limit: return "held_limit";
        case errc::data_lost: return "data_lost";
    }
    return "unknown";
}

namespace {
class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "shmchan"; }
    std::string message(int v) const override {
        switch (static_cast<errc>(v)) {
            case errc::ok: return "success";
            case errc::would_block: return "operation would block";
            case errc::timeout: return "timed out";
            case errc::invalid_ref: return "invalid channel ref";
            case errc::wrong_direction: return "ref is for the other direction of the channel";
            case errc::bad_key: return "access key does not match the channel";
            case errc::already_claimed: return "this end of the channel is already claimed";
            case errc::segment_missing: return "channel segment does not exist";
            case errc::no_space: return "not enough space in /dev/shm for the channel";
            case errc::permission_denied: return "permission denied on the channel segment";
            case errc::peer_lost: return "peer process died";
            case errc::peer_closed: return "reader closed the channel";
            case errc::aborted: return "stream aborted by the writer";
            case errc::closed: return "channel end already closed";
            case errc::too_large: return "record too large for the channel";
            case errc::corrupt: return "channel segment is corrupt";
            case errc::invalid_argument: return "invalid argument";
            case errc::system_error: return "system error";
            case errc::engine_unreachable: return "engine unreachable";
            case errc::protocol_error: return "protocol error";
            case errc::forked: return "this end belongs to the process that claimed it (before a fork)";
            case errc::held_limit: return "the reader holds as many items as max_held allows: release one first";
            case errc::data_lost: return "records were overwritten before this reader got them (overflow drop-oldest: it fell a ring behind)";
        }
        return "unknown shmchan error";
    }
};
}  // namespace

const std::error_category& error_category() noexcept {
    static const category c;
    return c;
}

}  // namespace shmchan
