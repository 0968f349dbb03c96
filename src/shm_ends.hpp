// The shared-memory transport's ends (shm_writer.cpp, shm_reader.cpp): records in the
// segment's ring, read and written in place.
#pragma once

#include <memory>

#include "ends.hpp"
#include "shmchan/shm/segment.hpp"

namespace shmchan::detail {

// An end over `seg`. claim_now: claim it here (nullptr when it is already claimed); else it
// claims on first use, as the creator's ends do.
std::unique_ptr<writer_impl> shm_writer_end(std::shared_ptr<shm::segment> seg, const channel_options& opt,
                                            bool claim_now);
std::unique_ptr<reader_impl> shm_reader_end(std::shared_ptr<shm::segment> seg, const channel_options& opt,
                                            bool claim_now);

}  // namespace shmchan::detail
