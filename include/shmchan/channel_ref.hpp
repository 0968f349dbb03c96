// Channel refs: the small, serializable tokens that travel inside ordinary JSON function
// payloads. Wire-compatible with iii: {"channel_id", "access_key", "direction"} plus an optional
// "shm" extension object that stock iii SDKs ignore.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace shmchan {

enum class direction { read, write };
const char* to_string(direction d) noexcept;

// Where the bytes of a shared-memory channel live.
struct shm_extension {
    std::string segment;  // "/shmchan-<channel_id>"
    std::string host;     // hostname of the machine whose /dev/shm holds the segment
    bool operator==(const shm_extension&) const = default;
};

struct channel_ref {
    std::string channel_id;
    std::string access_key;  // one key per direction: a reader ref cannot open the writer
    direction dir = direction::read;
    std::optional<shm_extension> shm;

    nlohmann::json to_json() const;
    std::string dump() const { return to_json().dump(); }
    // Strict parse. Throws shmchan::error(errc::invalid_ref) naming the field at fault.
    static channel_ref from_json(const nlohmann::json& j);
    static channel_ref parse(std::string_view json_text);

    bool operator==(const channel_ref&) const = default;
};

void to_json(nlohmann::json& j, const channel_ref& r);
void from_json(const nlohmann::json& j, channel_ref& r);

// iii's shape test: an object whose channel_id and access_key are strings and whose direction
// is "read" or "write". Extra fields are allowed.
bool is_channel_ref(const nlohmann::json& j) noexcept;

// Every ref in `j`, depth first, with iii's path syntax: "reader", "a.b[0]", "[2].x"; the root
// itself is path "". A ref's own fields are not searched further.
std::vector<std::pair<std::string, channel_ref>> extract_channel_refs(const nlohmann::json& j);

}  // namespace shmchan
