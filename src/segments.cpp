#include "segments.hpp"

#include "env_knob.hpp"

namespace shmchan::detail {

errc public_code(shm::fault f) noexcept {
    switch (f) {
        case shm::fault::missing: return errc::segment_missing;
        case shm::fault::permission_denied: return errc::permission_denied;
        case shm::fault::no_space: return errc::no_space;
        case shm::fault::bad_name: return errc::invalid_ref;
        case shm::fault::invalid_argument: return errc::invalid_argument;
        case shm::fault::corrupt: return errc::corrupt;
        case shm::fault::system_error: return errc::system_error;
    }
    return errc::system_error;
}

std::shared_ptr<shm::segment> open_segment(const std::string& name) {
    try {
        return shm::segment::open(name);
    } catch (const shm::error& e) {
        throw error(public_code(e.kind()), e.what());
    }
}

std::shared_ptr<shm::segment> create_segment(const std::string& name, std::size_t capacity,
                                             const shm::segment_identity& id) {
    try {
        return shm::segment::create(name, capacity, id);
    } catch (const shm::error& e) {
        throw error(public_code(e.kind()), e.what());
    }
}

void prefault(const shm::segment& seg, bool for_write, bool wanted) noexcept {
    // Above this the populate would hold the claiming call for over a quarter of a second
    // (about 1 us a page), and a segment that large, made sparse by a hostile creator, would
    // have this process allocate tmpfs pages nobody may ever use.
    constexpr std::size_t prefault_max = std::size_t{1} << 30;
    static const bool on = env_number("SHMCHAN_PREFAULT").value_or(1) != 0;
    // An optimisation only: when it fails, pages fault in as they are touched.
    if (wanted && on && seg.size() <= prefault_max) (void)seg.prefault(for_write);
}

}  // namespace shmchan::detail
