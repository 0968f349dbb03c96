// Issue 10: a hostile ref holder rewrites the segment; what sizes or places an access must
// come from the values validated at open, never from the header read again. And the record
// length field must hold every record the ring accepts.
#include <catch2/catch.hpp>

#include <cstring>
#include <fcntl.h>
#include <thread>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <functional>

#include "shmchan/shmchan.hpp"
#include "shmchan/shm/ring.hpp"
#include "shmchan/shm/segment.hpp"
#include "support/helpers.hpp"

using namespace shmchan;
using namespace std::chrono_literals;

namespace {
std::shared_ptr<shm::segment> map_as_ref_holder(const channel& ch) {
    return shm::segment::open(ch.reader_ref.shm->segment);
}

// Runs `f` in a child process: its exit code, or -1 when it did not end within `limit` (it is
// killed then), so that a call that loops for ever fails the test instead of hanging it.
int exit_code_within(const std::function<int()>& f, std::chrono::seconds limit) {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(f());
    if (pid < 0) return -2;
    const auto until = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > until) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(10ms);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -3;
}

// In the child: 0 when the writes (a ring's worth at most) ended in `corrupt` and no reader
// was blamed for it.
int corrupt_and_nobody_lost(channel& ch) {
    std::error_code e;
    for (int i = 0; i < 200 && !e; ++i) e = ch.writer.write(std::string(1000, 'x'), 2s);
    if (e != errc::corrupt) return 10;
    for (const reader_status& r : ch.writer.readers())
        if (r.st == reader_status::state::lost) return 11;
    return 0;
}
}  // namespace

TEST_CASE("a header rewritten before the creator's ends claim does not resize their ring", "[hostile][segment]") {
    channel_options o;
    o.capacity = 64 << 10;
    channel ch = create_channel(o);
    {
        auto seg = map_as_ref_holder(ch);
        auto& h = seg->control()->header;
        h.capacity = shm::max_capacity;  // 1 TiB: a writer trusting it would store far past the mapping
        h.max_payload = shm::max_payload_for(shm::max_capacity);
    }
    // The creator's ends claim lazily, now: they must use the 64 KiB they validated.
    std::vector<std::byte> big(1 << 20);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::byte(i * 131 + (i >> 9));
    std::thread w([&] {
        CHECK_FALSE(ch.writer.write(big));
        CHECK_FALSE(ch.writer.close());
    });
    std::vector<std::byte> got;
    CHECK_FALSE(ch.reader.read_all(got, 10s));
    w.join();
    CHECK(got == big);
    CHECK(ch.writer.capacity() == 64 << 10);
    CHECK(ch.writer.max_record() == shm::max_payload_for(64 << 10));
}

TEST_CASE("indices rewritten by a ref holder are reported as corrupt, never used", "[hostile][segment]") {
    channel_options o;
    o.capacity = 64 << 10;
    SECTION("the writer's own tail") {
        channel ch = create_channel(o);
        map_as_ref_holder(ch)->control()->producer.tail.store(std::uint64_t{1} << 40);
        CHECK(ch.writer.write("abc") == errc::corrupt);
    }
    SECTION("an unaligned tail, with two readers: corrupt at once, no reader blamed") {
        // Only an impossible head names a reader to drop; this once dropped reader 0 and then
        // retried the claim for ever (with one reader left, the loop never ended).
        o.readers = 2;
        channel ch = create_channel(o);
        map_as_ref_holder(ch)->control()->producer.tail.store(8);
        CHECK(exit_code_within([&] { return corrupt_and_nobody_lost(ch); }, 20s) == 0);
    }
    SECTION("drop_oldest: a record header below the tail rewritten, with two readers") {
        o.readers = 2;
        o.overflow = channel_options::overflow_policy::drop_oldest;
        channel ch = create_channel(o);
        // All in the child, which claims the writer end (a forked child cannot use its parent's).
        CHECK(exit_code_within([&] {
            const std::string rec(1000, 'r');
            for (int i = 0; i < 100; ++i)  // laps the ring
                if (ch.writer.write(rec, 0ns)) return 20;
            auto seg = map_as_ref_holder(ch);
            const shm::counts_line& l = seg->control()->lapped;
            const std::uint64_t oldest = l.slot[l.version.load() & 1].pos.load();
            // The oldest record kept, the next the writer must give up: its length made impossible.
            auto* h = reinterpret_cast<shm::record_header*>(seg->data() + (oldest & (seg->geometry().capacity - 1)));
            h->length = 0xFFFF'FF00u;
            return corrupt_and_nobody_lost(ch);
        }, 20s) == 0);
    }
    SECTION("the reader's own head") {
        channel ch = create_channel(o);
        REQUIRE_FALSE(ch.writer.write("abc"));
        shm::reader_line(map_as_ref_holder(ch)->control(), 0).head.store(std::uint64_t{1} << 40);
        item it = ch.reader.next(1s);
        REQUIRE(it.is_error());
        CHECK(it.error() == errc::corrupt);
    }
}

TEST_CASE("the record length holds every record a ring accepts, at any capacity", "[segment][ring]") {
    for (std::size_t cap : {std::size_t{1} << 33, std::size_t{1} << 34, shm::max_capacity}) {
        const std::size_t m = shm::max_payload_for(cap);
        CHECK(m <= shm::max_record_payload);
        CHECK(shm::record_size(m) <= 0xFFFF'FFFFu);  // a padding record is shorter still
    }
    CHECK(shm::max_payload_for(std::size_t{1} << 20) == (std::size_t{1} << 19) - 16);

    // A 16 GiB ring in address space only (pages are touched only where headers are written).
    const std::size_t cap = std::size_t{1} << 34;
    void* mem = ::mmap(nullptr, shm::header_size_for(1) + cap, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    auto* cb = new (mem) shm::control_block{};
    std::byte* data = static_cast<std::byte*>(mem) + shm::header_size_for(1);
    const shm::ring_geometry g = shm::geometry_for(cap);
    // Start 3 GiB before the end: a largest record needs a 3 GiB padding record first.
    const std::uint64_t start = cap - (std::uint64_t{3} << 30);
    cb->producer.tail.store(start);
    shm::reader_line(cb, 0).head.store(start);
    shm::ring_producer prod(cb, data, g);
    shm::ring_consumer cons(cb, data, g);
    shm::ring_status st;
    CHECK(prod.try_claim(g.max_payload + 1, shm::record_type::binary, st) == nullptr);
    CHECK(st == shm::ring_status::too_large);
    REQUIRE(prod.try_claim(g.max_payload, shm::record_type::binary, st) != nullptr);
    prod.commit(g.max_payload);  // the payload is never touched: only headers are written
    shm::record_view v{};
    REQUIRE(cons.try_peek(v) == shm::ring_status::ok);
    CHECK(v.size == g.max_payload);  // not cut to 32 bits
    CHECK(v.type == shm::record_type::binary);
    CHECK(v.data == data + sizeof(shm::record_header));  // after the padding, at the start
    ::munmap(mem, shm::header_size_for(1) + cap);
}

TEST_CASE("segments hold digests of the keys, never the keys", "[hostile][segment]") {
    channel ch = create_channel();
    auto seg = map_as_ref_holder(ch);
    const auto* bytes = reinterpret_cast<const unsigned char*>(seg->control());
    for (const channel_ref* ref : {&ch.writer_ref, &ch.reader_ref}) {
        std::string hex;
        for (char c : ref->access_key)
            if (c != '-') hex += c;
        unsigned char key[16];
        for (int i = 0; i < 16; ++i) key[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
        // Not even half of a key stands anywhere in the control block.
        bool found = false;
        for (std::size_t off = 0; off + 8 <= shm::header_size_for(1); ++off)
            found = found || std::memcmp(bytes + off, key, 8) == 0 || std::memcmp(bytes + off, key + 8, 8) == 0;
        CHECK_FALSE(found);
    }
    // The keys still open their ends, and only theirs.
    channel_ref relabelled = ch.reader_ref;
    relabelled.dir = direction::write;
    CHECK(test::thrown([&] { open_writer(relabelled); }) == errc::bad_key);
    reader r = open_reader(ch.reader_ref);
    CHECK(r);
}

TEST_CASE("a FIFO planted under a segment's name is refused at once, never opened for reading", "[hostile][segment]") {
    const std::string id = "00000000-0000-4000-8000-00000000f1f0";
    const std::string path = shm::shm_dir() + shm::segment_name_for(id);
    ::unlink(path.c_str());
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    channel_ref ref{id, "00000000-0000-4000-8000-000000000000", direction::read,
                    shm_extension{shm::segment_name_for(id), ""}};
    ref.shm->host = channel_ref::parse(create_channel().reader_ref.dump()).shm->host;
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(test::thrown([&] { open_reader(ref); }) == errc::corrupt);
    CHECK(test::thrown([&] { inspect(ref); }) == errc::corrupt);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    ::unlink(path.c_str());
}
