// Whole writes to a file descriptor.
#pragma once

#include <cstddef>

namespace shmchan::testkit {

// Writes all `n` bytes (retrying short writes and EINTR); false with errno set on an error.
bool write_all(int fd, const void* data, std::size_t n);

}  // namespace shmchan::testkit
