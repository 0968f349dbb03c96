#include "channel_sides.hpp"

namespace shmchan_bench::channel_sides {
namespace {

[[noreturn]] void fail_item(const shmchan::reader& r, const shmchan::item& it, std::uint64_t got) {
    if (it.is_end()) fail("end of stream after " + std::to_string(got) + " bytes");
    if (it.is_message()) fail("unexpected text message after " + std::to_string(got) + " bytes");
    std::string why = it.error().message();
    if (it.error() == shmchan::errc::aborted) why += ": " + r.abort_reason();
    fail(why + " after " + std::to_string(got) + " bytes");
}

shmchan::item next_item(shmchan::reader& r, bool spin) {
    if (!spin) return r.next();
    for (;;) {
        shmchan::item it = r.try_next();
        if (!it.is_error() || it.error() != shmchan::errc::would_block) return it;
        cpu_relax();
    }
}

// One message of `payload` bytes, in as many chunks as it came in, digested in place.
// Returns the time the first chunk arrived; with `end_ok`, 0 if the stream ended cleanly
// before the message (the end of an exchange).
std::int64_t receive(shmchan::reader& r, std::size_t payload, digest& d, bool spin, bool end_ok = false) {
    std::int64_t first = 0;
    for (std::size_t got = 0; got < payload;) {
        shmchan::item it = next_item(r, spin);
        if (end_ok && got == 0 && it.is_end()) return 0;
        if (!it.is_chunk()) fail_item(r, it, d.bytes());
        if (!first) first = now_ns();
        if (it.data().size() > payload - got) fail("a chunk crosses the end of a message");
        d.update(it.data());
        got += it.data().size();
    }
    return first;
}

void send(shmchan::writer& w, std::uint64_t seq, std::span<std::byte> scratch, send_mode mode,
          bool spin) {
    if (mode == send_mode::loan) {
        shmchan::loan l;
        if (spin) {
            for (;;) {
                l = w.try_loan(scratch.size());
                if (l || l.error() != shmchan::errc::would_block) break;
                cpu_relax();
            }
        } else {
            l = w.get_loan(scratch.size());
        }
        if (!l) fail("loan: " + l.error().message());
        fill_payload(l.data(), seq);  // generated in place: no copy
        l.commit();
        return;
    }
    fill_payload(scratch, seq);
    std::error_code e;
    if (spin) {
        while ((e = w.try_write(scratch)) == shmchan::errc::would_block) cpu_relax();
    } else {
        e = w.write(scratch);
    }
    if (e) fail("write: " + e.message());
}

void expect_end(shmchan::reader& r, const digest& d) {
    shmchan::item it = r.next();
    if (!it.is_end()) {
        if (it.is_chunk()) fail("more bytes after the last message");
        fail_item(r, it, d.bytes());
    }
}

}  // namespace

side_result consume(shmchan::reader& r, const run_spec& spec) {
    side_result res;
    digest d;
    std::int64_t first = 0;  // the clock starts when the first chunk arrived (before it was digested)
    consume_loop(
        spec, res, [&](std::uint64_t) { first = receive(r, spec.payload, d, false); }, [](std::uint64_t) {},
        [&] { return first; });
    finish(res, d);
    expect_end(r, d);
    return res;
}

// The producer's private buffer in write mode (a loan uses only the payload size).
buffer scratch_for(const run_spec& spec, send_mode mode) { return buffer(mode == send_mode::write ? spec.payload : 0); }

side_result produce(shmchan::writer& w, const run_spec& spec, send_mode mode) {
    const buffer scratch = scratch_for(spec, mode);
    const std::span<std::byte> s(scratch.data(), spec.payload);
    side_result res = produce_loop(spec, [&](std::uint64_t i) { send(w, i, s, mode, false); });
    if (auto e = w.close()) fail("close: " + e.message());
    generated(res, spec);
    return res;
}

side_result ping(shmchan::writer& out, shmchan::reader& in, const run_spec& spec, send_mode mode) {
    const buffer scratch = scratch_for(spec, mode);
    const std::span<std::byte> s(scratch.data(), spec.payload);
    side_result res;
    digest d;
    ping_loop(spec, res, [&](std::uint64_t i) {
        send(out, i, s, mode, spec.busy_wait);
        receive(in, spec.payload, d, spec.busy_wait);
    });
    finish(res, d);
    if (auto e = out.close()) fail("close: " + e.message());  // the end of the exchange
    expect_end(in, d);
    return res;
}

side_result pong(shmchan::reader& in, shmchan::writer& out, const run_spec& spec, send_mode mode) {
    const buffer scratch = scratch_for(spec, mode);
    const std::span<std::byte> s(scratch.data(), spec.payload);
    side_result res;
    digest d;
    std::int64_t first = 0;  // when ping i's first chunk arrived (the clock's start, as the consumer's)
    const bool ended = pong_loop(
        spec, res,
        [&](std::uint64_t) {
            first = receive(in, spec.payload, d, spec.busy_wait, true);
            return first != 0;  // 0: the ping side ended the exchange
        },
        [&](std::uint64_t i) { send(out, i, s, mode, spec.busy_wait); }, [&] { return first; });
    finish(res, d);
    if (!ended) expect_end(in, d);
    if (auto e = out.close()) fail("close: " + e.message());
    return res;
}

}  // namespace shmchan_bench::channel_sides
