// Reads records that carry their own index (testkit/records.hpp) from a channel that may drop
// them (overflow drop-oldest), checking each one it gets. One line per event:
//   read REF SIZE [--mark N]
//     -> "MARK <received>" once N records were received (it reads on)
//        "GAP <records> <bytes>" for each gap the reader is told of
//        "END <received> <missed> <bad> <order>": records received whole and in order, records
//        missed (by the gaps), records whose bytes were wrong or not intact when checked, and
//        "ordered" or "disordered" (an index went backwards or skipped without a gap)
//        | "ERR <errc> <received>"
#include <shmchan/shmchan.hpp>
#include <shmchan/testkit/records.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "peer_io.hpp"

using namespace shmchan;

namespace {
using shmchan::peers::say;
}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> a(argv + 1, argv + argc);
    if (a.size() < 3 || a[0] != "read") {
        std::fprintf(stderr, "usage: records_peer read REF SIZE [--mark N]\n");
        return 2;
    }
    const std::size_t size = std::strtoull(a[2].c_str(), nullptr, 10);
    std::uint64_t mark = 0;
    if (a.size() >= 5 && a[3] == "--mark") mark = std::strtoull(a[4].c_str(), nullptr, 10);
    try {
        reader r = open_reader(channel_ref::parse(a[1]));
        std::uint64_t received = 0, missed = 0, bad = 0, expect = 0;
        bool ordered = true, first = true;
        for (;;) {
            item it = r.next(std::chrono::seconds(60));
            if (it.is_chunk()) {
                const auto index = it.data().size() == size ? testkit::check_record(it.data()) : std::nullopt;
                if (!index || !it.intact()) {  // overwritten while checked: it was the next one
                    ++bad;
                    ++expect;
                    continue;
                }
                // A reader joining late starts at some record; after that, every index follows
                // the last one, or the missed ones.
                if (!first && *index != expect) ordered = false;
                first = false;
                expect = *index + 1;
                if (++received == mark) say("MARK " + std::to_string(received));
            } else if (it.is_gap()) {
                missed += it.gap().records;
                expect += it.gap().records;
                say("GAP " + std::to_string(it.gap().records) + " " + std::to_string(it.gap().bytes));
            } else if (it.is_end()) {
                say("END " + std::to_string(received) + " " + std::to_string(missed) + " " + std::to_string(bad) + " " +
                    (ordered ? "ordered" : "disordered"));
                return 0;
            } else if (!it.is_message()) {
                say(std::string("ERR ") + to_string(static_cast<errc>(it.error().value())) + " " + std::to_string(received));
                return 3;
            }
        }
    } catch (const error& e) {
        say(std::string("ERR ") + to_string(e.kind()) + " " + e.what());
        return 3;
    }
}
