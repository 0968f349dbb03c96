#include "scenarios.hpp"

#include <chrono>
#include <stdexcept>
#include <thread>

#include "support/process.hpp"
#include "support/streams.hpp"

namespace shmchan::soak {

using namespace std::chrono_literals;
using json = nlohmann::json;
using test::errc_name;
using test::read_result;

const char* const scenario_names[scenario_count] = {"fn-shm-shm", "fn-socket-socket", "fn-shm-socket",
                                                    "local-socket", "direct", "aborted",
                                                    "fn-early-close", "direct-early", "unused"};

void state::remember(const channel& ch) {
    std::lock_guard lk(mu);
    ids.insert(ch.reader_ref.channel_id);  // its segment exists now: nobody has finished it yet
    ++created;
}

void state::fail(const std::string& what) {
    ++failures;
    std::lock_guard lk(mu);
    if (failure_log.size() < 20) failure_log.push_back(what);
}

// A segment once gone never comes back, so its id is forgotten: the set stays small.
std::size_t state::segments_left() {
    std::lock_guard lk(mu);
    for (auto it = ids.begin(); it != ids.end();) it = test::segment_exists(*it) ? std::next(it) : ids.erase(it);
    return ids.size();
}

namespace {

std::error_code write_pattern(writer& w, std::uint64_t size, std::size_t chunk, const std::string& abort_reason = {}) {
    return test::write_pattern(w, size, chunk, 30s, abort_reason);
}
read_result read_stream(reader& r, std::uint64_t stop_after = 0) { return test::read_stream(r, 30s, stop_after); }

void check(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

void run_one(state& s, scenario sc, std::uint64_t iter) {
    const std::uint64_t size = s.opt.size;
    const std::size_t chunk = 1000 + static_cast<std::size_t>((iter * 7919) % 60000);
    const bool alt = (iter / scenario_count) % 2;  // alternates the transport of some scenarios
    auto engine_channel = [&] {
        channel ch = s.caller->create_channel(4);  // 256 KiB ring
        s.remember(ch);
        return ch;
    };
    auto fn_read = [&](const channel& ch, const char* fn, std::uint64_t stop_after = 0) {
        json in = {{"reader", ch.reader_ref}};
        if (stop_after) in["stop_after"] = stop_after;
        return s.caller->trigger({fn, in, 60s});
    };
    switch (sc) {
        case fn_shm_shm:
        case fn_socket_socket:
        case fn_shm_socket: {
            channel ch = engine_channel();
            writer w = open_writer(ch.writer_ref, s.via(sc == fn_socket_socket ? transport::socket : transport::shm));
            std::error_code werr;
            json r;
            {
                std::jthread t([&] { werr = write_pattern(w, size, chunk); });
                r = fn_read(ch, sc == fn_shm_shm ? shm_function : socket_function);
            }
            check(!werr, std::string("writer: ") + errc_name(werr));
            check(r.value("error", "") == "" && r.value("bytes", 0ull) == size && r.value("sum", 0ull) == s.full_sum,
                  "function read " + r.dump());
            s.bytes += size;
            break;
        }
        case local_socket: {
            channel ch = engine_channel();
            reader rd = open_reader(ch.reader_ref, s.via(transport::socket));
            writer w = open_writer(ch.writer_ref, s.via(transport::socket));
            std::error_code werr;
            read_result r;
            {
                std::jthread t([&] { werr = write_pattern(w, size, chunk); });
                r = read_stream(rd);
            }
            check(!werr, std::string("writer: ") + errc_name(werr));
            check(!r.error && r.bytes == size && r.sum == s.full_sum,
                  std::string("reader: ") + errc_name(r.error) + " " + std::to_string(r.bytes));
            s.bytes += size;
            break;
        }
        case direct:
        case direct_early: {
            channel_options o;
            o.capacity = 256 << 10;
            channel ch = create_channel(o);
            s.remember(ch);
            const bool early = sc == direct_early;
            std::error_code werr;
            read_result r;
            {
                std::jthread t([&] { werr = write_pattern(ch.writer, size, chunk); });
                r = read_stream(ch.reader, early ? size / 4 : 0);
                if (early) ch.reader = reader();  // leaves: the writer must learn it
            }
            if (early) {
                check(r.stopped && werr == errc::peer_closed,
                      std::string("writer after the reader left: ") + errc_name(werr));
            } else {
                check(!werr, std::string("writer: ") + errc_name(werr));
                check(!r.error && r.bytes == size && r.sum == s.full_sum, std::string("reader: ") + errc_name(r.error));
            }
            s.bytes += r.bytes;
            break;
        }
        case aborted: {
            channel ch = engine_channel();
            writer w = open_writer(ch.writer_ref, s.via(alt ? transport::socket : transport::shm));
            std::error_code werr;
            json r;
            {
                std::jthread t([&] { werr = write_pattern(w, size / 2, chunk, "soak: aborted on purpose"); });
                r = fn_read(ch, alt ? shm_function : socket_function);
            }
            check(!werr, std::string("writer: ") + errc_name(werr));
            check(r.value("error", "") == "aborted" && r.value("reason", "") == "soak: aborted on purpose" &&
                      r.value("bytes", 0ull) == size / 2 && r.value("sum", 0ull) == s.half_sum,
                  "aborted stream read as " + r.dump());
            s.bytes += size / 2;
            break;
        }
        case fn_early_close: {
            channel ch = engine_channel();
            const bool socket_writer = alt;
            writer w = open_writer(ch.writer_ref, s.via(socket_writer ? transport::socket : transport::shm));
            std::error_code werr;
            json r;
            {
                std::jthread t([&] { werr = write_pattern(w, size, chunk); });
                r = fn_read(ch, (iter % 2) ? shm_function : socket_function, size / 4);
            }
            check(r.value("stopped", false) && r.value("bytes", 0ull) >= size / 4, "early reader: " + r.dump());
            // The writer learns that its reader left (peer_closed; a socket writer may see its
            // connection dropped, peer_lost), unless every byte had already left the ring: a
            // socket reader's engine drains the ring into socket buffers, and a socket writer's
            // close() succeeds once the engine has taken every byte (docs/engine.md).
            check(werr == errc::peer_closed || (socket_writer && werr == errc::peer_lost) || !werr,
                  std::string("writer after the reader left: ") + errc_name(werr));
            {
                std::lock_guard lk(s.mu);
                ++s.early_close_outcomes[std::string(socket_writer ? "socket" : "shm") + " writer " + errc_name(werr)];
            }
            s.bytes += r.value("bytes", 0ull);
            break;
        }
        case unused: {
            channel ch = engine_channel();
            break;
        }
        case scenario_count: break;
    }
}

}  // namespace

void lane(state& s, int id) {
    for (std::uint64_t iter = static_cast<std::uint64_t>(id); !s.stop.load(); ++iter) {
        const auto sc = static_cast<scenario>(iter % scenario_count);
        try {
            run_one(s, sc, iter);
            ++s.channels;
            ++s.per_scenario[sc];
        } catch (const std::exception& e) {
            s.fail(std::string(scenario_names[sc]) + ": " + e.what());
        }
    }
}

}  // namespace shmchan::soak
