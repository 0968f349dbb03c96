// C++ processes for tests that kill them or let them vanish:
//   worker_peer URL hang   registers test::hang (never answers), prints READY
//   worker_peer - orphan   creates a channel, prints its reader and writer refs (a line each),
//                          exits without using it
#include <shmchan/shmchan.hpp>

#include <cstdio>
#include <string>
#include <thread>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    const std::string mode = argv[2];
    if (mode == "orphan") {
        shmchan::channel ch = shmchan::create_channel();
        std::printf("%s\n%s\n", ch.reader_ref.dump().c_str(), ch.writer_ref.dump().c_str());
        std::fflush(stdout);
        ::_exit(0);  // neither end was ever claimed: the segment stays for gc
    }
    shmchan::worker w(argv[1]);
    w.register_function("test::hang", [](shmchan::invocation&) -> nlohmann::json {
        for (;;) ::pause();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the registration is sent
    std::puts("READY");
    std::fflush(stdout);
    for (;;) ::pause();
}
