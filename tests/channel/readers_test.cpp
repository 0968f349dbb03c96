// Several readers of one channel, in one thread: refs and keys, every reader sees every record,
// the writer waits for the slowest reader still attached, and readers that leave stop counting.
#include <catch2/catch.hpp>

#include <string>

#include "shmchan/shmchan.hpp"
#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/segment.hpp"
#include "shmchan/testkit/records.hpp"
#include "support/helpers.hpp"

using namespace shmchan;
using namespace std::chrono_literals;
using state = reader_status::state;

namespace {
channel_options readers_opts(std::size_t n, std::size_t capacity = 4096) {
    channel_options o = test::opts(capacity, 0);
    o.readers = n;
    return o;
}
std::string next_text(reader& r) {
    item it = r.next(1s);
    if (it.is_chunk()) return std::string(reinterpret_cast<const char*>(it.data().data()), it.data().size());
    if (it.is_end()) return "<end>";
    return "<" + std::string(to_string(static_cast<errc>(it.error().value()))) + ">";
}
}  // namespace

TEST_CASE("create_channel with several readers: a ref and key each, each claimed once", "[readers]") {
    channel ch = create_channel(readers_opts(3));
    REQUIRE(ch.reader_refs.size() == 3);
    CHECK(ch.reader_ref == ch.reader_refs[0]);
    CHECK(ch.reader_refs[1].channel_id == ch.writer_ref.channel_id);
    CHECK(ch.reader_refs[1].access_key != ch.reader_refs[2].access_key);
    CHECK(ch.reader_refs[1].access_key != ch.reader_refs[0].access_key);
    reader r1 = open_reader(ch.reader_refs[1]);
    reader r2 = open_reader(ch.reader_refs[2]);
    CHECK(test::thrown([&] { (void)open_reader(ch.reader_refs[1]); }) == errc::already_claimed);
    channel_ref forged = ch.reader_refs[2];
    forged.access_key = ch.writer_ref.access_key;
    CHECK(test::thrown([&] { (void)open_reader(forged); }) == errc::bad_key);
    CHECK(ch.writer.readers().size() == 3);
}

TEST_CASE("reader counts outside 1..64 are refused", "[readers][errors]") {
    CHECK(test::thrown([] { (void)create_channel(readers_opts(0)); }) == errc::invalid_argument);
    CHECK(test::thrown([] { (void)create_channel(readers_opts(65)); }) == errc::invalid_argument);
    channel ch = create_channel(readers_opts(64));
    CHECK(ch.reader_refs.size() == 64);
}

TEST_CASE("every reader sees every record in order, the writer waits for the slowest", "[readers]") {
    channel ch = create_channel(readers_opts(3));
    reader r1 = open_reader(ch.reader_refs[1]);
    reader r2 = open_reader(ch.reader_refs[2]);
    REQUIRE_FALSE(ch.writer.write("one"));
    REQUIRE_FALSE(ch.writer.send_message("two"));
    REQUIRE_FALSE(ch.writer.write("three"));
    for (reader* r : {&ch.reader, &r1}) {
        CHECK(next_text(*r) == "one");
        item m = r->next(1s);
        CHECK(m.text() == "two");
        CHECK(next_text(*r) == "three");
    }
    // Reader 2 has read nothing: the ring holds everything for it.
    const std::string big(2000, 'x');
    CHECK_FALSE(ch.writer.try_write(std::as_bytes(std::span(big.data(), big.size()))));
    CHECK(ch.writer.try_write(std::as_bytes(std::span(big.data(), big.size()))) == errc::would_block);
    CHECK(next_text(r2) == "one");
    CHECK(ch.writer.try_write(std::as_bytes(std::span(big.data(), big.size()))) == errc::would_block);
    item m = r2.next(1s);
    CHECK(next_text(r2) == "three");
    CHECK(next_text(r2) == big);
    (void)r2.next(0ns);  // releases the big one: still held by the other two
    CHECK(ch.writer.try_write(std::as_bytes(std::span(big.data(), big.size()))) == errc::would_block);
    CHECK(next_text(ch.reader) == big);
    CHECK(next_text(r1) == big);
    (void)ch.reader.next(0ns);
    (void)r1.next(0ns);
    CHECK_FALSE(ch.writer.try_write(std::as_bytes(std::span(big.data(), big.size()))));
    REQUIRE_FALSE(ch.writer.close());
    for (reader* r : {&ch.reader, &r1, &r2}) {
        CHECK(next_text(*r) == big);
        CHECK(next_text(*r) == "<end>");
    }
    CHECK_FALSE(ch.writer.wait_drained(1s));
    for (const auto& s : ch.writer.readers()) CHECK(s.st == state::done);
}

TEST_CASE("a reader not claimed yet holds the ring from the start: it misses nothing", "[readers]") {
    channel ch = create_channel(readers_opts(2));
    REQUIRE_FALSE(ch.writer.write("first"));
    CHECK(next_text(ch.reader) == "first");
    const std::string big(2032, 'y');  // the largest record: two never fit with anything else
    REQUIRE_FALSE(ch.writer.write(big));
    CHECK(ch.writer.write(big, 20ms) == errc::timeout);  // reader 1 has not even started
    CHECK(ch.writer.readers()[1].st == state::waiting);
    reader late = open_reader(ch.reader_refs[1]);
    CHECK(next_text(late) == "first");
    CHECK(next_text(late) == big);
    CHECK(ch.writer.readers()[1].st == state::reading);
}

TEST_CASE("a reader that closes early stops holding the ring, the others read on", "[readers]") {
    channel ch = create_channel(readers_opts(2));
    {
        reader quitter = open_reader(ch.reader_refs[1]);
        REQUIRE_FALSE(ch.writer.write("a"));
        CHECK(next_text(quitter) == "a");
    }  // closed with nothing unread; the writer goes on without it
    const std::string big(1800, 'z');
    for (int i = 0; i < 20; ++i) {
        REQUIRE_FALSE(ch.writer.write(big, 1s));
        if (i == 0) CHECK(next_text(ch.reader) == "a");
        CHECK(next_text(ch.reader) == big);
    }
    REQUIRE_FALSE(ch.writer.close());
    CHECK(next_text(ch.reader) == "<end>");
    CHECK(ch.writer.wait_drained(1s) == errc::peer_closed);  // one reader did not get everything
    const auto st = ch.writer.readers();
    CHECK(st[0].st == state::done);
    CHECK(st[1].st == state::left);
}

TEST_CASE("every reader gone: the writer gets peer_closed as with one", "[readers][errors]") {
    channel ch = create_channel(readers_opts(2));
    { reader r1 = open_reader(ch.reader_refs[1]); }
    { reader r0 = std::move(ch.reader); (void)r0.try_next(); }
    const std::string big(1800, 'w');
    std::error_code e;
    for (int i = 0; i < 5 && !e; ++i) e = ch.writer.write(big, 1s);
    CHECK(e == errc::peer_closed);
}

TEST_CASE("inspect shows each reader's position", "[readers]") {
    channel ch = create_channel(readers_opts(2));
    reader r1 = open_reader(ch.reader_refs[1]);
    REQUIRE_FALSE(ch.writer.write("0123456789"));
    CHECK(next_text(r1) == "0123456789");
    (void)r1.next(0ns);  // released
    const channel_info info = inspect(ch.reader_ref);
    REQUIRE(info.readers.size() == 2);
    CHECK(info.readers[0].released == 0);
    CHECK(info.readers[1].released == info.committed);
    CHECK(info.readers[1].end.st == end_info::state::active);
    CHECK(info.readers[0].end.st == end_info::state::unclaimed);
    CHECK(info.released == 0);  // the slowest that can still read
}

TEST_CASE("a reader writing an impossible head is dropped when others remain", "[readers][hostile]") {
    channel ch = create_channel(readers_opts(2));
    reader r1 = open_reader(ch.reader_refs[1]);
    REQUIRE_FALSE(ch.writer.write("x"));
    auto seg = shm::segment::open(ch.reader_ref.shm->segment);
    seg->reader(1).head.store(std::uint64_t{1} << 40);
    const std::string big(1800, 'v');
    for (int i = 0; i < 10; ++i) {
        REQUIRE_FALSE(ch.writer.write(big, 1s));
        (void)ch.reader.next(1s);
    }
    CHECK(ch.writer.readers()[1].st == state::lost);
}

TEST_CASE("try_write and try_loan find the room a reader that just left held, in the same call", "[readers]") {
    // An event loop's try found the ring full because of a reader that had just left: it
    // dropped the reader, said would_block and armed its event fd, which then waited for a
    // release that never came (the engine's socket writers stalled so).
    for (const bool loan_path : {false, true}) {
        INFO((loan_path ? "try_loan" : "try_write"));
        channel ch = create_channel(readers_opts(2));
        reader keeps_up = open_reader(ch.reader_refs[1]);
        CHECK(ch.reader.try_next().error() == errc::would_block);  // reader 0 claims, then reads nothing
        const std::string rec(500, 'q');
        const auto bytes = std::as_bytes(std::span(rec.data(), rec.size()));
        int written = 0;
        for (; !ch.writer.try_write(bytes); ++written) {
            REQUIRE(written < 100);
            REQUIRE(next_text(keeps_up) == rec);
        }
        while (keeps_up.try_next().is_chunk()) {}  // everything released: reader 0 holds the room
        REQUIRE(ch.writer.try_write(bytes) == errc::would_block);
        { reader leaving = std::move(ch.reader); }  // closes, with all of it unread
        if (loan_path) {
            loan l = ch.writer.try_loan(rec.size());
            CHECK(l.error() == std::error_code{});
            CHECK(l.data().size() == rec.size());
        } else {
            CHECK(ch.writer.try_write(bytes) == std::error_code{});
        }
        CHECK(ch.writer.readers()[0].st == state::left);
    }
}

TEST_CASE("an impossible head makes try_write drop that reader, or say corrupt", "[readers][hostile]") {
    // try_write found the ring full from the reader's head and said would_block for ever (its
    // event fd firing in a busy loop): it never reached the claim that tells corrupt.
    channel ch = create_channel(readers_opts(2));
    reader r1 = open_reader(ch.reader_refs[1]);
    const std::string rec(500, 'h');
    const auto bytes = std::as_bytes(std::span(rec.data(), rec.size()));
    for (int i = 0; i < 20; ++i) {  // laps the 4 KiB ring: both readers keep up
        REQUIRE_FALSE(ch.writer.try_write(bytes));
        REQUIRE(next_text(ch.reader) == rec);
        REQUIRE(next_text(r1) == rec);
    }
    auto seg = shm::segment::open(ch.reader_ref.shm->segment);
    const std::uint64_t tail = seg->control()->producer.tail.load();
    seg->reader(1).head.store(tail + (1 << 20));
    CHECK_FALSE(ch.writer.try_write(bytes));  // reader 1 dropped
    CHECK(ch.writer.readers()[1].st == state::lost);
    seg->reader(0).head.store(tail + (1 << 20));
    CHECK(ch.writer.try_write(bytes) == errc::corrupt);  // the last reader: nobody to drop
}

TEST_CASE("wait_drained drops a reader that wrote an impossible head, and answers for it", "[readers][hostile]") {
    // A bad head made the ring look undrained (or drained, with the tail below one ring) until
    // the deadline.
    channel ch = create_channel(readers_opts(2));
    reader r1 = open_reader(ch.reader_refs[1]);
    REQUIRE_FALSE(ch.writer.write("abc"));
    REQUIRE_FALSE(ch.writer.close());
    auto seg = shm::segment::open(ch.reader_ref.shm->segment);
    seg->reader(1).head.store(std::uint64_t{1} << 40);
    CHECK(next_text(ch.reader) == "abc");
    CHECK(next_text(ch.reader) == "<end>");
    CHECK(ch.writer.wait_drained(5s) == errc::peer_lost);  // reader 0 drained; reader 1 lost
    CHECK(ch.writer.readers()[1].st == state::lost);
    CHECK(ch.writer.readers()[0].st == state::done);
}

// --- overflow drop_oldest -------------------------------------------------------------------

namespace {
channel_options live_opts(std::size_t n) {
    channel_options o = readers_opts(n);
    o.overflow = channel_options::overflow_policy::drop_oldest;
    return o;
}
std::vector<std::byte> record_bytes(std::uint64_t i) {
    std::vector<std::byte> b(500);
    testkit::fill_record(b, i);
    return b;
}
}  // namespace

TEST_CASE("drop_oldest: the writer never waits, a reader a ring behind is told what it missed", "[readers][drop_oldest]") {
    channel ch = create_channel(live_opts(2));
    reader slow = open_reader(ch.reader_refs[1]);
    // A drop_oldest reader starts at the next record when it claims its end: claim it now.
    CHECK(ch.reader.try_next().error() == errc::would_block);
    const std::uint64_t n = 100;  // 100 records of 500 bytes through a 4 KiB ring
    for (std::uint64_t i = 0; i < n; ++i) {
        REQUIRE_FALSE(ch.writer.try_write(record_bytes(i)));  // never would_block
        item it = ch.reader.next(1s);  // reader 0 keeps up and gets every record
        REQUIRE(it.is_chunk());
        CHECK(testkit::check_record(it.data()) == i);
    }
    REQUIRE_FALSE(ch.writer.close());
    item g = slow.next(1s);
    REQUIRE(g.is_gap());
    CHECK(g.gap().records > 80);
    CHECK(g.gap().bytes == g.gap().records * 500);
    std::uint64_t next = g.gap().records;
    for (;;) {
        item it = slow.next(1s);
        if (it.is_end()) break;
        REQUIRE(it.is_chunk());
        CHECK(testkit::check_record(it.data()) == next);  // whole records, in order
        CHECK(it.intact());
        ++next;
    }
    CHECK(next == n);
    CHECK(inspect(ch.reader_ref).overflow == channel_options::overflow_policy::drop_oldest);
}

TEST_CASE("drop_oldest: a view held while the writer laps it is reported not intact", "[readers][drop_oldest]") {
    channel ch = create_channel(live_opts(1));
    CHECK(ch.reader.try_next().error() == errc::would_block);  // claimed: it starts here
    REQUIRE_FALSE(ch.writer.write(record_bytes(0)));
    item held = ch.reader.next(1s);
    REQUIRE(held.is_chunk());
    CHECK(held.intact());
    for (std::uint64_t i = 1; i < 20; ++i) REQUIRE_FALSE(ch.writer.try_write(record_bytes(i)));
    CHECK_FALSE(held.intact());
    item g = ch.reader.next(1s);  // the next call finds the reader lapped
    REQUIRE(g.is_gap());
    item it = ch.reader.next(1s);
    REQUIRE(it.is_chunk());
    CHECK(testkit::check_record(it.data()) == 1 + g.gap().records);
}

TEST_CASE("drop_oldest: a reader joining late starts at the next record, with no gap", "[readers][drop_oldest]") {
    channel ch = create_channel(live_opts(2));
    for (std::uint64_t i = 0; i < 30; ++i) REQUIRE_FALSE(ch.writer.try_write(record_bytes(i)));
    reader late = open_reader(ch.reader_refs[1]);
    CHECK(late.try_next().error() == errc::would_block);
    REQUIRE_FALSE(ch.writer.write(record_bytes(30)));
    item it = late.next(1s);
    REQUIRE(it.is_chunk());
    CHECK(testkit::check_record(it.data()) == 30);
    // Far enough later, its gaps count in the writer's numbering.
    for (std::uint64_t i = 31; i < 60; ++i) REQUIRE_FALSE(ch.writer.try_write(record_bytes(i)));
    item g = late.next(1s);
    REQUIRE(g.is_gap());
    item after = late.next(1s);
    REQUIRE(after.is_chunk());
    CHECK(testkit::check_record(after.data()) == 31 + g.gap().records);
}

TEST_CASE("drop_oldest: a hostile lapped line is corrupt, not a read out of the ring", "[readers][drop_oldest][hostile]") {
    channel ch = create_channel(live_opts(1));
    const bool claimed_first = GENERATE(true, false);
    CAPTURE(claimed_first);
    // Claimed first, the reader is lapped and skips; claimed after, it joins at the tail. Both
    // read the line and must refuse a lapped position past the tail.
    if (claimed_first) CHECK(ch.reader.try_next().error() == errc::would_block);
    for (std::uint64_t i = 0; i < 20; ++i) REQUIRE_FALSE(ch.writer.try_write(record_bytes(i)));
    auto seg = shm::segment::open(ch.reader_ref.shm->segment);
    shm::counts_line& l = seg->control()->lapped;
    l.slot[l.version.load() & 1].pos.store(std::uint64_t{1} << 40);
    l.pos.store(std::uint64_t{1} << 40);
    item it = ch.reader.next(1s);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::corrupt);
}

TEST_CASE("drop_oldest: read_all of a stream with a hole is data_lost, not the bytes around it", "[readers][drop_oldest][errors]") {
    channel ch = create_channel(live_opts(1));
    CHECK(ch.reader.try_next().error() == errc::would_block);  // claimed: it starts here
    for (std::uint64_t i = 0; i < 30; ++i) REQUIRE_FALSE(ch.writer.try_write(record_bytes(i)));
    REQUIRE_FALSE(ch.writer.close());
    std::vector<std::byte> out;
    CHECK(ch.reader.read_all(out, 1s) == errc::data_lost);
}
