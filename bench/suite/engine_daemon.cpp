#include "engine_daemon.hpp"

#include <shmchan/engine.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sys/wait.h>
#include <unistd.h>

namespace shmchan_bench {

int engine_daemon_main(int argc, char** argv) {
    if (argc < 3 || !die_with_parent(std::atoi(argv[2]))) return 3;
    for (int i = 3; i < argc; ++i) {  // read by the engine's first bridge, and the like
        const std::string v = argv[i];
        const auto eq = v.find('=');
        if (eq == std::string::npos || eq == 0) return 2;
        ::setenv(v.substr(0, eq).c_str(), v.substr(eq + 1).c_str(), 1);
    }
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

void engine_daemon::start() {
    if (proc_.pid > 0 && ::waitpid(proc_.pid, nullptr, WNOHANG) == proc_.pid) {
        proc_.pid = -1;  // it died: start another
        stop();
    }
    if (proc_.pid > 0) return;
    std::vector<std::string> args{"_engine", std::to_string(::getpid())};
    args.insert(args.end(), env_.begin(), env_.end());
    proc_ = spawn_self(args);
    const std::string line = read_line_for(proc_.from, 15000);
    if (line.rfind("url ", 0) != 0) {
        stop();
        fail("the engine process did not start (no url within 15 s)");
    }
    url_ = line.substr(4);
    worker_ = std::make_unique<shmchan::worker>(url_);
}

void engine_daemon::stop() {
    worker_.reset();
    stop_child(proc_, 5000);
    url_.clear();
}

engine_daemon& shared_engine(const std::vector<std::string>& env) {
    static std::map<std::vector<std::string>, std::unique_ptr<engine_daemon>> daemons;
    auto& d = daemons[env];
    if (!d) d = std::make_unique<engine_daemon>(env);
    return *d;
}

std::size_t engine_buffer_size(std::size_t payload) {
    return std::clamp<std::size_t>(std::max<std::size_t>(4 * MiB, 4 * payload) >> 16, 1, 1024);
}

}  // namespace shmchan_bench
