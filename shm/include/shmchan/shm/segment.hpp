// A named POSIX shared-memory segment holding one channel (control block + ring): created or
// opened by name in /dev/shm, mapped, its header validated once. Setup calls throw shm::error.
//
// The segment is untrusted input: any process holding a ref can map it and write anything
// into it. So geometry() is read from the header once at open and kept privately, and nothing
// that sizes or places an access reads the header again.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shmchan/shm/error.hpp"
#include "shmchan/shm/fault_guard.hpp"
#include "shmchan/shm/layout.hpp"

namespace shmchan::shm {

using key = std::array<std::uint8_t, key_bytes>;
using uuid = std::array<std::uint8_t, 16>;

struct segment_identity {
    uuid channel_id{};
    key writer_digest{};  // digests of the ends' keys (the keys themselves are never stored)
    std::vector<key> reader_digests;  // one per reader: 1..max_readers
    overflow_policy overflow = overflow_policy::block;
};

// Where segments live (for space checks and listings).
std::string shm_dir();

// An open-file-description lock on one byte of a segment file, held while this object lives.
// The kernel drops it when the holder's last descriptor closes, i.e. when it dies, whatever
// its PID namespace; any process that can open the file can test it (segment::held).
class slot_lock {
public:
    slot_lock() = default;
    explicit slot_lock(int fd) noexcept : fd_(fd) {}
    slot_lock(slot_lock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    slot_lock& operator=(slot_lock&& o) noexcept;
    ~slot_lock();
    explicit operator bool() const noexcept { return fd_ >= 0; }

private:
    int fd_ = -1;
};

class segment {
public:
    // Creates, sizes (pages reserved: a full /dev/shm is fault::no_space here, never SIGBUS
    // later), maps and initialises a segment with mode 0600, and holds its creator lock while
    // it lives. `capacity`: ring bytes, a power of two in [min_capacity, max_capacity]; one
    // reader line per digest in `id`.
    static std::shared_ptr<segment> create(const std::string& name, std::size_t capacity,
                                           const segment_identity& id);
    // Maps an existing segment and validates its header (magic, version, sizes). Only a regular
    // file owned by this user is opened (never a FIFO, device or link someone planted).
    static std::shared_ptr<segment> open(const std::string& name);

    ~segment();
    segment(const segment&) = delete;
    segment& operator=(const segment&) = delete;

    control_block* control() const noexcept { return cb_; }
    std::byte* data() const noexcept { return reinterpret_cast<std::byte*>(cb_) + geometry_.header_size; }
    // Reader i's line. \pre i < geometry().readers.
    consumer_line& reader(std::size_t i) const noexcept { return reader_line(cb_, i); }
    const std::string& name() const noexcept { return name_; }
    std::size_t size() const noexcept { return size_; }
    // Validated at open, private: never re-read from shared memory.
    const ring_geometry& geometry() const noexcept { return geometry_; }

    // Takes the lock of `slot` through a new open file description of this segment's file.
    // Empty when another live holder has it, or the file is gone or replaced.
    slot_lock lock(lock_slot slot) const noexcept;
    // Some process (in any namespace) holds the lock of `slot` through another description.
    bool held(lock_slot slot) const noexcept;

    // Someone truncated the file and this process touched the mapping since: it now holds
    // zero pages (fault_guard.hpp) and nothing in it can be trusted.
    bool truncated() const noexcept { return guard_.faulted(); }

    // Maps every page of the segment into this process now (MADV_POPULATE_WRITE for a writer,
    // _READ for a reader), so the first pass round the ring takes no page fault per 4 KiB (a
    // 33 MB frame is 8,100 of them; a write fault costs ~2.5 us, the populate ~1 us a page,
    // docs/benchmarks.md). The pages were reserved at create: this only fills this process's
    // page tables. False when the kernel cannot (before Linux 5.14) or the file was truncated:
    // nothing is touched then, and pages fault in on first use as before.
    bool prefault(bool for_write) const noexcept;

    // Removes the name from /dev/shm (mappings stay valid). Idempotent, never throws.
    void unlink() noexcept;

private:
    segment(std::string name, int fd, void* base, std::size_t size);
    std::string name_;
    int fd_ = -1;
    control_block* cb_ = nullptr;
    std::size_t size_ = 0;
    ring_geometry geometry_;
    std::uint64_t dev_ = 0, ino_ = 0;  // the file's identity, to refuse a replaced name
    std::atomic<bool> unlinked_{false};
    guard_token guard_;  // SIGBUS on the mapping becomes truncated(); released before unmapping
};

// Name of the segment of a channel: "/shmchan-<uuid>". Only names of this shape are ever
// opened, so a forged ref cannot point us at another file.
std::string segment_name_for(const std::string& channel_id);
bool is_valid_segment_name(const std::string& name) noexcept;

// Opens a segment file of this user for reading its header or testing locks without mapping
// it (gc, version checks): O_NOFOLLOW | O_NONBLOCK, a regular file owned by this uid, or -1.
int open_segment_file(const std::string& name, bool write) noexcept;

}  // namespace shmchan::shm
