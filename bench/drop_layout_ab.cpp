// drop_oldest across layouts: the writer's cost per record when every push gives records up,
// and the time a reader takes to join a 64 MiB ring. The loops of ring_bench's BM_drop_push and
// BM_drop_join, standalone: it builds against any commit's shm/ alone, for A/B runs of two
// layouts (docs/benchmarks.md, "Late joins under drop_oldest"):
//   g++ -std=c++20 -O2 -I<tree>/shm/include bench/drop_layout_ab.cpp <tree>/shm/src/*.cpp -o drop_ab
#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <unistd.h>
#include <vector>
#include "shmchan/shm/ring.hpp"
#include "shmchan/shm/segment.hpp"
using namespace shmchan::shm;
using clk = std::chrono::steady_clock;
static std::shared_ptr<segment> make(std::size_t cap) {
    static int counter = 0;
    segment_identity id{};
    id.reader_digests.resize(1);
    char name[64];
    std::snprintf(name, sizeof name, "/shmchan-00000000-0000-4000-8000-%06x%06x", unsigned(::getpid()) & 0xffffff, unsigned(counter++) & 0xffffff);
    auto s = segment::create(name, cap, id);
    s->unlink();
    std::memset(s->data(), 0, cap);
    s->control()->header.overflow = static_cast<std::uint32_t>(overflow_policy::drop_oldest);
    return s;
}
int main() {
    for (std::size_t payload : {64ul, 4096ul}) {
        auto s = make(4u << 20);
        ring_geometry g = s->geometry(); g.overflow = overflow_policy::drop_oldest;
        ring_producer p(s->control(), s->data(), g);
        std::vector<std::byte> src(payload, std::byte{0x5a});
        const std::size_t n = 4 * g.capacity / record_size(payload) * 8;
        double best = 1e9;
        for (int rep = 0; rep < 5; ++rep) {
            auto t0 = clk::now();
            for (std::size_t i = 0; i < n; ++i) p.try_push(record_type::binary, src.data(), payload);
            best = std::min(best, std::chrono::duration<double, std::nano>(clk::now() - t0).count() / n);
        }
        std::printf("push %zu B: %.2f ns/record (best of 5)\n", payload, best);
    }
    auto s = make(64u << 20);
    ring_geometry g = s->geometry(); g.overflow = overflow_policy::drop_oldest;
    { ring_producer p(s->control(), s->data(), g);
      for (std::size_t i = 0; i < 3 * g.capacity / 16 / 2 + 37; ++i) p.try_push(record_type::binary, nullptr, 0); }
    std::vector<double> t;
    for (int rep = 0; rep < 21; ++rep) {
        ring_consumer c(s->control(), s->data(), g);
        auto t0 = clk::now();
        if (c.join_at_tail() != ring_status::ok) { std::puts("join failed"); return 1; }
        t.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    std::printf("join 64 MiB of 16-byte records: median %.1f us\n", t[t.size() / 2]);
}
