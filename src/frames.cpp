// What every transport says of a frame it cannot take, and the capacity a frame needs.
#include <bit>
#include <string>

#include "ends.hpp"
#include "shmchan/shm/layout.hpp"

namespace shmchan {

std::size_t capacity_for_frame(std::size_t frame_bytes) noexcept {
    if (frame_bytes > shm::max_record_payload - shm::frame_overhead) return 0;  // no ring can
    const std::size_t need = frame_bytes + shm::frame_overhead;
    std::size_t c = shm::min_capacity;
    while (shm::max_payload_for(c) < need) c *= 2;
    return c;
}

namespace detail {

std::error_code writer_impl::refuse_user_header(const frame_meta& meta) {
    if (meta.user.size() <= frame_meta::max_user) return {};
    detail_ = "frame user header of " + std::to_string(meta.user.size()) + " bytes: at most " +
              std::to_string(frame_meta::max_user);
    return errc::invalid_argument;
}

std::error_code writer_impl::check_frame(std::size_t n, const frame_meta& meta) {
    if (auto e = refuse_user_header(meta)) return e;
    if (n > max_frame()) {
        const std::size_t c = capacity_for_frame(n);
        detail_ = "frame of " + std::to_string(n) + " bytes exceeds the largest frame of this channel (" +
                  std::to_string(max_frame()) + " bytes, capacity " + std::to_string(capacity()) + ")";
        detail_ += c ? "; create the channel with capacity >= " + std::to_string(c)
                     : "; no channel holds a frame this large";
        return errc::too_large;
    }
    return {};
}

}  // namespace detail
}  // namespace shmchan
