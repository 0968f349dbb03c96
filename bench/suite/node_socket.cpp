// node-socket: a Node producer with the stock iii SDK (bench/node_producer.mjs) creating the
// channel through the engine and writing through the engine's channel socket; the consumer
// attaches to the ring by shared memory, as a C++ end on the same host does. What a Node writer
// feeding a local C++ reader gets, with the one socket hop that costs. Throughput only.
//
// The Node process is a daemon like the engine (started by the harness on first use, kept for
// the whole run so its JIT stays warm); the harness has it create each run's channel. The
// producer side is a small relay process: it tells Node "go" over a Unix socket in the run's
// scratch directory and reports the times Node measured (CLOCK_MONOTONIC, as steady_clock).
// Node's CPU is the daemons' column, not the producer's.
#include "channel_sides.hpp"
#include "engine_daemon.hpp"

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <cstdlib>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SHMCHAN_BENCH_NODE_SCRIPT
#define SHMCHAN_BENCH_NODE_SCRIPT "bench/node_producer.mjs"
#endif
#ifndef SHMCHAN_BENCH_NODE_MODULES
#define SHMCHAN_BENCH_NODE_MODULES "tests/interop/node_modules"
#endif

extern char** environ;

namespace shmchan_bench {
namespace {

constexpr int node_timeout_ms = 30000;  // for the Node producer's answers

bool exists(const std::string& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0;
}

int connect_unix(const std::string& path) {
    const sockaddr_un a = unix_address(path);
    const int s = stream_socket(AF_UNIX);
    try {
        connect_to(s, reinterpret_cast<const sockaddr*>(&a), sizeof a, path);
    } catch (...) {
        ::close(s);
        throw;
    }
    return s;
}

class node_socket final : public transport {
public:
    ~node_socket() override { stop_node(); }
    std::string name() const override { return "node-socket"; }
    std::string describe() const override {
        return "a Node producer with the stock iii SDK (bench/node_producer.mjs, a daemon) "
               "creates the channel through shmchan::engine (a daemon) and writes each payload "
               "into its ChannelWriter stream (ws masks it into frames; TCP loopback; the engine "
               "copies each frame into the ring); the consumer digests the ring in place by "
               "shared memory: 1 TCP hop, Node's CPU in the daemons' column; throughput only";
    }

    std::string prepare(const run_spec& spec) override {
        if (spec.latency) return "throughput only (a Node writer feeding a C++ reader)";
        if (!skip_.empty()) return skip_;
        engine_daemon& e = shared_engine();
        try {
            e.start();
        } catch (const std::exception& x) {
            e.stop();
            return std::string("the engine could not be used: ") + x.what();
        }
        if (std::string why = start_node(e.url()); !why.empty()) return skip_ = why;
        try {  // from here on a failure is the run's
            write_file(spec.scratch_dir + "/engine.url", e.url());
            const std::string sock = spec.scratch_dir + "/node.sock";
            tell("run " + std::to_string(spec.payload) + " " + std::to_string(spec.messages) + " " +
                 std::to_string(spec.warmup) + " " + std::to_string(engine_buffer_size(spec.payload)) + " " + sock +
                 "\n");
            write_file(spec.scratch_dir + "/node.reader", answer("ref "));
            in_run_ = true;
        } catch (const std::exception&) {
            stop_node();
            throw;
        }
        return {};
    }
    // Node says "finished" after every run; one that does not (its producer side never came)
    // is restarted for the next run.
    void cleanup(const run_spec&) override {
        if (!in_run_) return;
        in_run_ = false;
        try {
            answer("finished", 2000);
        } catch (const std::exception&) {
            stop_node();
        }
    }
    void teardown() override {
        stop_node();
        shared_engine().stop();
    }
    std::vector<int> daemon_pids() const override {
        std::vector<int> p;
        if (const int e = shared_engine().pid(); e > 0) p.push_back(e);
        if (node_.pid > 0) p.push_back(node_.pid);
        return p;
    }

    side_result consume(const run_spec& spec) override {
        shmchan::channel_options o;
        o.via = shmchan::transport::shm;
        o.engine = read_file(spec.scratch_dir + "/engine.url");
        shmchan::reader r = shmchan::open_reader(shmchan::channel_ref::parse(read_file(spec.scratch_dir + "/node.reader")), o);
        (void)r.try_next();  // attach now (nothing there yet)
        spec.ready();
        return channel_sides::consume(r, spec);
    }
    side_result produce(const run_spec& spec) override {
        const int s = connect_unix(spec.scratch_dir + "/node.sock");
        write_exact(s, "go\n", 3, false);
        std::string line;
        for (char c; line.empty() || line.back() != '\n';) {  // the harness's timeout bounds this
            const ssize_t n = ::read(s, &c, 1);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            line += c;
        }
        ::close(s);
        if (line.rfind("done ", 0) != 0)
            fail("the Node producer: " + (line.empty() ? std::string("no answer") : line.substr(0, line.size() - 1)));
        side_result r;
        if (std::sscanf(line.c_str(), "done %" SCNd64 " %" SCNd64, &r.start_ns, &r.end_ns) != 2)
            fail("the Node producer said " + line);
        generated(r, spec);  // what Node generated
        return r;
    }
    side_result ping(const run_spec&) override { fail("node-socket: throughput only"); }
    side_result pong(const run_spec&) override { fail("node-socket: throughput only"); }

private:
    // Starts Node unless it runs; the reason to skip, or "".
    std::string start_node(const std::string& url) {
        if (node_.pid > 0 && ::waitpid(node_.pid, nullptr, WNOHANG) == node_.pid) {
            node_.pid = -1;  // it died: start another
            stop_node();
        }
        if (node_.pid > 0) return {};
        const std::string node = find_program(env_or("SHMCHAN_BENCH_NODE", "node"));
        if (node.empty()) return "node not found in PATH (SHMCHAN_BENCH_NODE names it)";
        const std::string script = SHMCHAN_BENCH_NODE_SCRIPT;
        if (!exists(script)) return "no " + script + " in this source tree";
        const std::string modules = env_or("SHMCHAN_BENCH_NODE_MODULES", SHMCHAN_BENCH_NODE_MODULES);
        if (!exists(modules + "/iii-sdk")) return "iii-sdk not installed in " + modules + " (npm ci in tests/interop)";
        node_ = spawn_program({node, script, modules, url});
        const std::string hello = read_line_for(node_.from, node_timeout_ms);
        if (hello.rfind("ok ", 0) == 0) return {};
        stop_node();
        if (hello.rfind("skip ", 0) == 0) return hello.substr(5);
        return "the Node producer did not start (no answer within 30 s)";
    }
    void stop_node() { stop_child(node_, 5000); }

    void tell(const std::string& line) { write_exact(node_.to, line.data(), line.size(), false); }
    // The rest of Node's next line that starts with `want`; throws on "error ..." or silence.
    std::string answer(const std::string& want, int timeout_ms = node_timeout_ms) {
        for (;;) {
            const std::string line = read_line_for(node_.from, timeout_ms);
            if (line.empty()) fail("the Node producer did not answer \"" + want + "\" in time (or exited)");
            if (line.rfind("error ", 0) == 0) fail(line.substr(6));
            if (line.rfind(want, 0) == 0) return line.substr(want.size());
        }
    }

    child_process node_;
    bool in_run_ = false;  // a run was handed to Node and its "finished" is still due
    std::string skip_;  // once Node or its SDK is missing, every run is skipped with this
};

}  // namespace

std::unique_ptr<transport> make_node_socket() { return std::make_unique<node_socket>(); }

}  // namespace shmchan_bench
