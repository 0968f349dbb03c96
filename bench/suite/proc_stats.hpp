// What the harness reads about processes and the machine: /proc counters around each run, and
// the probes of the report's header.
#pragma once

#include "harness.hpp"

#include <string>
#include <vector>

namespace shmchan_bench {

// VmHWM (peak RSS, KiB) from a /proc/PID/status file; 0 if unreadable.
long vm_hwm_kib(const std::string& status_path);
// Busy CPU seconds of the whole machine so far (/proc/stat).
double machine_busy_s();
// User + system CPU seconds of a process so far (/proc/PID/stat).
double process_cpu_s(int pid);
// ... and of this one.
double self_cpu_s();

// CPUs, model, kernel, host, date and the command line, for the report.
machine_info probe_machine(const std::vector<std::string>& argv);
// The placement probe (see machine_info::line_rtt_ns).
double line_round_trip_ns();

}  // namespace shmchan_bench
