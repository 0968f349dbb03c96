// Channels created through the engine (a daemon, see engine_daemon.hpp) by a shmchan::worker in
// the harness, as an iii deployment creates them; the two sides open the refs it returned.
//   engine-socket: both ends with via = socket, as stock iii SDKs reach it:
//     producer -> WebSocket (TCP loopback) -> engine -> ring -> engine -> WebSocket -> consumer.
//   engine-shm: both ends with via = shm: the engine only creates the channel, the bytes take
//     shmchan-loan's path (loans filled in place); what an engine-made channel costs, if anything.
//   engine-socket-shm, engine-shm-socket: one end each way (the producer's first): a socket
//     writer into the ring a shared-memory reader reads, or a shared-memory writer's loans sent
//     out to a socket reader. In latency runs each process opens both its ends its own way.
//   engine-socket-unbatched, engine-shm-socket-unbatched: the same through a second engine daemon
//     run with SHMCHAN_ENGINE_BATCH=0 (one Beast write per record to a socket reader, as before
//     issue 14): the A/B of the batched bridge in one run.
#include "channel_sides.hpp"
#include "engine_daemon.hpp"

#include <set>

namespace shmchan_bench {
namespace {

using channel_sides::send_mode;

shmchan::channel_ref ref_in(const run_spec& spec, const char* name) {
    return shmchan::channel_ref::parse(read_file(spec.scratch_dir + "/" + name));
}

constexpr auto shm = shmchan::transport::shm;
constexpr auto sock = shmchan::transport::socket;

class engine_channels final : public transport {
public:
    engine_channels(shmchan::transport producer, shmchan::transport consumer, bool batched = true)
        : tx_(producer), rx_(consumer), batched_(batched) {}
    std::string name() const override {
        const char* base = tx_ != rx_ ? (tx_ == sock ? "engine-socket-shm" : "engine-shm-socket")
                                      : (tx_ == sock ? "engine-socket" : "engine-shm");
        return batched_ ? base : std::string(base) + "-unbatched";
    }
    std::string describe() const override {
        if (!batched_)
            return describe_batched() + "; UNBATCHED: the engine sends each record to the socket reader with "
                                        "its own Beast write (SHMCHAN_ENGINE_BATCH=0, as before issue 14), "
                                        "a second engine daemon";
        return describe_batched();
    }
    std::string describe_batched() const {
        if (tx_ == sock && rx_ == shm)
            return "shmchan::engine (own process, a daemon); the producer is a socket end (write()s "
                   "a private buffer as WebSocket frames on TCP loopback, masked with a zero key, "
                   "small ones batched by a sender thread; the engine reads each frame's payload "
                   "from the socket straight into ring loans), the consumer a shared-memory end "
                   "digesting the ring in place: 1 TCP hop, 2 copies; busy-wait = "
                   "try_write()/try_next() loops";
        if (tx_ == shm && rx_ == sock)
            return "shmchan::engine (own process, a daemon); the producer fills shared-memory "
                   "loans in place, the engine sends each record from the ring as a WebSocket "
                   "frame on TCP loopback (several records per send when they are there), the "
                   "consumer is a socket end reading large payloads straight into its buffer: 1 "
                   "TCP hop, 2 copies (3 when the producer copies into the ring); busy-wait = "
                   "try_loan()/try_next() loops";
        if (tx_ == shm)
            return "channels created by shmchan::engine (own process, a daemon) through a "
                   "shmchan::worker, both ends opened with via = shm: the engine only creates "
                   "the channel, the bytes move as in shmchan-loan (loans filled in place, 0 "
                   "copies); busy-wait = try_loan()/try_next() loops, sleep = spin_us 0";
        return "shmchan::engine (own process, a daemon) + WebSocket channel sockets on TCP "
               "loopback for both ends: producer write()s a private buffer (zero-key frames "
               "<= 1 MiB, small ones batched by a sender thread), the engine reads each "
               "payload straight into ring loans and sends each record from the ring as a "
               "frame to the consumer (the writer's bridge rings the reader's: no watcher "
               "thread between them): 2 TCP hops, 4 copies (as tcp-relay), several syscalls "
               "per frame; busy-wait = try_next() polling the socket";
    }

    std::string prepare(const run_spec& spec) override {
        try {
            env_ = daemon_env(spec);
            engine_daemon& e = shared_engine(env_);
            e.start();
            write_file(spec.scratch_dir + "/engine.url", e.url());
            const std::size_t n = engine_buffer_size(spec.payload);
            shmchan::channel a = e.worker().create_channel(n);
            write_file(spec.scratch_dir + "/a.writer", a.writer_ref.dump());
            write_file(spec.scratch_dir + "/a.reader", a.reader_ref.dump());
            if (spec.latency) {
                shmchan::channel b = e.worker().create_channel(n);
                write_file(spec.scratch_dir + "/b.writer", b.writer_ref.dump());
                write_file(spec.scratch_dir + "/b.reader", b.reader_ref.dump());
            }
        } catch (const std::exception& e) {
            shared_engine(env_).stop();
            return std::string("the engine could not be used: ") + e.what();
        }
        return {};
    }
    void teardown() override {
        for (const auto& env : used_) shared_engine(env).stop();
    }
    std::vector<int> daemon_pids() const override {
        if (const int pid = shared_engine(env_).pid(); pid > 0) return {pid};
        return {};
    }

    side_result consume(const run_spec& spec) override {
        shmchan::reader r = shmchan::open_reader(ref_in(spec, "a.reader"), options_for(spec, rx_));
        if (rx_ == shm) (void)r.try_next();  // attach now (nothing there yet)
        spec.ready();
        return channel_sides::consume(r, spec);
    }
    side_result produce(const run_spec& spec) override {
        shmchan::writer w = shmchan::open_writer(ref_in(spec, "a.writer"), options_for(spec, tx_));
        return channel_sides::produce(w, spec, mode(tx_));
    }
    // a: ping -> pong, b: pong -> ping.
    side_result pong(const run_spec& spec) override {
        const auto o = options_for(spec, rx_);
        shmchan::reader in = shmchan::open_reader(ref_in(spec, "a.reader"), o);
        shmchan::writer out = shmchan::open_writer(ref_in(spec, "b.writer"), o);
        if (rx_ == shm) (void)in.try_next();
        spec.ready();
        return channel_sides::pong(in, out, spec, mode(rx_));
    }
    side_result ping(const run_spec& spec) override {
        const auto o = options_for(spec, tx_);
        shmchan::writer out = shmchan::open_writer(ref_in(spec, "a.writer"), o);
        shmchan::reader in = shmchan::open_reader(ref_in(spec, "b.reader"), o);
        if (tx_ == shm) (void)in.try_next();
        return channel_sides::ping(out, in, spec, mode(tx_));
    }

private:
    static send_mode mode(shmchan::transport via) { return via == shm ? send_mode::loan : send_mode::write; }
    static shmchan::channel_options options_for(const run_spec& spec, shmchan::transport via) {
        shmchan::channel_options o;
        o.via = via;
        o.engine = read_file(spec.scratch_dir + "/engine.url");
        // As shmchan-loan: sleeping latency blocks at once, busy-wait spins on try_* calls.
        if (via == shm && spec.latency && !spec.busy_wait) o.spin_us = 0;
        return o;
    }

    // The engine's variables for this run: the unbatched twin's, then --ab's (B variants).
    std::vector<std::string> daemon_env(const run_spec& spec) {
        std::vector<std::string> env;
        if (!batched_) env.emplace_back(unbatched_env);
        env.insert(env.end(), spec.env.begin(), spec.env.end());
        used_.insert(env);
        return env;
    }

    shmchan::transport tx_, rx_;  // the producer's (ping's) ends, the consumer's (pong's)
    bool batched_;                // through the engine as shipped, or its unbatched twin
    std::vector<std::string> env_;              // the daemon of the current run
    std::set<std::vector<std::string>> used_;  // every daemon this transport ran through
};

}  // namespace

std::unique_ptr<transport> make_engine_socket() { return std::make_unique<engine_channels>(sock, sock); }
std::unique_ptr<transport> make_engine_shm() { return std::make_unique<engine_channels>(shm, shm); }
std::unique_ptr<transport> make_engine_socket_shm() { return std::make_unique<engine_channels>(sock, shm); }
std::unique_ptr<transport> make_engine_shm_socket() { return std::make_unique<engine_channels>(shm, sock); }
std::unique_ptr<transport> make_engine_socket_unbatched() { return std::make_unique<engine_channels>(sock, sock, false); }
std::unique_ptr<transport> make_engine_shm_socket_unbatched() { return std::make_unique<engine_channels>(shm, sock, false); }

}  // namespace shmchan_bench
