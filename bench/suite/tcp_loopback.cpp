// TCP over the loopback interface: the consumer listens on 127.0.0.1, port 0, and leaves the
// port it got in the scratch directory. `tcp-relay` is the same with a relay process in between
// (tcp_relay.cpp): the producer connects to the relay and names the consumer's port.
#include "support.hpp"

#include <sys/wait.h>
#include <unistd.h>

namespace shmchan_bench {
namespace {

class tcp_loopback : public fd_stream_transport {
public:
    std::string name() const override { return "tcp-loopback"; }
    std::string describe() const override {
        return "TCP on 127.0.0.1, TCP_NODELAY, kernel-tuned buffers; producer write()s a private "
               "buffer (kernel copy in, loopback transmit and receive processing in the sender's "
               "syscall), consumer read()s into a private buffer (copy out): 2 copies, >= 2 "
               "syscalls per message; busy-wait = O_NONBLOCK read()/write() retried at once";
    }

protected:
    conn accept_side(const run_spec& spec, bool) override {
        conn listener;
        std::uint16_t port = 0;
        listener.in = listen_loopback(port);
        write_file(spec.scratch_dir + "/tcp.port", std::to_string(port));
        spec.ready();
        conn c;
        c.in = c.out = accept_one(listener.in);
        tcp_no_delay(c.in);
        return c;
    }
    conn connect_side(const run_spec& spec, bool) override {
        const int port = std::stoi(read_file(spec.scratch_dir + "/tcp.port"));
        conn c;
        c.in = c.out = connect_loopback(static_cast<std::uint16_t>(port), "127.0.0.1");
        return c;
    }
};

class tcp_relay final : public tcp_loopback {
public:
    explicit tcp_relay(bool splice) : splice_(splice) {}
    std::string name() const override { return splice_ ? "tcp-splice-relay" : "tcp-relay"; }
    std::string describe() const override {
        if (splice_)
            return "tcp-relay splicing instead of copying: the relay splice()s from the socket "
                   "into a 256 KiB pipe and from the pipe into the other socket; the kernel hands "
                   "the received pages on, so 2 copies in all, >= 4 syscalls per message";
        return "tcp-loopback through a relay process (the baseline for engine-socket: the least "
               "any process between two TCP ends costs): the relay recv()s into a 256 KiB buffer "
               "and send()s it on, sleeping in poll() between; 4 copies, >= 4 syscalls per message";
    }
    std::string prepare(const run_spec& spec) override {
        if (relay_.pid > 0 && ::waitpid(relay_.pid, nullptr, WNOHANG) == relay_.pid) {
            relay_.pid = -1;  // it died: start another
            teardown();
        }
        if (relay_.pid <= 0) {
            std::vector<std::string> args{"_relay", std::to_string(::getpid())};
            if (splice_) args.push_back("splice");
            relay_ = spawn_self(args);
            const std::string line = read_line_for(relay_.from, 15000);
            if (line.rfind("port ", 0) != 0) {
                teardown();
                return "the relay process did not start";
            }
            port_ = line.substr(5);
        }
        write_file(spec.scratch_dir + "/relay.port", port_);
        return {};
    }
    void teardown() override { stop_child(relay_, 2000); }
    std::vector<int> daemon_pids() const override {
        if (relay_.pid > 0) return {relay_.pid};
        return {};
    }

protected:
    conn connect_side(const run_spec& spec, bool) override {
        const int consumer_port = std::stoi(read_file(spec.scratch_dir + "/tcp.port"));
        const int relay_port = std::stoi(read_file(spec.scratch_dir + "/relay.port"));
        conn c;
        c.in = c.out = connect_loopback(static_cast<std::uint16_t>(relay_port), "the relay");
        const std::uint8_t port_be[2] = {static_cast<std::uint8_t>(consumer_port >> 8),
                                         static_cast<std::uint8_t>(consumer_port & 0xff)};
        write_exact(c.out, port_be, 2, false);
        return c;
    }

private:
    bool splice_;
    child_process relay_;
    std::string port_;
};

}  // namespace

std::unique_ptr<transport> make_tcp_loopback() { return std::make_unique<tcp_loopback>(); }
std::unique_ptr<transport> make_tcp_relay() { return std::make_unique<tcp_relay>(false); }
std::unique_ptr<transport> make_tcp_splice_relay() { return std::make_unique<tcp_relay>(true); }

}  // namespace shmchan_bench
