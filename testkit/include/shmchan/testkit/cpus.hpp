// The CPUs this process may run on (its affinity: taskset, a cpuset), in order. Shared by the
// benchmarks' --pin and the tests that pin ends to CPUs.
#pragma once

#include <sched.h>

#include <vector>

namespace shmchan::testkit {

// Empty when the affinity cannot be read.
inline std::vector<int> allowed_cpus() {
    cpu_set_t s;
    std::vector<int> out;
    if (::sched_getaffinity(0, sizeof s, &s) != 0) return out;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &s)) out.push_back(c);
    return out;
}

}  // namespace shmchan::testkit
