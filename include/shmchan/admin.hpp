// Looking after /dev/shm: list the channels there, and remove those nobody can use any more.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "shmchan/channel.hpp"

namespace shmchan {

struct segment_entry {
    std::string name;     // "/shmchan-<id>"
    bool readable = false;
    std::string problem;  // why it could not be inspected (permission, corrupt, ...)
    channel_info info;    // valid when readable
    bool orphaned = false;  // no live process holds or created it: gc removes it
    bool foreign = false;   // not a regular file of this user: never opened, never removed
};

// The folder that holds channel segments ("/dev/shm").
std::string segment_directory();

// Every shmchan segment in /dev/shm, inspected without claiming anything.
std::vector<segment_entry> list_segments();

// Removes orphaned segments not modified for `min_age` (a grace period: a segment that was
// just made is never taken from under a process that is still setting it up), and corrupt
// ones older than a minute, which no running shmchan could be creating; segments of another
// layout version are left alone. Returns what it removed; with dry_run, what it would remove.
std::vector<segment_entry> collect_garbage(bool dry_run = false,
                                           std::chrono::seconds min_age = std::chrono::seconds(10));
// The same, restricted to these channels (ids, or segment names "/shmchan-<id>"): segments of
// other channels are never touched, whatever their state (for hosts shared with others).
std::vector<segment_entry> collect_garbage(const std::vector<std::string>& channel_ids, bool dry_run = false,
                                           std::chrono::seconds min_age = std::chrono::seconds(10));

}  // namespace shmchan
