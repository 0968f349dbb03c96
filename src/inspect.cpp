// inspect(): a look at a channel's segment without claiming anything (the engine's gc,
// `shmchan ls`).
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
    return done(writer.st) && done(reader.st);
}

channel_info inspect(const channel_ref& ref) {
    if (!ref.shm) throw error(errc::segment_missing, "ref has no shared-memory extension");
    if (ref.shm->segment != shm::segment_name_for(ref.channel_id))
        throw error(errc::invalid_ref, "segment does not belong to channel " + ref.channel_id);
    auto seg = detail::open_segment(ref.shm->segment);
    const shm::control_block* cb = seg->control();
    auto end = [](const std::atomic<std::uint32_t>& st, const shm::owner& who) {
        end_info e;
        e.pid = who.pid.load(std::memory_order_relaxed);
        switch (detail::load_state(st)) {
            case shm::end_state::unclaimed: e.st = end_info::state::unclaimed; break;
            case shm::end_state::active:
                e.st = detail::owner_dead(who) ? end_info::state::dead : end_info::state::active;
                break;
            case shm::end_state::closed: e.st = end_info::state::closed; break;
            case shm::end_state::aborted: e.st = end_info::state::aborted; break;
        }
        return e;
    };
    channel_info i;
    i.channel_id = ref.channel_id;
    i.capacity = cb->header.capacity;
    i.committed = cb->producer.tail.load(std::memory_order_acquire);
    i.released = cb->consumer.head.load(std::memory_order_acquire);
    i.writer = end(cb->producer.state, cb->producer.who);
    i.reader = end(cb->consumer.state, cb->consumer.who);
    i.creator_pid = cb->header.creator.pid.load(std::memory_order_relaxed);
    i.creator_alive = shm::process_alive(i.creator_pid, cb->header.creator.start_time.load(std::memory_order_relaxed));
    return i;
}

}  // namespace shmchan
