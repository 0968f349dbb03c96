// Error codes and messages of the C ABI, options and frame meta conversion, the version.
#include "handles.hpp"

#include <shmchan/version.hpp>

#include <algorithm>
#include <cstring>
#include <vector>

namespace shmchan::capi {
namespace {
thread_local std::string last_message;

// The codes are the negated errc values: pinned here so that neither side drifts.
static_assert(SHMCHAN_E_WOULD_BLOCK == -static_cast<int>(errc::would_block));
static_assert(SHMCHAN_E_INVALID_REF == -static_cast<int>(errc::invalid_ref));
static_assert(SHMCHAN_E_PEER_LOST == -static_cast<int>(errc::peer_lost));
static_assert(SHMCHAN_E_ABORTED == -static_cast<int>(errc::aborted));
static_assert(SHMCHAN_E_INVALID_ARGUMENT == -static_cast<int>(errc::invalid_argument));
static_assert(SHMCHAN_E_HELD_LIMIT == -static_cast<int>(errc::held_limit));
static_assert(SHMCHAN_E_DATA_LOST == -static_cast<int>(errc::data_lost));
constexpr errc last_errc = errc::data_lost;
static_assert(SHMCHAN_FRAME_MAX_USER == frame_meta::max_user);
static_assert(SHMCHAN_TIME_NONE == frame_meta::none && SHMCHAN_OFFSET_NONE == frame_meta::no_offset);
static_assert(SHMCHAN_FRAME_NON_DROPPABLE == frame_flags::non_droppable);

bool known(int code) noexcept {
    return code <= 0 && code >= -static_cast<int>(last_errc);
}
}  // namespace

int fail(int code, std::string_view message) noexcept {
    try {
        last_message.assign(message);
    } catch (...) {
        last_message.clear();  // out of memory: the code alone
    }
    return code;
}

int fail(std::error_code e, std::string_view detail) noexcept {
    try {
        std::string m = e.message();
        if (!detail.empty()) m.append(": ").append(detail);
        return fail(code_of(e), m);
    } catch (...) {
        return fail(code_of(e), {});
    }
}

int invalid(std::string_view message) noexcept { return fail(SHMCHAN_E_INVALID_ARGUMENT, message); }

channel_options options_of(const shmchan_options* in) {
    shmchan_options o;
    shmchan_options_init(&o);
    if (in) {
        if (in->size < offsetof(shmchan_options, capacity))
            throw error(errc::invalid_argument, "shmchan_options.size is not set (shmchan_options_init)");
        std::memcpy(&o, in, std::min(in->size, sizeof o));
    }
    channel_options r;
    r.capacity = o.capacity;
    r.spin_us = o.spin_us;
    r.spin_max_us = o.spin_max_us;
    switch (o.transport) {
        case SHMCHAN_TRANSPORT_AUTO: r.via = transport::automatic; break;
        case SHMCHAN_TRANSPORT_SHM: r.via = transport::shm; break;
        case SHMCHAN_TRANSPORT_SOCKET: r.via = transport::socket; break;
        default: throw error(errc::invalid_argument, "shmchan_options.transport is not a SHMCHAN_TRANSPORT_* value");
    }
    if (o.engine) r.engine = o.engine;
    switch (o.loan_claim) {
        case SHMCHAN_LOAN_CLAIM_ADAPTIVE: r.loan_claim = channel_options::claim_policy::adaptive; break;
        case SHMCHAN_LOAN_CLAIM_ALWAYS: r.loan_claim = channel_options::claim_policy::always; break;
        case SHMCHAN_LOAN_CLAIM_NEVER: r.loan_claim = channel_options::claim_policy::never; break;
        default: throw error(errc::invalid_argument, "shmchan_options.loan_claim is not a SHMCHAN_LOAN_CLAIM_* value");
    }
    r.loan_claim_min = o.loan_claim_min;
    if (o.max_held == 0) throw error(errc::invalid_argument, "shmchan_options.max_held must be at least 1");
    r.max_held = o.max_held;
    r.readers = o.readers;
    switch (o.overflow) {
        case SHMCHAN_OVERFLOW_BLOCK: r.overflow = channel_options::overflow_policy::block; break;
        case SHMCHAN_OVERFLOW_DROP_OLDEST: r.overflow = channel_options::overflow_policy::drop_oldest; break;
        default: throw error(errc::invalid_argument, "shmchan_options.overflow is not a SHMCHAN_OVERFLOW_* value");
    }
    r.prefault = o.prefault != 0;  // a caller built before the field has init's default
    r.rmw_wakes = o.rmw_wakes != 0;
    return r;
}

frame_meta meta_of(const shmchan_frame_meta* m) noexcept {
    frame_meta r;
    if (!m) return r;
    r.pts = m->pts;
    r.dts = m->dts;
    r.duration = m->duration;
    r.offset = m->offset;
    r.offset_end = m->offset_end;
    r.flags = m->flags;
    if (m->user) r.user = {static_cast<const std::byte*>(m->user), m->user_size};
    return r;
}

}  // namespace shmchan::capi

using namespace shmchan;

extern "C" {

const char* shmchan_strerror(int code) {
    if (code == SHMCHAN_E_NO_MEMORY) return "out of memory";
    if (code == SHMCHAN_E_INTERNAL) return "internal error";
    if (!capi::known(code)) return "unknown error";
    // The category's messages are fixed strings: keep one copy of each for the process.
    static const auto messages = [] {
        std::vector<std::string> v;
        for (int i = 0; i <= static_cast<int>(capi::last_errc); ++i)
            v.push_back(error_category().message(i));
        return v;
    }();
    return messages[static_cast<std::size_t>(-code)].c_str();
}

const char* shmchan_error_name(int code) {
    if (code == SHMCHAN_E_NO_MEMORY) return "no_memory";
    if (code == SHMCHAN_E_INTERNAL) return "internal";
    if (!capi::known(code)) return "unknown";
    return to_string(static_cast<errc>(-code));
}

const char* shmchan_last_error(void) { return capi::last_message.c_str(); }

const char* shmchan_version_string(void) { return version_string; }

void shmchan_options_init_size(shmchan_options* out, size_t size) {
    if (!out || size < sizeof out->size) return;
    channel_options d;
    shmchan_options o;
    std::memset(&o, 0, sizeof o);
    o.capacity = d.capacity;
    o.spin_us = d.spin_us;
    o.spin_max_us = d.spin_max_us;
    o.transport = SHMCHAN_TRANSPORT_AUTO;
    o.engine = nullptr;
    o.loan_claim = SHMCHAN_LOAN_CLAIM_ADAPTIVE;
    o.loan_claim_min = d.loan_claim_min;
    o.max_held = d.max_held;
    o.readers = d.readers;
    o.overflow = SHMCHAN_OVERFLOW_BLOCK;
    o.prefault = d.prefault ? 1 : 0;
    o.rmw_wakes = d.rmw_wakes ? 1 : 0;
    capi::init_sized(out, o, size);
}

void shmchan_frame_meta_init(shmchan_frame_meta* m) {
    if (!m) return;
    std::memset(m, 0, sizeof *m);
    m->pts = m->dts = m->duration = SHMCHAN_TIME_NONE;
    m->offset = m->offset_end = SHMCHAN_OFFSET_NONE;
}

void shmchan_item_init_size(shmchan_item* out, size_t size) {
    if (!out || size < sizeof out->size) return;
    shmchan_item it;
    std::memset(&it, 0, sizeof it);
    it.kind = SHMCHAN_ITEM_END;
    it.abort_reason = "";
    shmchan_frame_meta_init(&it.meta);
    capi::init_sized(out, it, size);
}

}  // extern "C"
