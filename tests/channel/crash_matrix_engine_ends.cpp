// Rows of the crash matrix through an engine: the engine process, a socket writer or reader
// process, a raw client stopped part way through the upgrade.
#include "crash_matrix.hpp"

namespace shmchan::crash {

// --- rows: the engine process ---------------------------------------------------------------------
void engine_victim(the_case& c) {
    engine_proc eng = start_engine();
    worker w(eng.url, shm_ends());
    channel ch = w.create_channel(engine_buffer);
    const std::string id = ch.reader_ref.channel_id;
    c.ids.push_back(id);
    const bool kill = c.r.how == fault::kill;
    auto fault_engine = [&] {
        if (kill) return eng.kill();
        eng.proc.kill(SIGSTOP);
        return clock_type::now();
    };
    std::vector<std::string> wargs{peer_path(), "write", ch.writer_ref.dump(), "--engine", eng.url, "--stamp",
                                   "--chunk", std::to_string(c.pick(512, 256u << 10))};
    std::vector<std::string> rargs{peer_path(), "read", ch.reader_ref.dump(), "--engine", eng.url, "--verify", "--stamp"};
    std::mt19937_64 wrng(c.rng());
    verifier v;
    switch (c.r.when) {
        case point::before_first_byte: {  // SIGKILL, no end connected yet
            const auto t0 = eng.kill();
            seen s;
            s.err = test::thrown([&] { (void)w.create_channel(engine_buffer); });
            s.at = clock_type::now();
            verdict(c, "worker (this process), create_channel", s, t0, errc::engine_unreachable, notice_bound, 0);
            const auto t1 = clock_type::now();
            s.err = test::thrown([&] { (void)open_writer(ch.writer_ref, socket_via(eng.url)); });
            s.at = clock_type::now();
            verdict(c, "socket writer (this process), open", s, t1, errc::engine_unreachable, notice_bound, 0);
            c.orphans.push_back(id);  // the engine made it and died holding it
            break;
        }
        case point::mid_stream: {
            const std::uint64_t k = c.pick(1, 8u << 20);
            std::optional<child> sw, sr;
            survivor_thread here;
            const nanoseconds per_call = kill ? nanoseconds(patience) : nanoseconds(deadline);
            if (c.r.via != path::socket_reader) {
                wargs.insert(wargs.end(), {"--size", std::to_string(endless), "--report-block", "300"});
                if (c.r.via == path::socket_writer) wargs.insert(wargs.end(), {"--mark", std::to_string(k)});
                sw.emplace(child::spawn(wargs));
            }
            if (c.r.via != path::socket_writer) {
                rargs.insert(rargs.end(), {"--mark", std::to_string(k)});
                if (!kill) rargs.insert(rargs.end(), {"--timeout-ms", "300", "--keep-after-timeout"});
                sr.emplace(child::spawn(rargs));
            }
            if (c.r.via == path::socket_writer) here.start([&] { return drain(ch.reader, v, per_call); });
            if (c.r.via == path::socket_reader) here.start([&] { return pump(ch.writer, wrng, per_call); });
            const std::string mark = await(sr ? *sr : *sw, "MARK");
            const auto t0 = fault_engine();
            here.faulted = true;
            const seen s = here.join();
            REQUIRE(mark.rfind("MARK", 0) == 0);
            const errc lost = kill ? errc::peer_lost : errc::timeout;
            const ms bound = kill ? notice_bound : timeout_bound;
            const std::string how = kill ? "" : ", 300 ms deadline";
            if (c.r.via == path::socket_writer)
                verdict(c, "shm reader (this process)" + how, s, t0, lost, bound, v);
            if (c.r.via == path::socket_reader)
                verdict(c, "shm writer (this process)" + how, s, t0, lost, bound, ch.writer);
            std::uint64_t sent = 0;
            if (sw) {
                stamp st;
                const std::string line = await(*sw, kill ? "ERR" : "BLOCKED", patience, &st);
                verdict(c, "socket writer process" + how, seen_in(line, st), t0, lost, bound, number_in(line, kill ? 2 : 1));
                sent = number_in(line, kill ? 2 : 1);
            }
            if (sr) {
                stamp st;
                const std::string line = await(*sr, kill ? "ERR" : "TIMEOUT", patience, &st);
                const std::uint64_t got = number_in(line, kill ? 2 : 1);
                verdict(c, "socket reader process" + how, seen_in(line, st), t0, lost, bound,
                        delivered(got, peer_bytes_intact(line)));
                if (sw && kill) CHECK(got <= sent);
            }
            if (sw && c.r.via == path::socket_writer && kill) CHECK(v.bytes <= sent);
            if (kill) {
                if (c.r.via == path::both_sockets) c.orphans.push_back(id);  // both ends died with the engine
                break;
            }
            // Resumed, the engine carries on with the same stream, in order.
            eng.proc.kill(SIGCONT);
            if (c.r.via == path::socket_writer) {
                CHECK(drain(ch.reader, v, patience, v.bytes + resume_bytes).reached);
                sw->kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, "shm reader (this process), socket writer then killed", drain(ch.reader, v, patience), t1,
                        errc::aborted, notice_bound, v);
            } else {
                const std::uint64_t total = ch.writer.bytes_written() + resume_bytes;
                CHECK(pump(ch.writer, wrng, patience, total).reached);
                CHECK_FALSE(ch.writer.close(patience));
                CHECK_FALSE(ch.writer.wait_drained(patience));
                const std::string end = await(*sr, "END");
                CHECK(end.rfind("END " + std::to_string(total) + " ", 0) == 0);
                CHECK(peer_bytes_intact(end));
                c.report("socket reader process, after SIGCONT", end, clock_type::duration(-1), ms(0));
            }
            check_engine_serves(c, eng.url);
            break;
        }
        case point::full_ring: {  // SIGKILL; this process does not read until the writer waits
            wargs.insert(wargs.end(), {"--size", std::to_string(endless), "--report-block", "100"});
            child sw = child::spawn(wargs);
            const std::string blocked = await(sw, "BLOCKED");
            REQUIRE(blocked.rfind("BLOCKED", 0) == 0);
            const auto t0 = eng.kill();
            stamp st;
            const std::string line = await(sw, "ERR", patience, &st);
            verdict(c, "socket writer process", seen_in(line, st), t0, errc::peer_lost, notice_bound, number_in(line, 2));
            verdict(c, "shm reader (this process)", drain(ch.reader, v, patience), t0, errc::peer_lost, notice_bound,
                    v);
            CHECK(v.bytes <= number_in(line, 2));
            break;
        }
        case point::after_close: {
            const std::uint64_t k = c.pick(1, 128u << 10);  // fits the ring
            wargs.insert(wargs.end(), {"--size", std::to_string(k), "--then", "close-hang"});
            child sw = child::spawn(wargs);
            REQUIRE(await(sw, "CLOSED") == "CLOSED");
            // The socket writer's close completes when the engine took it; the end record is in
            // the ring a moment later: the fault comes after that.
            CHECK(eventually([&] {
                try {
                    return inspect(ch.reader_ref).writer.st == end_info::state::closed;
                } catch (const error&) {
                    return false;
                }
            }));
            fault_engine();
            verdict_clean(c, "shm reader (this process)", drain(ch.reader, v, patience), v, k);
            break;
        }
        case point::handshake_request: {
            // The engine hangs (or dies) while a socket reader waits for its upgrade.
            eng.proc.kill(SIGSTOP);
            rargs.push_back("--announce");
            child sr = child::spawn(rargs);
            REQUIRE(await(sr, "OPENING") == "OPENING");
            if (kill) {
                std::this_thread::sleep_for(300ms * slowdown);  // connected, request sent, no answer
                const auto t0 = eng.kill();
                stamp st;
                const std::string line = await(sr, "ERR", patience, &st);
                verdict(c, "socket reader process, opening", seen_in(line, st), t0, errc::engine_unreachable,
                        notice_bound, 0);
                c.orphans.push_back(id);
            } else {
                const auto t0 = clock_type::now();
                stamp st;
                const std::string line = await(sr, "ERR", connect_bound + patience, &st);
                verdict(c, "socket reader process, opening (10 s connect timeout)", seen_in(line, st),
                        t0, errc::engine_unreachable, connect_bound, 0);
                eng.proc.kill(SIGCONT);
                check_engine_serves(c, eng.url);
            }
            break;
        }
        default: FAIL("no such engine row");
    }
    eng.stop();
}

// --- rows: a socket writer or reader process through a live engine ------------------------------------
void socket_end_victim(the_case& c) {
    engine_proc eng = start_engine();
    worker w(eng.url, shm_ends());
    channel ch = w.create_channel(engine_buffer);
    c.ids.push_back(ch.reader_ref.channel_id);
    const bool kill = c.r.how == fault::kill;
    const bool writer_dies = c.r.who == victim::socket_writer;
    std::vector<std::string> args;
    if (writer_dies)
        args = {peer_path(), "write", ch.writer_ref.dump(), "--engine", eng.url, "--chunk",
                std::to_string(c.pick(512, 256u << 10))};
    else
        args = {peer_path(), "read", ch.reader_ref.dump(), "--engine", eng.url, "--verify"};
    auto add = [&](std::initializer_list<std::string> more) { args.insert(args.end(), more); };
    std::mt19937_64 wrng(c.rng());
    verifier v;
    const std::string me = writer_dies ? "shm reader (this process)" : "shm writer (this process)";
    // What this process's end must report once the socket end is gone: the engine aborts the
    // ring for a socket writer that disconnects, and finishes its reader end as lost for a
    // socket reader whose connection broke.
    const errc gone = writer_dies ? errc::aborted : errc::peer_lost;
    auto survive = [&](nanoseconds per_call) {
        return writer_dies ? drain(ch.reader, v, per_call) : pump(ch.writer, wrng, per_call);
    };
    auto mine = [&] { return writer_dies ? delivered(v) : delivered(ch.writer); };
    if (c.r.via == path::both_sockets) {  // SIGKILL mid-stream of the socket reader; a socket writer survives
        const std::uint64_t k = c.pick(1, 4u << 20);
        child sw = child::spawn({peer_path(), "write", ch.writer_ref.dump(), "--engine", eng.url, "--stamp", "--chunk",
                                 std::to_string(c.pick(512, 256u << 10)), "--size", std::to_string(endless)});
        add({"--mark", std::to_string(k)});
        child p = child::spawn(args);
        REQUIRE(await(p, "MARK").rfind("MARK", 0) == 0);
        p.kill(SIGKILL);
        const auto t0 = clock_type::now();
        // The engine can no longer deliver: it closes the writer's socket with the reason, which
        // the writer's next write reports: peer_lost, the reader's connection broke.
        stamp st;
        const std::string line = await(sw, "ERR", patience, &st);
        verdict(c, "socket writer process", seen_in(line, st), t0, errc::peer_lost, notice_bound, number_in(line, 2));
        check_engine_serves(c, eng.url);
        eng.stop();
        return;
    }
    switch (c.r.when) {
        case point::before_first_byte: {
            add({"--size", "1000", "--hold-at", "open"});
            child p = child::spawn(args);
            REQUIRE(p.read_line(patience) == "OPEN");
            send_fault(p, c.r.how);
            const auto t0 = clock_type::now();
            if (kill) {
                verdict(c, me, survive(patience), t0, gone, notice_bound, mine());
            } else {
                verdict(c, me + ", 300 ms deadline", survive(deadline), t0, errc::timeout, timeout_bound, mine());
                check_engine_serves(c, eng.url);
                p.kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, me + ", then SIGKILL", survive(patience), t1, gone, notice_bound, mine());
            }
            check_engine_serves(c, eng.url);
            break;
        }
        case point::mid_stream:
        case point::mid_record:
        case point::full_ring: {
            const std::uint64_t k = c.pick(1, 4u << 20);
            const bool full = c.r.when == point::full_ring;
            if (writer_dies) {
                add({"--size", std::to_string(endless)});
                if (c.r.when == point::mid_stream) add({"--mark", std::to_string(k)});
                if (c.r.when == point::mid_record) add({"--pause-after", std::to_string(k), "--stop-in-loan"});
                if (full) add({"--report-block", "100"});
            } else {
                if (c.r.when == point::mid_stream) add({"--mark", std::to_string(k)});
                if (full) add({"--stop-after", std::to_string(k)});
            }
            child p = child::spawn(args);
            survivor_thread here;
            // Blocked on a full ring: a writer here writes (and blocks); a reader here waits.
            if (!writer_dies || !full)
                here.start([&] { return survive(kill ? nanoseconds(patience) : nanoseconds(deadline)); });
            const char* said = c.r.when == point::mid_stream ? "MARK"
                               : c.r.when == point::mid_record ? "IN-LOAN"
                               : writer_dies ? "BLOCKED" : "READY";
            const std::string at = await(p, said);
            send_fault(p, c.r.how);
            const auto t0 = clock_type::now();
            here.faulted = true;
            REQUIRE(at.rfind(said, 0) == 0);
            const seen s = writer_dies && full ? survive(patience) : here.join();
            if (kill) {
                verdict(c, me, s, t0, gone, notice_bound, mine());
                if (c.r.when == point::mid_record) {
                    // Nothing of the loan. A socket writer's committed small messages may still
                    // sit in its sender thread's queue (src/send_queue.hpp: 256 KiB staged, as
                    // much again in the send under way; both count headers too, so payload
                    // bytes are fewer) when it dies: those are lost with the process, and the
                    // reader's stream ends aborted with a prefix of them.
                    const std::uint64_t said_written = number_in(at);
                    CHECK(v.bytes <= said_written);
                    CHECK(said_written - std::min(v.bytes, said_written) <= 2 * (256u << 10));
                }
                check_engine_serves(c, eng.url);
                break;
            }
            verdict(c, me + ", 300 ms deadline", s, t0, errc::timeout, timeout_bound, mine());
            check_engine_serves(c, eng.url);  // one hung client does not hang the engine
            p.kill(SIGCONT);
            if (writer_dies) {
                CHECK(drain(ch.reader, v, patience, v.bytes + resume_bytes).reached);
                p.kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, me + ", SIGCONT then SIGKILL", drain(ch.reader, v, patience), t1, errc::aborted,
                        notice_bound, v);
            } else {
                const std::uint64_t total = ch.writer.bytes_written() + resume_bytes;
                CHECK(pump(ch.writer, wrng, patience, total).reached);
                CHECK_FALSE(ch.writer.close(patience));
                CHECK_FALSE(ch.writer.wait_drained(patience));
                const std::string end = await(p, "END");
                CHECK(end.rfind("END " + std::to_string(total) + " ", 0) == 0);
                CHECK(peer_bytes_intact(end));
                c.report("socket reader process, after SIGCONT", end, clock_type::duration(-1), ms(0));
            }
            break;
        }
        case point::after_close: {
            const std::uint64_t k = c.pick(1, 128u << 10);  // fits the ring
            if (writer_dies) {
                add({"--size", std::to_string(k), "--then", "close-hang"});
                child p = child::spawn(args);
                REQUIRE(await(p, "CLOSED") == "CLOSED");
                send_fault(p, c.r.how);
                verdict_clean(c, me, drain(ch.reader, v, patience), v, k);
            } else {  // SIGKILL of a socket reader that never read, after the writer's close
                add({"--hold-at", "open"});
                child p = child::spawn(args);
                REQUIRE(p.read_line(patience) == "OPEN");
                CHECK(pump(ch.writer, wrng, patience, k).reached);
                CHECK_FALSE(ch.writer.close(patience));
                p.kill(SIGKILL);
                const auto t0 = clock_type::now();
                // The engine is the ring's reader: it has sent every record and the close into
                // the client's socket, so the ring is drained. The writer cannot learn that the
                // client died before reading them (no end-to-end acknowledgement over the
                // socket, as in iii): documented, not an error here.
                const std::error_code e = ch.writer.wait_drained(patience);
                seen s = outcome_of(e);
                s.at = clock_type::now();
                c.report(me + ", wait_drained()", e ? describe(s) : std::string("ok (documented: the engine sent it all)"),
                         s.at - t0, notice_bound);
                CHECK((!e || e == errc::peer_closed || e == errc::peer_lost));
                CHECK(millis(s.at - t0) <= notice_bound.count());
            }
            check_engine_serves(c, eng.url);
            break;
        }
        default: FAIL("no such socket-end row");
    }
    eng.stop();
}

// --- rows: a raw client stopped part way through the upgrade of a channel socket ------------------------
void handshake_victim(the_case& c) {
    engine_proc eng = start_engine();
    worker w(eng.url, shm_ends());
    channel ch = w.create_channel(engine_buffer);
    c.ids.push_back(ch.reader_ref.channel_id);
    const bool writer_end = c.r.via == path::socket_writer;
    const channel_ref& ref = writer_end ? ch.writer_ref : ch.reader_ref;
    const char* stage = c.r.when == point::handshake_connect ? "connect"
                        : c.r.when == point::handshake_partial ? "partial" : "request";
    child p = child::spawn({peer_path(), "handshake", eng.url, ref.dump(), "--stage", stage});
    const std::string said = p.read_line(patience);
    REQUIRE((said == "CONNECTED" || said == "PARTIAL" || said == "SENT"));
    std::mt19937_64 wrng(c.rng());
    verifier v;
    const std::string me = writer_end ? "shm reader (this process)" : "shm writer (this process)";
    auto survive = [&](nanoseconds per_call) {
        return writer_end ? drain(ch.reader, v, per_call) : pump(ch.writer, wrng, per_call);
    };
    auto mine = [&] { return writer_end ? delivered(v) : delivered(ch.writer); };
    // The connection broke during or after the upgrade: a reader's end was lost.
    const errc gone = writer_end ? errc::aborted : errc::peer_lost;
    if (c.r.when != point::handshake_request) {
        // Nothing was claimed: after the kill, the end is still there for a real client.
        p.kill(SIGKILL);
        p.wait(patience);
        check_engine_serves(c, eng.url);
        const std::uint64_t k = c.pick(1, 1u << 20);
        child sw = child::spawn({peer_path(), "write", ch.writer_ref.dump(), "--engine", eng.url, "--size",
                                 std::to_string(k), "--then", "close"});
        verdict_clean(c, me + ", then a new socket writer claims the end", drain(ch.reader, v, patience), v, k);
        CHECK(await(sw, "CLOSED") == "CLOSED");
        CHECK(sw.wait(patience) == 0);
        eng.stop();
        return;
    }
    // The request was complete: the engine claimed the end for this client.
    send_fault(p, c.r.how);
    const auto t0 = clock_type::now();
    if (c.r.how == fault::stop) {
        verdict(c, me + ", 300 ms deadline", survive(deadline), t0, errc::timeout, timeout_bound, mine());
        check_engine_serves(c, eng.url);
        p.kill(SIGKILL);
        const auto t1 = clock_type::now();
        verdict(c, me + ", then SIGKILL", survive(patience), t1, gone, notice_bound, mine());
    } else {
        verdict(c, me, survive(patience), t0, gone, notice_bound, mine());
    }
    check_engine_serves(c, eng.url);
    // The end was spent on the dead client: a second client is refused, clearly (the channel is
    // still listed: already_claimed; or already swept away: segment_missing).
    std::vector<std::string> again{peer_path(), writer_end ? "write" : "read", ref.dump(), "--engine", eng.url};
    if (writer_end) again.insert(again.end(), {"--size", "1000"});
    child second = child::spawn(again);
    const std::string refused = await(second, "ERR");
    INFO("a second client for the spent end said: " << refused);
    const std::error_code e = seen_in(refused).err;
    CHECK((e == errc::already_claimed || e == errc::segment_missing));
    c.report("a second socket client for the same end", refused.substr(0, refused.find(' ', 4)),
             clock_type::duration(-1), ms(0));
    eng.stop();
}

}  // namespace shmchan::crash
