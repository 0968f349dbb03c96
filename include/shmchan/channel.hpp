// Channels, as in the iii seed documents: create one, write into its writer, pass the
// reader ref (JSON) to another process, and read there incrementally.
//
//   auto ch = shmchan::create_channel();
//   send_to_other_process(ch.reader_ref.dump());
//   ch.writer.write(bytes); ch.writer.close();
//   // elsewhere:
//   auto r = shmchan::open_reader(shmchan::channel_ref::parse(text));
//   for (auto chunk : r.chunks()) consume(chunk);
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "shmchan/channel_ref.hpp"
#include "shmchan/error.hpp"
#include "shmchan/reader.hpp"
#include "shmchan/tls.hpp"
#include "shmchan/transport.hpp"
#include "shmchan/writer.hpp"

namespace shmchan {


struct channel_options {
    // Ring bytes, rounded up to a power of two (at least 4 KiB). One record holds at most
    // about half of it; longer writes are split.
    std::size_t capacity = std::size_t{4} << 20;
    // Microseconds an end busy-waits for data or room before sleeping on the futex
    // (latency against CPU; 0 sleeps at once).
    std::uint32_t spin_us = 50;
    // An end whose waits keep ending soon after it went to sleep (its peer runs a little
    // slower than it: a sleep and its wake-up cost ~50-100 us here) learns to spin through
    // such gaps, up to this many microseconds; gaps longer than this put it back to spin_us.
    // At or below spin_us (or spin_us 0): a fixed spin.
    std::uint32_t spin_max_us = 250;
    // Loans of at least loan_claim_min bytes may be zeroed with full-line stores before they are
    // handed out (claim_for_writing, shmchan/memory.hpp), so that filling them does not first
    // fetch every cache line from the reader's core. With the two cores far apart that made
    // loans ~3x faster to fill (from 16 KiB up; below, it cost ~20%); with them near it cost
    // 25-50%. `adaptive` measures both ways as the writer goes (loan to commit, per byte) and
    // uses the cheaper one, trying the other every 32 loans. Writers whose loans are filled by
    // read(2), memcpy or a device (full-line stores themselves) gain nothing: `never`.
    // SHMCHAN_LOAN_CLAIM=adaptive|always|never and SHMCHAN_LOAN_CLAIM_MIN=BYTES replace the
    // defaults (A/B runs). See docs/benchmarks.md.
    enum class claim_policy { adaptive, always, never };
    claim_policy loan_claim = claim_policy::adaptive;
    std::size_t loan_claim_min = std::size_t{16} << 10;
    // For ends opened from refs: which path, and the engine serving the socket path
    // ("ws://127.0.0.1:49134"). SHMCHAN_TRANSPORT=auto|shm|socket overrides `automatic`.
    transport via = transport::automatic;
    std::string engine;
    // For a wss:// engine: whom to trust, and a client certificate if it asks for one.
    tls_client_options tls;
    // Items a reader may keep alive at once. 1: each next() releases the previous item. More:
    // items live until released or destroyed, in any order and from any thread (the ring frees
    // the released prefix), and next() says errc::held_limit when this many are alive.
    std::size_t max_held = 1;
    // Readers of the channel (1 to 64), each with its own ref and key; each sees every record,
    // in place. create_channel() only.
    std::size_t readers = 1;
    // When the ring is full of records some reader has not released (create_channel() only):
    // `block` (lossless) makes the writer wait for every reader still attached (one that
    // closed or died stops counting; one not claimed yet counts from the start, so it misses
    // nothing). docs/readers.md.
    enum class overflow_policy { block, drop_oldest };
    overflow_policy overflow = overflow_policy::block;
    // Map the whole segment (up to 1 GiB) into this process when an end is claimed, so that the
    // first pass round the ring takes no page fault per page. false: pages fault in as they are
    // first touched, spread over that pass (an event loop serving many channels, which must
    // not stall ~0.25 ms per MiB when one end is claimed). SHMCHAN_PREFAULT=0 turns it off for
    // every end.
    bool prefault = true;
    // This end wakes its peer with a locked read-modify-write on each commit (a writer) or
    // release (a reader), so that the peer's sleeps need no membarrier, an interrupt to every
    // CPU (~10 us on a VM). Worth it for an end that commits or releases at most some tens of
    // thousands of times a second while its peer sleeps between them (an event loop, a
    // relay); the engine's bridge ends set it. A writer's readers gain only when every reader
    // sets it. SHMCHAN_RMW_WAKES=0|1 replaces it for every end (A/B runs).
    bool rmw_wakes = false;
};

// The smallest capacity whose ring holds a frame of `frame_bytes` with a full user header.
std::size_t capacity_for_frame(std::size_t frame_bytes) noexcept;

struct channel {
    shmchan::writer writer;  // local ends; each claims its end of the ring on first use
    shmchan::reader reader;  // reader 0's
    channel_ref writer_ref;  // hand these to other processes
    channel_ref reader_ref;  // reader 0's: reader_refs[0]
    std::vector<channel_ref> reader_refs;  // one per reader (options.readers)
};

// Creates the channel's shared-memory segment (mode 0600). Throws shmchan::error:
// no_space when /dev/shm cannot hold it, invalid_argument for a bad capacity or reader count.
channel create_channel(const channel_options& options = {});

// Open an end from a ref and claim it at once: through shared memory when the segment is on
// this host, else through the engine's channel socket (options.engine), as options.via and
// SHMCHAN_TRANSPORT say. Throw shmchan::error: invalid_ref, wrong_direction, bad_key,
// already_claimed, segment_missing, permission_denied, corrupt, engine_unreachable.
writer open_writer(const channel_ref& ref, const channel_options& options = {});
reader open_reader(const channel_ref& ref, const channel_options& options = {});

// The transport open_writer/open_reader will use with these options (SHMCHAN_TRANSPORT
// applied); `automatic` means "decided per ref".
transport effective_transport(const channel_options& options);

// The loan claiming a writer made with these options uses: SHMCHAN_LOAN_CLAIM=adaptive|always|never
// and SHMCHAN_LOAN_CLAIM_MIN=BYTES replace the defaults (A/B runs); values the program chose stay.
struct loan_claim_setting {
    channel_options::claim_policy policy;
    std::size_t min;
};
loan_claim_setting effective_loan_claim(const channel_options& options);

// A look at a channel's segment without claiming anything (for the engine and `shmchan ls`).
struct end_info {
    enum class state { unclaimed, active, closed, aborted, dead };
    state st = state::unclaimed;
    int pid = 0;
};
struct reader_info {
    end_info end;
    std::uint64_t released = 0;  // bytes ever released by this reader: committed - released is its lag
};
struct channel_info {
    std::string channel_id;
    std::size_t capacity = 0;
    std::uint64_t committed = 0;  // bytes ever committed by the writer (records, with headers)
    std::uint64_t released = 0;   // bytes ever released by the slowest reader still able to read
    end_info writer, reader;      // reader: reader 0's end
    std::vector<reader_info> readers;  // every reader, in the order of the reader refs
    channel_options::overflow_policy overflow = channel_options::overflow_policy::block;
    int creator_pid = 0;
    bool creator_alive = false;
    bool finished() const noexcept;  // no end can ever use the channel again
};
// Throws shmchan::error: segment_missing once the channel is gone, invalid_ref, corrupt, ...
channel_info inspect(const channel_ref& ref);

}  // namespace shmchan
