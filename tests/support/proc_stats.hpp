// What /proc says about a process: descriptors, memory, threads, mapped segments; and the
// descriptor limit raised for tests that hold many ends.
#pragma once

#include <cstddef>

#include <sys/resource.h>
#include <sys/types.h>

namespace shmchan::test {

struct proc_sample {
    int fds = -1;
    long rss_kib = -1, hwm_kib = -1;
    int threads = -1;
    int shm_maps = -1;  // mappings of shmchan segments
};
// A sample of `pid` now (-1 where /proc could not be read). For this process the descriptor
// of /proc/self/fd read meanwhile is not counted.
proc_sample sample_process(pid_t pid);

// Minor page faults this process took so far (getrusage).
long minor_faults();
// The minor faults taken writing one byte into each page of [p, p + n).
long faults_writing_pages(void* p, std::size_t n);

// Raises the soft RLIMIT_NOFILE to the hard limit (children inherit it); the soft limit now.
rlim_t raise_fd_limit();

}  // namespace shmchan::test
