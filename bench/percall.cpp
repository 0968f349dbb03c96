// Instructions per channel-API round trip (loan or write of SIZE bytes, then next() and the
// item's release), for callgrind: its counts do not depend on the machine's load. Built by hand
// against a build tree's static libraries (not a CMake target):
//   g++ -std=c++20 -O2 -g bench/percall.cpp -Iinclude -Ishm/include build/src/libshmchan.a \
//       build/shm/libshmchan_shm.a -lcrypto -lpthread -o percall
//   valgrind --tool=callgrind ./percall 1000 loan 64; valgrind --tool=callgrind ./percall 21000 loan 64
//   per round trip = (Ir(21000) - Ir(1000)) / 20000
#include <cstdlib>
#include <cstring>
#include <shmchan/shmchan.hpp>
int main(int argc, char** argv) {
    const long n = std::atol(argv[1]);
    const std::string op = argv[2];
    const std::size_t size = std::atol(argv[3]);
    shmchan::channel_options o;
    o.capacity = 1 << 20;
    auto ch = shmchan::create_channel(o);
    std::vector<std::byte> buf(size, std::byte{1});
    for (long i = 0; i < n; ++i) {
        if (op == "loan") {
            auto l = ch.writer.get_loan(size);
            l.data()[0] = std::byte{2};
            l.commit();
        } else {
            (void)ch.writer.write(buf);
        }
        auto it = ch.reader.next();
        if (!it.is_chunk()) return 1;
    }
    (void)ch.writer.close();
    return 0;
}
