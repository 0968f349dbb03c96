#include "shmchan/shm/error.hpp"

namespace shmchan::shm {

const char* to_string(fault f) noexcept {
    switch (f) {
        case fault::missing: return "missing";
        case fault::permission_denied: return "permission_denied";
        case fault::no_space: return "no_space";
        case fault::bad_name: return "bad_name";
        case fault::invalid_argument: return "invalid_argument";
        case fault::corrupt: return "corrupt";
        case fault::system_error: return "system_error";
    }
    return "unknown";
}

}  // namespace shmchan::shm
