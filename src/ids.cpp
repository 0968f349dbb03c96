#include "ids.hpp"

#include <cerrno>
#include <cstring>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/evp.h>

namespace shmchan::detail {

namespace {
void fill_random(std::uint8_t* p, std::size_t n) {
    while (n) {
        ssize_t got = ::getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            throw error(errc::system_error, std::string("getrandom failed: ") + std::strerror(errno));
        }
        p += got;
        n -= static_cast<std::size_t>(got);
    }
}
int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

shm::uuid random_uuid() {
    shm::uuid u;
    fill_random(u.data(), u.size());
    u[6] = static_cast<std::uint8_t>((u[6] & 0x0f) | 0x40);  // version 4
    u[8] = static_cast<std::uint8_t>((u[8] & 0x3f) | 0x80);  // RFC 4122 variant
    return u;
}

shm::key random_key() {
    shm::key k;
    fill_random(k.data(), k.size());
    return k;
}

std::string format_uuid(const std::uint8_t* b) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string s;
    s.reserve(36);
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
        s += hex[b[i] >> 4];
        s += hex[b[i] & 15];
    }
    return s;
}

std::optional<shm::uuid> parse_uuid(const std::string& t) {
    if (t.size() != 36) return std::nullopt;
    shm::uuid u{};
    std::size_t j = 0;
    for (std::size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (t[i] != '-') return std::nullopt;
            ++i;
            continue;
        }
        int hi = hex_value(t[i]), lo = hex_value(t[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        u[j++] = static_cast<std::uint8_t>(hi << 4 | lo);
        i += 2;
    }
    return u;
}

bool keys_equal(const std::uint8_t* a, const std::uint8_t* b) noexcept {
    unsigned diff = 0;
    for (std::size_t i = 0; i < shm::key_bytes; ++i) diff |= static_cast<unsigned>(a[i] ^ b[i]);
    return diff == 0;
}

const std::string& host_name() {
    static const std::string name = [] {
        char buf[256] = {};
        if (::gethostname(buf, sizeof buf - 1) != 0) return std::string("localhost");
        return std::string(buf);
    }();
    return name;
}

shm::key key_digest(const shm::key& key, const shm::uuid& channel_id) {
    static constexpr char label[] = "shmchan end key v1";
    unsigned char in[sizeof label - 1 + 16 + shm::key_bytes];
    std::memcpy(in, label, sizeof label - 1);
    std::memcpy(in + sizeof label - 1, channel_id.data(), 16);
    std::memcpy(in + sizeof label - 1 + 16, key.data(), shm::key_bytes);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(in, sizeof in, md, &n, EVP_sha256(), nullptr) != 1 || n < shm::key_bytes)
        throw error(errc::system_error, "SHA-256 failed (OpenSSL)");
    shm::key d;
    std::memcpy(d.data(), md, shm::key_bytes);
    return d;
}

}  // namespace shmchan::detail
