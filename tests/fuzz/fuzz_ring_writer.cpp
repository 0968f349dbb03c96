// Fuzzes the writer side of the record ring against hostile readers and ref holders.
//
// The input is what other processes can put in a channel segment before the writer claims its
// end and while it writes. The segment header is the validated one of a 4 KiB channel with
// 1-4 readers and either overflow policy; everything else comes from the input:
//
//   byte  0        bits 0-1: readers - 1; bit 2: drop_oldest; bit 3: the writer promises
//                  read-modify-write wakes; bit 4: records of 64 bytes or more may wrap early
//   bytes 1..8     producer.tail when the writer claims its end (little endian, as all below)
//   then 8 bytes per reader: its head; with drop_oldest, bit 63 says the reader is unclaimed
//   then, with drop_oldest: the lapped line's current slot (pos, seq, bytes) and its version
//                  (low 32 bits), then the joined line's, 32 bytes each
//   then 2 bytes k (modulo capacity + 1), and k bytes of the ring (the rest zero)
//   then a script, one op byte and its operands at a time (op & 7):
//     0, 1: claim a record of (2 bytes) & 0x7ff bytes (type from the op's high bits), fill it
//           and commit all of it or a part (the next byte); a `corrupt` claim is retried after
//           dropping reader_to_drop(), as the writer end does, until it names nobody
//     2:    a ref holder writes 4 bytes (4) at ring offset (2 bytes) & (capacity - 1), any
//           alignment: record headers below the tail included
//     3:    reader (1 byte) stores a head (8 bytes)
//     4:    every counted reader catches up (its head to the tail): a reader that keeps up
//     5:    the writer asks unread_bytes(), can_claim() and footprint(), and says its need
//     6:    a ref holder rewrites the lapped line's pos, both copies (8 bytes)
//     7:    a ref holder rewrites producer.tail (8 bytes), which the writer must never reload
//
// ASan sees every store the writer makes (the ring is allocated with exactly its bytes), UBSan
// every misaligned header; the fuzzer fails when the writer's own tail leaves the record
// alignment, a claim hands out bytes outside the ring, or the retry loop does not end.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/ring.hpp"
#include "shmchan/shm/wake.hpp"
#include "../support/heap_ring.hpp"
#include "fuzz_input.hpp"

namespace shm = shmchan::shm;
using shmchan::fuzz::take_le;

namespace {

constexpr std::size_t capacity = shm::min_capacity;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_ring_writer: %s\n", what);
    std::abort();
}

void set_slot(shm::counts_line& l, std::uint64_t pos, std::uint64_t seq, std::uint64_t bytes, std::uint32_t version) {
    l.version.store(version);
    shm::counts_slot& s = l.slot[version & 1];
    s.pos.store(pos);
    s.seq.store(seq);
    s.bytes.store(bytes);
    l.pos.store(pos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::uint8_t* p = data;
    std::size_t n = size;
    const auto flags = static_cast<unsigned>(take_le(p, n, 1));
    const std::size_t readers = (flags & 3) + 1;
    const bool drop = flags >> 2 & 1;

    shmchan::test::heap_ring hr(capacity, readers);
    shm::control_block* cb = hr.cb;
    std::byte* ring = hr.data();
    std::memset(ring, 0, capacity);
    cb->producer.tail.store(take_le(p, n));
    for (std::size_t i = 0; i < readers; ++i) {
        const std::uint64_t h = take_le(p, n);
        shm::consumer_line& l = shm::reader_line(cb, i);
        l.head.store(drop ? h & ~(std::uint64_t{1} << 63) : h);
        l.state.store(static_cast<std::uint32_t>(drop && h >> 63 ? shm::end_state::unclaimed : shm::end_state::active));
    }
    shm::ring_geometry g = shm::geometry_for(capacity, readers);
    if (drop) {
        g.overflow = shm::overflow_policy::drop_oldest;
        cb->header.overflow = static_cast<std::uint32_t>(shm::overflow_policy::drop_oldest);
        for (shm::counts_line* l : {&cb->lapped, &cb->joined}) {
            const std::uint64_t pos = take_le(p, n), seq = take_le(p, n), bytes = take_le(p, n);
            set_slot(*l, pos, seq, bytes, static_cast<std::uint32_t>(take_le(p, n)));
        }
    }
    const std::size_t ring_bytes = std::min<std::size_t>(take_le(p, n, 2) % (capacity + 1), n);
    std::memcpy(ring, p, ring_bytes);
    p += ring_bytes;
    n -= ring_bytes;

    shm::ring_producer prod(cb, ring, g);
    if (flags >> 3 & 1) prod.promise_rmw_wakes();
    prod.wrap_early_from(flags >> 4 & 1 ? 64 : 0);
    static constexpr shm::record_type types[] = {shm::record_type::binary, shm::record_type::text,
                                                 shm::record_type::frame, shm::record_type::end};
    volatile std::size_t sink = 0;
    while (n > 0) {
        const auto op = static_cast<unsigned>(take_le(p, n, 1));
        switch (op & 7) {
            case 0:
            case 1: {
                const std::size_t want = take_le(p, n, 2) & 0x7ff;
                const std::size_t part = take_le(p, n, 1);
                shm::ring_status st = shm::ring_status::ok;
                std::byte* dst = nullptr;
                // As the writer end: after `corrupt`, drop the reader named and claim again.
                for (std::size_t drops = 0;; ++drops) {
                    if (drops > readers) fail("the claim's retry after corrupt does not end");
                    dst = prod.try_claim(want, types[op >> 3 & 3], st);
                    if (dst || st != shm::ring_status::corrupt) break;
                    const std::size_t i = prod.reader_to_drop();
                    if (i == shm::ring_producer::no_reader) break;
                    prod.drop_reader(i);
                }
                if (!dst) {
                    if (st == shm::ring_status::ok) fail("no bytes, and no status that says why");
                    if (st == shm::ring_status::too_large && want <= prod.max_payload()) fail("too_large below max_payload");
                    break;
                }
                if (dst < ring || dst + want > ring + capacity) fail("a claim outside the ring");
                std::memset(dst, 0xA5, want);
                prod.commit(part < 128 ? want : want * (part - 128) / 128);
                if (prod.tail() % shm::record_align != 0) fail("the writer's tail left the record alignment");
                break;
            }
            case 2: {
                const std::size_t off = take_le(p, n, 2) & (capacity - 1);
                const auto v = static_cast<std::uint32_t>(take_le(p, n, 4));
                std::memcpy(ring + std::min(off, capacity - sizeof v), &v, sizeof v);
                break;
            }
            case 3: {
                const std::size_t i = take_le(p, n, 1) % readers;
                shm::reader_line(cb, i).head.store(take_le(p, n));
                break;
            }
            case 4:
                for (std::size_t i = 0; i < readers; ++i)
                    if (prod.counted() >> i & 1) shm::reader_line(cb, i).head.store(prod.tail());
                break;
            case 5: {
                const std::size_t want = take_le(p, n, 2) & 0x7ff;
                sink = sink + prod.unread_bytes() + (prod.can_claim(want) ? 1 : 0) + prod.footprint(want);
                prod.say_need(want, op >> 3 & 1);
                sink = sink + (shm::wakers_promised(cb->space, static_cast<std::uint32_t>(readers)) ? 1 : 0);
                prod.clear_need();
                break;
            }
            case 6: {
                const std::uint64_t pos = take_le(p, n);
                cb->lapped.pos.store(pos);
                cb->lapped.slot[cb->lapped.version.load() & 1].pos.store(pos);
                break;
            }
            case 7:
                cb->producer.tail.store(take_le(p, n));
                break;
        }
    }
    (void)sink;
    return 0;
}
