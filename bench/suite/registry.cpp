#include "registry.hpp"

#include "support.hpp"

#ifndef SHMCHAN_BENCH_ICEORYX_MISSING
#define SHMCHAN_BENCH_ICEORYX_MISSING "not built"
#endif
#ifndef SHMCHAN_BENCH_ZEROMQ_MISSING
#define SHMCHAN_BENCH_ZEROMQ_MISSING "not built"
#endif

namespace shmchan_bench {
namespace {

// A transport this build cannot run: every run is skipped with the reason.
class unavailable final : public transport {
public:
    unavailable(std::string n, std::string why) : name_(std::move(n)), why_(std::move(why)) {}
    std::string name() const override { return name_; }
    std::string describe() const override { return "(not run: " + why_ + ")"; }
    std::string prepare(const run_spec&) override { return why_; }
    side_result produce(const run_spec&) override { fail(why_); }
    side_result consume(const run_spec&) override { fail(why_); }
    side_result ping(const run_spec&) override { fail(why_); }
    side_result pong(const run_spec&) override { fail(why_); }

private:
    std::string name_, why_;
};

}  // namespace

// In the report's order: the ceiling first, then shmchan, the competitors, the baselines.
std::vector<entry> registry() {
    std::vector<entry> r;
    r.push_back({"inprocess", make_inprocess});
    r.push_back({"shmchan-loan", make_shmchan_loan});
    r.push_back({"shmchan-write", make_shmchan_write});
    r.push_back({"shmchan-loan-noclaim", make_shmchan_loan_noclaim});
    r.push_back({"shmchan-loan-nomb", make_shmchan_loan_nomb});
    r.push_back({"shmchan-write-nomb", make_shmchan_write_nomb});
    r.push_back({"shmchan-separate", make_shmchan_separate});
#ifdef SHMCHAN_BENCH_HAVE_ICEORYX
    r.push_back({"iceoryx", make_iceoryx});
#else
    r.push_back({"iceoryx", [] { return std::make_unique<unavailable>("iceoryx", SHMCHAN_BENCH_ICEORYX_MISSING); }});
#endif
    r.push_back({"engine-shm", make_engine_shm});
    r.push_back({"engine-socket", make_engine_socket});
    r.push_back({"engine-socket-shm", make_engine_socket_shm});
    r.push_back({"engine-shm-socket", make_engine_shm_socket});
    r.push_back({"engine-socket-unbatched", make_engine_socket_unbatched});
    r.push_back({"engine-shm-socket-unbatched", make_engine_shm_socket_unbatched});
    r.push_back({"node-socket", make_node_socket});
#ifdef SHMCHAN_BENCH_HAVE_ZEROMQ
    r.push_back({"zeromq-ipc", make_zeromq});
#else
    r.push_back({"zeromq-ipc", [] { return std::make_unique<unavailable>("zeromq-ipc", SHMCHAN_BENCH_ZEROMQ_MISSING); }});
#endif
    r.push_back({"unix-socket", make_unix_socket});
    r.push_back({"pipe", make_pipe});
    r.push_back({"tcp-loopback", make_tcp_loopback});
    r.push_back({"tcp-relay", make_tcp_relay});
    r.push_back({"tcp-splice-relay", make_tcp_splice_relay});
    r.push_back({"boost-mq", make_message_queue});
    return r;
}

const std::map<std::string, std::string>& aliases() {
    static const std::map<std::string, std::string> a = {
        {"ceiling", "inprocess"}, {"loan", "shmchan-loan"},   {"write", "shmchan-write"},
        {"shm", "shmchan-loan"},  {"engine", "engine-socket"}, {"zmq", "zeromq-ipc"},
        {"zeromq", "zeromq-ipc"}, {"unix", "unix-socket"},     {"tcp", "tcp-loopback"}, {"relay", "tcp-relay"}, {"splice-relay", "tcp-splice-relay"},
        {"mq", "boost-mq"},       {"message-queue", "boost-mq"}, {"iox", "iceoryx"},
        {"noclaim", "shmchan-loan-noclaim"}, {"loan-nomb", "shmchan-loan-nomb"},
        {"write-nomb", "shmchan-write-nomb"}, {"node", "node-socket"},
        {"separate", "shmchan-separate"}};
    return a;
}

}  // namespace shmchan_bench
