#include "shmchan/shm/segment.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "shmchan/shm/fault_guard.hpp"
#include "shmchan/shm/wait.hpp"

namespace shmchan::shm {

namespace {

bool is_pow2(std::size_t v) { return v && !(v & (v - 1)); }

std::string path_of(const std::string& name) { return shm_dir() + name; }

[[noreturn]] void fail_open(const std::string& name, int err) {
    switch (err) {
        case ENOENT:
            throw error(fault::missing, "channel segment " + name +
                                            " does not exist (already finished, removed, or "
                                            "created on another host)");
        case EACCES:
        case EPERM:
            throw error(fault::permission_denied,
                        "channel segment " + name + " belongs to another user (mode 0600)");
        case ELOOP:
            throw error(fault::corrupt, "channel segment " + name + " is a symbolic link");
        default:
            throw error(fault::system_error,
                        "cannot open channel segment " + name + ": " + std::strerror(err));
    }
}

// The checks every descriptor of a segment file passes before it is used: a regular file of
// this user (a FIFO would block open and read, a device could be anything, another user's file
// is theirs). Returns 0, or the errno-like reason.
int check_file(int fd, struct stat& st) {
    if (::fstat(fd, &st) != 0) return errno;
    if (!S_ISREG(st.st_mode)) return EINVAL;
    if (st.st_uid != ::geteuid()) return EACCES;
    return 0;
}

int lock_cmd(int fd, int cmd, short type, lock_slot slot, short* seen = nullptr) noexcept {
    struct flock fl{};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(slot);
    fl.l_len = 1;
    fl.l_pid = 0;  // required by OFD locks
    const int rc = ::fcntl(fd, cmd, &fl);
    if (seen) *seen = fl.l_type;
    return rc;
}

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

int open_segment_file(const std::string& name, bool write) noexcept {
    if (!is_valid_segment_name(name)) return -1;
    const int fd = ::open(path_of(name).c_str(), (write ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st{};
    if (check_file(fd, st) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

slot_lock& slot_lock::operator=(slot_lock&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
}
slot_lock::~slot_lock() {
    if (fd_ >= 0) ::close(fd_);  // the kernel drops the lock with the description
}

segment::segment(std::string name, int fd, void* base, std::size_t size)
    : name_(std::move(name)), fd_(fd), cb_(static_cast<control_block*>(base)), size_(size) {
    struct stat st{};
    if (::fstat(fd_, &st) == 0) dev_ = st.st_dev, ino_ = st.st_ino;
    try {
        guard_ = guard_mapping(base, size);  // SIGBUS on this mapping becomes truncated()
    } catch (...) {
        ::munmap(base, size);
        ::close(fd);
        throw;
    }
}

segment::~segment() {
    unguard(guard_);  // before unmapping: the range may be reused
    ::munmap(cb_, size_);
    ::close(fd_);
}

void segment::unlink() noexcept {
    // Both ends of one process may share this mapping and finish on two threads at once.
    if (unlinked_.exchange(true, std::memory_order_acq_rel)) return;
    ::unlink(path_of(name_).c_str());  // ENOENT: the peer removed it first
}

slot_lock segment::lock(lock_slot slot) const noexcept {
    // A new open file description: locks of one description never conflict with each other.
    const int fd = ::open(path_of(name_).c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return {};
    struct stat st{};
    if (check_file(fd, st) != 0 || st.st_dev != dev_ || st.st_ino != ino_ ||
        lock_cmd(fd, F_OFD_SETLK, F_WRLCK, slot) != 0) {
        ::close(fd);
        return {};
    }
    return slot_lock(fd);
}

bool segment::held(lock_slot slot) const noexcept {
    short seen = F_UNLCK;
    // An error testing (none is expected on a regular file) counts as held: never call a live
    // end dead on a doubt.
    if (lock_cmd(fd_, F_OFD_GETLK, F_WRLCK, slot, &seen) != 0) return true;
    return seen != F_UNLCK;
}

std::shared_ptr<segment> segment::create(const std::string& name, std::size_t capacity,
                                         const segment_identity& id) {
    if (!is_pow2(capacity) || capacity < min_capacity || capacity > max_capacity)
        throw error(fault::invalid_argument,
                    "channel capacity must be a power of two between 4 KiB and 1 TiB, got " +
                        std::to_string(capacity));
    if (!is_valid_segment_name(name)) throw error(fault::bad_name, "not a shmchan segment name: \"" + name + "\"");
    const std::size_t readers = id.reader_digests.size();
    if (readers < 1 || readers > max_readers)
        throw error(fault::invalid_argument, "a channel has 1 to " + std::to_string(max_readers) +
                                                 " readers, not " + std::to_string(readers));
    const ring_geometry g = geometry_for(capacity, readers, id.overflow);
    const std::size_t total = g.header_size + capacity;

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

    const std::string path = path_of(name);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        throw error(errno == EEXIST ? fault::invalid_argument : fault::system_error,
                    "cannot create channel segment " + name + ": " + std::strerror(errno));
    auto fail = [&](fault f, const std::string& what) {
        ::close(fd);
        ::unlink(path.c_str());
        throw error(f, what);
    };
    ::fchmod(fd, 0600);  // whatever the umask
    // Reserve every page now, so a full /dev/shm is an error here and not SIGBUS on a write.
    if (int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(total)); rc != 0) {
        if (rc == ENOSPC)
            fail(fault::no_space, "not enough space in " + shm_dir() + " to reserve a channel of " +
                                      std::to_string(total) + " bytes");
        fail(fault::system_error, "cannot reserve channel segment " + name + ": " + std::strerror(rc));
    }
    void* base = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) fail(fault::system_error, "cannot map channel segment " + name + ": " + std::strerror(errno));
    // The creator lock: held through this description while the creator's segment lives.
    if (lock_cmd(fd, F_OFD_SETLK, F_WRLCK, lock_slot::creator) != 0) {
        ::munmap(base, total);
        fail(fault::system_error, "cannot lock channel segment " + name + ": " + std::strerror(errno));
    }

    std::shared_ptr<segment> seg;
    try {
        seg.reset(new segment(name, fd, base, total));
    } catch (const error&) {
        ::unlink(path.c_str());
        throw;
    }
    seg->geometry_ = g;
    auto* cb = new (base) control_block{};
    for (std::size_t i = 0; i < readers; ++i) {
        consumer_line& r = *new (&reader_line(cb, i)) consumer_line{};
        std::memcpy(r.digest, id.reader_digests[i].data(), key_bytes);
    }
    segment_header& h = cb->header;
    h.version = layout_version;
    h.header_size = static_cast<std::uint32_t>(g.header_size);
    h.readers = static_cast<std::uint32_t>(readers);
    h.overflow = static_cast<std::uint32_t>(id.overflow);
    h.capacity = capacity;
    h.max_payload = max_payload_for(capacity);
    h.segment_size = total;
    std::memcpy(h.channel_id, id.channel_id.data(), sizeof h.channel_id);
    std::memcpy(h.writer_digest, id.writer_digest.data(), key_bytes);
    h.creator.pid.store(::getpid(), std::memory_order_relaxed);
    h.creator.start_time.store(self_start_time(), std::memory_order_relaxed);
    // SYNC: the magic is stored last with release; open() checks it with acquire.
    std::atomic_ref<std::uint64_t>(h.magic).store(segment_magic, std::memory_order_release);
    return seg;
}

#ifndef MADV_POPULATE_READ  // Linux 5.14; older glibc headers lack them
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

bool segment::prefault(bool for_write) const noexcept {
    // Unlike touching the pages, the kernel reports a truncated file as an error (EFAULT)
    // rather than SIGBUS, so a hostile peer cannot make this fault.
    return ::madvise(cb_, size_, for_write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0;
}

std::shared_ptr<segment> segment::open(const std::string& name) {
    if (!is_valid_segment_name(name))
        throw error(fault::bad_name, "not a shmchan segment name: \"" + name + "\"");
    // O_NONBLOCK: a FIFO planted under this name must not block us; check_file refuses it.
    const int fd = ::open(path_of(name).c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fail_open(name, errno);
    struct stat st{};
    if (const int why = check_file(fd, st); why != 0) {
        ::close(fd);
        if (why == EINVAL) throw error(fault::corrupt, "channel segment " + name + " is not a regular file");
        fail_open(name, why);
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size < sizeof(control_block) + min_capacity || size > header_size_for(max_readers) + max_capacity) {
        ::close(fd);
        throw error(fault::corrupt, "channel segment " + name + " has an impossible size (" +
                                        std::to_string(size) + " bytes)");
    }
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        throw error(fault::system_error, "cannot map channel segment " + name + ": " + std::strerror(err));
    }
    // Guarded before the header is read: the file may be truncated under us from here on.
    auto seg = std::shared_ptr<segment>(new segment(name, fd, base, size));
    auto refuse = [&](const std::string& what) { throw error(fault::corrupt, "channel segment " + name + " " + what); };
    segment_header& h = seg->control()->header;
    // Each field is read once here; what sizes an access is kept in `g`, never re-read.
    const auto magic = std::atomic_ref<std::uint64_t>(h.magic).load(std::memory_order_acquire);
    if (magic != segment_magic) refuse("has no shmchan header");
    const std::uint32_t version = std::atomic_ref<std::uint32_t>(h.version).load(std::memory_order_relaxed);
    if (version != layout_version)
        refuse("has layout version " + std::to_string(version) + ", this build reads version " +
               std::to_string(layout_version));
    const std::uint32_t header_size = std::atomic_ref<std::uint32_t>(h.header_size).load(std::memory_order_relaxed);
    const std::uint64_t capacity = std::atomic_ref<std::uint64_t>(h.capacity).load(std::memory_order_relaxed);
    const std::uint64_t max_payload = std::atomic_ref<std::uint64_t>(h.max_payload).load(std::memory_order_relaxed);
    const std::uint64_t segment_size = std::atomic_ref<std::uint64_t>(h.segment_size).load(std::memory_order_relaxed);
    const std::uint32_t readers = std::atomic_ref<std::uint32_t>(h.readers).load(std::memory_order_relaxed);
    const std::uint32_t overflow = std::atomic_ref<std::uint32_t>(h.overflow).load(std::memory_order_relaxed);
    if (readers < 1 || readers > max_readers || overflow > static_cast<std::uint32_t>(overflow_policy::drop_oldest))
        refuse("has an impossible reader count or overflow policy");
    if (header_size != header_size_for(readers) || !is_pow2(capacity) || capacity < min_capacity ||
        capacity > max_capacity || segment_size != header_size + capacity || segment_size != size ||
        max_payload != max_payload_for(capacity))
        refuse("has inconsistent sizes");
    // fstat again: a truncation after the first look faults only on the pages touched later.
    struct stat now{};
    if (::fstat(fd, &now) != 0 || static_cast<std::uint64_t>(now.st_size) < size || seg->truncated())
        refuse("was truncated");
    seg->geometry_ = geometry_for(capacity, readers, static_cast<overflow_policy>(overflow));
    return seg;
}

}  // namespace shmchan::shm
