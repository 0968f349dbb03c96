// The shared-memory transport's ends (shm_writer.cpp, shm_reader.cpp): records in the
// segment's ring, read and written in place.
#pragma once

#include <memory>

#include "ends.hpp"
#include "shmchan/shm/segment.hpp"

namespace shmchan::detail {

// Shared by the creator's two ends. When both are gone and neither end of the channel was
// ever claimed, nobody can be using the channel: it is finished and its segment removed (a
// ref handed out and never used then finds it missing). Without this, a channel created and
// dropped unused kept its reserved pages in /dev/shm as long as its creator lived.
class creator_guard {
public:
    explicit creator_guard(std::shared_ptr<shm::segment> seg) : seg_(std::move(seg)) {}
    ~creator_guard();
    creator_guard(const creator_guard&) = delete;
    creator_guard& operator=(const creator_guard&) = delete;

private:
    std::shared_ptr<shm::segment> seg_;
};

// An end over `seg`. claim_now: claim it here (nullptr when it is already claimed); else it
// claims on first use, as the creator's ends do (which share `guard`).
std::unique_ptr<writer_impl> shm_writer_end(std::shared_ptr<shm::segment> seg, const channel_options& opt,
                                            bool claim_now, std::shared_ptr<creator_guard> guard = {});
// `index`: which of the segment's readers (\pre below its validated reader count).
std::unique_ptr<reader_impl> shm_reader_end(std::shared_ptr<shm::segment> seg, const channel_options& opt,
                                            bool claim_now, std::shared_ptr<creator_guard> guard = {},
                                            std::size_t index = 0);

}  // namespace shmchan::detail
