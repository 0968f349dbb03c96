// shmchan through shared memory: the consumer (or pong) side creates the channel, leaves the
// writer ref in the scratch directory, and the other process opens it. Ring capacity
// max(4 MiB, 4 x payload), so that the largest message is one record.
//
// Several readers (run_spec::readers, loan and write): the first consumer creates one channel
// with that many readers and leaves the writer ref and the other readers' refs; the harness
// starts the next consumer only once it is ready, and each opens its ref. The producer writes
// each message once; every reader digests it in place.
//
// The -nomb variants run both sides with SHMCHAN_NO_MEMBARRIER=1: every commit and release
// reads the sleeper count with a locked read-modify-write again instead of relying on the
// sleeper's membarrier, so the pair isolates what the asymmetric fence is worth.
#include "channel_sides.hpp"

#include <shmchan/shm/wait.hpp>

#include <sys/mman.h>

namespace shmchan_bench {
namespace {

using channel_sides::send_mode;

shmchan::channel_options options_for(const run_spec& spec, bool claim_loans) {
    shmchan::channel_options o;
    if (!claim_loans) o.loan_claim = shmchan::channel_options::claim_policy::never;
    o.capacity = std::max<std::size_t>(4 * MiB, 4 * spec.payload);
    // Latency with sleeping waits: block at once (no spin); busy-wait spins on try_* calls.
    // Throughput: the default spin (50 us, then the futex).
    if (spec.latency && !spec.busy_wait) o.spin_us = 0;
    o.via = shmchan::transport::shm;
    return o;
}

class shmchan_shm final : public transport {
public:
    shmchan_shm(send_mode m, bool claim, bool membarrier = true) : mode_(m), claim_(claim), membarrier_(membarrier) {}
    std::string name() const override {
        const std::string n = mode_ == send_mode::write ? "shmchan-write" : claim_ ? "shmchan-loan" : "shmchan-loan-noclaim";
        return membarrier_ ? n : n + "-nomb";
    }
    std::string describe() const override {
        if (!membarrier_)
            return std::string(mode_ == send_mode::loan ? "shmchan-loan" : "shmchan-write") +
                   " with SHMCHAN_NO_MEMBARRIER=1 in both processes: a locked read-modify-write "
                   "per commit and release instead of a membarrier per sleep (the A/B of the "
                   "asymmetric fence)";
        if (mode_ == send_mode::loan && !claim_)
            return "shmchan-loan with loan_claim = never: loans are handed out as the ring "
                   "holds them, and the producer's stores fetch every cache line the consumer last "
                   "read (for comparison: what claiming the lines saves)";
        if (mode_ == send_mode::loan)
            return "shmchan ring in /dev/shm (max(4 MiB, 4 x payload)); producer fills a get_loan() "
                   "region in place and commits, consumer digests the record in place: 0 copies, "
                   "no syscall per message (futex only when a side sleeps after 50 us of spin); "
                   "loans from 16 KiB may first be zeroed with full-line stores (rep stosb: the lines are "
                   "taken without being fetched), when the writer measures that it pays (loan_claim "
                   "adaptive); busy-wait = try_loan()/try_next() loops, sleep = spin_us 0";
        return "the same ring; producer fills a private buffer and writer.write()s it (1 copy "
               "into the ring), consumer digests in place: 1 copy, no syscall per message";
    }

    // The variable is read once, when the library loads: it must be in the environment the
    // side processes start with.
    std::vector<std::string> side_environment() const override {
        if (membarrier_) return {};
        return {"SHMCHAN_NO_MEMBARRIER=1"};
    }

    // The variants that are A/B experiments (no claim, no membarrier) keep to one reader.
    bool fan_out() const override { return membarrier_ && (claim_ || mode_ == send_mode::write); }

    side_result consume(const run_spec& spec) override {
        check_membarrier();
        if (spec.reader_index > 0) {
            const auto o = options_for(spec, claim_);
            shmchan::reader r = shmchan::open_reader(
                shmchan::channel_ref::parse(read_file(spec.scratch_dir + "/shm.reader." + std::to_string(spec.reader_index))), o);
            (void)r.try_next();
            spec.ready();
            return channel_sides::consume(r, spec);
        }
        auto o = options_for(spec, claim_);
        o.readers = spec.readers;
        shmchan::channel ch = shmchan::create_channel(o);
        for (std::size_t i = 1; i < ch.reader_refs.size(); ++i)
            write_file(spec.scratch_dir + "/shm.reader." + std::to_string(i), ch.reader_refs[i].dump());
        write_file(spec.scratch_dir + "/shm.ref", ch.writer_ref.dump());
        (void)ch.reader.try_next();  // claims the reader end now (nothing there yet)
        spec.ready();
        return channel_sides::consume(ch.reader, spec);
    }
    side_result produce(const run_spec& spec) override {
        check_membarrier();
        auto ref = shmchan::channel_ref::parse(read_file(spec.scratch_dir + "/shm.ref"));
        shmchan::writer w = shmchan::open_writer(ref, options_for(spec, claim_));
        return channel_sides::produce(w, spec, mode_);
    }
    side_result pong(const run_spec& spec) override {
        check_membarrier();
        // ab: ping -> pong, ba: pong -> ping; pong keeps ab's reader and ba's writer.
        shmchan::channel ab = shmchan::create_channel(options_for(spec, claim_));
        shmchan::channel ba = shmchan::create_channel(options_for(spec, claim_));
        write_file(spec.scratch_dir + "/shm.ab", ab.writer_ref.dump());
        write_file(spec.scratch_dir + "/shm.ba", ba.reader_ref.dump());
        (void)ab.reader.try_next();
        spec.ready();
        return channel_sides::pong(ab.reader, ba.writer, spec, mode_);
    }
    side_result ping(const run_spec& spec) override {
        check_membarrier();
        const auto o = options_for(spec, claim_);
        shmchan::writer out = shmchan::open_writer(shmchan::channel_ref::parse(read_file(spec.scratch_dir + "/shm.ab")), o);
        shmchan::reader in = shmchan::open_reader(shmchan::channel_ref::parse(read_file(spec.scratch_dir + "/shm.ba")), o);
        return channel_sides::ping(out, in, spec, mode_);
    }

    // A run whose processes were killed leaves its segments: remove them by the refs it wrote.
    void cleanup(const run_spec& spec) override {
        for (const char* f : {"/shm.ref", "/shm.ab", "/shm.ba"}) {
            try {
                const auto ref = shmchan::channel_ref::parse(read_file(spec.scratch_dir + f));
                if (ref.shm) ::shm_unlink(ref.shm->segment.c_str());
            } catch (const std::exception&) {
                // no such file: that channel was never made
            }
        }
    }

private:
    // A -nomb side that still publishes with membarrier would make the comparison meaningless.
    void check_membarrier() const {
        if (!membarrier_ && shmchan::shm::fast_wake()) fail("still uses membarrier with SHMCHAN_NO_MEMBARRIER=1");
    }

    send_mode mode_;
    bool claim_;
    bool membarrier_;
};

}  // namespace

std::unique_ptr<transport> make_shmchan_loan() { return std::make_unique<shmchan_shm>(send_mode::loan, true); }
std::unique_ptr<transport> make_shmchan_loan_noclaim() { return std::make_unique<shmchan_shm>(send_mode::loan, false); }
std::unique_ptr<transport> make_shmchan_write() { return std::make_unique<shmchan_shm>(send_mode::write, true); }
std::unique_ptr<transport> make_shmchan_loan_nomb() { return std::make_unique<shmchan_shm>(send_mode::loan, true, false); }
std::unique_ptr<transport> make_shmchan_write_nomb() { return std::make_unique<shmchan_shm>(send_mode::write, true, false); }

}  // namespace shmchan_bench
