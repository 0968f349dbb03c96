// Fuzzes the reader side of the SPSC record ring against a hostile writer.
//
// The input is what a hostile (or broken) writer process can put in a channel segment before
// and while the reader consumes it. The segment header itself is the validated one of a 4 KiB
// channel (segment::open rejects inconsistent sizes), everything else comes from the input:
//
//   bytes  0..7    consumer.head at the time the reader claims its end (the reader takes it
//                  from shared memory, and the writer side can write there); little endian
//   bytes  8..15   producer.tail
//   bytes 16..16+capacity-1   ring data: record headers and payloads, zero-filled if short
//   then, with overflow drop_oldest (bit 63 of the head field set; cleared before use): 32
//                  bytes, the current lapped slot's pos, seq and bytes, then the line's version
//                  (low 32 bits: it picks the slot, layout 7) and a mask XORed into the line's
//                  own pos (high 32 bits); then 32 bytes more, the joined line's current
//                  slot (pos, seq, bytes) and its version (low 32 bits, layout 8); the reader
//                  first joins at the tail as a drop_oldest reader does when it claims its end
//   then, with bit 62 of the head field set (cleared before use): 24 bytes, the space line's
//                  need hints (need_head, need_readers) of a writer counted asleep there and
//                  its rmw_wake word (low 32 bits of the third 8 bytes, also stored as the
//                  data line's rmw_wakers, which the reader weighs before each sleep), and the
//                  writer's cpu hint (high 32 bits of the third 8 bytes); the reader is then
//                  reader 1 of 3 and promises read-modify-write wakes when that word is odd,
//                  every release() weighs the hints, and every step asks the cpu hint and
//                  whether its sleep would need a barrier
//   then, 8 bytes at a time: a new producer.tail, stored after each release() (a writer that
//                  keeps moving tail while the reader reads); with drop_oldest, odd ones move the
//                  lapped position (the line's and its current slot's) instead (a writer that
//                  gives records up under the reader)
//
// The reader peeks and releases until the ring is empty or corrupt, reading every byte of
// every record it is given (and of a frame record's user header and data, as read_frame places
// them), so ASan reports any view outside the ring. The ring is allocated
// with exactly data_offset + capacity bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "shmchan/shm/frame_record.hpp"
#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/ring.hpp"
#include "../support/heap_ring.hpp"
#include "fuzz_input.hpp"

namespace shm = shmchan::shm;
using shmchan::fuzz::take_le;

namespace {

constexpr std::size_t capacity = shm::min_capacity;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_ring_reader: %s\n", what);
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::uint8_t* p = data;
    std::size_t n = size;
    std::uint64_t head = take_le(p, n);
    const std::uint64_t tail = take_le(p, n);
    const bool drop = head >> 63;
    const bool hints = head >> 62 & 1;
    head &= ~(std::uint64_t{3} << 62);
    const std::size_t readers = hints ? 3 : 1, index = hints ? 1 : 0;

    // Exactly the segment's bytes, so that ASan flags a read one byte past the ring (or past
    // the reader lines, for hints naming readers the segment does not have).
    shmchan::test::heap_ring hr(capacity, readers);
    shm::control_block* cb = hr.cb;
    shm::reader_line(cb, index).head.store(head);
    cb->producer.tail.store(tail);
    std::byte* ring = hr.data();
    const std::size_t ring_bytes = n < capacity ? n : capacity;
    std::memset(ring, 0, capacity);
    std::memcpy(ring, p, ring_bytes);
    p += ring_bytes;
    n -= ring_bytes;

    shm::ring_geometry g = shm::geometry_for(capacity, readers);
    if (drop) {
        g.overflow = shm::overflow_policy::drop_oldest;
        // The current slot's fields, then a word whose low half is the version (it picks the
        // slot) and whose high half is XORed into the line's own pos (a writer whose two
        // copies of pos disagree).
        const std::uint64_t pos = take_le(p, n), seq = take_le(p, n), bytes = take_le(p, n);
        const std::uint64_t word = take_le(p, n);
        const auto version = static_cast<std::uint32_t>(word);
        cb->lapped.version.store(version);
        shm::counts_slot& s = cb->lapped.slot[version & 1];
        s.pos.store(pos);
        s.seq.store(seq);
        s.bytes.store(bytes);
        cb->lapped.pos.store(pos ^ (word >> 32));
        // The joined line: where a joining reader may start counting instead.
        const std::uint64_t jpos = take_le(p, n), jseq = take_le(p, n), jbytes = take_le(p, n);
        const auto jversion = static_cast<std::uint32_t>(take_le(p, n));
        cb->joined.version.store(jversion);
        shm::counts_slot& j = cb->joined.slot[jversion & 1];
        j.pos.store(jpos);
        j.seq.store(jseq);
        j.bytes.store(jbytes);
    }
    if (hints) {
        cb->space.need_head.store(take_le(p, n));
        cb->space.need_readers.store(take_le(p, n));
        const std::uint64_t third = take_le(p, n);
        cb->space.rmw_wake.store(static_cast<std::uint32_t>(third));
        cb->data.rmw_wakers.store(static_cast<std::uint32_t>(third));
        cb->producer.cpu.store(static_cast<std::uint32_t>(third >> 32));
        cb->space.waiting.store(1);
    }
    shm::ring_consumer cons(cb, ring, g, index);
    if (hints && (cb->space.rmw_wake.load() & 1)) cons.promise_rmw_wakes();
    if (drop && cons.join_at_tail() != shm::ring_status::ok) return 0;
    volatile unsigned sink = 0;
    bool odd = false;
    // Every ok peek advances head by at least one record (16 bytes), and tail only moves when
    // the script says so, so this ends; the bound is a guard against a reader that loops.
    for (std::size_t steps = 0;; ++steps) {
        if (steps > capacity + 1024) fail("reader does not make progress");
        shm::record_view v{};
        const shm::ring_status st = cons.try_peek(v);
        if (st == shm::ring_status::empty || st == shm::ring_status::corrupt) break;
        if (st == shm::ring_status::lapped) {
            if (!drop) fail("lapped without drop_oldest");
            shm::ring_consumer::gap gap;
            if (cons.skip(gap) != shm::ring_status::ok) break;
            if (n > 0) cb->producer.tail.store(take_le(p, n));
            continue;
        }
        if (st != shm::ring_status::ok) fail("try_peek returned a status a reader cannot get");
        if (v.size > cb->header.max_payload) fail("record larger than max_payload");
        if (v.type != shm::record_type::binary && v.type != shm::record_type::text &&
            v.type != shm::record_type::end && v.type != shm::record_type::frame)
            fail("record of a type the reader should never see");
        unsigned acc = 0;
        for (std::size_t i = 0; i < v.size; ++i) acc += static_cast<unsigned>(v.data[i]);
        // A frame's header places its user header and data: both must stay inside the record.
        shm::frame_record f;
        if (v.type == shm::record_type::frame && shm::read_frame(v, f)) {
            if (f.fields.user_len > shm::max_frame_user || f.data + f.size != v.data + v.size ||
                f.fields.user + f.fields.user_len > f.data)
                fail("frame header placed data outside its record");
            for (std::size_t i = 0; i < f.fields.user_len; ++i) acc += static_cast<unsigned>(f.fields.user[i]);
            for (std::size_t i = 0; i < f.size; ++i) acc += static_cast<unsigned>(f.data[i]);
        }
        sink = sink + acc + (hints && cons.writer_on_cpu(shm::cpu_tag()) ? 1u : 0u) +
               (hints && shm::wakers_promised(cb->data, 1) ? 2u : 0u);
        cons.release();
        if (n > 0) {
            if (drop && (odd = !odd)) {  // the writer moves the oldest kept record
                const std::uint64_t pos = take_le(p, n);
                cb->lapped.pos.store(pos);
                cb->lapped.slot[cb->lapped.version.load() & 1].pos.store(pos);
            }
            else cb->producer.tail.store(take_le(p, n));
        }
    }
    (void)sink;
    return 0;
}
