#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmchan/shm/segment.hpp"
#include "support/proc_stats.hpp"

using namespace shmchan::shm;
using shmchan::test::faults_writing_pages;

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

namespace {
const std::string prefault_name = "/shmchan-00000000-0000-4000-8000-0000000000ad";
const std::string prefault_cut_name = "/shmchan-00000000-0000-4000-8000-0000000000ae";

// Without transparent huge pages on tmpfs, an untouched mapping faults once per page.
bool shmem_small_pages() {
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return s.empty() || s.find("[never]") != std::string::npos || s.find("[deny]") != std::string::npos;
}
}  // namespace

TEST_CASE("prefault maps the whole segment: the first pass round the ring takes no page fault", "[segment]") {
    ::shm_unlink(prefault_name.c_str());
    segment_identity id{};
    id.reader_digests.resize(1);
    constexpr std::size_t capacity = std::size_t{16} << 20;
    const long pages = static_cast<long>(capacity / static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)));
    auto seg = segment::create(prefault_name, capacity, id);
    // Each open is a mapping of its own, with page tables of its own.
    auto cold = segment::open(prefault_name);
    auto warm = segment::open(prefault_name);
    REQUIRE(warm->prefault(true));
    const long cold_faults = faults_writing_pages(cold->data(), capacity);
    const long warm_faults = faults_writing_pages(warm->data(), capacity);
    INFO("faults writing every page: " << cold_faults << " without prefault, " << warm_faults << " with");
    if (shmem_small_pages()) CHECK(cold_faults >= pages);  // what prefault saves
    // (A sanitizer's shadow memory may fault a few pages of its own.)
    CHECK(warm_faults < pages / 4);
    seg->unlink();
}

TEST_CASE("prefault of a truncated segment fails without a fault", "[segment][truncation]") {
    ::shm_unlink(prefault_cut_name.c_str());
    segment_identity id{};
    id.reader_digests.resize(1);
    auto seg = segment::create(prefault_cut_name, std::size_t{1} << 20, id);
    auto other = segment::open(prefault_cut_name);
    REQUIRE(::truncate((shm_dir() + prefault_cut_name).c_str(), 4096) == 0);
    CHECK_FALSE(other->prefault(true));
    CHECK_FALSE(other->prefault(false));  // an error, not SIGBUS
    CHECK_FALSE(other->truncated());  // nothing of the mapping was touched
    seg->unlink();
}
