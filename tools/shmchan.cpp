// shmchan: send, receive and demonstrate shared-memory channels from the command line.
#include "cli.hpp"

#include <csignal>
#include <cstdio>

#include <shmchan/version.hpp>

namespace {

const char* usage_text =
    "usage:\n"
    "  shmchan send [--engine URL] [--capacity BYTES] [--chunk BYTES] [--readers N]\n"
    "               [--overflow block|drop-oldest] [TLS] FILE|-\n"
    "      create a channel (through the engine at URL, or directly in shared memory), print\n"
    "      its reader ref (one JSON line; with --readers N, N lines, one per reader) on stdout,\n"
    "      stream FILE (or stdin) into it; exit 0 once every reader has consumed everything,\n"
    "      1 naming each reader that left early or died (the others still get every byte);\n"
    "      drop-oldest: the writer never waits, a reader a ring behind skips records (recv\n"
    "      then stops with \"data lost\", never writing a file with a hole)\n"
    "  shmchan recv [--engine URL] [--transport auto|shm|socket] [-o FILE] [TLS] REF_JSON|-\n"
    "      read the channel named by REF_JSON (or the first line of stdin) to stdout or FILE\n"
    "      TLS (a wss:// engine): [--tls-ca FILE] trust these CAs instead of the system's store\n"
    "      (default $SHMCHAN_TLS_CA); [--tls-cert FILE --tls-key FILE] a client certificate\n"
    "  shmchan demo [--size BYTES] [--chunk BYTES] [--transport shm|socket|both] [--direct [--copy]]\n"
    "      the seed scenario: an embedded engine, a worker process registering files::process,\n"
    "      and a caller that creates a channel, writes generated data (1 GiB by default),\n"
    "      triggers files::process with {filename, reader} and checks the byte count and\n"
    "      checksum it returns, over shared memory and over the socket; --direct streams\n"
    "      between two processes without an engine\n"
    "  shmchan engine [--listen HOST:PORT] [--channel-ttl SECONDS] [--invocation-timeout SECONDS] [--verbose]\n"
    "                 [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]\n"
    "      an iii-compatible engine (worker protocol and channel sockets) on HOST:PORT\n"
    "      (default 127.0.0.1:49134); port 0 picks a free port. Stops on SIGINT/SIGTERM.\n"
    "      With --tls-cert/--tls-key (PEM) it serves wss:// only; --tls-ca: clients must show\n"
    "      a certificate from this CA\n"
    "  shmchan ls\n"
    "      the channels in /dev/shm: ends, owners, bytes moved, fill level\n"
    "  shmchan gc [--dry-run] [--min-age SECONDS] [CHANNEL_ID...]\n"
    "      remove segments no live process created or holds (after crashes), untouched for\n"
    "      SECONDS (default 10); with channel ids, only those (the others are not touched)\n"
    "  shmchan bench [--quick] [--transports LIST] [--sizes LIST] [--rounds N] [--out DIR] [...]\n"
    "      the benchmark suite: every transport side by side between two processes, a table,\n"
    "      CSV/JSON and plots (shmchan bench --help for all options)\n"
    "  shmchan --version\n"
    "BYTES accepts K, M, G suffixes (powers of 1024).\n";

}  // namespace

int main(int argc, char** argv) {
    using namespace shmchan_cli;
    std::signal(SIGPIPE, SIG_IGN);
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
            std::fputs(usage_text, args.empty() ? stderr : stdout);
            return args.empty() ? 2 : 0;
        }
        if (args[0] == "--version") {
            std::printf("shmchan %s\n", shmchan::version_string);
            return 0;
        }
        std::string cmd = args[0];
        args.erase(args.begin());
        if (cmd == "send") return cmd_send(args);
        if (cmd == "recv") return cmd_recv(args);
        if (cmd == "demo") return cmd_demo(args, "/proc/self/exe");
        if (cmd == "engine") return cmd_engine(args);
        if (cmd == "ls") return cmd_ls(args);
        if (cmd == "gc") return cmd_gc(args);
        if (cmd == "bench") return cmd_bench(args);
        if (cmd == "_consume") return cmd_consume(args);
        if (cmd == "_files_worker") return cmd_files_worker(args);
        throw shmchan_cli::usage_error("unknown command " + cmd);
    } catch (const shmchan_cli::cli_failure& f) {
        std::fprintf(stderr, "%s\n", f.line.c_str());
        return 1;
    } catch (const shmchan_cli::usage_error& e) {
        std::fprintf(stderr, "shmchan: %s\n%s", e.what(), usage_text);
        return 2;
    } catch (const shmchan::testkit::bad_byte_count& e) {
        std::fprintf(stderr, "shmchan: %s\n%s", e.what(), usage_text);
        return 2;
    } catch (const shmchan::error& e) {
        std::fprintf(stderr, "shmchan: %s: %s\n", shmchan::to_string(e.kind()), e.what());
        return 1;
    }
}
