// Creating channels and opening ends from refs: which transport, and the checks a ref must
// pass before its segment is mapped.
#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "ends.hpp"
#include "env_knob.hpp"
#include "ids.hpp"
#include "segments.hpp"
#include "shm_ends.hpp"
#include "socket_ends.hpp"
#include "shmchan/channel.hpp"

namespace shmchan {

channel create_channel(const channel_options& opt) {
    if (opt.capacity > shm::max_capacity)
        throw error(errc::invalid_argument, "channel capacity above 1 TiB");
    if (opt.readers < 1 || opt.readers > shm::max_readers)
        throw error(errc::invalid_argument, "a channel has 1 to " + std::to_string(shm::max_readers) +
                                                " readers, not " + std::to_string(opt.readers));
    const std::size_t capacity = std::bit_ceil(std::max(opt.capacity, shm::min_capacity));
    const shm::uuid uuid = detail::random_uuid();
    const shm::key writer_key = detail::random_key();
    std::vector<shm::key> reader_keys(opt.readers);
    const auto policy = opt.overflow == channel_options::overflow_policy::drop_oldest ? shm::overflow_policy::drop_oldest
                                                                                       : shm::overflow_policy::block;
    shm::segment_identity id{uuid, detail::key_digest(writer_key, uuid), {}, policy};
    for (auto& k : reader_keys) {
        k = detail::random_key();
        id.reader_digests.push_back(detail::key_digest(k, uuid));
    }
    const std::string cid = detail::format_uuid(uuid.data());
    auto seg = detail::create_segment(shm::segment_name_for(cid), capacity, id);

    channel ch;
    const shm_extension ext{seg->name(), detail::host_name()};
    ch.writer_ref = {cid, detail::format_uuid(writer_key.data()), direction::write, ext};
    for (const auto& k : reader_keys)
        ch.reader_refs.push_back({cid, detail::format_uuid(k.data()), direction::read, ext});
    ch.reader_ref = ch.reader_refs.front();
    auto guard = std::make_shared<detail::creator_guard>(seg);
    ch.writer = detail::end_access::make_writer(detail::shm_writer_end(seg, opt, false, guard));
    ch.reader = detail::end_access::make_reader(detail::shm_reader_end(seg, opt, false, guard, 0));
    return ch;
}

namespace {
void check_direction(const channel_ref& ref, direction want) {
    if (ref.dir != want)
        throw error(errc::wrong_direction,
                    std::string("ref is for the ") + to_string(ref.dir) + " end of channel " +
                        ref.channel_id + "; it cannot open the " + to_string(want) + " end");
}
// The segment of `ref`, its keys checked; `index`: which reader the key is (read refs).
std::shared_ptr<shm::segment> open_checked(const channel_ref& ref, direction want, std::size_t* index = nullptr) {
    check_direction(ref, want);
    if (!ref.shm)
        throw error(errc::segment_missing, "ref of channel " + ref.channel_id +
                                               " has no \"shm\" extension: it was not made by "
                                               "shmchan, and only shared memory is served here");
    if (ref.shm->host != detail::host_name())
        throw error(errc::segment_missing, "channel " + ref.channel_id + " lives on host \"" +
                                               ref.shm->host + "\", this is \"" +
                                               detail::host_name() + "\"");
    const auto cid = detail::parse_uuid(ref.channel_id);
    if (!cid) throw error(errc::invalid_ref, "channel_id \"" + ref.channel_id + "\" is not a UUID");
    if (ref.shm->segment != shm::segment_name_for(ref.channel_id))
        throw error(errc::invalid_ref, "segment \"" + ref.shm->segment +
                                           "\" does not belong to channel " + ref.channel_id);
    auto seg = detail::open_segment(ref.shm->segment);
    const auto& h = seg->control()->header;
    if (std::memcmp(h.channel_id, cid->data(), cid->size()) != 0)
        throw error(errc::corrupt, "segment " + seg->name() + " holds another channel");
    const auto key = detail::parse_uuid(ref.access_key);
    auto refuse = [&] {
        return error(errc::bad_key, "access key does not match the " + std::string(to_string(want)) +
                                        " end of channel " + ref.channel_id);
    };
    if (!key) throw refuse();
    const auto digest = detail::key_digest(*key, *cid);
    if (want == direction::write) {
        if (!detail::keys_equal(digest.data(), h.writer_digest)) throw refuse();
        return seg;
    }
    // Every reader's digest is compared (in constant time each): which one matched is all
    // the loop tells.
    std::size_t found = seg->geometry().readers;
    for (std::size_t i = 0; i < seg->geometry().readers; ++i)
        if (detail::keys_equal(digest.data(), seg->reader(i).digest)) found = i;
    if (found == seg->geometry().readers) throw refuse();
    if (index) *index = found;
    return seg;
}
[[noreturn]] void throw_claimed(const channel_ref& ref) {
    throw error(errc::already_claimed, std::string("the ") + to_string(ref.dir) + " end of channel " +
                                           ref.channel_id + " is already claimed");
}
}  // namespace

loan_claim_setting effective_loan_claim(const channel_options& o) {
    using policy = channel_options::claim_policy;
    static const loan_claim_setting env = [] {
        const channel_options d;
        loan_claim_setting c{d.loan_claim, d.loan_claim_min};
        if (const auto n = detail::env_number("SHMCHAN_LOAN_CLAIM_MIN")) c.min = static_cast<std::size_t>(*n);
        if (const char* v = std::getenv("SHMCHAN_LOAN_CLAIM")) {
            const std::string_view p = v;
            c.policy = p == "always" ? policy::always : p == "never" ? policy::never : p == "adaptive" ? policy::adaptive : c.policy;
        }
        return c;
    }();
    const channel_options d;
    return {o.loan_claim == d.loan_claim ? env.policy : o.loan_claim,
            o.loan_claim_min == d.loan_claim_min ? env.min : o.loan_claim_min};
}

transport effective_transport(const channel_options& opt) {
    if (opt.via != transport::automatic) return opt.via;
    const char* env = std::getenv("SHMCHAN_TRANSPORT");
    if (!env || !*env || std::string_view(env) == "auto") return transport::automatic;
    if (std::string_view(env) == "shm") return transport::shm;
    if (std::string_view(env) == "socket") return transport::socket;
    throw error(errc::invalid_argument,
                std::string("SHMCHAN_TRANSPORT must be auto, shm or socket, not \"") + env + "\"");
}

namespace {
// Shared memory when the segment is on this host and can be opened; otherwise the engine's
// socket, when there is an engine to ask.
template <class OpenShm, class OpenSocket>
auto open_end(const channel_ref& ref, const channel_options& opt, direction want, OpenShm shm_open,
              OpenSocket socket_open) {
    check_direction(ref, want);
    const transport via = effective_transport(opt);
    auto no_engine = [&](const std::string& why) {
        return error(errc::segment_missing, why + "; no engine address was given for the socket path");
    };
    if (via == transport::socket) {
        if (opt.engine.empty()) throw no_engine("socket transport requested for channel " + ref.channel_id);
        return socket_open();
    }
    if (via == transport::shm || !ref.shm || ref.shm->host == detail::host_name()) {
        if (via == transport::shm || opt.engine.empty()) return shm_open();
        try {
            return shm_open();
        } catch (const error& e) {
            if (e.kind() != errc::segment_missing) throw;  // bad keys and claims stay errors
        }
    } else if (opt.engine.empty()) {
        throw no_engine("channel " + ref.channel_id + " lives on host \"" + ref.shm->host + "\"");
    }
    return socket_open();
}
}  // namespace

writer open_writer(const channel_ref& ref, const channel_options& opt) {
    return open_end(
        ref, opt, direction::write,
        [&] {
            auto impl = detail::shm_writer_end(open_checked(ref, direction::write), opt, true);
            if (!impl) throw_claimed(ref);
            return detail::end_access::make_writer(std::move(impl));
        },
        [&] { return detail::end_access::make_writer(detail::open_socket_writer(ref, opt.engine, opt.tls)); });
}

reader open_reader(const channel_ref& ref, const channel_options& opt) {
    return open_end(
        ref, opt, direction::read,
        [&] {
            std::size_t index = 0;
            auto seg = open_checked(ref, direction::read, &index);
            auto impl = detail::shm_reader_end(std::move(seg), opt, true, {}, index);
            if (!impl) throw_claimed(ref);
            return detail::end_access::make_reader(std::move(impl));
        },
        [&] { return detail::end_access::make_reader(detail::open_socket_reader(ref, opt.engine, opt.max_held, opt.tls)); });
}

}  // namespace shmchan
