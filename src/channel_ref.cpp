#include "shmchan/channel_ref.hpp"

#include <algorithm>
#include <deque>

#include "shmchan/error.hpp"

namespace shmchan {

using nlohmann::json;

const char* to_string(direction d) noexcept { return d == direction::read ? "read" : "write"; }

namespace {

[[noreturn]] void bad(const std::string& why) { throw error(errc::invalid_ref, "invalid channel ref: " + why); }

const std::string& required_string(const json& j, const char* field) {
    auto it = j.find(field);
    if (it == j.end()) bad(std::string("missing \"") + field + "\"");
    if (!it->is_string()) bad(std::string("\"") + field + "\" must be a string");
    return it->get_ref<const std::string&>();
}

}  // namespace

json channel_ref::to_json() const {
    json j = {{"channel_id", channel_id}, {"access_key", access_key}, {"direction", to_string(dir)}};
    if (shm) j["shm"] = {{"segment", shm->segment}, {"host", shm->host}};
    return j;
}

channel_ref channel_ref::from_json(const json& j) {
    if (!j.is_object()) bad("expected a JSON object, got " + std::string(j.type_name()));
    channel_ref r;
    r.channel_id = required_string(j, "channel_id");
    r.access_key = required_string(j, "access_key");
    const std::string& d = required_string(j, "direction");
    if (d == "read")
        r.dir = direction::read;
    else if (d == "write")
        r.dir = direction::write;
    else
        bad("\"direction\" must be \"read\" or \"write\", got \"" + d + "\"");
    if (r.channel_id.empty()) bad("\"channel_id\" is empty");
    if (r.access_key.empty()) bad("\"access_key\" is empty");
    if (auto it = j.find("shm"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) bad("\"shm\" must be an object");
        r.shm = shm_extension{required_string(*it, "segment"), required_string(*it, "host")};
    }
    return r;
}

channel_ref channel_ref::parse(std::string_view text) {
    json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) bad("not valid JSON");
    return from_json(j);
}

void to_json(json& j, const channel_ref& r) { j = r.to_json(); }
void from_json(const json& j, channel_ref& r) { r = channel_ref::from_json(j); }

bool is_channel_ref(const json& j) noexcept {
    if (!j.is_object()) return false;
    auto id = j.find("channel_id"), key = j.find("access_key"), dir = j.find("direction");
    if (id == j.end() || key == j.end() || dir == j.end()) return false;
    if (!id->is_string() || !key->is_string() || !dir->is_string()) return false;
    const auto& d = dir->get_ref<const std::string&>();
    return d == "read" || d == "write";
}

namespace {
channel_ref ref_from_shape(const json& j) {
    try {
        return channel_ref::from_json(j);
    } catch (const error&) {
        // Shape says ref; a malformed extension (or an empty field) still makes it a ref we
        // report: keep the iii fields and drop the extension rather than lose the ref.
        channel_ref plain;
        plain.channel_id = j["channel_id"].get<std::string>();
        plain.access_key = j["access_key"].get<std::string>();
        plain.dir = j["direction"] == "read" ? direction::read : direction::write;
        return plain;
    }
}
}  // namespace

std::vector<std::pair<std::string, channel_ref>> extract_channel_refs(const json& j) {
    // Depth first, in document order, with an explicit stack: a hostile payload nested a
    // million deep must not overflow the call stack. Each node keeps only its own path
    // segment and its parent; a path is spelled out only for a ref found, so deep nesting
    // costs linear, not quadratic, time.
    struct step {
        const step* parent;
        std::string segment;  // an object key, or "[i]"; nothing for the root
        bool index;           // an array position (no '.' before it)
    };
    std::deque<step> steps{{nullptr, "", false}};
    auto path_of = [](const step* s) {
        std::vector<const step*> parts;
        for (; s && s->parent; s = s->parent) parts.push_back(s);
        std::string p;
        for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
            if (!p.empty() && !(*it)->index) p += '.';  // as iii: an empty prefix adds no '.'
            p += (*it)->segment;
        }
        return p;
    };
    std::vector<std::pair<std::string, channel_ref>> out;
    std::vector<std::pair<const json*, const step*>> todo{{&j, &steps.front()}};
    while (!todo.empty()) {
        const auto [node, at] = todo.back();
        todo.pop_back();
        if (is_channel_ref(*node)) {
            out.emplace_back(path_of(at), ref_from_shape(*node));
        } else if (node->is_object()) {
            const std::size_t first = todo.size();
            for (auto it = node->begin(); it != node->end(); ++it) {
                steps.push_back({at, it.key(), false});
                todo.emplace_back(&it.value(), &steps.back());
            }
            std::reverse(todo.begin() + static_cast<std::ptrdiff_t>(first), todo.end());
        } else if (node->is_array()) {
            for (std::size_t i = node->size(); i-- > 0;) {
                std::string seg = "[";  // built in steps: g++ 12 -O3 warns (-Wrestrict) on "[" + s + "]"
                seg += std::to_string(i);
                seg += ']';
                steps.push_back({at, std::move(seg), true});
                todo.emplace_back(&(*node)[i], &steps.back());
            }
        }
    }
    return out;
}

}  // namespace shmchan
