#include "crash_matrix.hpp"

namespace shmchan::crash {

const char* name(victim v) {
    switch (v) {
        case victim::writer: return "writer process";
        case victim::reader: return "reader process";
        case victim::engine: return "engine process";
        case victim::socket_writer: return "socket writer process";
        case victim::socket_reader: return "socket reader process";
        case victim::socket_client: return "socket client (raw, mid-handshake)";
    }
    return "?";
}
const char* name(fault f) { return f == fault::kill ? "SIGKILL" : "SIGSTOP"; }
const char* name(point p) {
    switch (p) {
        case point::before_claim: return "before it claims its end";
        case point::before_first_byte: return "before the first byte";
        case point::mid_stream: return "mid-stream (random byte)";
        case point::mid_record: return "mid-record";
        case point::full_ring: return "writer blocked on a full ring";
        case point::after_close: return "after a clean close";
        case point::handshake_connect: return "handshake: TCP connected";
        case point::handshake_partial: return "handshake: half the upgrade request";
        case point::handshake_request: return "handshake: upgrade request sent";
    }
    return "?";
}
const char* name(path p) {
    switch (p) {
        case path::shm: return "shm";
        case path::socket_writer: return "socket writer -> engine -> shm reader";
        case path::socket_reader: return "shm writer -> engine -> socket reader";
        case path::both_sockets: return "socket writer -> engine -> socket reader";
    }
    return "?";
}

// --- seeds and reports ---------------------------------------------------------------------------
std::uint64_t crash_seed() {
    static const std::uint64_t seed = [] {
        std::uint64_t s;
        if (const char* e = std::getenv("SHMCHAN_CRASH_SEED"); e && *e) {
            s = std::strtoull(e, nullptr, 10);
        } else {
            std::random_device rd;
            s = (std::uint64_t{rd()} << 32) ^ rd();
        }
        std::printf("crash matrix: seed %llu (replay with SHMCHAN_CRASH_SEED=%llu)\n",
                    static_cast<unsigned long long>(s), static_cast<unsigned long long>(s));
        std::fflush(stdout);
        return s;
    }();
    return seed;
}

int rounds() {
    const char* e = std::getenv("SHMCHAN_CRASH_ROUNDS");
    return e && *e ? std::max(1, std::atoi(e)) : 1;
}

void the_case::report(const std::string& survivor, const std::string& outcome, clock_type::duration noticed,
            ms bound, clock_type::duration quiet) {
    auto text = [](clock_type::duration d) { return d < clock_type::duration::zero() ? std::string("-") : std::to_string(millis(d)); };
    const std::string t = text(noticed), q = text(quiet);
    const std::string b = bound.count() ? std::to_string(bound.count()) : "-";
    std::printf("crash matrix | %s | %s | %s | %s | %s | %s | %s ms | %s ms after its last byte | <= %s ms\n",
                name(r.who), name(r.how), name(r.when), name(r.via), survivor.c_str(), outcome.c_str(), t.c_str(),
                q.c_str(), b.c_str());
    std::fflush(stdout);
    if (const char* f = std::getenv("SHMCHAN_CRASH_REPORT"); f && *f) {
        std::ofstream out(f, std::ios::app);
        out << "| " << name(r.who) << " | " << name(r.how) << " | " << name(r.when) << " | " << name(r.via)
            << " | " << survivor << " | " << outcome << " | " << t << " | " << q << " | " << b << " |\n";
    }
}

// --- what survivors saw ----------------------------------------------------------------------------
const std::error_code gave_up = std::make_error_code(std::errc::timed_out);

std::string describe(const seen& s) {
    if (s.clean) return "clean end";
    if (s.reached) return "still streaming";
    if (s.err == gave_up) return "HUNG (no outcome within the test's patience)";
    if (s.err.category() != error_category()) return "unexpected error " + s.err.message();
    std::string d = to_string(static_cast<errc>(s.err.value()));
    if (!s.reason.empty()) d += " (\"" + s.reason + "\")";
    return d;
}

std::error_code code_named(const std::string& n) {
    for (int i = 0; i <= static_cast<int>(errc::protocol_error); ++i)
        if (n == to_string(static_cast<errc>(i))) return static_cast<errc>(i);
    return std::make_error_code(std::errc::invalid_argument);  // matches no shmchan code
}

// Reads until the end, an error (a timeout included: `per_call` is each call's deadline), or
// `until` bytes. Never longer than the test's patience.
seen drain(reader& r, verifier& v, nanoseconds per_call, std::uint64_t until) {
    const auto give_up = clock_type::now() + patience;
    for (;;) {
        seen s;
        if (v.bytes >= until) {
            s.reached = true;
            return s;
        }
        if (clock_type::now() > give_up) {
            s.err = gave_up;
            return s;
        }
        item it = r.next(std::min<nanoseconds>(per_call, patience));
        if (it.is_chunk()) {
            v.check(it.data());
            continue;
        }
        if (it.is_message()) {
            ++v.messages;
            continue;
        }
        s.at = clock_type::now();
        s.last_data = v.last_at;
        s.clean = it.is_end();
        if (!s.clean) s.err = it.error();
        if (s.err == errc::aborted) s.reason = r.abort_reason();
        if (s.err == errc::timeout && per_call >= patience) s.err = gave_up;
        return s;
    }
}

// Writes the pattern from bytes_written() on, in chunks of random size, until an error (a
// timeout included) or `until` bytes.
seen pump(writer& w, std::mt19937_64& rng, nanoseconds per_call, std::uint64_t until) {
    std::vector<std::byte> buf(std::size_t{1} << 16);
    // At least 256 bytes a write, so that a short stream fits the ring with its record headers.
    std::uniform_int_distribution<std::size_t> size(256, buf.size());
    const auto give_up = clock_type::now() + patience;
    clock_type::time_point last{};
    for (;;) {
        seen s;
        s.last_data = last;
        const std::uint64_t off = w.bytes_written();
        if (off >= until) {
            s.reached = true;
            return s;
        }
        if (clock_type::now() > give_up) {
            s.err = gave_up;
            return s;
        }
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(size(rng), until - off));
        fill_pattern(std::span(buf.data(), n), off);
        if (auto e = w.write(std::span(buf.data(), n), std::min<nanoseconds>(per_call, patience))) {
            s.at = clock_type::now();
            s.err = e == errc::timeout && per_call >= patience ? gave_up : e;
            return s;
        }
        last = clock_type::now();
    }
}

seen outcome_of(std::error_code e) {
    seen s;
    s.clean = !e;
    s.err = e;
    return s;
}

// --- verdicts -----------------------------------------------------------------------------------
// The survivor reported `want` within `bound` of the fault, never a clean end, and every byte it
// delivered was the byte written there.
void verdict(the_case& c, const std::string& survivor, const seen& s, clock_type::time_point fault_at,
             errc want, ms bound, delivered d) {
    const std::uint64_t bytes = d.bytes();
    const bool intact = d.intact();
    const auto noticed = std::max(clock_type::duration::zero(), s.at - fault_at);
    // A survivor first delivers what the peer committed before the fault, which on the socket
    // paths includes what the kernel buffered (megabytes, slow under sanitizers). The bound is
    // on how long it took to report once it had nothing more to deliver.
    const auto quiet = std::max(clock_type::duration::zero(), s.at - std::max(fault_at, s.last_data));
    c.report(survivor, describe(s) + ", " + std::to_string(bytes) + " bytes" + (intact ? "" : " NOT INTACT"),
             noticed, bound, quiet);
    INFO(c.title() << ": " << survivor << " reported " << describe(s) << " after " << millis(noticed)
                   << " ms, " << millis(quiet) << " ms after its last byte");
    CHECK_FALSE(s.clean);
    CHECK(s.err == want);
    CHECK(millis(quiet) <= bound.count());
    CHECK(millis(noticed) <= patience.count());  // and never a hang, however much it had to deliver
    CHECK(intact);
}
// The stream must end cleanly with all `want_bytes`, each the byte written there.
void verdict_clean(the_case& c, const std::string& survivor, const seen& s, const verifier& v,
                   std::uint64_t want_bytes) {
    c.report(survivor, describe(s) + ", " + std::to_string(v.bytes) + " of " + std::to_string(want_bytes) + " bytes",
             clock_type::duration(-1), ms(0));
    INFO(c.title() << ": " << survivor << " reported " << describe(s));
    CHECK(s.clean);
    CHECK(v.bytes == want_bytes);
    CHECK(v.intact());
}

// --- processes ----------------------------------------------------------------------------------
std::vector<std::string> words(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> w;
    for (std::string s; in >> s;) w.push_back(s);
    return w;
}

// The next line starting with `prefix`, or the first error line ("ERR ..", "MISMATCH .."), or ""
// when the process says nothing more within `limit`; `st` gets the "AT" line said before it.
std::string await(child& p, const std::string& prefix, ms limit, stamp* st) {
    const auto until = clock_type::now() + limit;
    for (;;) {
        const auto left = std::chrono::duration_cast<ms>(until - clock_type::now());
        if (left.count() <= 0) return {};
        const std::string line = p.read_line(left);
        if (line.empty()) return {};
        if (line.rfind("AT ", 0) == 0) {
            if (st) {
                std::istringstream in(line.substr(3));
                long long last = 0, at = 0;
                in >> last >> at;
                st->valid = true;
                st->last = last ? clock_type::time_point(std::chrono::nanoseconds(last)) : clock_type::time_point{};
                st->at = clock_type::time_point(std::chrono::nanoseconds(at));
            }
            continue;
        }
        if (line.rfind(prefix, 0) == 0 || line.rfind("ERR ", 0) == 0 || line.rfind("MISMATCH", 0) == 0)
            return line;
    }
}
std::uint64_t number_in(const std::string& line, std::size_t word) {
    const auto w = words(line);
    return w.size() > word ? std::stoull(w[word]) : 0;
}

// A peer's final "ERR <errc> <bytes> ..." line as a verdict; the time is the peer's own (its
// stamp), or when we read the line.
seen seen_in(const std::string& line, const stamp& st) {
    seen s;
    if (st.valid) {
        s.at = st.at;
        s.last_data = st.last;
    }
    const auto w = words(line);
    if (line.empty()) s.err = gave_up;
    else if (w[0] == "END" || w[0] == "CLOSED" || w[0] == "DRAINED") s.clean = true;
    else if (w[0] == "ERR" && w.size() > 1) s.err = code_named(w[1]);
    else if (w[0] == "TIMEOUT" || w[0] == "BLOCKED") s.err = errc::timeout;
    else s.err = std::make_error_code(std::errc::protocol_error);
    return s;
}
// A peer reader's "ERR <errc> <bytes> <checksum>" or "END <bytes> <checksum>": its bytes were
// the pattern's prefix (the checksum is position-sensitive; with --verify it also said MISMATCH
// at the first wrong byte).
bool peer_bytes_intact(const std::string& line) {
    const auto w = words(line);
    const std::size_t at = w.size() > 0 && w[0] == "ERR" ? 2 : 1;
    if (w.size() < at + 2) return false;
    char want[32];
    std::snprintf(want, sizeof want, "%016llx", static_cast<unsigned long long>(pattern_sum(std::stoull(w[at]))));
    return w[at + 1] == want;
}

void send_fault(child& p, fault f) { p.kill(f == fault::kill ? SIGKILL : SIGSTOP); }

engine_proc start_engine() {
    child p = child::spawn({cli_path(), "engine", "--listen", "127.0.0.1:0"});
    const std::string line = p.read_line(patience);  // "shmchan engine: listening on ws://..."
    const auto at = line.find("ws://");
    REQUIRE(at != std::string::npos);
    return engine_proc{std::move(p), line.substr(at)};
}

channel_options socket_via(const std::string& url) {
    channel_options o;
    o.via = transport::socket;
    o.engine = url;
    return o;
}
worker_options shm_ends() {  // this process's own ends go through shared memory
    worker_options o;
    o.via = transport::shm;
    return o;
}

bool eventually(const std::function<bool()>& cond, ms limit) {
    const auto until = clock_type::now() + limit;
    while (clock_type::now() < until) {
        if (cond()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return cond();
}

// The engine still serves channel sockets: a fresh channel, a socket writer here, the ring read.
void check_engine_serves(the_case& c, const std::string& url) {
    INFO(c.title() << ": the engine must keep serving");
    worker w(url, shm_ends());
    channel ch = w.create_channel(engine_buffer);
    c.ids.push_back(ch.reader_ref.channel_id);
    writer sw = open_writer(ch.writer_ref, socket_via(url));
    CHECK_FALSE(sw.write("still serving"));
    CHECK_FALSE(sw.close(patience));
    std::vector<std::byte> got;
    CHECK_FALSE(ch.reader.read_all(got, patience));
    CHECK(got.size() == 13);
}

}  // namespace shmchan::crash
