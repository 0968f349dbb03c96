// A C++ worker in its own process, for tests that kill it: worker_peer URL hang
// registers test::hang (never answers) and prints READY.
#include <shmchan/worker.hpp>

#include <cstdio>
#include <thread>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    shmchan::worker w(argv[1]);
    w.register_function("test::hang", [](shmchan::invocation&) -> nlohmann::json {
        for (;;) ::pause();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the registration is sent
    std::puts("READY");
    std::fflush(stdout);
    for (;;) ::pause();
}
