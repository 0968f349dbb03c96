// Deferred ends (src/ends.cpp): the public writer/reader holds a ref and opens its end at the
// first call, then keeps the opened end in its place; an error opening comes back from every
// call. (The worker hands such ends to handlers.)
#include <catch2/catch.hpp>

#include "ends.hpp"
#include "shmchan/shmchan.hpp"
#include "support/helpers.hpp"

using namespace shmchan;
using namespace std::chrono_literals;

TEST_CASE("a deferred end opens on first use and behaves as the opened end", "[deferred]") {
    channel ch = create_channel();
    writer w = detail::deferred_writer(ch.writer_ref, {});
    reader r = detail::deferred_reader(ch.reader_ref, {});
    CHECK(w);
    CHECK(w.is_open());
    std::string seen;
    r.on_message([&](std::string_view t) { seen += t; });  // set before the reader is opened
    REQUIRE_FALSE(w.send_message("hello"));
    REQUIRE_FALSE(w.write("abc"));
    REQUIRE_FALSE(w.close());
    CHECK(w.bytes_written() == 3);
    CHECK_FALSE(w.is_open());
    std::vector<std::byte> got;
    REQUIRE_FALSE(r.read_all(got, 5s));
    CHECK(got.size() == 3);
    CHECK(seen == "hello");
    CHECK(r.at_end());
    CHECK(r.bytes_read() == 3);
    // The creator's local ends are the same ends: already claimed through the deferred ones.
    CHECK(ch.writer.write("x") == errc::already_claimed);
}

TEST_CASE("a deferred end that cannot be opened returns why from every call", "[deferred][errors]") {
    channel_ref gone;
    {
        channel ch = create_channel();
        gone = ch.writer_ref;
    }  // dropped unused: its segment is gone
    writer w = detail::deferred_writer(gone, {});
    CHECK(w.write("a") == errc::segment_missing);
    CHECK(w.write("a") == errc::segment_missing);  // once opening failed, it stays failed
    CHECK(w.get_loan(8).error() == errc::segment_missing);
    CHECK(w.close() == errc::segment_missing);
    CHECK_FALSE(w.is_open());
    CHECK(test::thrown([&] { (void)w.event_fd(); }) == errc::segment_missing);

    channel_ref rgone = gone;
    rgone.dir = direction::read;
    reader r = detail::deferred_reader(rgone, {});
    item it = r.next(10ms);
    REQUIRE(it.is_error());
    CHECK(it.error() == errc::segment_missing);
    CHECK(r.status() == errc::segment_missing);
    CHECK_FALSE(r.at_end());
}
