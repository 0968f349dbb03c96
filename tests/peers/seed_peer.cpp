// The seed flow's two C++ roles, for tests that put them on different hosts (tests/remote):
//   seed_peer worker URL FUNCTION        registers FUNCTION: reads input.reader to its end and
//                                        returns {bytes, checksum, transport}; prints READY
//   seed_peer caller URL FUNCTION BYTES  creates a channel through the engine, writes BYTES of
//                                        test pattern into it while FUNCTION reads the reader
//                                        ref; prints "RESULT <bytes> <checksum> <expected>
//                                        <reader transport> <writer transport>", exit 0 when
//                                        every byte arrived; "FAIL <why>" and exit 1 otherwise
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <pthread.h>

#include "shmchan/shmchan.hpp"
#include "shmchan/testkit/checksum.hpp"
#include "shmchan/worker.hpp"
#include "peer_io.hpp"

namespace {
const char* name_of(shmchan::transport t) {
    switch (t) {
        case shmchan::transport::shm: return "shm";
        case shmchan::transport::socket: return "socket";
        default: return "automatic";
    }
}
using shmchan::peers::say;

int worker(const std::string& url, const std::string& fn) {
    shmchan::worker w(url);
    w.register_function(fn, [](shmchan::invocation& call) {
        shmchan::stream_checksum sum;
        auto& r = call.reader("reader");
        for (auto c : r.chunks()) sum.update(c);
        if (auto e = r.status())
            throw shmchan::error(static_cast<shmchan::errc>(e.value()), "reading: " + e.message());
        return nlohmann::json{{"bytes", sum.bytes()}, {"checksum", sum.value()}, {"transport", name_of(r.via())}};
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the registration is on its way
    say("READY");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    int sig = 0;
    sigwait(&set, &sig);
    return 0;
}

int caller(const std::string& url, const std::string& fn, std::uint64_t size) {
    shmchan::worker w(url);
    shmchan::channel ch = w.create_channel(64);
    std::error_code werr;
    std::thread writer([&] {
        std::vector<std::byte> buf(std::size_t{1} << 20);
        for (std::uint64_t off = 0; off < size && !werr;) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
            shmchan::fill_pattern(std::span(buf).first(n), off);
            werr = ch.writer.write(std::span(buf).first(n));
            off += n;
        }
        if (!werr) werr = ch.writer.close();
        else ch.writer.abort("caller could not write");
    });
    nlohmann::json result;
    std::string failure;
    try {
        shmchan::trigger_request req{fn, {{"filename", "remote.bin"}, {"reader", ch.reader_ref.to_json()}}};
        req.timeout = std::chrono::seconds(120);
        result = w.trigger(req);
    } catch (const std::exception& e) {
        failure = e.what();
        ch.writer.abort("the call failed");
    }
    writer.join();
    if (!failure.empty()) return say("FAIL call: " + failure + (werr ? " (writer: " + werr.message() + ")" : "")), 1;
    if (werr) return say("FAIL writer: " + werr.message()), 1;
    const std::uint64_t bytes = result.value("bytes", std::uint64_t{0});
    const std::uint64_t sum = result.value("checksum", std::uint64_t{0});
    const std::uint64_t expect = shmchan::testkit::expected_checksum(size);
    char line[256];
    std::snprintf(line, sizeof line, "RESULT %llu %016llx %016llx %s %s", static_cast<unsigned long long>(bytes),
                  static_cast<unsigned long long>(sum), static_cast<unsigned long long>(expect),
                  result.value("transport", "?").c_str(), name_of(ch.writer.via()));
    say(line);
    return bytes == size && sum == expect ? 0 : 1;
}
}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "worker" && argc == 4) return worker(argv[2], argv[3]);
        if (mode == "caller" && argc == 5) return caller(argv[2], argv[3], std::strtoull(argv[4], nullptr, 10));
    } catch (const std::exception& e) {
        say(std::string("FAIL ") + e.what());
        return 1;
    }
    std::fprintf(stderr, "usage: seed_peer worker URL FUNCTION | caller URL FUNCTION BYTES\n");
    return 2;
}
