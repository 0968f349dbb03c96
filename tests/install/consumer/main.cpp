#include <shmchan/shmchan.hpp>

#include <cstdio>

int main() {
    auto ch = shmchan::create_channel();
    if (ch.writer.write("installed") || ch.writer.close()) return 1;
    auto bytes = ch.reader.read_all();
    std::printf("%.*s\n", static_cast<int>(bytes.size()), reinterpret_cast<const char*>(bytes.data()));
    return bytes.size() == 9 ? 0 : 1;
}
