// The harness's side processes: started as this binary again (`_side ...`, posix_spawn) with a
// result pipe on fd 3 and their output in a log in the run's scratch directory, watched until
// they report, killed when they hang or when the harness is interrupted.
#pragma once

#include "transport.hpp"

#include <chrono>
#include <csignal>
#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace shmchan_bench {

constexpr int result_fd = 3;  // where a side child writes "ready" and its result

// The child's entry (side.cpp): argv as spawn_side() builds it.
int side_main(int argc, char** argv);

// Set by SIGINT/SIGTERM/SIGHUP (install on_signal for them), which also kill the sides.
extern volatile std::sig_atomic_t g_interrupted;
extern "C" void on_signal(int);

// One side child: its result pipe, lines read so far, how it ended.
struct side_proc {
    std::string role;
    pid_t pid = -1;
    int fd = -1;
    std::string pending;
    std::vector<std::string> lines;
    bool eof = false;
    bool reaped = false;
    int status = 0;
    std::string log;
};

// Starts `role` (produce, consume, ping, pong, pair) of transport `name` for `spec`, with `env`
// ("NAME=value", the transport's side_environment()) added to its environment.
side_proc spawn_side(const std::string& role, const std::string& name, const run_spec& spec,
                     const std::vector<std::string>& env);
// Pins a started side to CPU 0 (`producer`) or to every other CPU of the machine; throws when
// the machine has one CPU or the kernel refuses.
// --pin: the producing side on the first CPU this process may use, the consuming sides on the
// others. pin_cpus() lists them, and throws when there are fewer than 2.
std::vector<int> pin_cpus();
void pin_side(const side_proc& s, bool producer);
// Waits until `done()` or the deadline, reading from every side's pipe; false on timeout or
// interrupt.
bool wait_for(std::vector<side_proc*> sides, std::chrono::steady_clock::time_point deadline,
              const std::function<bool()>& done);
// Result lines (JSON) received from a side so far; whether it said "ready".
std::size_t results_in(const side_proc& s);
bool said_ready(const side_proc& s);
// Reaps a side, killing it if it does not exit within `grace`.
void reap(side_proc& s, std::chrono::milliseconds grace);
void kill_side(side_proc& s);
// "exit status N", "killed by signal ..."; the last lines of a side's log.
std::string exit_text(int status);
std::string log_tail(const std::string& path);

}  // namespace shmchan_bench
