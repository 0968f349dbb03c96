// Real child processes for cross-process tests: spawn with a pipe on stdout, read lines with
// a deadline, signal, wait.
#pragma once

#include <chrono>
#include <string>
#include <sys/types.h>
#include <vector>

namespace shmchan::test {

class child {
public:
    // Starts `argv[0]` with stdout piped back to us (stderr too with merge_stderr, else it is
    // inherited), and optionally a pipe to its stdin. It gets our environment, plus the
    // NAME=VALUE entries of `extra_env`.
    static child spawn(const std::vector<std::string>& argv, bool pipe_stdin = false,
                       bool merge_stderr = false, const std::vector<std::string>& extra_env = {});
    child(child&& o) noexcept;
    child& operator=(child&&) = delete;
    ~child();  // kills and reaps a child still running

    pid_t pid() const { return pid_; }
    // Next line of stdout (without '\n'); "" on EOF or when `timeout` passes.
    std::string read_line(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    std::string read_all(std::chrono::milliseconds timeout = std::chrono::seconds(60));
    void write_stdin(const std::string& s);
    void close_stdin();
    void kill(int sig);
    // Exit code, or 128 + signal; -1 if it did not end within `timeout` (then it is killed).
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds(60));

private:
    child() = default;
    pid_t pid_ = -1;
    int out_ = -1;
    int in_ = -1;
    std::string buf_;
    bool reaped_ = false;
    int status_ = 0;
};

// Path of the test peer program and of the shmchan command-line tool (set by CMake).
std::string peer_path();
std::string frame_peer_path();  // tests/peers/frame_peer.cpp
std::string records_peer_path();  // tests/peers/records_peer.cpp
std::string cli_path();

// Names of shmchan segments now in /dev/shm.
std::vector<std::string> shm_segments();

}  // namespace shmchan::test

namespace shmchan::test {
// True while the segment of this channel is still in /dev/shm.
bool segment_exists(const std::string& channel_id);
}  // namespace shmchan::test
