// shmchan ls / gc: what is in /dev/shm, and removing what nobody can use any more.
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>

#include "shmchan/admin.hpp"
#include "shmchan/shmchan.hpp"
#include "support/process.hpp"

using namespace shmchan;
using shmchan::test::child;
using shmchan::test::segment_exists;

namespace {
const segment_entry* find(const std::vector<segment_entry>& all, const std::string& id) {
    auto it = std::find_if(all.begin(), all.end(), [&](const segment_entry& s) {
        return s.name == "/shmchan-" + id;
    });
    return it == all.end() ? nullptr : &*it;
}
bool listed(const std::vector<segment_entry>& all, const std::string& id) { return find(all, id) != nullptr; }
// gc spares segments touched in the last few seconds; make this one look a minute old. (Other
// tests' fresh orphans stay out of reach of this test's gc, and the reverse.)
void age(const std::string& id) {
    timespec times[2];
    times[0].tv_sec = times[1].tv_sec = std::time(nullptr) - 60;
    times[0].tv_nsec = times[1].tv_nsec = 0;
    REQUIRE(::utimensat(AT_FDCWD, ("/dev/shm/shmchan-" + id).c_str(), times, 0) == 0);
}
}  // namespace

TEST_CASE("gc removes a channel whose creator died without using it, and nothing alive", "[admin]") {
    child orphan = child::spawn({SHMCHAN_TEST_WORKER, "-", "orphan"});
    const channel_ref dead_ref = channel_ref::parse(orphan.read_line());
    CHECK(orphan.wait() == 0);
    REQUIRE(segment_exists(dead_ref.channel_id));

    channel alive = create_channel();  // ours: its creator (this process) lives
    REQUIRE_FALSE(alive.writer.write("x"));

    const auto all = list_segments();
    const segment_entry* d = find(all, dead_ref.channel_id);
    REQUIRE(d);
    CHECK(d->readable);
    CHECK(d->orphaned);
    CHECK_FALSE(d->info.creator_alive);
    CHECK(d->info.writer.st == end_info::state::unclaimed);
    const segment_entry* a = find(all, alive.reader_ref.channel_id);
    REQUIRE(a);
    CHECK_FALSE(a->orphaned);
    CHECK(a->info.writer.st == end_info::state::active);
    CHECK(a->info.committed > 0);

    CHECK_FALSE(listed(collect_garbage(true), dead_ref.channel_id));  // too fresh: spared
    age(dead_ref.channel_id);
    CHECK(listed(collect_garbage(true), dead_ref.channel_id));  // dry run: reported, kept
    CHECK(segment_exists(dead_ref.channel_id));
    const auto removed = collect_garbage();
    CHECK(listed(removed, dead_ref.channel_id));
    CHECK_FALSE(listed(removed, alive.reader_ref.channel_id));
    CHECK_FALSE(segment_exists(dead_ref.channel_id));
    CHECK(segment_exists(alive.reader_ref.channel_id));
    CHECK_FALSE(alive.writer.close());
    CHECK(alive.reader.read_all().size() == 1);
}

TEST_CASE("gc keeps a channel while its writer lives, removes it once the writer is killed", "[admin][fault]") {
    child orphan = child::spawn({SHMCHAN_TEST_WORKER, "-", "orphan"});
    const channel_ref rref = channel_ref::parse(orphan.read_line());
    const std::string wref = orphan.read_line();
    orphan.wait();
    // A writer process claims it and stalls mid-stream; the reader never comes.
    child wr = child::spawn({shmchan::test::peer_path(), "write", wref, "--size", "100000", "--pause-after", "1000"});
    REQUIRE(wr.read_line().rfind("READY", 0) == 0);
    age(rref.channel_id);
    CHECK_FALSE(listed(collect_garbage(), rref.channel_id));  // a live process holds an end
    CHECK(segment_exists(rref.channel_id));
    wr.kill(SIGKILL);
    wr.wait();
    CHECK(listed(collect_garbage(), rref.channel_id));
    CHECK_FALSE(segment_exists(rref.channel_id));
}

TEST_CASE("shmchan ls and gc on the command line", "[admin][cli]") {
    child orphan = child::spawn({SHMCHAN_TEST_WORKER, "-", "orphan"});
    const channel_ref ref = channel_ref::parse(orphan.read_line());
    orphan.wait();
    age(ref.channel_id);
    child ls = child::spawn({shmchan::test::cli_path(), "ls"});
    const std::string out = ls.read_all();
    CHECK(ls.wait() == 0);
    CHECK(out.find(ref.channel_id) != std::string::npos);
    CHECK(out.find("ORPHANED") != std::string::npos);
    child gc = child::spawn({shmchan::test::cli_path(), "gc"});
    const std::string gone = gc.read_all();
    CHECK(gc.wait() == 0);
    CHECK(gone.find("removed " + ref.channel_id) != std::string::npos);
    CHECK_FALSE(segment_exists(ref.channel_id));
}
