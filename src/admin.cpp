#include "shmchan/admin.hpp"

#include <algorithm>
#include <memory>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "shmchan/shm/segment.hpp"

namespace shmchan {

namespace {
bool final_or_gone(end_info::state s) {
    return s != end_info::state::active;  // unclaimed, closed, aborted, dead
}
// A segment of another shmchan layout version may belong to a running older (or newer)
// build: never garbage to us.
bool other_version(const std::string& name) {
    const int fd = shm::open_segment_file(name, false);
    if (fd < 0) return false;
    std::uint64_t magic = 0;
    std::uint32_t version = 0;
    const bool ok = ::pread(fd, &magic, sizeof magic, 0) == sizeof magic &&
                    ::pread(fd, &version, sizeof version, sizeof magic) == sizeof version;
    ::close(fd);
    return ok && magic == shm::segment_magic && version != shm::layout_version;
}
}  // namespace

std::string segment_directory() { return shm::shm_dir(); }

std::vector<segment_entry> list_segments() {
    std::vector<segment_entry> out;
    DIR* d = ::opendir(shm::shm_dir().c_str());
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        if (std::strncmp(e->d_name, "shmchan-", 8) != 0) continue;
        segment_entry s;
        s.name = std::string("/") + e->d_name;
        const std::string id = s.name.substr(9);
        // Only regular files of this user are ever opened: anyone can plant a FIFO (opening
        // it would block), a link or a device under a segment's name.
        struct stat st{};
        if (::lstat((shm::shm_dir() + s.name).c_str(), &st) != 0) continue;  // gone meanwhile
        if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
            s.problem = S_ISREG(st.st_mode) ? "another user's file: left alone" : "not a regular file: left alone";
            s.foreign = true;
            out.push_back(std::move(s));
            continue;
        }
        try {
            channel_ref ref{id, "", direction::read, shm_extension{s.name, ""}};
            s.info = inspect(ref);
            s.readable = true;
            // Nobody alive created it or holds an end: no one can finish it any more.
            const bool readers_gone = std::all_of(s.info.readers.begin(), s.info.readers.end(),
                                                  [](const reader_info& r) { return final_or_gone(r.end.st); });
            s.orphaned = (!s.info.creator_alive && final_or_gone(s.info.writer.st) && readers_gone) || s.info.finished();
        } catch (const error& err) {
            s.problem = std::string(to_string(err.kind())) + ": " + err.what();
        }
        out.push_back(std::move(s));
    }
    ::closedir(d);
    return out;
}

namespace {
// Removes an orphan only while holding the locks of its creator and every end, and after
// looking again under them: a claim takes its end's lock before anything else, so nothing can
// claim it between this look and the unlink, and a live holder in any PID namespace keeps us
// out. False when it is alive after all (or gone).
bool unlink_if_dead(const std::string& name) {
    std::shared_ptr<shm::segment> seg;
    try {
        seg = shm::segment::open(name);
    } catch (const shm::error&) {
        return false;
    }
    std::vector<shm::slot_lock> locks;
    locks.push_back(seg->lock(shm::lock_slot::creator));
    locks.push_back(seg->lock(shm::lock_slot::writer));
    for (std::size_t i = 0; i < seg->geometry().readers; ++i) locks.push_back(seg->lock(shm::reader_slot(i)));
    for (const auto& l : locks)
        if (!l) return false;
    seg->unlink();  // every end is unclaimed, final, or held by no live process
    return true;
}
// A corrupt file: removed only if it is still the regular file of ours that was judged.
bool unlink_file(const std::string& name, const struct stat& judged) {
    const int fd = shm::open_segment_file(name, false);
    if (fd < 0) return false;
    struct stat st{};
    const bool same = ::fstat(fd, &st) == 0 && st.st_ino == judged.st_ino && st.st_dev == judged.st_dev;
    ::close(fd);
    return same && ::unlink((shm::shm_dir() + name).c_str()) == 0;
}

std::vector<segment_entry> collect(const std::vector<std::string>* only, bool dry_run, std::chrono::seconds min_age) {
    std::vector<segment_entry> removed;
    for (auto& s : list_segments()) {
        if (only && std::none_of(only->begin(), only->end(), [&](const std::string& id) {
                return s.name == id || s.name == "/shmchan-" + id;
            }))
            continue;
        if (s.foreign) continue;
        struct stat st{};
        if (::lstat((shm::shm_dir() + s.name).c_str(), &st) != 0) continue;  // gone meanwhile
        const auto age = std::chrono::seconds(std::time(nullptr) - st.st_mtime);
        bool remove = s.orphaned && age >= min_age;
        // A segment being created has no magic yet: only old corrupt ones are garbage.
        const bool corrupt = !s.readable && s.problem.rfind("corrupt", 0) == 0 && !other_version(s.name);
        if (corrupt) remove = age > std::chrono::seconds(60);
        if (!remove) continue;
        if (!dry_run && !(corrupt ? unlink_file(s.name, st) : unlink_if_dead(s.name))) continue;
        removed.push_back(std::move(s));
    }
    return removed;
}
}  // namespace

std::vector<segment_entry> collect_garbage(bool dry_run, std::chrono::seconds min_age) {
    return collect(nullptr, dry_run, min_age);
}

std::vector<segment_entry> collect_garbage(const std::vector<std::string>& channel_ids, bool dry_run,
                                           std::chrono::seconds min_age) {
    return collect(&channel_ids, dry_run, min_age);
}

}  // namespace shmchan
