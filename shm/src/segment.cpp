#include "shmchan/shm/segment.hpp"

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "shmchan/shm/wait.hpp"

namespace bip = boost::interprocess;

namespace shmchan::shm {

namespace {

std::string describe(const bip::interprocess_exception& e) {
    return e.what();
}

[[noreturn]] void rethrow_open(const std::string& name, const bip::interprocess_exception& e) {
    switch (e.get_error_code()) {
        case bip::not_found_error:
            throw error(fault::missing, "channel segment " + name +
                                                   " does not exist (already finished, removed, "
                                                   "or created on another host)");
        case bip::security_error:
            throw error(fault::permission_denied,
                        "channel segment " + name + " belongs to another user (mode 0600)");
        default:
            throw error(fault::system_error, "cannot open channel segment " + name + ": " + describe(e));
    }
}

bool is_pow2(std::size_t v) { return v && !(v & (v - 1)); }

}  // namespace

std::string shm_dir() { return "/dev/shm"; }  // where glibc's shm_open puts segments

std::string segment_name_for(const std::string& channel_id) { return "/shmchan-" + channel_id; }

bool is_valid_segment_name(const std::string& name) noexcept {
    static constexpr char prefix[] = "/shmchan-";
    constexpr std::size_t plen = sizeof prefix - 1;
    if (name.size() != plen + 36 || name.compare(0, plen, prefix) != 0) return false;
    for (std::size_t i = plen; i < name.size(); ++i) {
        char c = name[i];
        std::size_t k = i - plen;
        bool dash = k == 8 || k == 13 || k == 18 || k == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

segment::segment(std::string name, std::unique_ptr<bip::mapped_region> region)
    : name_(std::move(name)), region_(std::move(region)),
      cb_(static_cast<control_block*>(region_->get_address())) {
    guard_ = guard_mapping(region_->get_address(), region_->get_size());
}

segment::~segment() { unguard(guard_); }

std::size_t segment::size() const noexcept { return region_->get_size(); }

void segment::unlink() noexcept {
    // Both ends of one process may share this mapping and finish on two threads at once.
    if (unlinked_.exchange(true, std::memory_order_acq_rel)) return;
    ::shm_unlink(name_.c_str());  // ENOENT: the peer removed it first
}

std::shared_ptr<segment> segment::create(const std::string& name, std::size_t capacity,
                                         const segment_identity& id) {
    if (!is_pow2(capacity) || capacity < min_capacity || capacity > max_capacity)
        throw error(fault::invalid_argument,
                    "channel capacity must be a power of two between 4 KiB and 1 TiB, got " +
                        std::to_string(capacity));
    const std::size_t total = data_offset + capacity;

    // Refuse early when the filesystem clearly cannot hold it: reserving pages one by one
    // until tmpfs runs dry would take memory from everyone for nothing.
    struct statvfs vfs{};
    if (::statvfs(shm_dir().c_str(), &vfs) == 0) {
        const unsigned long long avail =
            static_cast<unsigned long long>(vfs.f_bavail) * vfs.f_frsize;
        if (avail < total)
            throw error(fault::no_space, "not enough space in " + shm_dir() + " for a channel of " +
                                            std::to_string(total) + " bytes (" +
                                            std::to_string(avail) + " bytes free)");
    }

    bip::permissions perm;
    perm.set_permissions(0600);
    std::unique_ptr<bip::shared_memory_object> shm;
    try {
        shm = std::make_unique<bip::shared_memory_object>(bip::create_only, name.c_str(),
                                                          bip::read_write, perm);
    } catch (const bip::interprocess_exception& e) {
        throw error(e.get_error_code() == bip::already_exists_error ? fault::invalid_argument
                                                                    : fault::system_error,
                    "cannot create channel segment " + name + ": " + describe(e));
    }
    const int fd = shm->get_mapping_handle().handle;
    // Reserve every page now, so a full /dev/shm is an error here and not SIGBUS on a write.
    if (int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(total)); rc != 0) {
        ::shm_unlink(name.c_str());
        if (rc == ENOSPC)
            throw error(fault::no_space, "not enough space in " + shm_dir() +
                                            " to reserve a channel of " + std::to_string(total) +
                                            " bytes");
        throw error(fault::system_error,
                    "cannot reserve channel segment " + name + ": " + std::strerror(rc));
    }
    std::unique_ptr<bip::mapped_region> region;
    try {
        region = std::make_unique<bip::mapped_region>(*shm, bip::read_write, 0, total);
    } catch (const bip::interprocess_exception& e) {
        ::shm_unlink(name.c_str());
        throw error(fault::system_error, "cannot map channel segment " + name + ": " + describe(e));
    }

    auto* cb = new (region->get_address()) control_block{};
    segment_header& h = cb->header;
    h.version = layout_version;
    h.header_size = data_offset;
    h.capacity = capacity;
    h.max_payload = max_payload_for(capacity);
    h.segment_size = total;
    std::memcpy(h.channel_id, id.channel_id.data(), sizeof h.channel_id);
    std::memcpy(h.writer_key, id.writer_key.data(), key_bytes);
    std::memcpy(h.reader_key, id.reader_key.data(), key_bytes);
    h.creator.pid.store(::getpid(), std::memory_order_relaxed);
    h.creator.start_time.store(self_start_time(), std::memory_order_relaxed);
    // SYNC: the magic is stored last with release; open() checks it with acquire.
    std::atomic_ref<std::uint64_t>(h.magic).store(segment_magic, std::memory_order_release);
    return std::shared_ptr<segment>(new segment(name, std::move(region)));
}

std::shared_ptr<segment> segment::open(const std::string& name) {
    if (!is_valid_segment_name(name))
        throw error(fault::bad_name, "not a shmchan segment name: \"" + name + "\"");
    std::unique_ptr<bip::shared_memory_object> shm;
    try {
        shm = std::make_unique<bip::shared_memory_object>(bip::open_only, name.c_str(),
                                                          bip::read_write);
    } catch (const bip::interprocess_exception& e) {
        rethrow_open(name, e);
    }
    bip::offset_t size = 0;
    if (!shm->get_size(size) || size < static_cast<bip::offset_t>(data_offset + min_capacity))
        throw error(fault::corrupt, "channel segment " + name + " is too small (" +
                                       std::to_string(size) + " bytes)");
    std::unique_ptr<bip::mapped_region> region;
    try {
        region = std::make_unique<bip::mapped_region>(*shm, bip::read_write, 0,
                                                      static_cast<std::size_t>(size));
    } catch (const bip::interprocess_exception& e) {
        throw error(fault::system_error, "cannot map channel segment " + name + ": " + describe(e));
    }
    // Guarded before the header is read: the file may be truncated under us from here on.
    auto seg = std::shared_ptr<segment>(new segment(name, std::move(region)));
    segment_header& h = seg->control()->header;
    const auto magic = std::atomic_ref<std::uint64_t>(h.magic).load(std::memory_order_acquire);
    if (magic != segment_magic)
        throw error(fault::corrupt, "channel segment " + name + " has no shmchan header");
    if (h.version != layout_version)
        throw error(fault::corrupt, "channel segment " + name + " has layout version " +
                                       std::to_string(h.version) + ", this build reads version " +
                                       std::to_string(layout_version));
    if (h.header_size != data_offset || !is_pow2(h.capacity) || h.capacity < min_capacity ||
        h.capacity > max_capacity || h.segment_size != data_offset + h.capacity ||
        h.segment_size != static_cast<std::uint64_t>(size) ||
        h.max_payload != max_payload_for(h.capacity))
        throw error(fault::corrupt, "channel segment " + name + " has inconsistent sizes");
    // fstat again: a truncation after the first look faults only on the pages we touch later.
    // (`mapped` is the size the header was found to agree with.)
    const bip::offset_t mapped = size;
    if (!shm->get_size(size) || size < mapped || seg->truncated())
        throw error(fault::corrupt, "channel segment " + name + " was truncated");
    return seg;
}

}  // namespace shmchan::shm
