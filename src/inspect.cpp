// inspect(): a look at a channel's segment without claiming anything (the engine's gc,
// `shmchan ls`).
#include <algorithm>

#include "end_state.hpp"
#include "segments.hpp"
#include "shmchan/channel.hpp"
#include "shmchan/shm/wait.hpp"

namespace shmchan {

bool channel_info::finished() const noexcept {
    auto done = [](end_info::state s) {
        return s == end_info::state::closed || s == end_info::state::aborted ||
               s == end_info::state::dead;
    };
    if (!done(writer.st)) return false;
    for (const auto& r : readers)
        if (!done(r.end.st)) return false;
    return readers.empty() ? done(reader.st) : true;
}

channel_info inspect(const channel_ref& ref) {
    if (!ref.shm) throw error(errc::segment_missing, "ref has no shared-memory extension");
    if (ref.shm->segment != shm::segment_name_for(ref.channel_id))
        throw error(errc::invalid_ref, "segment does not belong to channel " + ref.channel_id);
    auto seg = detail::open_segment(ref.shm->segment);
    shm::control_block* cb = seg->control();
    auto end = [&](detail::end_ref e) {
        end_info info;
        info.pid = e.who.pid.load(std::memory_order_relaxed);  // for display: namespace-local
        switch (detail::load_state(e.state)) {
            case shm::end_state::unclaimed: info.st = end_info::state::unclaimed; break;
            case shm::end_state::active:
                info.st = seg->held(e.slot) ? end_info::state::active : end_info::state::dead;
                break;
            case shm::end_state::closed: info.st = end_info::state::closed; break;
            case shm::end_state::aborted: info.st = end_info::state::aborted; break;
        }
        return info;
    };
    channel_info i;
    i.channel_id = ref.channel_id;
    i.capacity = seg->geometry().capacity;
    i.committed = cb->producer.tail.load(std::memory_order_acquire);
    i.writer = end(detail::writer_end(cb));
    i.released = i.committed;
    for (std::size_t r = 0; r < seg->geometry().readers; ++r) {
        reader_info ri{end(detail::reader_end(*seg, r)), seg->reader(r).head.load(std::memory_order_acquire)};
        if (ri.end.st == end_info::state::active || ri.end.st == end_info::state::unclaimed)
            i.released = std::min(i.released, ri.released);
        i.readers.push_back(ri);
    }
    i.reader = i.readers.front().end;
    i.overflow = seg->geometry().overflow == shm::overflow_policy::drop_oldest
                     ? channel_options::overflow_policy::drop_oldest
                     : channel_options::overflow_policy::block;
    i.creator_pid = cb->header.creator.pid.load(std::memory_order_relaxed);
    i.creator_alive = seg->held(shm::lock_slot::creator);
    return i;
}

}  // namespace shmchan
