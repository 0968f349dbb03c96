// The channel API within one process: data, messages, loans, ends, and every error a user
// can provoke without a second process.
#include <catch2/catch.hpp>

#include <cstring>
#include <sys/wait.h>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

#include "shmchan/shmchan.hpp"
#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/segment.hpp"
#include "support/helpers.hpp"
#include "support/proc_stats.hpp"
#include "support/process.hpp"

using namespace shmchan;
using shmchan::test::thrown;
using namespace std::chrono_literals;
using shmchan::test::segment_exists;

namespace {
std::vector<std::byte> pattern(std::size_t n, std::uint64_t off = 0) {
    std::vector<std::byte> v(n);
    fill_pattern(v, off);
    return v;
}
channel small_channel(std::size_t cap = 4096) {
    channel_options o;
    o.capacity = cap;
    o.spin_us = 10;
    return create_channel(o);
}
}  // namespace

TEST_CASE("bytes written come out in order and the segment goes away at the end", "[channel]") {
    channel ch = create_channel();
    const std::string id = ch.reader_ref.channel_id;
    CHECK(segment_exists(id));
    CHECK(ch.writer_ref.channel_id == id);
    CHECK(ch.writer_ref.access_key != ch.reader_ref.access_key);  // a key per direction
    CHECK(ch.reader_ref.dir == direction::read);
    CHECK(ch.writer_ref.dir == direction::write);
    REQUIRE(ch.reader_ref.shm);

    REQUIRE_FALSE(ch.writer.write("file contents"));
    REQUIRE_FALSE(ch.writer.close());
    item it = ch.reader.next();
    REQUIRE(it.is_chunk());
    CHECK(std::string(it.text()) == "file contents");
    it.release();
    CHECK(ch.reader.next().is_end());
    CHECK(ch.reader.next().is_end());  // sticky
    CHECK(ch.reader.at_end());
    CHECK(!ch.reader.status());
    CHECK_FALSE(segment_exists(id));
}

TEST_CASE("a write larger than one record is split, never refused", "[channel]") {
    channel ch = small_channel(8192);
    const std::size_t maxr = ch.writer.max_record();
    CHECK(maxr == 4096 - 16);
    auto data = pattern(maxr * 5 + 123);
    std::vector<std::byte> got;
    // The ring holds less than the write: a reader must drain concurrently.
    std::error_code read_err;
    std::thread t([&] { read_err = ch.reader.read_all(got); });  // Catch asserts stay on this thread
    CHECK_FALSE(ch.writer.write(data));
    CHECK(ch.writer.bytes_written() == data.size());
    CHECK_FALSE(ch.writer.close());
    t.join();
    CHECK_FALSE(read_err);
    CHECK(got == data);
}

TEST_CASE("messages interleave with chunks in order, next_binary routes them", "[channel]") {
    channel ch = create_channel();
    REQUIRE_FALSE(ch.writer.send_message("one"));
    REQUIRE_FALSE(ch.writer.write("AB"));
    REQUIRE_FALSE(ch.writer.send_message("two"));
    REQUIRE_FALSE(ch.writer.write("CD"));
    REQUIRE_FALSE(ch.writer.close());

    std::vector<std::string> messages;
    ch.reader.on_message([&](std::string_view m) { messages.emplace_back(m); });
    std::string bytes;
    for (auto c : ch.reader.chunks()) {
        bytes.append(reinterpret_cast<const char*>(c.data()), c.size());
        bytes += '|';
    }
    CHECK(!ch.reader.status());
    CHECK(bytes == "AB|CD|");
    CHECK(messages == std::vector<std::string>{"one", "two"});
}

TEST_CASE("next() reports messages as messages", "[channel]") {
    channel ch = create_channel();
    REQUIRE_FALSE(ch.writer.send_message("hello"));
    REQUIRE_FALSE(ch.writer.close());
    item m = ch.reader.next();
    REQUIRE(m.is_message());
    CHECK(m.text() == "hello");
    m = ch.reader.next();
    CHECK(m.is_end());
}

TEST_CASE("zero-copy loans: commit publishes, abandon publishes nothing", "[channel][loan]") {
    channel ch = create_channel();
    {
        loan l = ch.writer.get_loan(100);
        REQUIRE(l);
        CHECK(l.size() == 100);
        std::memset(l.data().data(), 'x', 100);
        // One claim at a time: writing while a loan is out is refused.
        CHECK(ch.writer.write("no") == errc::invalid_argument);
        l.commit(40);
    }
    {
        loan l = ch.writer.get_loan(10);
        REQUIRE(l);
        std::memset(l.data().data(), 'y', 10);
    }  // abandoned
    {
        loan l = ch.writer.try_loan(5);
        REQUIRE(l);
        std::memcpy(l.data().data(), "hello", 5);
        l.commit();
    }
    loan too_big = ch.writer.get_loan(ch.writer.max_record() + 1);
    CHECK_FALSE(too_big);
    CHECK(too_big.error() == errc::too_large);
    REQUIRE_FALSE(ch.writer.close());
    auto all = ch.reader.read_all();
    CHECK(std::string(reinterpret_cast<const char*>(all.data()), all.size()) ==
          std::string(40, 'x') + "hello");
    CHECK(ch.writer.bytes_written() == 45);
}

// Claimed loans come zeroed (full-line stores, see shmchan/memory.hpp); the others show
// whatever the ring held. `adaptive` claims the first eligible loan (it learns both ways).
TEST_CASE("loans from loan_claim_min up are claimed as loan_claim says", "[channel][loan]") {
    using policy = channel_options::claim_policy;
    auto loan_over_used_memory = [](policy pol, std::size_t claim_min, std::size_t loan_size) {
        channel_options o;
        o.capacity = 64 << 10;
        o.loan_claim = pol;
        o.loan_claim_min = claim_min;
        channel ch = create_channel(o);
        const std::vector<std::byte> dirt(20000, std::byte{0xAB});
        for (int i = 0; i < 5; ++i) {  // every byte of the ring written and read at least once
            REQUIRE_FALSE(ch.writer.write(dirt));
            item it = ch.reader.next();
            REQUIRE(it.is_chunk());
            REQUIRE(it.data().size() == dirt.size());
        }
        loan l = ch.writer.get_loan(loan_size);
        REQUIRE(l);
        const auto zero = std::count(l.data().begin(), l.data().end(), std::byte{0});
        std::memset(l.data().data(), 'z', l.size());
        l.commit();
        item it = ch.reader.next();
        REQUIRE(it.is_chunk());
        CHECK(std::count(it.data().begin(), it.data().end(), std::byte{'z'}) == static_cast<long>(loan_size));
        return static_cast<std::size_t>(zero);
    };
    CHECK(loan_over_used_memory(policy::always, 16 << 10, 20000) == 20000);
    CHECK(loan_over_used_memory(policy::always, 0, 100) == 100);       // every loan
    CHECK(loan_over_used_memory(policy::adaptive, 16 << 10, 20000) == 20000);
    CHECK(loan_over_used_memory(policy::never, 16 << 10, 20000) < 20000);
    CHECK(loan_over_used_memory(policy::always, 16 << 10, 1000) < 1000);  // below the threshold
}

TEST_CASE("try_write is all or nothing", "[channel]") {
    channel ch = small_channel(4096);
    auto chunk = pattern(1000);
    int n = 0;
    std::error_code e;
    while (!(e = ch.writer.try_write(chunk))) ++n;
    CHECK(e == errc::would_block);
    CHECK(n == 4);
    CHECK(ch.writer.bytes_written() == 4000);
    CHECK(ch.writer.try_write(pattern(5000)) == errc::too_large);
    CHECK(ch.writer.try_loan(1000).error() == errc::would_block);
    item it = ch.reader.next();
    REQUIRE(it.is_chunk());
    it.release();
    CHECK_FALSE(ch.writer.try_write(chunk));
}

TEST_CASE("too-large messages are refused, not truncated", "[channel][errors]") {
    channel ch = small_channel(4096);
    CHECK(ch.writer.send_message(std::string(ch.writer.max_record() + 1, 'm')) == errc::too_large);
    CHECK_FALSE(ch.writer.send_message(std::string(ch.writer.max_record(), 'm')));
    item m = ch.reader.next();
    CHECK(m.text().size() == ch.writer.max_record());
}

TEST_CASE("abort delivers what was committed, then the writer's reason", "[channel][errors]") {
    channel ch = create_channel();
    const std::string id = ch.reader_ref.channel_id;
    REQUIRE_FALSE(ch.writer.write("partial"));
    ch.writer.abort("disk on fire");
    CHECK(ch.writer.write("more") == errc::closed);
    CHECK(ch.writer.close() == errc::closed);
    item it = ch.reader.next();
    REQUIRE(it.is_chunk());
    CHECK(it.text() == "partial");
    it = ch.reader.next();
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::aborted);
    CHECK(ch.reader.abort_reason() == "disk on fire");
    CHECK(ch.reader.status() == errc::aborted);
    CHECK(ch.reader.next().error() == errc::aborted);  // sticky
    CHECK_FALSE(segment_exists(id));
    try {
        std::vector<std::byte> v = ch.reader.read_all();
        FAIL("read_all did not throw");
    } catch (const error& e) {
        CHECK(e.kind() == errc::aborted);
        CHECK(std::string(e.what()).find("disk on fire") != std::string::npos);
    }
}

TEST_CASE("a writer dropped without close() aborts the stream", "[channel][errors]") {
    channel ch = create_channel();
    reader r = std::move(ch.reader);
    {
        writer w = std::move(ch.writer);
        REQUIRE_FALSE(w.write("x"));
    }
    CHECK(r.next().is_chunk());
    item it = r.next();
    CHECK(it.error() == errc::aborted);
    CHECK(r.abort_reason() == "writer destroyed without close()");
}

TEST_CASE("an unused writer dropped leaves the ref usable", "[channel]") {
    channel ch = create_channel();
    { writer w = std::move(ch.writer); }  // never claimed: another process may hold the ref
    writer w2 = open_writer(ch.writer_ref);
    REQUIRE_FALSE(w2.write("ok"));
    REQUIRE_FALSE(w2.close());
    CHECK(ch.reader.read_all().size() == 2);
}

TEST_CASE("a reader that goes away makes the writer fail with peer_closed", "[channel][errors]") {
    channel ch = small_channel(4096);
    const std::string id = ch.reader_ref.channel_id;
    REQUIRE_FALSE(ch.writer.write("a"));
    REQUIRE(ch.reader.next().is_chunk());
    ch.reader = reader();  // destroyed: its end is closed
    auto big = pattern(20000);
    CHECK(ch.writer.write(big) == errc::peer_closed);
    CHECK(ch.writer.wait_drained(1s) == errc::peer_closed);
    CHECK(ch.writer.close() == errc::peer_closed);
    CHECK_FALSE(ch.writer.is_open());
    CHECK_FALSE(segment_exists(id));
}

TEST_CASE("timeouts: reading an empty channel and writing a full one", "[channel][errors]") {
    channel ch = small_channel(4096);
    item it = ch.reader.next(20ms);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::timeout);
    CHECK_FALSE(ch.reader.status());  // a timeout is not sticky
    CHECK(ch.reader.try_next().error() == errc::would_block);

    auto big = pattern(10000);
    CHECK(ch.writer.write(big, 20ms) == errc::timeout);
    CHECK(ch.writer.bytes_written() > 0);  // what did get in is counted
    CHECK(ch.writer.bytes_written() < big.size());
    CHECK(ch.writer.wait_drained(10ms) == errc::timeout);
    std::vector<std::byte> got;
    CHECK(ch.writer.send_message("x", 0ns) == errc::timeout);
    // After draining, the bytes that were counted are exactly a prefix of what was written.
    std::thread t([&] { (void)ch.reader.read_all(got); });
    REQUIRE_FALSE(ch.writer.close());
    t.join();
    REQUIRE(got.size() == ch.writer.bytes_written());
    CHECK(std::equal(got.begin(), got.end(), big.begin()));
}

TEST_CASE("opening ends from refs: direction, key, claims, missing segments", "[channel][errors]") {
    channel ch = create_channel();
    CHECK(thrown([&] { open_reader(ch.writer_ref); }) == errc::wrong_direction);
    CHECK(thrown([&] { open_writer(ch.reader_ref); }) == errc::wrong_direction);

    channel_ref forged = ch.reader_ref;
    forged.access_key = ch.writer_ref.access_key;  // a writer key cannot open the reader
    CHECK(thrown([&] { open_reader(forged); }) == errc::bad_key);
    forged.access_key = "00000000-0000-0000-0000-000000000000";
    CHECK(thrown([&] { open_reader(forged); }) == errc::bad_key);
    forged.access_key = "not-a-key";
    CHECK(thrown([&] { open_reader(forged); }) == errc::bad_key);
    channel_ref up = ch.writer_ref;
    up.dir = direction::read;  // a writer ref relabelled: its key is still the writer's
    CHECK(thrown([&] { open_reader(up); }) == errc::bad_key);

    reader r = open_reader(ch.reader_ref);
    CHECK(thrown([&] { open_reader(ch.reader_ref); }) == errc::already_claimed);
    CHECK(ch.reader.next().error() == errc::already_claimed);  // the local end, too

    channel_ref other = ch.reader_ref;
    other.shm->segment = "/shmchan-00000000-0000-4000-8000-000000000000";
    CHECK(thrown([&] { open_reader(other); }) == errc::invalid_ref);
    other.channel_id = "00000000-0000-4000-8000-000000000000";
    CHECK(thrown([&] { open_reader(other); }) == errc::segment_missing);
    other.channel_id = "../../etc/passwd";
    other.shm->segment = "/shmchan-../../etc/passwd";
    CHECK(thrown([&] { open_reader(other); }) == errc::invalid_ref);
    channel_ref remote = ch.reader_ref;
    remote.shm->host = "elsewhere.example";
    CHECK(thrown([&] { open_reader(remote); }) == errc::segment_missing);
    channel_ref plain = ch.reader_ref;
    plain.shm.reset();  // a stock iii ref: no shared memory to attach to
    CHECK(thrown([&] { open_reader(plain); }) == errc::segment_missing);

    REQUIRE_FALSE(ch.writer.write("z"));
    REQUIRE_FALSE(ch.writer.close());
    CHECK(r.read_all().size() == 1);
    // Finished: the segment is gone, and a late open says so.
    CHECK(thrown([&] { open_reader(ch.reader_ref); }) == errc::segment_missing);
}

TEST_CASE("create_channel: capacities and a full /dev/shm", "[channel][errors]") {
    channel_options o;
    o.capacity = 5000;  // rounded up to a power of two
    channel ch = create_channel(o);
    CHECK(ch.writer.capacity() == 8192);
    CHECK_FALSE(ch.writer.close());  // finish both ends so the segment is removed
    CHECK(ch.reader.next().is_end());
    o.capacity = shm::max_capacity;  // 1 TiB: more than /dev/shm holds
    try {
        create_channel(o);
        FAIL("no exception");
    } catch (const error& e) {
        CHECK(e.kind() == errc::no_space);
        CHECK(std::string(e.what()).find("/dev/shm") != std::string::npos);
    }
    o.capacity = shm::max_capacity * 2;
    CHECK(thrown([&] { create_channel(o); }) == errc::invalid_argument);
}

TEST_CASE("a hostile writer cannot make the reader read out of bounds", "[channel][hostile]") {
    channel ch = create_channel();
    REQUIRE_FALSE(ch.writer.write("abc"));
    // Another process with the segment mapped scribbles over the record header.
    auto seg = shm::segment::open(ch.reader_ref.shm->segment);
    auto* h = reinterpret_cast<shm::record_header*>(seg->data());
    h->length = 0x7fffffff;
    item it = ch.reader.next(100ms);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::corrupt);
    CHECK(ch.reader.status() == errc::corrupt);
}

TEST_CASE("error codes have names and messages", "[errors]") {
    std::error_code e = errc::peer_lost;
    CHECK(e.category().name() == std::string("shmchan"));
    CHECK(e.message() == "peer process died");
    CHECK(std::string(to_string(errc::already_claimed)) == "already_claimed");
    CHECK(e == errc::peer_lost);
}

TEST_CASE("another user cannot open a channel's segment", "[channel][security]") {
    if (::geteuid() != 0) {
        WARN("not root: cannot switch to another user to test this");
        return;
    }
    channel ch = create_channel();
    const pid_t pid = ::fork();
    if (pid == 0) {
        // Child: become "nobody" and try to open the reader end.
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
        try {
            reader r = open_reader(ch.reader_ref);
            ::_exit(11);  // opened: the segment is not protected
        } catch (const error& e) {
            ::_exit(e.kind() == errc::permission_denied ? 0 : 12);
        }
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK_FALSE(ch.writer.close());
    CHECK(ch.reader.next().is_end());
}

TEST_CASE("a writer end maps the whole ring when claimed: its loans take no page fault, unless prefault is off", "[channel]") {
    channel_options o;
    o.capacity = std::size_t{16} << 20;
    channel ch = create_channel(o);
    // A writer of its own mapping (the creator's ends share one), claimed by its first write.
    channel_options end_opts;
    SECTION("prefault (the default)") {}
    SECTION("prefault off") { end_opts.prefault = false; }
    writer w = open_writer(ch.writer_ref, end_opts);
    REQUIRE_FALSE(w.write("x"));
    loan l = w.get_loan(w.max_record());
    REQUIRE(l);
    const auto pages = static_cast<long>(l.size() / static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)));
    const long faults = test::faults_writing_pages(l.data().data(), l.size());
    INFO(faults << " page faults filling a loan of " << pages << " pages");
    if (end_opts.prefault) {
        // Without the prefault there is one per page; a sanitizer's shadow memory may fault a
        // few of its own.
        CHECK(faults < pages / 4);
    } else {
        CHECK(faults >= pages * 3 / 4);  // each page as it is first touched
    }
    l.commit();
    w.abort("done");
}
