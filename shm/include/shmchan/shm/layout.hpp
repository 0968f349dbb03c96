// Shared-memory layout of one channel segment. Plain, versioned, standard-layout structs:
// everything here is read by two processes that may run different builds, so every size and
// offset is pinned by static_assert. Offsets only, never pointers.
//
//   0        +--------------------------------------+
//            | segment_header  (4 cache lines)      |  identity, writer key digest, capacities,
//            |                                      |  reader count, overflow policy, abort reason
//   256      +--------------------------------------+
//            | producer_line   (1 cache line)       |  tail, writer state, cpu hint, owner
//   320      +--------------------------------------+
//            | wait_line x2    (1 cache line each)  |  futex words: "data" (readers sleep), "space"
//            |                                      |  (the writer sleeps; what room it needs)
//   448      +--------------------------------------+
//            | counts_line "lapped" (1 cache line)  |  drop_oldest: the oldest record still whole,
//            |                                      |  in two slots (the version picks one)
//   512      +--------------------------------------+
//            | counts_line "joined" (1 cache line)  |  drop_oldest: a record near the tail, where
//            |                                      |  a reader claiming its end starts counting
//   576      +--------------------------------------+
//            | consumer_line x readers (1 each)     |  head, state, cpu hint, owner, key digest
//            +--------------------------------------+
//   header_size = header_size_for(readers): 576 + 64 * readers, rounded up to 4096
//            +--------------------------------------+
//            | ring data: capacity bytes (2^k)      |  records, 16-byte aligned
//            +--------------------------------------+
//
// A record:   0        4        8                16
//             +--------+--------+----------------+----------------------+
//             | length | type   | reserved (0)   | payload (length)     | pad to 16
//             +--------+--------+----------------+----------------------+
// `length` is the payload length; the record occupies align16(16 + length) bytes.
// A padding record fills the space up to the end of the ring when a record does not fit there.
//
// A frame record's payload starts with a frame_header, then the user header, then the frame:
//   0                  40      44        48         52        64            data_offset
//   +------------------+-------+---------+----------+---------+-------------+----------------+
//   | pts dts duration | flags | user_len| data_off | reserved| user header | frame bytes    |
//   | offset offset_end|       |         |          |         | (user_len)  | (length - off) |
//   +------------------+-------+---------+----------+---------+-------------+----------------+
// data_offset is 16-aligned and at least 64 + user_len (a loan reserves the largest user header).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace shmchan::shm {

// Fixed, never std::hardware_destructive_interference_size: both processes must agree.
inline constexpr std::size_t cache_line = 64;

inline constexpr std::uint64_t segment_magic = 0x4e4148434d485321ULL;  // "!SHMCHAN"
// Increment for each incompatible change of anything in this file.
// 3: key digests instead of keys; records capped at max_record_payload; liveness by OFD locks.
// 4: frame records.
// 5: several readers (a consumer line each, after the control block), the overflow policy and
//    its lapped line; the ring starts at header_size (a multiple of 4096), no longer at 512.
//    Later, compatibly: the space line's need hints (zero, as an older writer leaves them, means
//    "any release wakes", and an older reader wakes on any release).
// 6: a wait line's rmw_wake (an older waker would ignore it and could miss a sleeper that
//    relies on it). Later, compatibly: the ends' `cpu` hints (an older end leaves them zero,
//    "unknown", and its peer spins as before).
// 7: the lapped line holds two slots and the version says which is current, so a writer
//    stopped while it publishes never leaves readers an odd seqlock to wait on.
// 8: the joined line (drop_oldest: counts near the tail, so that a reader claiming its end
//    walks a few records, not the whole ring); the readers' lines start at 576. Later,
//    compatibly: a wait line's rmw_wakers (an older waker leaves it zero, and its sleepers keep
//    their barrier).
inline constexpr std::uint32_t layout_version = 8;

inline constexpr std::size_t max_readers = 64;

// What the writer does when the ring is full of records some reader has not released.
enum class overflow_policy : std::uint32_t {
    block = 0,        // wait until every reader still attached has released the space
    drop_oldest = 1,  // never wait: overwrite whole records nobody holds; lagging readers skip
};

inline constexpr std::size_t key_bytes = 16;       // 128-bit access keys (and their digests)
inline constexpr std::size_t reason_bytes = 128;   // abort reason, NUL-terminated

enum class record_type : std::uint32_t {
    binary = 1,
    text = 2,
    end = 3,      // clean end of stream, written by close()
    padding = 4,  // skip to the start of the ring
    frame = 5,    // a frame_header, a user header, then the frame's bytes
};

struct record_header {
    std::uint32_t length;  // payload bytes
    std::uint32_t type;    // record_type
    std::uint64_t reserved;
};
static_assert(sizeof(record_header) == 16);
inline constexpr std::size_t record_align = 16;

constexpr std::size_t align_record(std::size_t n) noexcept {
    return (n + record_align - 1) & ~(record_align - 1);
}
constexpr std::size_t record_size(std::size_t payload) noexcept {
    return align_record(sizeof(record_header) + payload);
}

// The head of a frame record's payload. Times and offsets as in shmchan::frame_meta (their
// "none" values included); the reader validates user_len and data_offset before any use.
struct frame_header {
    std::int64_t pts;
    std::int64_t dts;
    std::int64_t duration;
    std::uint64_t offset;
    std::uint64_t offset_end;
    std::uint32_t flags;
    std::uint32_t user_len;     // bytes of user header, right after this struct
    std::uint32_t data_offset;  // where the frame's bytes start, from the payload's start
    std::uint32_t reserved[3];
};
static_assert(sizeof(frame_header) == 64);
static_assert(offsetof(frame_header, flags) == 40);
static_assert(offsetof(frame_header, data_offset) == 48);
inline constexpr std::size_t max_frame_user = 256;
// The most a frame adds to its bytes: the header and the largest user header.
inline constexpr std::size_t frame_overhead = sizeof(frame_header) + max_frame_user;
static_assert(frame_overhead % record_align == 0);

// State of one end. Claimed by CAS unclaimed -> active; then moves to a final state once.
enum class end_state : std::uint32_t {
    unclaimed = 0,
    active = 1,
    closed = 2,   // writer: end record published; reader: stopped reading
    aborted = 3,  // writer: abort_reason holds why; reader: its holder lost its own peer (the
                  // engine's end for a socket reader whose connection broke): lost, to the writer
};

// Who holds an end, for display only (`shmchan ls`): pids are namespace-local and recycled.
// Liveness comes from the kernel: the holder of an end keeps an open-file-description lock on
// the end's byte of the segment file (lock_slot below), which the kernel drops when it dies.
struct owner {
    std::atomic<std::int32_t> pid;
    std::uint32_t reserved;
    std::atomic<std::uint64_t> start_time;
};
static_assert(sizeof(owner) == 16);

struct segment_header {
    std::uint64_t magic;
    std::uint32_t version;
    std::uint32_t header_size;      // offset of the ring data
    std::uint64_t capacity;         // ring bytes, a power of two
    std::uint64_t max_payload;      // largest payload of one record
    std::uint64_t segment_size;     // header_size + capacity
    std::uint8_t channel_id[16];    // raw uuid
    std::uint8_t writer_digest[key_bytes];  // of the write end's key: the keys are never stored
    std::uint32_t readers;          // consumer lines after the control block, 1..max_readers
    std::uint32_t overflow;         // overflow_policy
    std::uint64_t reserved1;
    owner creator;
    std::atomic<std::uint32_t> abort_len;  // set before writer state becomes aborted
    std::uint32_t reserved0;
    char abort_reason[reason_bytes];
};
static_assert(sizeof(segment_header) <= 4 * cache_line);

// `cpu` in producer_line and consumer_line: the CPU (plus one; 0 unknown) the end last
// published its position from, a hint for the other end's spin (wait.hpp, cpu_tag). It sizes
// and places nothing: a wrong value only makes a waiter spin or sleep when it should not.
struct alignas(cache_line) producer_line {
    std::atomic<std::uint64_t> tail;        // bytes ever committed; written by the writer only
    std::atomic<std::uint32_t> state;       // end_state of the writer
    std::atomic<std::uint32_t> cpu;         // where the writer last committed (hint, above)
    owner who;
};
struct alignas(cache_line) consumer_line {
    std::atomic<std::uint64_t> head;        // bytes ever released; written by this reader only
    std::atomic<std::uint32_t> state;       // end_state of this reader
    std::atomic<std::uint32_t> cpu;         // where this reader last released (hint)
    owner who;
    std::uint8_t digest[key_bytes];         // of this reader's key
};
static_assert(sizeof(consumer_line) == cache_line);
// drop_oldest only, written by the writer: a record boundary `pos` and how many records (`seq`)
// and payload bytes came before it, in the writer's numbering. The three values are published
// in turns into two slots (`version` counts publications; slot[version & 1] is the current
// one): a reader takes a slot between two equal loads of the version, and never waits for a
// writer mid-publication (ring_producer::publish, ring_consumer::read_counts). Two such lines:
// - `lapped`: where the oldest record the writer has not overwritten starts. The writer moves
//   it forward before it overwrites anything below `pos`; a reader at a position below `pos`
//   has been lapped and resumes there, told what it missed. `pos` beside the version mirrors
//   the current slot's, so that one load says "lapped past".
// - `joined`: a recent tail, published every join_publish_records records or quarter ring: a
//   reader claiming its end counts from there to the tail (a few records), not from `lapped`.
struct counts_slot {
    std::atomic<std::uint64_t> pos;
    std::atomic<std::uint64_t> seq;
    std::atomic<std::uint64_t> bytes;
};
struct alignas(cache_line) counts_line {
    std::atomic<std::uint32_t> version;
    std::uint32_t reserved;
    std::atomic<std::uint64_t> pos;  // the current slot's pos (readers load it on the lapped line only)
    counts_slot slot[2];
};
static_assert(sizeof(counts_line) == cache_line);
inline constexpr std::uint64_t join_publish_records = 64;
// One side sleeps on `seq` after counting itself in `waiting`; the other bumps `seq` and
// wakes it. `woken` says a wake was sent since the last sleeper got ready, so a burst of
// commits while the sleeper is still waking up costs one FUTEX_WAKE, not one each.
// The space line only: a writer about to sleep for room says what room needs (every reader of
// `need_readers` at or past `need_head`), so that of several readers only the release that
// gives it room wakes it, not each one (ring_consumer::writer_can_go_on). Zero in both: any
// release wakes (an event-fd watcher, or a writer that says nothing). Hints only: a reader
// that misreads them wakes too early (the writer sleeps again) or not at all (the writer's
// sleep is bounded by the poll interval); they size and place nothing.
// `rmw_wake`, nonzero: a sleeper on this line skips the per-sleep membarrier, so every waker
// reads `waiting` with a read-modify-write (wake.hpp, ask_rmw_wake; a count of such sleepers).
// A hint that sizes nothing: a peer that clears it can only delay wakes (sleeps are bounded).
// `rmw_wakers` (added compatibly: older ends leave it zero): wakers of this line that promised
// the read-modify-write form on every wake, from before their first publish (wake.hpp,
// promise_rmw_wakes_on). When every waker of the line did (the writer, for the data line; each
// reader, for the space line), a sleeper there needs no barrier either. A hint as well: a
// peer that inflates it can only delay wakes (sleeps are bounded).
struct alignas(cache_line) wait_line {
    std::atomic<std::uint32_t> seq;
    std::atomic<std::uint32_t> waiting;
    std::atomic<std::uint32_t> woken;
    std::atomic<std::uint32_t> rmw_wake;
    std::atomic<std::uint64_t> need_head;
    std::atomic<std::uint64_t> need_readers;
    std::atomic<std::uint32_t> rmw_wakers;
};
static_assert(offsetof(wait_line, need_head) == 16 && offsetof(wait_line, rmw_wakers) == 32 &&
              sizeof(wait_line) == cache_line);

struct alignas(cache_line) control_block {
    segment_header header;
    alignas(cache_line) producer_line producer;
    wait_line data;   // readers wait here for records
    wait_line space;  // the writer waits here for free space
    counts_line lapped;
    counts_line joined;
};

// The readers' lines follow the control block.
inline constexpr std::size_t readers_offset = 576;
inline constexpr std::size_t page_bytes = 4096;
constexpr std::size_t header_size_for(std::size_t readers) noexcept {
    return (readers_offset + readers * cache_line + page_bytes - 1) & ~(page_bytes - 1);
}
// \pre i < the segment's validated reader count (never the header's).
inline consumer_line& reader_line(control_block* cb, std::size_t i) noexcept {
    return reinterpret_cast<consumer_line*>(reinterpret_cast<std::byte*>(cb) + readers_offset)[i];
}

static_assert(std::is_standard_layout_v<control_block>);
static_assert(sizeof(control_block) == readers_offset);
static_assert(offsetof(control_block, producer) == 256);
static_assert(offsetof(control_block, data) == 320);
static_assert(offsetof(control_block, space) == 384);
static_assert(offsetof(control_block, lapped) == 448);
static_assert(offsetof(control_block, joined) == 512);
static_assert(header_size_for(1) == 4096 && header_size_for(55) == 4096 && header_size_for(56) == 8192 &&
              header_size_for(max_readers) == 8192);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::int32_t>::is_always_lock_free);
// futex(2) operates on the 32-bit word behind std::atomic<uint32_t>.
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

inline constexpr std::size_t min_capacity = 4096;
inline constexpr std::size_t max_capacity = std::size_t{1} << 40;

// The largest payload any record may have: its length, and the length of a padding record
// before it (less than one record), must fit the 32-bit length field.
inline constexpr std::size_t max_record_payload = 0xFFFF'FFE0;
static_assert(align_record(sizeof(record_header) + max_record_payload) <= 0xFFFF'FFFF);

// A record may take at most half the ring, so that it always fits once the ring is empty,
// whatever padding the wrap needs; and at most max_record_payload.
constexpr std::size_t max_payload_for(std::size_t capacity) noexcept {
    const std::size_t half = capacity / 2 - sizeof(record_header);
    return half < max_record_payload ? half : max_record_payload;
}

// The ring's size and largest payload, read from a segment's header once, validated, and kept
// privately by everything that places an access (the header is writable by any ref holder).
struct ring_geometry {
    std::size_t capacity = 0;
    std::size_t max_payload = 0;
    std::size_t readers = 1;
    std::size_t header_size = header_size_for(1);  // where the ring data starts
    overflow_policy overflow = overflow_policy::block;
};
constexpr ring_geometry geometry_for(std::size_t capacity, std::size_t readers = 1,
                                     overflow_policy o = overflow_policy::block) noexcept {
    return {capacity, max_payload_for(capacity), readers, header_size_for(readers), o};
}

// The bytes of the segment file whose open-file-description locks say who is alive: the
// creator's, the writer's, then one per reader.
enum class lock_slot : unsigned { creator = 0, writer = 1, reader = 2 };
constexpr lock_slot reader_slot(std::size_t i) noexcept { return static_cast<lock_slot>(2 + i); }

}  // namespace shmchan::shm
