// The crash matrix (issue 5): the writer, the reader, the engine and a socket client, each a
// real process, killed (SIGKILL) or hung (SIGSTOP) at chosen and random points of a stream.
// For every row the survivor must report a clear error within a stated bound (peer_lost,
// peer_closed, aborted, engine_unreachable, or timeout when it set a deadline), never a clean
// end for a truncated stream, and every byte it got must be the byte written at that position
// (fill_pattern). No segment this test made may stay in /dev/shm, except where the engine died
// holding both ends: then `shmchan gc` restricted to that channel must remove it.
//
//   SHMCHAN_CRASH_SEED=N     replays the random points of a run (each process prints its seed)
//   SHMCHAN_CRASH_ROUNDS=N   every row N times with new random points (long runs; default 1)
//   SHMCHAN_CRASH_REPORT=F   appends a markdown row per survivor to F (victim, fault, point,
//                            survivor, outcome, time until it noticed, bound)
//
// The rows are in `matrix` below, the combinations left out (and why) in `skipped`.
//
// The driver is in crash_matrix.hpp and crash_matrix_driver.cpp, the rows by victim in
// crash_matrix_shm_ends.cpp and crash_matrix_engine_ends.cpp.
#include "crash_matrix.hpp"

using namespace shmchan;
using namespace shmchan::crash;

namespace {

// --- the matrix --------------------------------------------------------------------------------
const row matrix[] = {
    // A writer process attached to the ring; this process reads.
    {victim::writer, fault::kill, point::before_claim, path::shm},
    {victim::writer, fault::kill, point::before_first_byte, path::shm},
    {victim::writer, fault::kill, point::mid_stream, path::shm},
    {victim::writer, fault::kill, point::mid_record, path::shm},
    {victim::writer, fault::kill, point::full_ring, path::shm},
    {victim::writer, fault::kill, point::after_close, path::shm},
    {victim::writer, fault::stop, point::before_first_byte, path::shm},
    {victim::writer, fault::stop, point::mid_stream, path::shm},
    {victim::writer, fault::stop, point::mid_record, path::shm},
    {victim::writer, fault::stop, point::full_ring, path::shm},
    {victim::writer, fault::stop, point::after_close, path::shm},
    // A reader process attached to the ring; this process writes.
    {victim::reader, fault::kill, point::before_claim, path::shm},
    {victim::reader, fault::kill, point::before_first_byte, path::shm},
    {victim::reader, fault::kill, point::mid_stream, path::shm},
    {victim::reader, fault::kill, point::mid_record, path::shm},
    {victim::reader, fault::kill, point::full_ring, path::shm},
    {victim::reader, fault::kill, point::after_close, path::shm},
    {victim::reader, fault::stop, point::mid_stream, path::shm},
    {victim::reader, fault::stop, point::mid_record, path::shm},
    {victim::reader, fault::stop, point::after_close, path::shm},
    // The engine process (`shmchan engine`) between socket ends and the ring.
    {victim::engine, fault::kill, point::before_first_byte, path::both_sockets},
    {victim::engine, fault::kill, point::mid_stream, path::socket_writer},
    {victim::engine, fault::kill, point::mid_stream, path::socket_reader},
    {victim::engine, fault::kill, point::mid_stream, path::both_sockets},
    {victim::engine, fault::kill, point::full_ring, path::socket_writer},
    {victim::engine, fault::kill, point::after_close, path::socket_writer},
    {victim::engine, fault::kill, point::handshake_request, path::socket_reader},
    {victim::engine, fault::stop, point::mid_stream, path::socket_writer},
    {victim::engine, fault::stop, point::mid_stream, path::socket_reader},
    {victim::engine, fault::stop, point::after_close, path::socket_writer},
    {victim::engine, fault::stop, point::handshake_request, path::socket_reader},
    // A C++ socket writer process (transport::socket) through a live engine; this process reads.
    {victim::socket_writer, fault::kill, point::before_first_byte, path::socket_writer},
    {victim::socket_writer, fault::kill, point::mid_stream, path::socket_writer},
    {victim::socket_writer, fault::kill, point::mid_record, path::socket_writer},
    {victim::socket_writer, fault::kill, point::full_ring, path::socket_writer},
    {victim::socket_writer, fault::kill, point::after_close, path::socket_writer},
    {victim::socket_writer, fault::stop, point::before_first_byte, path::socket_writer},
    {victim::socket_writer, fault::stop, point::mid_stream, path::socket_writer},
    {victim::socket_writer, fault::stop, point::after_close, path::socket_writer},
    // A C++ socket reader process through a live engine; this process writes.
    {victim::socket_reader, fault::kill, point::before_first_byte, path::socket_reader},
    {victim::socket_reader, fault::kill, point::mid_stream, path::socket_reader},
    {victim::socket_reader, fault::kill, point::full_ring, path::socket_reader},
    {victim::socket_reader, fault::kill, point::after_close, path::socket_reader},
    {victim::socket_reader, fault::kill, point::mid_stream, path::both_sockets},
    {victim::socket_reader, fault::stop, point::mid_stream, path::socket_reader},
    // A raw socket client stopped part way through the upgrade of a channel socket.
    {victim::socket_client, fault::kill, point::handshake_connect, path::socket_writer},
    {victim::socket_client, fault::kill, point::handshake_partial, path::socket_writer},
    {victim::socket_client, fault::kill, point::handshake_request, path::socket_writer},
    {victim::socket_client, fault::kill, point::handshake_request, path::socket_reader},
    {victim::socket_client, fault::stop, point::handshake_request, path::socket_writer},
};

struct skipped_row {
    victim who;
    fault how;
    const char* points;
    const char* why;
};
const skipped_row skipped[] = {
    {victim::writer, fault::stop, "before it claims its end",
     "to the reader, a writer stopped before its claim is the same as one killed there: an "
     "unclaimed end (the SIGKILL row)"},
    {victim::reader, fault::stop, "before it claims its end",
     "the same as the SIGKILL row: the writer sees an unclaimed reader"},
    {victim::reader, fault::stop, "before the first byte, writer blocked on a full ring",
     "a reader that does not read looks the same whether stopped or idle: the ring fills and the "
     "writer times out, which the SIGSTOP mid-stream row covers"},
    {victim::writer, fault::kill, "handshake", "no handshake on the shared-memory path: a claim is one "
     "compare-and-swap, so before it is 'before it claims', after it 'before the first byte'"},
    {victim::engine, fault::kill, "mid-record",
     "the engine never holds a record half written: it copies whole frames into the ring "
     "(try_write); a frame cut by the crash is a mid-stream row (frames up to 256 KiB)"},
    {victim::engine, fault::stop, "before the first byte, full ring",
     "a hung engine with no end connected is met at the next connect (the handshake row); with "
     "a full ring it looks like the mid-stream row to both survivors: bytes stop moving"},
    {victim::engine, fault::kill, "handshake: connect, partial request",
     "the engine is the server: a client either reaches it or not; the 'request sent' row "
     "covers a client waiting in the upgrade"},
    {victim::socket_writer, fault::stop, "mid-record, full ring",
     "a socket writer's loan is its own buffer, and a stopped one is the mid-stream row"},
    {victim::socket_reader, fault::kill, "mid-record",
     "a socket reader's view is its own frame buffer, not the ring: the mid-stream row"},
    {victim::socket_reader, fault::stop, "before the first byte, full ring, after close",
     "covered by the SIGSTOP mid-stream row (the writer ends up blocked on the full ring)"},
    {victim::socket_client, fault::stop, "handshake: connect, partial request",
     "nothing is claimed before the request is complete, so no survivor waits on such a client; "
     "the engine drops it after 30 s (too long for CI)"},
};

// --- running rows -----------------------------------------------------------------------------------
// A channel left because every process that could finish it died (the engine, holding both its
// ends): listed as orphaned, and removed by `shmchan gc` restricted to it.
void collect_orphan(the_case& c, const std::string& id) {
    INFO("orphaned channel " << id);
    const auto all = list_segments();
    const auto it = std::find_if(all.begin(), all.end(), [&](const segment_entry& s) { return s.name == "/shmchan-" + id; });
    REQUIRE(it != all.end());
    CHECK(it->orphaned);
    child gc = child::spawn({cli_path(), "gc", "--min-age", "0", id});
    const std::string out = gc.read_all(patience);
    CHECK(gc.wait(patience) == 0);
    CHECK(out.find("removed " + id) != std::string::npos);
    CHECK(out.find("removed 1 segment(s)") != std::string::npos);
    CHECK_FALSE(segment_exists(id));
    c.report("`shmchan gc --min-age 0 <id>` (the engine died holding the channel)",
             segment_exists(id) ? "NOT removed" : "orphan removed", clock_type::duration(-1), ms(0));
}

void run(the_case& c) {
    switch (c.r.who) {
        case victim::writer: writer_victim(c); break;
        case victim::reader: reader_victim(c); break;
        case victim::engine: engine_victim(c); break;
        case victim::socket_writer:
        case victim::socket_reader: socket_end_victim(c); break;
        case victim::socket_client: handshake_victim(c); break;
    }
    for (const auto& id : c.orphans) collect_orphan(c, id);
    for (const auto& id : c.ids) {
        INFO(c.title() << ": channel " << id << " must be gone from /dev/shm");
        CHECK(eventually([&] { return !segment_exists(id); }, 2000ms * slowdown));
    }
}

void run_rows(victim a, victim b = victim::writer, bool two = false) {
    const int n = rounds();
    for (std::size_t i = 0; i < std::size(matrix); ++i) {
        const row& r = matrix[i];
        if (r.who != a && !(two && r.who == b)) continue;
        for (int round = 0; round < n; ++round) {
            the_case c(r, i, round);
            DYNAMIC_SECTION(c.title() << (n > 1 ? " round " + std::to_string(round) : std::string())) {
                run(c);
            }
        }
    }
}

}  // namespace

TEST_CASE("crash matrix: writer process", "[crash][fault]") { run_rows(victim::writer); }
TEST_CASE("crash matrix: reader process", "[crash][fault]") { run_rows(victim::reader); }
TEST_CASE("crash matrix: engine process", "[crash][fault]") { run_rows(victim::engine); }
TEST_CASE("crash matrix: socket client", "[crash][fault]") {
    run_rows(victim::socket_writer, victim::socket_reader, true);
}
TEST_CASE("crash matrix: socket client mid-handshake", "[crash][fault]") { run_rows(victim::socket_client); }

TEST_CASE("crash matrix: the combinations left out, and why", "[crash]") {
    for (const auto& s : skipped)
        std::printf("crash matrix: skipped %s, %s, %s: %s\n", name(s.who), name(s.how), s.points, s.why);
    // No combination is both run and skipped for the same reason: each skipped line names
    // points that no row of that victim and fault covers.
    for (const auto& s : skipped)
        for (const auto& r : matrix)
            if (r.who == s.who && r.how == s.how) CHECK(std::string(s.points).find(name(r.when)) == std::string::npos);
}

// --- regressions: the bugs the matrix found, each in its smallest form ------------------------------
TEST_CASE("crash matrix regression: a writer that closed and then saw its reader die removes the segment",
          "[crash][regression]") {
    channel ch = create_channel(test::opts(direct_ring, 50));
    const std::string id = ch.reader_ref.channel_id;
    child r = child::spawn({peer_path(), "open-reader", ch.reader_ref.dump()}, true);
    REQUIRE(r.read_line(patience) == "OK");
    REQUIRE_FALSE(ch.writer.write("never read"));
    REQUIRE_FALSE(ch.writer.close());
    r.kill(SIGKILL);
    r.wait(patience);
    CHECK(ch.writer.wait_drained(patience) == errc::peer_lost);
    CHECK_FALSE(segment_exists(id));  // before: left in /dev/shm for as long as this process lived
}

TEST_CASE("crash matrix regression: an engine that hangs up during the upgrade is engine_unreachable",
          "[crash][regression]") {
    // A listener that takes the upgrade request and hangs up without an answer, as a dying engine.
    const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(lfd >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(lfd, 4) == 0);
    REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    std::thread server([lfd] {
        const int conn = ::accept(lfd, nullptr, nullptr);
        char buf[4096];
        [[maybe_unused]] const auto n = ::recv(conn, buf, sizeof buf, 0);
        ::close(conn);
    });
    const channel_ref ref{"6f2a1c3e-0000-4000-8000-000000000001", "k", direction::read, std::nullopt};
    const errc e = test::thrown([&] {
        (void)open_reader(ref, socket_via("ws://127.0.0.1:" + std::to_string(ntohs(sa.sin_port))));
    });
    server.join();
    ::close(lfd);
    CHECK(e == errc::engine_unreachable);  // before: protocol_error, "engine refused the upgrade"
}

TEST_CASE("crash matrix regression: a socket writer refused by the engine does not report success",
          "[crash][regression]") {
    engine_options eo;
    eo.port = 0;
    engine eng(eo);
    worker w(eng.url(), shm_ends());
    channel ch = w.create_channel(engine_buffer);
    REQUIRE_FALSE(ch.writer.write("mine"));  // the writer end is held here, through shared memory
    writer second = open_writer(ch.writer_ref, socket_via(eng.url()));  // upgraded, then closed 1008
    std::error_code e = second.write("lost?");
    if (!e) e = second.close(patience);
    CHECK(e == errc::already_claimed);  // before: write and close both succeeded
    REQUIRE_FALSE(ch.writer.close());
    std::vector<std::byte> got;
    CHECK_FALSE(ch.reader.read_all(got, patience));
    CHECK(got.size() == 4);
}

TEST_CASE("crash matrix regression: a socket writer learns, while writing, that its reader left",
          "[crash][regression]") {
    engine_options eo;
    eo.port = 0;
    engine eng(eo);
    worker w(eng.url(), shm_ends());
    channel ch = w.create_channel(engine_buffer);
    writer sw = open_writer(ch.writer_ref, socket_via(eng.url()));
    REQUIRE_FALSE(sw.write("first"));
    REQUIRE(ch.reader.next(patience).is_chunk());
    ch.reader = reader();  // the reader leaves
    std::vector<std::byte> buf(std::size_t{64} << 10);
    std::error_code e;
    const auto until = clock_type::now() + patience;
    while (!e && clock_type::now() < until) e = sw.write(buf, 1s);
    CHECK(e == errc::peer_closed);  // before: every write succeeded, into a channel nobody read
}
