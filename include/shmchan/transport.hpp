// Which path an end takes to its channel.
#pragma once

namespace shmchan {

// How an end opened from a ref reaches its channel.
enum class transport {
    automatic,  // shared memory when the segment is on this host and reachable, else socket
    shm,        // shared memory only
    socket,     // the engine's channel socket (as stock iii SDKs do)
};

}  // namespace shmchan
