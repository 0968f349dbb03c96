// The `shmchan` command's shared parts: usage errors, failures that name their cause,
// progress on a terminal, and the commands (one file per group: cmd_stream, cmd_admin, cmd_demo).
#pragma once

#include <shmchan/shmchan.hpp>
#include <shmchan/testkit/bytes.hpp>
#include <shmchan/testkit/io.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace shmchan_cli {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using shmchan::testkit::human;
using shmchan::testkit::parse_bytes;

// A positive count ("--readers 4").
inline std::size_t parse_count(const std::string& v, const char* flag) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || n == 0 || n > 1'000'000) throw usage_error(std::string(flag) + " must be a positive number, not " + v);
    return static_cast<std::size_t>(n);
}
inline shmchan::channel_options::overflow_policy parse_overflow(const std::string& v) {
    if (v == "block") return shmchan::channel_options::overflow_policy::block;
    if (v == "drop-oldest") return shmchan::channel_options::overflow_policy::drop_oldest;
    throw usage_error("--overflow must be block or drop-oldest, not " + v);
}
using shmchan::testkit::write_all;

// Progress on stderr, only when stderr is a terminal, at most a few times a second.
class progress {
public:
    explicit progress(const char* what, std::uint64_t total = 0)
        : what_(what), total_(total), on_(::isatty(2)), start_(clock_type::now()), last_(start_) {}
    void update(std::uint64_t done) {
        if (!on_) return;
        auto now = clock_type::now();
        if (now - last_ < 250ms) return;
        last_ = now;
        double s = std::chrono::duration<double>(now - start_).count();
        if (total_)
            std::fprintf(stderr, "\r%s: %s / %s (%.0f%%), %s/s   ", what_, human(double(done)).c_str(),
                         human(double(total_)).c_str(), 100.0 * double(done) / double(total_),
                         human(double(done) / s).c_str());
        else
            std::fprintf(stderr, "\r%s: %s, %s/s   ", what_, human(double(done)).c_str(),
                         human(double(done) / s).c_str());
    }
    void done() {
        if (on_ && last_ != start_) std::fputc('\n', stderr);
    }

private:
    const char* what_;
    std::uint64_t total_;
    bool on_;
    clock_type::time_point start_, last_;
};

// Thrown, not exit()ed: unwinding runs the channel ends' destructors, which finish them.
struct cli_failure {
    std::string line;
};

[[noreturn]] inline void fail(const char* cmd, std::error_code e, const std::string& detail = {}) {
    std::string name = e.category() == shmchan::error_category()
                           ? shmchan::to_string(static_cast<shmchan::errc>(e.value()))
                           : e.category().name();
    throw cli_failure{std::string("shmchan ") + cmd + ": " + name + ": " + e.message() +
                      (detail.empty() ? "" : ": ") + detail};
}

// --tls-ca FILE, --tls-cert FILE, --tls-key FILE of a client (send, recv) at args[i]: taken
// (i moves past the value) or false.
inline bool tls_arg(const std::vector<std::string>& args, std::size_t& i, shmchan::tls_client_options& tls) {
    if (i + 1 >= args.size()) return false;
    std::string* to = args[i] == "--tls-ca" ? &tls.ca_file
                      : args[i] == "--tls-cert" ? &tls.cert_file
                      : args[i] == "--tls-key" ? &tls.key_file
                                               : nullptr;
    if (!to) return false;
    *to = args[++i];
    return true;
}

int cmd_send(std::vector<std::string> args);    // cmd_stream.cpp
int cmd_recv(std::vector<std::string> args);
int cmd_engine(std::vector<std::string> args);  // cmd_admin.cpp
int cmd_ls(const std::vector<std::string>& args);
int cmd_gc(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);
int cmd_demo(std::vector<std::string> args, const char* self);  // cmd_demo.cpp
int cmd_consume(std::vector<std::string> args);
int cmd_files_worker(std::vector<std::string> args);

}  // namespace shmchan_cli
