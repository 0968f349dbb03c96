// A named POSIX shared-memory segment holding one channel (control block + ring), mapped
// through Boost.Interprocess. Setup calls throw shm::error.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "shmchan/shm/error.hpp"
#include "shmchan/shm/fault_guard.hpp"
#include "shmchan/shm/layout.hpp"

namespace boost::interprocess {
class mapped_region;
}

namespace shmchan::shm {

using key = std::array<std::uint8_t, key_bytes>;
using uuid = std::array<std::uint8_t, 16>;

struct segment_identity {
    uuid channel_id{};
    key writer_key{};
    key reader_key{};
};

// Where segments live (for space checks and listings).
std::string shm_dir();

class segment {
public:
    // Creates, sizes (pages reserved: a full /dev/shm is fault::no_space here, never SIGBUS
    // later), maps and initialises a segment with mode 0600. `capacity`: ring bytes, a power
    // of two in [min_capacity, max_capacity].
    static std::shared_ptr<segment> create(const std::string& name, std::size_t capacity,
                                           const segment_identity& id);
    // Maps an existing segment and validates its header (magic, version, sizes).
    static std::shared_ptr<segment> open(const std::string& name);

    ~segment();
    segment(const segment&) = delete;
    segment& operator=(const segment&) = delete;

    control_block* control() const noexcept { return cb_; }
    std::byte* data() const noexcept { return reinterpret_cast<std::byte*>(cb_) + data_offset; }
    const std::string& name() const noexcept { return name_; }
    std::size_t size() const noexcept;

    // Someone truncated the file and this process touched the mapping since: it now holds
    // zero pages (fault_guard.hpp) and nothing in it can be trusted.
    bool truncated() const noexcept { return guard_.faulted(); }

    // Removes the name from /dev/shm (mappings stay valid). Idempotent, never throws.
    void unlink() noexcept;

private:
    segment(std::string name, std::unique_ptr<boost::interprocess::mapped_region> region);
    std::string name_;
    std::unique_ptr<boost::interprocess::mapped_region> region_;
    control_block* cb_ = nullptr;
    std::atomic<bool> unlinked_{false};
    guard_token guard_;  // SIGBUS on the mapping becomes truncated(); released before unmapping
};

// Name of the segment of a channel: "/shmchan-<uuid>". Only names of this shape are ever
// opened, so a forged ref cannot point us at another file.
std::string segment_name_for(const std::string& channel_id);
bool is_valid_segment_name(const std::string& name) noexcept;

}  // namespace shmchan::shm
