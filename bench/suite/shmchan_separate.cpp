// shmchan-separate: what feeding N consumers costs without several readers per channel, the
// baseline of docs/readers.md. Consumer i creates its own one-reader channel (as shmchan-loan's
// consumer does) and leaves its writer ref; the producer opens all N and, per message, fills a
// loan of the first channel in place and copies it into a loan of each other one (the cheapest
// a user can do: the payload is made once, then written N - 1 more times), then commits them.
// With one reader it is shmchan-loan.
#include "channel_sides.hpp"

#include <sys/mman.h>

namespace shmchan_bench {
namespace {

shmchan::channel_options separate_options(const run_spec& spec) {
    shmchan::channel_options o;
    o.capacity = std::max<std::size_t>(4 * MiB, 4 * spec.payload);
    o.via = shmchan::transport::shm;
    return o;
}

std::string ref_file(const run_spec& spec, std::size_t i) { return spec.scratch_dir + "/sep.ref." + std::to_string(i); }

shmchan::loan loan_of(shmchan::writer& w, std::size_t n) {
    shmchan::loan l = w.get_loan(n);
    if (!l) fail("loan: " + l.error().message());
    return l;
}

class shmchan_separate final : public transport {
public:
    std::string name() const override { return "shmchan-separate"; }
    std::string describe() const override {
        return "N one-reader shmchan channels (throughput with --readers N): the producer fills a "
               "loan of the first in place and memcpys it into a loan of each other; each consumer "
               "digests its own in place (with one reader: shmchan-loan)";
    }
    bool fan_out() const override { return true; }
    std::string prepare(const run_spec& spec) override {
        if (spec.latency) return "throughput only (a baseline for several readers)";
        return {};
    }

    side_result consume(const run_spec& spec) override {
        shmchan::channel ch = shmchan::create_channel(separate_options(spec));
        write_file(ref_file(spec, spec.reader_index), ch.writer_ref.dump());
        (void)ch.reader.try_next();  // claims the reader end now
        spec.ready();
        return channel_sides::consume(ch.reader, spec);
    }
    side_result produce(const run_spec& spec) override {
        std::vector<shmchan::writer> ws;
        for (std::size_t i = 0; i < std::max<std::size_t>(spec.readers, 1); ++i)
            ws.push_back(shmchan::open_writer(shmchan::channel_ref::parse(read_file(ref_file(spec, i))), separate_options(spec)));
        std::vector<shmchan::loan> ls(ws.size());
        side_result res = produce_loop(spec, [&](std::uint64_t seq) {
            ls[0] = loan_of(ws[0], spec.payload);
            fill_payload(ls[0].data(), seq);
            for (std::size_t i = 1; i < ws.size(); ++i) {
                ls[i] = loan_of(ws[i], spec.payload);
                std::memcpy(ls[i].data().data(), ls[0].data().data(), spec.payload);
            }
            for (auto& l : ls) l.commit();
        });
        for (auto& w : ws)
            if (auto e = w.close()) fail("close: " + e.message());
        generated(res, spec);
        return res;
    }
    side_result ping(const run_spec&) override { fail("shmchan-separate: throughput only"); }
    side_result pong(const run_spec&) override { fail("shmchan-separate: throughput only"); }

    void cleanup(const run_spec& spec) override {
        for (std::size_t i = 0; i < std::max<std::size_t>(spec.readers, 1); ++i) {
            try {
                const auto ref = shmchan::channel_ref::parse(read_file(ref_file(spec, i)));
                if (ref.shm) ::shm_unlink(ref.shm->segment.c_str());
            } catch (const std::exception&) {
                // no such file: that channel was never made
            }
        }
    }
};

}  // namespace

std::unique_ptr<transport> make_shmchan_separate() { return std::make_unique<shmchan_separate>(); }

}  // namespace shmchan_bench
