#include "common.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unistd.h>

#include <shmchan/error.hpp>

namespace shmchan::gst {

namespace {

struct flag_pair {
    guint gst;
    std::uint32_t ours;
};
// keyframe is the inverse of DELTA_UNIT and handled apart; TAG_MEMORY is the pool's business.
constexpr flag_pair flag_map[] = {
    {GST_BUFFER_FLAG_LIVE, frame_flags::live},
    {GST_BUFFER_FLAG_DECODE_ONLY, frame_flags::decode_only},
    {GST_BUFFER_FLAG_DISCONT, frame_flags::discont},
    {GST_BUFFER_FLAG_RESYNC, frame_flags::resync},
    {GST_BUFFER_FLAG_CORRUPTED, frame_flags::corrupted},
    {GST_BUFFER_FLAG_MARKER, frame_flags::marker},
    {GST_BUFFER_FLAG_HEADER, frame_flags::header},
    {GST_BUFFER_FLAG_GAP, frame_flags::gap},
    {GST_BUFFER_FLAG_DROPPABLE, frame_flags::droppable},
    {GST_BUFFER_FLAG_SYNC_AFTER, frame_flags::sync_after},
    {GST_BUFFER_FLAG_NON_DROPPABLE, frame_flags::non_droppable},
};
// Flags from GST_BUFFER_FLAG_LAST up (12 bits, for subclasses) travel in the application bits.
constexpr unsigned gst_custom_shift = 20;
constexpr unsigned app_shift = 16;
constexpr std::uint32_t app_bits_carried = 0x0FFF'0000u;

std::int64_t time_in(GstClockTime t) noexcept {
    return GST_CLOCK_TIME_IS_VALID(t) ? static_cast<std::int64_t>(t) : frame_meta::none;
}
GstClockTime time_out(std::int64_t t) noexcept {
    return t == frame_meta::none || t < 0 ? GST_CLOCK_TIME_NONE : static_cast<GstClockTime>(t);
}
std::uint64_t offset_in(guint64 o) noexcept {
    return o == GST_BUFFER_OFFSET_NONE ? frame_meta::no_offset : o;
}
guint64 offset_out(std::uint64_t o) noexcept {
    return o == frame_meta::no_offset ? GST_BUFFER_OFFSET_NONE : o;
}

}  // namespace

static_assert(GST_BUFFER_FLAG_LAST == 1u << gst_custom_shift);

std::uint32_t flags_from_gst(guint f) noexcept {
    std::uint32_t out = 0;
    for (const auto& p : flag_map)
        if (f & p.gst) out |= p.ours;
    if (!(f & GST_BUFFER_FLAG_DELTA_UNIT)) out |= frame_flags::keyframe;
    out |= ((f >> gst_custom_shift) << app_shift) & app_bits_carried;
    return out;
}

guint flags_to_gst(std::uint32_t f) noexcept {
    guint out = 0;
    for (const auto& p : flag_map)
        if (f & p.ours) out |= p.gst;
    if (!(f & frame_flags::keyframe)) out |= GST_BUFFER_FLAG_DELTA_UNIT;
    out |= ((f & app_bits_carried) >> app_shift) << gst_custom_shift;
    return out;
}

frame_meta meta_from_buffer(GstBuffer* buf) noexcept {
    frame_meta m;
    m.pts = time_in(GST_BUFFER_PTS(buf));
    m.dts = time_in(GST_BUFFER_DTS(buf));
    m.duration = time_in(GST_BUFFER_DURATION(buf));
    m.offset = offset_in(GST_BUFFER_OFFSET(buf));
    m.offset_end = offset_in(GST_BUFFER_OFFSET_END(buf));
    m.flags = flags_from_gst(GST_BUFFER_FLAGS(buf));
    return m;
}

void meta_to_buffer(const frame_meta& m, GstBuffer* buf) noexcept {
    GST_BUFFER_PTS(buf) = time_out(m.pts);
    GST_BUFFER_DTS(buf) = time_out(m.dts);
    GST_BUFFER_DURATION(buf) = time_out(m.duration);
    GST_BUFFER_OFFSET(buf) = offset_out(m.offset);
    GST_BUFFER_OFFSET_END(buf) = offset_out(m.offset_end);
    // Only the buffer flags: the mini object's own flags (lockable, ...) stay as they are.
    GST_MINI_OBJECT_FLAGS(buf) = (GST_MINI_OBJECT_FLAGS(buf) & (GST_MINI_OBJECT_FLAG_LAST - 1)) |
                                 flags_to_gst(m.flags);
}

std::string write_file_atomically(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << text;
        out.flush();
        if (!out) return "cannot write " + tmp + ": " + std::strerror(errno);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        std::remove(tmp.c_str());
        return "cannot rename " + tmp + " to " + path + ": " + why;
    }
    return {};
}

std::optional<std::string> read_small_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (s.empty()) return std::nullopt;
    return s;
}

std::optional<std::string> ref_line(const std::string& text, std::size_t index, std::size_t& count) {
    std::optional<std::string> found;
    count = 0;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        const auto b = line.find_first_not_of(" \t\r");
        if (b == std::string::npos) continue;
        const auto e = line.find_last_not_of(" \t\r");
        if (count++ == index) found = line.substr(b, e - b + 1);
    }
    return found;
}

std::string describe(std::error_code e, std::string_view peer) {
    if (e.category() != error_category()) return e.message();
    switch (static_cast<errc>(e.value())) {
    case errc::peer_lost: return "the " + std::string(peer) + "'s process died";
    case errc::peer_closed: return "the " + std::string(peer) + " left before the end of the stream";
    default: return e.message() + " (" + to_string(static_cast<errc>(e.value())) + ")";
    }
}

}  // namespace shmchan::gst
