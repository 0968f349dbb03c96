#include "wire/channel_socket.hpp"

namespace shmchan::detail {

std::string aborted_close_reason(std::string_view why) {
    return close_reason_text(std::string(aborted_prefix) + std::string(why));
}

close_meaning decode_close(std::uint16_t code, std::string_view reason) {
    close_meaning m;
    if ((code == close_bad_payload || code == close_refused) && reason.substr(0, reason_bad_frame.size()) == reason_bad_frame) {
        m.error = errc::protocol_error;
        return m;
    }
    switch (code) {
        case close_normal: return m;
        case close_aborted:
            m.error = errc::aborted;
            m.abort_reason = std::string(reason.substr(0, aborted_prefix.size()) == aborted_prefix
                                             ? reason.substr(aborted_prefix.size())
                                             : reason);
            return m;
        case close_refused:
            m.error = reason == reason_already_claimed ? errc::already_claimed : errc::peer_lost;
            return m;
        case close_too_big: m.error = errc::too_large; return m;
        default: break;
    }
    // 1011 "<errc name>: ...": what the engine could not deliver; anything else: the peer is gone.
    const std::string_view name = reason.substr(0, reason.find(':'));
    m.error = errc::peer_lost;
    for (errc e : {errc::peer_closed, errc::peer_lost, errc::corrupt, errc::too_large})
        if (name == to_string(e)) m.error = e;
    return m;
}


namespace {
// Length of the valid UTF-8 sequence at s[i], or 0 if none starts there.
std::size_t utf8_char(std::string_view s, std::size_t i) noexcept {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c < 0x80) return 1;
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c == 0xe0) n = 3, lo = 0xa0;
    else if (c >= 0xe1 && c <= 0xec) n = 3;
    else if (c == 0xed) n = 3, hi = 0x9f;  // no surrogates
    else if (c >= 0xee && c <= 0xef) n = 3;
    else if (c == 0xf0) n = 4, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3) n = 4;
    else if (c == 0xf4) n = 4, hi = 0x8f;
    else return 0;
    if (i + n > s.size()) return 0;
    if (b(i + 1) < lo || b(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
    return n;
}
}  // namespace

bool valid_utf8(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_char(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string to_valid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_char(s, i);
        if (n == 0) {
            out += "\xef\xbf\xbd";
            ++i;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    return out;
}

std::string close_reason_text(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        std::size_t n = utf8_char(s, i);
        const bool ok = n != 0;
        if (!ok) n = 1;
        if (out.size() + (ok ? n : 1) > max_close_reason) break;
        if (ok) out.append(s.substr(i, n));
        else out += '?';
        i += n;
    }
    return out;
}

writer_outcome socket_writer_outcome(bool close_received, std::uint16_t code, std::string_view reason,
                                     std::string_view failure) {
    writer_outcome o;
    if (code == close_normal) {  // stream_complete / channel_close, even if the reply to it failed
        o.clean = true;
        return o;
    }
    if (!close_received) {
        o.abort_reason = "socket writer disconnected: " + std::string(failure);
        return o;
    }
    if (code == close_aborted && reason.substr(0, aborted_prefix.size()) == aborted_prefix) {
        o.abort_reason = std::string(reason.substr(aborted_prefix.size()));  // a shmchan end's abort, passed on
        return o;
    }
    o.abort_reason = "socket writer closed with code " + std::to_string(code);
    if (!reason.empty()) o.abort_reason += ": " + std::string(reason);
    return o;
}

}  // namespace shmchan::detail
