// A stand-in engine for the socket ends' own framing (tests/engine/socket_writer_test.cpp,
// socket_reader_test.cpp): one connection, served by blocking calls in a thread.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <future>
#include <string>
#include <thread>

#include "shmchan/shmchan.hpp"
#include "support/raw_client.hpp"

namespace shmchan::test::fake {
using namespace shmchan::test::raw_detail;
using namespace std::chrono_literals;

// A stand-in engine: accepts one connection on 127.0.0.1 and runs `serve` on it in a thread,
// with blocking calls. join() waits at most 20 s, then shuts the sockets so that an end that
// misbehaves fails the test (`failure`) instead of hanging it.
struct fake_engine {
    asio::io_context ioc;
    tcp::acceptor acc{ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
    tcp::socket sock{ioc};
    std::string failure;  // read after join()
    std::promise<void> finished;
    std::future<void> done = finished.get_future();
    std::thread t;

    explicit fake_engine(std::function<void(tcp::socket&)> serve)
        : t([this, serve = std::move(serve)] {
              try {
                  acc.accept(sock);
                  serve(sock);
              } catch (const std::exception& e) {
                  failure = e.what();
              }
              finished.set_value();
          }) {}
    ~fake_engine() { join(); }
    std::string url() const { return "ws://127.0.0.1:" + std::to_string(acc.local_endpoint().port()); }
    void join() {
        if (!t.joinable()) return;
        if (done.wait_for(20s) != std::future_status::ready) {
            ::shutdown(acc.native_handle(), SHUT_RDWR);
            ::shutdown(sock.native_handle(), SHUT_RDWR);
        }
        t.join();
    }
};

// A ref for the stand-in (any id and key: it checks neither).
inline channel_ref fake_ref(direction d) {
    channel_ref r;
    r.channel_id = "fake";
    r.access_key = std::string(32, 'a');
    r.dir = d;
    return r;
}

// Reads until the peer closes the connection (a server's teardown waits for it).
inline void read_to_end(tcp::socket& s) {
    std::array<char, 4096> b{};
    beast::error_code ec;
    while (!ec) s.read_some(asio::buffer(b), ec);
}

// Waits (at most 10 s) for a flag set by the stand-in's thread.
inline bool wait_for(const std::atomic<bool>& flag) {
    for (int i = 0; i < 1000 && !flag; ++i) std::this_thread::sleep_for(10ms);
    return flag;
}
}  // namespace shmchan::test::fake
