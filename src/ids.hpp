// Random identifiers and keys (128 bits from the kernel's random source), their text form,
// and constant-time comparison.
#pragma once

#include <optional>
#include <string>

#include "shmchan/error.hpp"
#include "shmchan/shm/segment.hpp"

namespace shmchan::detail {

shm::uuid random_uuid();            // version-4 UUID bits set
shm::key random_key();              // 128 random bits
std::string format_uuid(const std::uint8_t* bytes16);
std::optional<shm::uuid> parse_uuid(const std::string& text);  // 8-4-4-4-12 hex, any case
bool keys_equal(const std::uint8_t* a, const std::uint8_t* b) noexcept;  // constant time
// What a segment stores of an end's key: the first 128 bits of SHA-256 over a label, the
// channel id and the key. A ref holder who maps the segment learns no key from it.
shm::key key_digest(const shm::key& key, const shm::uuid& channel_id);
const std::string& host_name();

}  // namespace shmchan::detail
