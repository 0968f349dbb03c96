// The run plan: which figures, pilot runs that size each (transport, figure), interleaved
// rounds in a rotating order, then the report.
#pragma once

#include <string>
#include <vector>

namespace shmchan_bench {

struct options;

// Runs the suite and writes the report; the exit status (0, 1 on any failed run, 130).
int run_suite(const options& o, const std::vector<std::string>& argv);
// --list: the transports and what each does.
int list_transports();

}  // namespace shmchan_bench
