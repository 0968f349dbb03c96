// The child: one side of a run (`_side ROLE ...`), as the harness starts it (spawn.cpp). It
// makes its transport from the registry, runs produce/consume/ping/pong (or both sides as two
// threads, for the ceiling) and prints "ready" and its side_result as JSON on fd 3.
#include "harness.hpp"
#include "proc_stats.hpp"
#include "registry.hpp"
#include "spawn.hpp"
#include "support.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <sys/resource.h>
#include <thread>

namespace shmchan_bench {
namespace {

using json = nlohmann::json;

json side_json(const std::string& role, const side_result& r) {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    json j = {{"role", role},
              {"messages", r.messages},
              {"bytes", r.bytes},
              {"checksum", hex64(r.checksum)},
              {"start_ns", r.start_ns},
              {"end_ns", r.end_ns},
              {"error", r.error},
              {"rtt_ns", r.rtt_ns},
              {"cpu_s", r.cpu_s},
              // Peak RSS of this process image. (ru_maxrss would also count the harness's
              // pages: posix_spawn's child shares the harness's memory until exec, and Linux
              // carries that high-water mark over.)
              {"peak_rss_kib", vm_hwm_kib("/proc/self/status")},
              {"cpu_user_s", double(ru.ru_utime.tv_sec) + double(ru.ru_utime.tv_usec) * 1e-6},
              {"cpu_sys_s", double(ru.ru_stime.tv_sec) + double(ru.ru_stime.tv_usec) * 1e-6},
              {"vcsw", ru.ru_nvcsw},
              {"ivcsw", ru.ru_nivcsw}};
    return j;
}

void emit(const std::string& line) { write_exact(result_fd, line.data(), line.size(), false); }

side_result guarded(const std::function<side_result()>& f) {
    try {
        return f();
    } catch (const std::exception& e) {
        side_result r;
        r.error = e.what();
        if (r.error.empty()) r.error = "exception";
        return r;
    }
}

}  // namespace

// argv: _side ROLE TRANSPORT PAYLOAD MESSAGES WARMUP TIME_LIMIT_NS LATENCY BUSY ENDPOINT SCRATCH
//        PARENT_PID READERS READER_INDEX
int side_main(int argc, char** argv) {
    if (argc != 15) {
        std::fprintf(stderr, "usage: _side ROLE TRANSPORT PAYLOAD MESSAGES WARMUP TIME_LIMIT_NS LATENCY BUSY "
                             "ENDPOINT SCRATCH PARENT READERS READER_INDEX\n");
        return 2;
    }
    if (!die_with_parent(std::atoi(argv[12]))) return 3;
    const std::string role = argv[2], name = argv[3];
    std::unique_ptr<transport> t;
    for (auto& e : registry())
        if (e.name == name) t = e.make();
    if (!t) {
        std::fprintf(stderr, "unknown transport %s\n", name.c_str());
        return 2;
    }
    run_spec spec;
    spec.payload = std::strtoull(argv[4], nullptr, 10);
    spec.messages = std::strtoull(argv[5], nullptr, 10);
    spec.warmup = std::strtoull(argv[6], nullptr, 10);
    spec.time_limit_ns = std::strtoll(argv[7], nullptr, 10);
    spec.latency = std::atoi(argv[8]) != 0;
    spec.busy_wait = std::atoi(argv[9]) != 0;
    spec.endpoint = argv[10];
    spec.scratch_dir = argv[11];
    spec.readers = std::strtoull(argv[13], nullptr, 10);
    spec.reader_index = std::strtoull(argv[14], nullptr, 10);
    std::atomic<bool> said_ready{false};
    spec.ready = [&] {
        if (!said_ready.exchange(true)) emit("ready\n");
    };

    if (role == "produce" || role == "consume" || role == "ping" || role == "pong") {
        const side_result r = guarded([&]() -> side_result {
            if (role == "produce") return t->produce(spec);
            if (role == "consume") return t->consume(spec);
            if (role == "ping") return t->ping(spec);
            return t->pong(spec);
        });
        emit(side_json(role, r).dump() + "\n");
        return 0;
    }
    if (role == "pair") {  // both sides as two threads of this process (the ceiling)
        enum : int { waiting, ready, gone };
        std::atomic<int> state{waiting};
        run_spec accept_spec = spec;
        accept_spec.ready = [&] {
            state.store(ready);
            state.notify_all();
        };
        side_result rx, tx;
        std::thread other([&] {
            rx = guarded([&] { return spec.latency ? t->pong(accept_spec) : t->consume(accept_spec); });
            int w = waiting;
            state.compare_exchange_strong(w, gone);
            state.notify_all();
        });
        for (int s = state.load(); s == waiting; s = state.load()) state.wait(s);
        if (state.load() == ready) {
            tx = guarded([&] { return spec.latency ? t->ping(spec) : t->produce(spec); });
        } else {
            tx.error = "not started: the other side failed before it was ready";
        }
        other.join();
        emit(side_json(spec.latency ? "ping" : "produce", tx).dump() + "\n" +
             side_json(spec.latency ? "pong" : "consume", rx).dump() + "\n");
        return 0;
    }
    std::fprintf(stderr, "unknown role %s\n", role.c_str());
    return 2;
}

}  // namespace shmchan_bench
