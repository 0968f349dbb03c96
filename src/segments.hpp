// The calls into the shm layer's segments, with its faults turned into shmchan::error (the
// shm layer knows nothing of the public error codes).
#pragma once

#include <memory>
#include <string>

#include "shmchan/error.hpp"
#include "shmchan/shm/error.hpp"
#include "shmchan/shm/segment.hpp"

namespace shmchan::detail {

errc public_code(shm::fault f) noexcept;

std::shared_ptr<shm::segment> open_segment(const std::string& name);
std::shared_ptr<shm::segment> create_segment(const std::string& name, std::size_t capacity,
                                             const shm::segment_identity& id);

// Maps the whole segment into this process (shm::segment::prefault) when an end is claimed
// here, for segments up to 1 GiB, unless `wanted` is false (channel_options::prefault) or
// SHMCHAN_PREFAULT=0 (the benchmarks' A/B): the first pass round a large ring then costs no
// page fault per page (docs/benchmarks.md, "Prefaulted segments").
void prefault(const shm::segment& seg, bool for_write, bool wanted) noexcept;

}  // namespace shmchan::detail
