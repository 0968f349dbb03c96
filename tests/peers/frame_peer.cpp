// The other process of the cross-process frame tests (tests/channel/frame_xproc_test.cpp):
//   frame_peer write REF_JSON FRAMES MAX_BYTES   frames with testkit::sample_frame meta, loaned and
//                                                copied in turn; prints "WROTE n", "DRAINED"
//   frame_peer read REF_JSON FRAMES MAX_BYTES [HELD]  checks every frame's bytes and meta, holding
//                                                up to HELD items; prints "END n" or "BAD why"
// Frame i has 1 + i * 7919 % MAX_BYTES bytes of fill_pattern(i << 32).
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "shmchan/shmchan.hpp"
#include "shmchan/testkit/checksum.hpp"
#include "shmchan/testkit/frames.hpp"
#include "peer_io.hpp"

using namespace shmchan;

namespace {
using shmchan::peers::say;
std::vector<std::byte> bytes_of(std::uint64_t i, std::size_t max) {
    std::vector<std::byte> v(1 + i * 7919 % max);
    fill_pattern(v, i << 32);
    return v;
}

int do_write(const channel_ref& ref, std::uint64_t frames, std::size_t max) {
    writer w = open_writer(ref);
    for (std::uint64_t i = 0; i < frames; ++i) {
        testkit::sample_frame f(i);
        const auto b = bytes_of(i, max);
        if (i % 2) {
            if (auto e = w.write_frame(b, f.meta)) return say("ERR " + std::string(to_string(errc(e.value())))), 1;
        } else {
            loan l = w.get_frame_loan(b.size());
            if (!l) return say("ERR " + std::string(to_string(errc(l.error().value())))), 1;
            std::memcpy(l.data().data(), b.data(), b.size());
            if (auto e = l.commit(f.meta)) return say("ERR " + std::string(to_string(errc(e.value())))), 1;
        }
    }
    say("WROTE " + std::to_string(frames));
    if (auto e = w.close()) return say("ERR " + std::string(to_string(errc(e.value())))), 1;
    if (auto e = w.wait_drained()) return say("ERR " + std::string(to_string(errc(e.value())))), 1;
    say("DRAINED");
    return 0;
}

int do_read(const channel_ref& ref, std::uint64_t frames, std::size_t max, std::size_t held) {
    channel_options o;
    o.max_held = held;
    reader r = open_reader(ref, o);
    std::deque<item> keep;  // held items, released newest first (out of order) when many
    for (std::uint64_t i = 0;;) {
        // Holding items can leave the writer no room: then give them all back (newest first).
        item it = r.next(keep.empty() ? forever : nanoseconds(std::chrono::milliseconds(20)));
        if (it.is_error() && it.error() == errc::timeout && !keep.empty()) {
            while (!keep.empty()) keep.pop_back();
            continue;
        }
        if (it.is_end()) {
            say("END " + std::to_string(i));
            return i == frames ? 0 : 1;
        }
        if (it.is_error()) {
            if (it.error() == errc::held_limit) return say("BAD held_limit below max_held"), 1;
            say("ERR " + std::string(to_string(errc(it.error().value()))));
            return 1;
        }
        if (!it.is_frame()) return say("BAD not a frame at " + std::to_string(i)), 1;
        const auto want = bytes_of(i, max);
        if (it.data().size() != want.size() || std::memcmp(it.data().data(), want.data(), want.size()) != 0)
            return say("BAD bytes of frame " + std::to_string(i)), 1;
        const std::string d = testkit::meta_difference(it.meta(), testkit::sample_frame(i).meta);
        if (!d.empty()) return say("BAD meta of frame " + std::to_string(i) + ": " + d), 1;
        ++i;
        if (held > 1) keep.push_back(std::move(it));
        if (held > 1 && keep.size() == held) {
            while (!keep.empty()) keep.pop_back();
        }
    }
}
}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: frame_peer write|read REF_JSON FRAMES MAX_BYTES [HELD]\n");
        return 2;
    }
    try {
        const std::string cmd = argv[1];
        const channel_ref ref = channel_ref::parse(argv[2]);
        const std::uint64_t frames = std::stoull(argv[3]);
        const std::size_t max = std::stoull(argv[4]);
        if (cmd == "write") return do_write(ref, frames, max);
        if (cmd == "read") return do_read(ref, frames, max, argc > 5 ? std::stoull(argv[5]) : 1);
    } catch (const error& e) {
        say(std::string("ERR ") + to_string(e.kind()) + " " + e.what());
        return 3;
    }
    return 2;
}
