#include "wire/frame_meta_json.hpp"

#include <limits>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

namespace shmchan::detail {

using json = nlohmann::json;

namespace {
constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
int sextet(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}
}  // namespace

std::string base64_encode(std::span<const std::byte> b) {
    std::string out;
    out.reserve((b.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < b.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, b.size() - i);
        std::uint32_t v = std::to_integer<std::uint32_t>(b[i]) << 16;
        if (n > 1) v |= std::to_integer<std::uint32_t>(b[i + 1]) << 8;
        if (n > 2) v |= std::to_integer<std::uint32_t>(b[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += n > 1 ? alphabet[(v >> 6) & 63] : '=';
        out += n > 2 ? alphabet[v & 63] : '=';
    }
    return out;
}

std::optional<std::vector<std::byte>> base64_decode(std::string_view t) {
    if (t.size() % 4) return std::nullopt;
    std::vector<std::byte> out;
    out.reserve(t.size() / 4 * 3);
    for (std::size_t i = 0; i < t.size(); i += 4) {
        const bool last = i + 4 == t.size();
        const std::size_t pad = last ? (t[i + 3] == '=') + (t[i + 2] == '=' && t[i + 3] == '=') : 0;
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 4 - pad; ++k) {
            const int s = sextet(t[i + k]);
            if (s < 0) return std::nullopt;
            v |= static_cast<std::uint32_t>(s) << (18 - 6 * k);
        }
        // Canonical only: the bits a padded group leaves unused must be zero.
        if ((pad == 1 && (v & 0xFF)) || (pad == 2 && (v & 0xFFFF))) return std::nullopt;
        out.push_back(static_cast<std::byte>(v >> 16));
        if (pad < 2) out.push_back(static_cast<std::byte>((v >> 8) & 0xFF));
        if (pad < 1) out.push_back(static_cast<std::byte>(v & 0xFF));
    }
    return out;
}

std::string encode_frame_meta(std::size_t size, const frame_meta& m) {
    json f = json::object();
    f["size"] = size;
    if (m.pts != frame_meta::none) f["pts"] = m.pts;
    if (m.dts != frame_meta::none) f["dts"] = m.dts;
    if (m.duration != frame_meta::none) f["duration"] = m.duration;
    if (m.offset != frame_meta::no_offset) f["offset"] = m.offset;
    if (m.offset_end != frame_meta::no_offset) f["offset_end"] = m.offset_end;
    if (m.flags) f["flags"] = m.flags;
    if (!m.user.empty()) f["user"] = base64_encode(m.user.first(std::min(m.user.size(), frame_meta::max_user)));
    // Written by hand around the fields so that the text begins with frame_meta_prefix.
    return std::string(frame_meta_prefix) + f.dump() + "}";
}

decoded_frame_meta decode_frame_meta(std::string_view text, std::size_t max_size) {
    decoded_frame_meta d;
    auto refuse = [&](std::string why) {
        decoded_frame_meta r;
        r.error = std::move(why);
        return r;
    };
    // Duplicate keys would let two readers of one meta disagree: refused while parsing.
    std::vector<std::set<std::string>> keys;
    bool duplicate = false;
    const json j = json::parse(
        text.begin(), text.end(),
        [&](int, json::parse_event_t ev, json& parsed) {
            if (ev == json::parse_event_t::object_start) keys.emplace_back();
            else if (ev == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
            else if (ev == json::parse_event_t::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second)
                duplicate = true;
            return true;
        },
        false);
    if (j.is_discarded()) return refuse("frame meta is not JSON");
    if (duplicate) return refuse("frame meta has a duplicate key");
    if (!j.is_object() || j.size() != 1 || !j.contains("shmchan_frame")) return refuse("frame meta is not {\"shmchan_frame\":{...}}");
    const json& f = j["shmchan_frame"];
    if (!f.is_object()) return refuse("shmchan_frame is not an object");
    if (!f.contains("size")) return refuse("frame meta lacks size");
    for (const auto& [k, v] : f.items()) {
        if (k == "size") {
            if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
                return refuse("frame size is not a non-negative integer");
            const auto n = v.get<std::uint64_t>();
            if (n > max_size) return refuse("frame size " + std::to_string(n) + " above " + std::to_string(max_size));
            d.size = static_cast<std::size_t>(n);
        } else if (k == "pts" || k == "dts" || k == "duration") {
            // An unsigned value above INT64_MAX is refused; INT64_MIN is "none", said by omission.
            if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max())))
                return refuse("frame " + k + " is not a 64-bit integer");
            const auto t = v.get<std::int64_t>();
            if (t == frame_meta::none) return refuse("frame " + k + " is the 'none' value (omit it instead)");
            (k == "pts" ? d.meta.pts : k == "dts" ? d.meta.dts : d.meta.duration) = t;
        } else if (k == "offset" || k == "offset_end") {
            if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
                return refuse("frame " + k + " is not a non-negative integer");
            const auto o = v.get<std::uint64_t>();
            if (o == frame_meta::no_offset) return refuse("frame " + k + " is the 'none' value (omit it instead)");
            (k == "offset" ? d.meta.offset : d.meta.offset_end) = o;
        } else if (k == "flags") {
            if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
                return refuse("frame flags is not a non-negative integer");
            const auto fl = v.get<std::uint64_t>();
            if (fl > 0xFFFF'FFFFu) return refuse("frame flags above 32 bits");
            d.meta.flags = static_cast<std::uint32_t>(fl);
        } else if (k == "user") {
            if (!v.is_string()) return refuse("frame user is not a string");
            const auto& s = v.get_ref<const std::string&>();
            if (s.size() > (frame_meta::max_user + 2) / 3 * 4) return refuse("frame user above " + std::to_string(frame_meta::max_user) + " bytes");
            auto bytes = base64_decode(s);
            if (!bytes) return refuse("frame user is not canonical base64");
            if (bytes->size() > frame_meta::max_user) return refuse("frame user above " + std::to_string(frame_meta::max_user) + " bytes");
            d.user = std::move(*bytes);
        } else {
            return refuse("frame meta has an unknown field");
        }
    }
    return d;
}

}  // namespace shmchan::detail
