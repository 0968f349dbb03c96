#include <catch2/catch.hpp>

#include <functional>
#include <optional>
#include <sys/mman.h>
#include <sys/stat.h>

#include "shmchan/shm/segment.hpp"

using namespace shmchan::shm;

namespace {
// One name per test case: ctest runs the cases as parallel processes.
const std::string test_name = "/shmchan-00000000-0000-4000-8000-0000000000aa";
const std::string bad_sizes_name = "/shmchan-00000000-0000-4000-8000-0000000000ab";
const std::string bad_header_name = "/shmchan-00000000-0000-4000-8000-0000000000ac";

std::optional<fault> kind_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const error& e) {
        return e.kind();
    }
    return std::nullopt;
}
}  // namespace

TEST_CASE("segments are created mode 0600 with a valid header", "[segment]") {
    ::shm_unlink(test_name.c_str());
    segment_identity id{};
    id.reader_digests.resize(1);
    id.writer_digest[0] = 1;
    auto seg = segment::create(test_name, 8192, id);
    struct stat st{};
    REQUIRE(::stat(("/dev/shm" + test_name).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(static_cast<std::size_t>(st.st_size) == header_size_for(1) + 8192);
    CHECK(st.st_blocks * 512 >= static_cast<long>(header_size_for(1) + 8192));  // pages reserved
    auto again = segment::open(test_name);
    CHECK(again->control()->header.capacity == 8192);
    CHECK(again->control()->header.writer_digest[0] == 1);
    seg->unlink();
    CHECK(kind_of([] { segment::open(test_name); }) == fault::missing);
}

TEST_CASE("segment creation refuses bad capacities and a full /dev/shm", "[segment][errors]") {
    segment_identity id{};
    id.reader_digests.resize(1);
    CHECK(kind_of([&] { segment::create(bad_sizes_name, 5000, id); }) == fault::invalid_argument);
    CHECK(kind_of([&] { segment::create(bad_sizes_name, 1024, id); }) == fault::invalid_argument);
    // 1 TiB is a valid capacity but no /dev/shm here holds it: no_space before any mapping.
    CHECK(kind_of([&] { segment::create(bad_sizes_name, max_capacity, id); }) == fault::no_space);
    CHECK(kind_of([] { segment::open(bad_sizes_name); }) == fault::missing);
}

TEST_CASE("opening validates names and headers", "[segment][hostile]") {
    CHECK(kind_of([] { segment::open("/etc/passwd"); }) == fault::bad_name);
    CHECK(kind_of([] { segment::open("/shmchan-../../etc/passwd-00000000000000000"); }) ==
          fault::bad_name);
    CHECK(is_valid_segment_name(test_name));
    CHECK_FALSE(is_valid_segment_name("/shmchan-00000000-0000-4000-8000-0000000000AA"));

    ::shm_unlink(bad_header_name.c_str());
    segment_identity id{};
    id.reader_digests.resize(3);
    auto seg = segment::create(bad_header_name, 8192, id);
    CHECK(segment::open(bad_header_name)->geometry().readers == 3);
    SECTION("wrong magic") {
        seg->control()->header.magic = 42;
        CHECK(kind_of([] { segment::open(bad_header_name); }) == fault::corrupt);
    }
    SECTION("other layout version") {
        seg->control()->header.version = layout_version + 1;
        CHECK(kind_of([] { segment::open(bad_header_name); }) == fault::corrupt);
    }
    SECTION("capacity that does not match the file") {
        seg->control()->header.capacity = 1u << 20;
        CHECK(kind_of([] { segment::open(bad_header_name); }) == fault::corrupt);
    }
    SECTION("reader counts outside 1..64, or one the file's size does not hold") {
        for (std::uint32_t n : {0u, 65u, 1000u, 57u}) {  // 57 readers need an 8 KiB header
            seg->control()->header.readers = n;
            CHECK(kind_of([] { segment::open(bad_header_name); }) == fault::corrupt);
        }
    }
    SECTION("an unknown overflow policy") {
        seg->control()->header.overflow = 2;
        CHECK(kind_of([] { segment::open(bad_header_name); }) == fault::corrupt);
    }
    seg->unlink();
}
