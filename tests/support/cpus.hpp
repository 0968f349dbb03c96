// The CPUs this thread may run on, and pinning it to one of them for a while (the tests of the
// ends' cpu hints, which need two ends on the same CPU or on two).
#pragma once

#include <sched.h>

#include "shmchan/testkit/cpus.hpp"

namespace shmchan::test {

using testkit::allowed_cpus;

// Pins the calling thread to `cpu` while it lives, then gives it back the CPUs it had.
class pinned_to {
public:
    explicit pinned_to(int cpu) {
        had_ = ::sched_getaffinity(0, sizeof old_, &old_) == 0;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        ok_ = had_ && ::sched_setaffinity(0, sizeof one, &one) == 0;
    }
    ~pinned_to() {
        if (had_) ::sched_setaffinity(0, sizeof old_, &old_);
    }
    pinned_to(const pinned_to&) = delete;
    pinned_to& operator=(const pinned_to&) = delete;
    bool ok() const noexcept { return ok_; }

private:
    cpu_set_t old_{};
    bool had_ = false, ok_ = false;
};

}  // namespace shmchan::test
