// The SPSC record ring alone (no channel layer, no futex sleeps): try_claim/commit on the
// producer side, try_peek/release on the consumer side, on a control block in a real
// shared-memory segment.
//
//   BM_ring_single  one thread pushes one record, then pops it (per-record cost, hot caches)
//   BM_ring_threads the benchmark thread produces, a second thread consumes (busy-polling)
//   BM_channel_single  for comparison, the same push-then-pop through the public channel API
//                      (writer loan or write(), reader.next()), to see what that layer adds
//   BM_publish      the mechanism behind the small-record figures: one thread publishes a
//                   counter that another thread polls, with or without the notify() (a
//                   locked read-modify-write) that ring_producer::commit() does after every
//                   tail store
//   BM_first_lap    a writer's first pass over a 256 MiB ring (the default for 4K RGBA frames)
//                   in a mapping of its own: without (0) or with (1) the prefault an end does
//                   when it is claimed (segment::prefault); the time includes the prefault
//   BM_frame_copy   a 1080p I420 frame (3,110,400 bytes) copied into the next of N slots of a
//                   16 MiB segment, as a GStreamer source renders into ring loans: how the
//                   memory a writer cycles through (N frames' worth) sets its copy speed
//   BM_drop_push    drop_oldest, no reader: one thread pushes records into a full ring, so
//                   every push gives up the oldest ones (commit, the lapped line, the joined
//                   line): what the live writer pays per record
//   BM_drop_join    drop_oldest: a reader claiming its end joins a 64 MiB ring the writer
//                   filled (and lapped) with 16-byte records (ring_consumer::join_at_tail)
//   BM_fill_pattern, BM_stream_checksum  the per-byte work the cross-process harness charges
//                   to every transport, for scale
//
// Second argument `copy`: 0 = headers only (pure ring overhead; bytes/s is nominal),
// 1 = the producer memcpy()s the payload in and the consumer memcpy()s it out.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "shmchan/channel.hpp"
#include "shmchan/shm/ring.hpp"
#include <cstdio>

#include "shmchan/shm/segment.hpp"
#include "shmchan/shm/wait.hpp"
#include "shmchan/testkit/checksum.hpp"

namespace {

using namespace shmchan::shm;

// A segment's identity with one reader (its keys are never checked here).
segment_identity one_reader() {
    segment_identity id{};
    id.reader_digests.resize(1);
    return id;
}

// A fresh ring in an unlinked segment, just big enough that a record of `payload` bytes fits
// (4 MiB at least, the channel default). Pre-faulted so the first lap pays no page faults.
struct bench_ring {
    std::shared_ptr<segment> seg;
    control_block* cb;
    std::byte* data;

    explicit bench_ring(std::size_t payload, std::size_t min_capacity = std::size_t{4} << 20) {
        static int counter = 0;
        const std::size_t cap = std::max<std::size_t>(min_capacity, 2 * std::bit_ceil(record_size(payload)));
        char name[64];  // a valid segment name, unique to this process and ring
        std::snprintf(name, sizeof name, "/shmchan-00000000-0000-4000-8000-%06x%06x", unsigned(::getpid()) & 0xffffff,
                      unsigned(counter++) & 0xffffff);
        seg = segment::create(name, cap, one_reader());
        seg->unlink();  // the mapping stays; nothing is left in /dev/shm if we crash
        cb = seg->control();
        data = seg->data();
        std::memset(data, 0, cap);
    }
    // This ring as a drop_oldest one (the segment was made with the default policy).
    ring_geometry drop_oldest() {
        cb->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
        ring_geometry g = seg->geometry();
        g.overflow = overflow_policy::drop_oldest;
        return g;
    }
};

// Busy-wait, but hand the core over now and then: on a shared machine both threads may be
// time-sliced on one core, where pure spinning would stall each side for a whole time slice.
void backoff(unsigned& idle) {
    if (++idle % 256 == 0) std::this_thread::yield();
    else cpu_relax();
}

void set_counters(benchmark::State& state, std::size_t payload) {
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(payload));
}

void BM_ring_single(benchmark::State& state) {
    const auto payload = static_cast<std::size_t>(state.range(0));
    const bool copy = state.range(1) != 0;
    bench_ring ring(payload);
    ring_producer prod(ring.cb, ring.data, ring.seg->geometry());
    ring_consumer cons(ring.cb, ring.data, ring.seg->geometry());
    std::vector<std::byte> src(payload, std::byte{0x5a}), dst(payload);
    for (auto _ : state) {
        ring_status st;
        std::byte* p = prod.try_claim(payload, record_type::binary, st);
        if (!p) {
            state.SkipWithError("try_claim failed on an empty ring");
            break;
        }
        if (copy) std::memcpy(p, src.data(), payload);
        prod.commit(payload);
        record_view v;
        if (cons.try_peek(v) != ring_status::ok || v.size != payload) {
            state.SkipWithError("try_peek did not return the record just committed");
            break;
        }
        if (copy) std::memcpy(dst.data(), v.data, v.size);
        benchmark::DoNotOptimize(v.data);
        cons.release();
    }
    benchmark::DoNotOptimize(dst.data());
    set_counters(state, payload);
}

void BM_drop_push(benchmark::State& state) {
    const auto payload = static_cast<std::size_t>(state.range(0));
    bench_ring ring(payload);
    ring_producer prod(ring.cb, ring.data, ring.drop_oldest());
    std::vector<std::byte> src(payload, std::byte{0x5a});
    // A lap first: from then on every push gives up the oldest records.
    for (std::size_t n = 0; n < 2 * ring.seg->geometry().capacity / record_size(payload); ++n)
        if (prod.try_push(record_type::binary, src.data(), payload) != ring_status::ok) {
            state.SkipWithError("try_push failed under drop_oldest");
            return;
        }
    for (auto _ : state)
        if (prod.try_push(record_type::binary, src.data(), payload) != ring_status::ok) {
            state.SkipWithError("try_push failed under drop_oldest");
            break;
        }
    set_counters(state, payload);
}

void BM_drop_join(benchmark::State& state) {
    bench_ring ring(0, std::size_t{64} << 20);
    const ring_geometry g = ring.drop_oldest();
    {
        ring_producer prod(ring.cb, ring.data, g);
        // 1.5 laps and 37 records: not a multiple of the joined line's 64, so a join walks.
        for (std::size_t n = 0; n < 3 * g.capacity / record_size(0) / 2 + 37; ++n)
            if (prod.try_push(record_type::binary, nullptr, 0) != ring_status::ok) {
                state.SkipWithError("try_push failed under drop_oldest");
                return;
            }
    }
    for (auto _ : state) {
        ring_consumer cons(ring.cb, ring.data, g);
        if (cons.join_at_tail() != ring_status::ok) {
            state.SkipWithError("join_at_tail failed");
            break;
        }
        benchmark::DoNotOptimize(cons.read_position());
    }
}

void BM_ring_threads(benchmark::State& state) {
    const auto payload = static_cast<std::size_t>(state.range(0));
    const bool copy = state.range(1) != 0;
    bench_ring ring(payload);
    std::atomic<bool> corrupt{false};
    std::thread consumer([&] {
        ring_consumer cons(ring.cb, ring.data, ring.seg->geometry());
        std::vector<std::byte> dst(copy ? payload : 0);
        unsigned idle = 0;
        for (;;) {
            record_view v;
            const ring_status st = cons.try_peek(v);
            if (st == ring_status::empty) {
                backoff(idle);
                continue;
            }
            idle = 0;
            if (st != ring_status::ok) {
                corrupt = true;
                return;
            }
            const bool end = v.type == record_type::end;
            if (copy && !end) std::memcpy(dst.data(), v.data, v.size);
            cons.release();
            if (end) return;
        }
    });

    ring_producer prod(ring.cb, ring.data, ring.seg->geometry());
    std::vector<std::byte> src(payload, std::byte{0x5a});
    auto claim = [&](std::size_t n, record_type type) -> std::byte* {
        ring_status st;
        std::byte* p;
        for (unsigned idle = 0; !(p = prod.try_claim(n, type, st)) && st == ring_status::full;)
            backoff(idle);
        return p;
    };
    for (auto _ : state) {
        std::byte* p = claim(payload, record_type::binary);
        if (!p) {
            state.SkipWithError("ring reported corrupt");
            break;
        }
        if (copy) std::memcpy(p, src.data(), payload);
        prod.commit(payload);
    }
    // Untimed: at most one ring of records (<= capacity bytes) is still being drained here.
    if (claim(0, record_type::end)) prod.commit(0);
    consumer.join();
    if (corrupt) state.SkipWithError("consumer saw a corrupt ring");
    set_counters(state, payload);
}

// mode 0: get_loan(n) + commit(); mode 1: writer.write() of a buffer. The reader views the
// chunk in place either way.
void BM_channel_single(benchmark::State& state) {
    const auto payload = static_cast<std::size_t>(state.range(0));
    const bool copy = state.range(1) != 0;
    shmchan::channel ch = shmchan::create_channel();
    std::vector<std::byte> src(payload, std::byte{0x5a});
    for (auto _ : state) {
        if (copy) {
            if (ch.writer.write(src)) {
                state.SkipWithError("write failed");
                break;
            }
        } else {
            shmchan::loan l = ch.writer.get_loan(payload);
            if (!l) {
                state.SkipWithError("get_loan failed");
                break;
            }
            l.commit();
        }
        shmchan::item it = ch.reader.next();
        if (!it.is_chunk() || it.data().size() != payload) {
            state.SkipWithError("next() did not return the chunk just written");
            break;
        }
        benchmark::DoNotOptimize(it.data().data());
    }
    ch.reader = {};  // leave first: closing the writer then needs no room in the ring
    set_counters(state, payload);
}

// A producer stores 1, 2, 3, ... into a tail-like counter; a consumer thread spins until it
// sees each new value, as a caught-up ring consumer polls the tail. With notify=1 every store
// is followed by shm::notify() on a wait line nobody sleeps on, exactly as in
// ring_producer::commit(): that isolates what the wake-up check costs per record.
void BM_publish(benchmark::State& state) {
    const bool with_notify = state.range(0) != 0;
    struct alignas(cache_line) counter_line {
        std::atomic<std::uint64_t> v{0};
    };
    counter_line tail;
    wait_line wake{};
    constexpr std::uint64_t stop = ~std::uint64_t{0};
    std::thread consumer([&] {
        for (std::uint64_t seen = 0; seen != stop;) {
            const std::uint64_t now = tail.v.load(std::memory_order_acquire);
            if (now == seen) cpu_relax();
            seen = now;
        }
    });
    std::uint64_t i = 0;
    for (auto _ : state) {
        tail.v.store(++i, std::memory_order_release);
        if (with_notify) notify(wake);
    }
    tail.v.store(stop, std::memory_order_release);
    consumer.join();
    state.SetItemsProcessed(state.iterations());
}

void BM_fill_pattern(benchmark::State& state) {
    std::vector<std::byte> buf(static_cast<std::size_t>(state.range(0)));
    std::uint64_t off = 0;
    for (auto _ : state) {
        shmchan::fill_pattern(buf, off);
        off += buf.size();
        benchmark::ClobberMemory();
    }
    set_counters(state, buf.size());
}

void BM_stream_checksum(benchmark::State& state) {
    std::vector<std::byte> buf(static_cast<std::size_t>(state.range(0)));
    shmchan::fill_pattern(buf, 0);
    shmchan::stream_checksum sum;
    for (auto _ : state) {
        sum.update(buf);
        benchmark::DoNotOptimize(sum);
    }
    set_counters(state, buf.size());
}

void BM_first_lap(benchmark::State& state) {
    const bool prefault = state.range(0) != 0;
    constexpr std::size_t cap = std::size_t{256} << 20;
    char name[64];
    std::snprintf(name, sizeof name, "/shmchan-00000000-0000-4000-8000-%06xff0000", unsigned(::getpid()) & 0xffffff);
    auto seg = segment::create(name, cap, one_reader());  // its pages reserved (and zeroed) here
    for (auto _ : state) {
        state.PauseTiming();
        auto fresh = segment::open(name);  // a new mapping: no page of it is mapped yet
        state.ResumeTiming();
        if (prefault) benchmark::DoNotOptimize(fresh->prefault(true));
        std::memset(fresh->data(), 1, cap);
        benchmark::ClobberMemory();
        state.PauseTiming();
        fresh.reset();
        state.ResumeTiming();
    }
    seg->unlink();
    set_counters(state, cap);
}

void BM_frame_copy(benchmark::State& state) {
    const auto slots = static_cast<std::size_t>(state.range(0));
    constexpr std::size_t frame = 3110400, cap = std::size_t{16} << 20;
    bench_ring ring(cap / 4);  // a 16 MiB ring, its pages touched
    std::vector<std::byte> src(frame, std::byte{1});
    std::size_t i = 0;
    for (auto _ : state) {
        std::memcpy(ring.data + (i++ % slots) * frame, src.data(), frame);
        benchmark::ClobberMemory();
    }
    set_counters(state, frame);
}

void payload_args(benchmark::internal::Benchmark* b) {
    b->ArgNames({"payload", "copy"});
    for (std::int64_t copy : {0, 1})
        for (std::int64_t payload : {64, 1 << 10, 64 << 10, 1 << 20, 4 << 20})
            b->Args({payload, copy});
}

BENCHMARK(BM_ring_single)->Apply(payload_args);
// Real time: the work is split across two threads, CPU time of one of them means nothing.
BENCHMARK(BM_ring_threads)->Apply(payload_args)->UseRealTime();
BENCHMARK(BM_channel_single)->ArgNames({"payload", "copy"})->ArgsProduct({{64, 4096}, {0, 1}});
BENCHMARK(BM_publish)->ArgName("notify")->Arg(0)->Arg(1)->UseRealTime();
BENCHMARK(BM_first_lap)->ArgName("prefault")->Arg(0)->Arg(1)->Iterations(8)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_frame_copy)->ArgName("slots")->Arg(1)->Arg(2)->Arg(3)->Arg(5);
BENCHMARK(BM_drop_push)->ArgName("payload")->Arg(64)->Arg(4096);
BENCHMARK(BM_drop_join)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_fill_pattern)->Arg(64)->Arg(1 << 20);
BENCHMARK(BM_stream_checksum)->Arg(64)->Arg(1 << 20);

}  // namespace

BENCHMARK_MAIN();
