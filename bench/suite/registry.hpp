// The transport table: every transport of the suite in the report's order, and the short names
// --transports accepts. The harness makes its transports from it, a side child its one.
#pragma once

#include "transport.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace shmchan_bench {

struct entry {
    std::string name;
    std::function<std::unique_ptr<transport>()> make;
};

std::vector<entry> registry();
const std::map<std::string, std::string>& aliases();

}  // namespace shmchan_bench
