// shmchan's socket path: a shmchan::engine in a process of its own (a daemon, started by the
// harness on first use), channels created through it by a shmchan::worker in the harness, and
// both ends opened with via = socket, as stock iii SDKs reach it:
// producer -> WebSocket (TCP loopback) -> engine -> ring -> engine -> WebSocket -> consumer.
#include "channel_sides.hpp"

#include <shmchan/engine.hpp>
#include <shmchan/worker.hpp>

#include <cerrno>
#include <sys/wait.h>
#include <unistd.h>

namespace shmchan_bench {

// The daemon (`_engine PARENT_PID`): prints "url ws://...", serves until stdin closes.
int engine_daemon_main(int parent_pid) {
    if (!die_with_parent(parent_pid)) return 3;
    shmchan::engine_options eo;
    eo.port = 0;  // any free port on 127.0.0.1
    shmchan::engine eng(eo);
    std::printf("url %s\n", eng.url().c_str());
    std::fflush(stdout);
    char c;
    for (;;) {
        const ssize_t r = ::read(0, &c, 1);
        if (r == 0 || (r < 0 && errno != EINTR)) break;
    }
    eng.stop();
    return 0;
}

namespace {

using channel_sides::send_mode;

// engine::channels::create's buffer_size counts 64 KiB frames (ring = bit_ceil(n * 64 KiB),
// at most 1024 = 64 MiB): the same max(4 MiB, 4 x payload) as the shared-memory runs.
std::size_t buffer_size_for(std::size_t payload) {
    return std::clamp<std::size_t>(std::max<std::size_t>(4 * MiB, 4 * payload) >> 16, 1, 1024);
}

shmchan::channel_options options_for(const run_spec& spec) {
    shmchan::channel_options o;
    o.via = shmchan::transport::socket;
    o.engine = read_file(spec.scratch_dir + "/engine.url");
    return o;
}

shmchan::channel_ref ref_in(const run_spec& spec, const char* name) {
    return shmchan::channel_ref::parse(read_file(spec.scratch_dir + "/" + name));
}

class engine_socket final : public transport {
public:
    ~engine_socket() override { teardown(); }
    std::string name() const override { return "engine-socket"; }
    std::string describe() const override {
        return "shmchan::engine (own process, a daemon) + WebSocket channel sockets on TCP "
               "loopback for both ends: producer write()s a private buffer (frames <= 1 MiB, "
               "masked into the client's buffer), engine unmasks and copies each frame into "
               "the ring, sends each record as a frame to the consumer: 2 TCP hops, ~6 copies, "
               "several syscalls per frame; busy-wait = try_next() polling the socket";
    }

    std::string prepare(const run_spec& spec) override {
        try {
            start();
            write_file(spec.scratch_dir + "/engine.url", url_);
            const std::size_t n = buffer_size_for(spec.payload);
            shmchan::channel a = worker_->create_channel(n);
            write_file(spec.scratch_dir + "/a.writer", a.writer_ref.dump());
            write_file(spec.scratch_dir + "/a.reader", a.reader_ref.dump());
            if (spec.latency) {
                shmchan::channel b = worker_->create_channel(n);
                write_file(spec.scratch_dir + "/b.writer", b.writer_ref.dump());
                write_file(spec.scratch_dir + "/b.reader", b.reader_ref.dump());
            }
        } catch (const std::exception& e) {
            teardown();
            return std::string("the engine could not be used: ") + e.what();
        }
        return {};
    }
    void teardown() override {
        worker_.reset();
        stop_child(engine_, 5000);
        url_.clear();
    }
    std::vector<int> daemon_pids() const override {
        if (engine_.pid > 0) return {engine_.pid};
        return {};
    }

    side_result consume(const run_spec& spec) override {
        shmchan::reader r = shmchan::open_reader(ref_in(spec, "a.reader"), options_for(spec));
        spec.ready();
        return channel_sides::consume(r, spec);
    }
    side_result produce(const run_spec& spec) override {
        shmchan::writer w = shmchan::open_writer(ref_in(spec, "a.writer"), options_for(spec));
        return channel_sides::produce(w, spec, send_mode::write);
    }
    // a: ping -> pong, b: pong -> ping.
    side_result pong(const run_spec& spec) override {
        const auto o = options_for(spec);
        shmchan::reader in = shmchan::open_reader(ref_in(spec, "a.reader"), o);
        shmchan::writer out = shmchan::open_writer(ref_in(spec, "b.writer"), o);
        spec.ready();
        return channel_sides::pong(in, out, spec, send_mode::write);
    }
    side_result ping(const run_spec& spec) override {
        const auto o = options_for(spec);
        shmchan::writer out = shmchan::open_writer(ref_in(spec, "a.writer"), o);
        shmchan::reader in = shmchan::open_reader(ref_in(spec, "b.reader"), o);
        return channel_sides::ping(out, in, spec, send_mode::write);
    }

private:
    void start() {
        if (engine_.pid > 0 && ::waitpid(engine_.pid, nullptr, WNOHANG) == engine_.pid) {
            engine_.pid = -1;  // it died: start another
            teardown();
        }
        if (engine_.pid > 0) return;
        engine_ = spawn_self({"_engine", std::to_string(::getpid())});
        const std::string line = read_line_for(engine_.from, 15000);
        if (line.rfind("url ", 0) != 0) fail("the engine process did not start (no url within 15 s)");
        url_ = line.substr(4);
        worker_ = std::make_unique<shmchan::worker>(url_);
    }

    child_process engine_;
    std::string url_;
    std::unique_ptr<shmchan::worker> worker_;
};

}  // namespace

std::unique_ptr<transport> make_engine_socket() { return std::make_unique<engine_socket>(); }

}  // namespace shmchan_bench
