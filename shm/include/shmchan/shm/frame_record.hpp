// Frame records (layout.hpp): the writer puts a frame_header and the user header in front of
// the frame's bytes; the reader reads that header once, validates it against the record, and
// keeps its own copy. A hostile writer can make a frame's fields nonsense, never make the
// reader look outside the record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "shmchan/shm/layout.hpp"
#include "shmchan/shm/ring.hpp"

namespace shmchan::shm {

struct frame_fields {
    std::int64_t pts = 0, dts = 0, duration = 0;
    std::uint64_t offset = 0, offset_end = 0;
    std::uint32_t flags = 0;
    const std::byte* user = nullptr;
    std::size_t user_len = 0;  // at most max_frame_user
};

// Where a frame's bytes start in a record whose user header has `user_len` bytes.
constexpr std::size_t frame_data_offset(std::size_t user_len) noexcept {
    return sizeof(frame_header) + align_record(user_len);
}
// A loan's frame bytes start here: room for the largest user header, known only at commit.
inline constexpr std::size_t frame_loan_offset = frame_overhead;
static_assert(frame_loan_offset == frame_data_offset(max_frame_user));

// Writes the header and the user header at the start of a frame record's payload.
// \pre f.user_len <= max_frame_user; data_offset >= frame_data_offset(f.user_len), 16-aligned.
inline void put_frame_header(std::byte* payload, const frame_fields& f, std::size_t data_offset) noexcept {
    frame_header h{};
    h.pts = f.pts;
    h.dts = f.dts;
    h.duration = f.duration;
    h.offset = f.offset;
    h.offset_end = f.offset_end;
    h.flags = f.flags;
    h.user_len = static_cast<std::uint32_t>(f.user_len);
    h.data_offset = static_cast<std::uint32_t>(data_offset);
    std::memcpy(payload, &h, sizeof h);
    if (f.user_len) std::memcpy(payload + sizeof h, f.user, f.user_len);
}

struct frame_record {
    frame_fields fields;
    const std::byte* data = nullptr;
    std::size_t size = 0;
};

// Reads the frame header of record `r` (of type frame) once. False when it does not fit the
// record: too short for a header, a user header longer than allowed, or data outside the record.
inline bool read_frame(const record_view& r, frame_record& out) noexcept {
    if (r.size < sizeof(frame_header)) return false;
    const auto* h = reinterpret_cast<const frame_header*>(r.data);
    const std::uint32_t user_len = load_once(h->user_len);
    const std::uint32_t data_off = load_once(h->data_offset);
    if (user_len > max_frame_user || data_off % record_align != 0 ||
        data_off < frame_data_offset(user_len) || data_off > r.size)
        return false;
    out.fields.pts = load_once(h->pts);
    out.fields.dts = load_once(h->dts);
    out.fields.duration = load_once(h->duration);
    out.fields.offset = load_once(h->offset);
    out.fields.offset_end = load_once(h->offset_end);
    out.fields.flags = load_once(h->flags);
    out.fields.user = r.data + sizeof(frame_header);
    out.fields.user_len = user_len;
    out.data = r.data + data_off;
    out.size = r.size - data_off;
    return true;
}

}  // namespace shmchan::shm
