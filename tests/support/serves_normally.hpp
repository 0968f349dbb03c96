// Whether an engine still serves a normal client after a hostile one: the hostile tests' last
// check (tests/engine/hostile*_test.cpp).
#pragma once

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <vector>

#include "shmchan/shmchan.hpp"
#include "shmchan/worker.hpp"
#include "support/helpers.hpp"

namespace shmchan::test {

// A normal client is served: register, invoke, and a channel round trip over the socket.
inline void check_serves_normally(const std::string& url) {
    using json = nlohmann::json;
    using namespace std::chrono_literals;
    static std::atomic<int> serial{0};
    const std::string fid = "hostile::echo" + std::to_string(serial++);
    worker callee(url);
    worker caller(url);
    callee.register_function(fid, [](invocation& c) { return json{{"echo", c.input()}}; });
    CHECK(eventually([&] {
        try {
            return caller.trigger({fid, {{"x", 1}}, 5s}) == json{{"echo", {{"x", 1}}}};
        } catch (const invocation_error&) {
            return false;  // registration on its way
        }
    }));
    channel ch = caller.create_channel(2);
    reader r = open_reader(ch.reader_ref, via(transport::socket, url));
    writer w = open_writer(ch.writer_ref, via(transport::socket, url));
    REQUIRE_FALSE(w.write("round trip"));
    REQUIRE_FALSE(w.close());
    std::vector<std::byte> got;
    CHECK_FALSE(r.read_all(got, 10s));
    CHECK(std::string(reinterpret_cast<const char*>(got.data()), got.size()) == "round trip");
}

}  // namespace shmchan::test
