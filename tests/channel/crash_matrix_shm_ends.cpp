// Rows of the crash matrix with a process on the ring: a writer process (this process reads), a
// reader process (this process writes).
#include "crash_matrix.hpp"

namespace shmchan::crash {

// --- rows: a writer process on the ring, this process reading --------------------------------------
void writer_victim(the_case& c) {
    channel ch = create_channel(test::opts(direct_ring, 50));
    c.ids.push_back(ch.reader_ref.channel_id);
    std::vector<std::string> args{peer_path(), "write", ch.writer_ref.dump(), "--chunk",
                                  std::to_string(c.pick(512, 20000))};
    auto add = [&](std::initializer_list<std::string> more) { args.insert(args.end(), more); };
    const std::string me = "reader (this process)";
    const bool kill = c.r.how == fault::kill;
    verifier v;
    switch (c.r.when) {
        case point::before_claim: {  // SIGKILL only
            add({"--size", "1000", "--hold-at", "start"});
            child w = child::spawn(args);
            REQUIRE(w.read_line(patience) == "STARTED");
            w.kill(SIGKILL);
            const auto t0 = clock_type::now();
            // Nobody ever claimed the writer: without an engine (whose TTL would end it) only a
            // deadline ends the wait; the end is not dead, just absent.
            verdict(c, me + ", next(300 ms)", drain(ch.reader, v, deadline), t0, errc::timeout, timeout_bound, v);
            // The creator still holds the writer's ref: it can end the channel.
            ch.writer.abort("crash matrix: the writer never came");
            const seen s = drain(ch.reader, v, patience);
            CHECK(s.err == errc::aborted);
            CHECK(v.bytes == 0);
            break;
        }
        case point::before_first_byte: {
            add({"--size", "1000", "--hold-at", "open"});
            child w = child::spawn(args);
            REQUIRE(w.read_line(patience) == "OPEN");
            send_fault(w, c.r.how);
            const auto t0 = clock_type::now();
            if (kill) {
                verdict(c, me, drain(ch.reader, v, patience), t0, errc::peer_lost, notice_bound, v);
            } else {
                verdict(c, me + ", next(300 ms)", drain(ch.reader, v, deadline), t0, errc::timeout, timeout_bound, v);
                w.kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, me + ", then SIGKILL", drain(ch.reader, v, patience), t1, errc::peer_lost, notice_bound, v);
            }
            CHECK(v.bytes == 0);
            break;
        }
        case point::mid_stream: {
            const std::uint64_t k = c.pick(1, 8u << 20);
            add({"--size", std::to_string(endless), "--mark", std::to_string(k)});
            child w = child::spawn(args);
            survivor_thread rd;
            rd.start([&] { return drain(ch.reader, v, kill ? nanoseconds(patience) : nanoseconds(deadline)); });
            const std::string mark = await(w, "MARK");
            send_fault(w, c.r.how);
            const auto t0 = clock_type::now();
            rd.faulted = true;
            const seen s = rd.join();
            REQUIRE(mark.rfind("MARK", 0) == 0);
            if (kill) {
                verdict(c, me, s, t0, errc::peer_lost, notice_bound, v);
            } else {
                verdict(c, me + ", next(300 ms)", s, t0, errc::timeout, timeout_bound, v);
                // Resumed, the stream goes on where it stopped, in order.
                w.kill(SIGCONT);
                const seen more = drain(ch.reader, v, patience, v.bytes + resume_bytes);
                CHECK(more.reached);
                w.kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, me + ", SIGCONT then SIGKILL", drain(ch.reader, v, patience), t1, errc::peer_lost,
                        notice_bound, v);
            }
            CHECK(v.bytes >= k);
            break;
        }
        case point::mid_record: {
            const std::uint64_t k = c.pick(1, 4u << 20);
            add({"--size", std::to_string(endless), "--pause-after", std::to_string(k), "--stop-in-loan"});
            child w = child::spawn(args);
            survivor_thread rd;
            rd.start([&] { return drain(ch.reader, v, kill ? nanoseconds(patience) : nanoseconds(deadline)); });
            const std::string loaned = await(w, "IN-LOAN");
            send_fault(w, c.r.how);
            const auto t0 = clock_type::now();
            rd.faulted = true;
            const seen s = rd.join();
            REQUIRE(loaned.rfind("IN-LOAN", 0) == 0);
            const std::uint64_t committed = number_in(loaned);
            if (kill) {
                verdict(c, me, s, t0, errc::peer_lost, notice_bound, v);
            } else {
                verdict(c, me + ", next(300 ms)", s, t0, errc::timeout, timeout_bound, v);
                w.kill(SIGKILL);
                const auto t1 = clock_type::now();
                verdict(c, me + ", then SIGKILL", drain(ch.reader, v, patience), t1, errc::peer_lost, notice_bound,
                        v);
            }
            CHECK(v.bytes == committed);  // the half-filled loan never reaches the reader
            break;
        }
        case point::full_ring: {
            // This process does not read until the writer says it waits for room.
            const std::uint64_t size = kill ? endless : c.pick(1u << 20, 4u << 20);
            add({"--size", std::to_string(size), "--report-block", "100"});
            child w = child::spawn(args);
            const std::string blocked = await(w, "BLOCKED");
            REQUIRE(blocked.rfind("BLOCKED", 0) == 0);
            send_fault(w, c.r.how);
            const auto t0 = clock_type::now();
            if (kill) {
                verdict(c, me, drain(ch.reader, v, patience), t0, errc::peer_lost, notice_bound, v);
                CHECK(v.bytes >= number_in(blocked));
            } else {
                verdict(c, me + ", next(300 ms)", drain(ch.reader, v, deadline), t0, errc::timeout, timeout_bound,
                        v);
                // Resumed, the writer finishes the stream: all of it arrives, then a clean end.
                w.kill(SIGCONT);
                verdict_clean(c, me + ", after SIGCONT", drain(ch.reader, v, patience), v, size);
                CHECK(await(w, "DRAINED") == "DRAINED");
                CHECK(w.wait(patience) == 0);
            }
            break;
        }
        case point::after_close: {
            const std::uint64_t k = c.pick(0, 32u << 10);  // fits the ring: no reader needed
            add({"--size", std::to_string(k), "--then", "close-hang"});
            child w = child::spawn(args);
            REQUIRE(await(w, "CLOSED") == "CLOSED");
            send_fault(w, c.r.how);
            verdict_clean(c, me, drain(ch.reader, v, patience), v, k);
            break;
        }
        default: FAIL("no such writer row");
    }
}

// --- rows: a reader process on the ring, this process writing ---------------------------------------
void reader_victim(the_case& c) {
    channel ch = create_channel(test::opts(direct_ring, 50));
    c.ids.push_back(ch.reader_ref.channel_id);
    std::vector<std::string> args{peer_path(), "read", ch.reader_ref.dump(), "--verify"};
    auto add = [&](std::initializer_list<std::string> more) { args.insert(args.end(), more); };
    std::mt19937_64 wrng(c.rng());
    const std::string me = "writer (this process)";
    const bool kill = c.r.how == fault::kill;
    switch (c.r.when) {
        case point::before_claim: {  // SIGKILL only
            add({"--hold-at", "start"});
            child r = child::spawn(args);
            REQUIRE(r.read_line(patience) == "STARTED");
            r.kill(SIGKILL);
            const auto t0 = clock_type::now();
            // An absent reader is not a dead one: the ring fills, and a deadline ends the wait.
            verdict(c, me + ", write(300 ms)", pump(ch.writer, wrng, deadline), t0, errc::timeout, timeout_bound,
                    ch.writer);
            // The creator holds the reader's ref too: it claims and leaves, the writer learns.
            {
                reader mine = std::move(ch.reader);
                (void)mine.try_next();
            }
            CHECK(pump(ch.writer, wrng, patience).err == errc::peer_closed);
            break;
        }
        case point::before_first_byte: {  // SIGKILL only
            add({"--hold-at", "open"});
            child r = child::spawn(args);
            REQUIRE(r.read_line(patience) == "OPEN");
            r.kill(SIGKILL);
            const auto t0 = clock_type::now();
            verdict(c, me, pump(ch.writer, wrng, patience), t0, errc::peer_lost, notice_bound, ch.writer);
            break;
        }
        case point::mid_stream:
        case point::mid_record:
        case point::full_ring: {
            const std::uint64_t k = c.pick(1, c.r.when == point::mid_stream ? 8u << 20 : 2u << 20);
            if (c.r.when == point::mid_stream) add({"--mark", std::to_string(k)});
            else add({"--stop-after", std::to_string(k)});
            if (c.r.when == point::mid_record) add({"--hold-view"});  // dies holding a view into the ring
            child r = child::spawn(args);
            survivor_thread wr;
            wr.start([&] { return pump(ch.writer, wrng, kill ? nanoseconds(patience) : nanoseconds(deadline)); });
            const std::string at = await(r, c.r.when == point::mid_stream ? "MARK" : "READY");
            send_fault(r, c.r.how);
            const auto t0 = clock_type::now();
            wr.faulted = true;
            const seen s = wr.join();
            INFO("reader said: " << at);
            CHECK(number_in(at) >= k);
            if (kill) {
                verdict(c, me, s, t0, errc::peer_lost, notice_bound, ch.writer);
            } else {
                verdict(c, me + ", write(300 ms)", s, t0, errc::timeout, timeout_bound, ch.writer);
                if (c.r.when == point::mid_stream) {
                    // Resumed, the reader takes everything, in order, and the clean end.
                    r.kill(SIGCONT);
                    const std::uint64_t total = ch.writer.bytes_written() + resume_bytes;
                    CHECK(pump(ch.writer, wrng, patience, total).reached);
                    CHECK_FALSE(ch.writer.close(patience));
                    CHECK_FALSE(ch.writer.wait_drained(patience));
                    const std::string end = await(r, "END");
                    CHECK(end.rfind("END " + std::to_string(total) + " ", 0) == 0);
                    CHECK(peer_bytes_intact(end));
                    CHECK(r.wait(patience) == 0);
                } else {
                    r.kill(SIGKILL);
                    const auto t1 = clock_type::now();
                    verdict(c, me + ", then SIGKILL", pump(ch.writer, wrng, patience), t1, errc::peer_lost,
                            notice_bound, ch.writer);
                }
            }
            break;
        }
        case point::after_close: {
            const std::uint64_t k = c.pick(1, 32u << 10);  // fits the ring
            if (kill) add({"--hold-at", "open"});
            else add({"--mark", "1"});
            child r = child::spawn(args);
            if (kill) {
                REQUIRE(r.read_line(patience) == "OPEN");
                CHECK(pump(ch.writer, wrng, patience, k).reached);
            } else {
                CHECK(pump(ch.writer, wrng, patience, 1).reached);
                REQUIRE(await(r, "MARK").rfind("MARK", 0) == 0);  // reading: stop it now
                send_fault(r, fault::stop);
                CHECK(pump(ch.writer, wrng, patience, k).reached);
            }
            CHECK_FALSE(ch.writer.close(patience));  // the end record fits: close succeeds
            if (kill) r.kill(SIGKILL);
            const auto t0 = clock_type::now();
            if (kill) {
                verdict(c, me + ", wait_drained()", outcome_of(ch.writer.wait_drained(patience)), t0, errc::peer_lost,
                        notice_bound, k);
            } else {
                verdict(c, me + ", wait_drained(300 ms)", outcome_of(ch.writer.wait_drained(deadline)), t0,
                        errc::timeout, timeout_bound, k);
                r.kill(SIGCONT);
                CHECK_FALSE(ch.writer.wait_drained(patience));
                const std::string end = await(r, "END");
                CHECK(end.rfind("END " + std::to_string(k) + " ", 0) == 0);
                CHECK(peer_bytes_intact(end));
                c.report("reader process, after SIGCONT", end, clock_type::duration(-1), ms(0));
            }
            break;
        }
        default: FAIL("no such reader row");
    }
}

}  // namespace shmchan::crash
