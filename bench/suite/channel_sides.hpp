// The four sides over shmchan channel ends, shared by the shared-memory transports
// (shmchan-loan, shmchan-write) and the engine's socket path (engine-socket): a message is
// `payload` bytes of binary chunks, sent as one loan or one write().
#pragma once

#include "support.hpp"

#include <shmchan/shmchan.hpp>

namespace shmchan_bench::channel_sides {

enum class send_mode { loan, write };

// Consumer: every chunk digested in place (a view into the ring, or the socket's frame
// buffer), exactly messages * payload bytes, then the clean end.
side_result consume(shmchan::reader& r, const run_spec& spec);
// Producer: loan = fill the loaned region in place and commit; write = fill a private buffer
// and writer.write() it. Closes the stream.
side_result produce(shmchan::writer& w, const run_spec& spec, send_mode mode);
// Latency: busy_wait spins on try_next()/try_loan()/try_write(); otherwise the blocking calls
// (the ends should then be opened with spin_us = 0).
side_result ping(shmchan::writer& out, shmchan::reader& in, const run_spec& spec, send_mode mode);
side_result pong(shmchan::reader& in, shmchan::writer& out, const run_spec& spec, send_mode mode);

}  // namespace shmchan_bench::channel_sides
