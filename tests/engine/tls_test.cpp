// wss://: the engine over TLS, C++ workers, socket ends and the CLI as its clients, and every
// way a TLS connection can fail, each a clear error that names its cause. Certificates are
// made for each run by testkit/sh/tls_certs.sh (a CA, the engine's certificate, a client
// certificate, another CA, a self-signed one).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <csignal>
#include <filesystem>
#include <future>
#include <fstream>
#include <thread>
#include <unistd.h>

#include "shmchan/engine.hpp"
#include "shmchan/shmchan.hpp"
#include "shmchan/worker.hpp"
#include "support/engine_process.hpp"
#include "support/helpers.hpp"
#include "support/pinging_reader.hpp"
#include "support/process.hpp"
#include "support/raw_client.hpp"
#include "support/streams.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>

using namespace shmchan;
using namespace std::chrono_literals;
using shmchan::test::child;
using shmchan::test::cli_path;
using shmchan::test::pattern_sum;
using shmchan::test::quiet_engine;
using json = nlohmann::json;

namespace {

// The certificates of this run, made once.
const std::string& certs() {
    static const std::string dir = [] {
        std::string d = (std::filesystem::temp_directory_path() / ("shmchan-tls-" + std::to_string(::getpid()))).string();
        const std::string cmd = "bash '" SHMCHAN_TLS_CERTS_SH "' '" + d + "'";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("could not make the test certificates: " + cmd);
        static const std::string made = d;
        std::atexit([] {
            std::error_code ignore;
            std::filesystem::remove_all(made, ignore);
        });
        return d;
    }();
    return dir;
}
std::string cert(const char* name) { return certs() + "/" + name; }

engine_options tls_engine(const char* cert_name = "server") {
    engine_options o = quiet_engine();
    o.tls_cert_file = cert((std::string(cert_name) + ".pem").c_str());
    o.tls_key_file = cert((std::string(cert_name) + ".key").c_str());
    return o;
}
worker_options trusting(const std::string& ca) {
    worker_options o;
    o.tls.ca_file = ca;
    o.reconnect = false;
    return o;
}
// What a setup call threw: its code and message.
template <class F>
std::pair<errc, std::string> failure(F&& f) {
    try {
        f();
    } catch (const error& e) {
        return {e.kind(), e.what()};
    }
    return {errc::ok, ""};
}
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Streams `n` bytes of the test pattern through w, then closes; the reader's checksum.
std::uint64_t stream_through(writer& w, reader& r, std::size_t n) {
    std::thread t([&] {
        std::vector<std::byte> buf(64 << 10);
        for (std::size_t off = 0; off < n; off += buf.size()) {
            const std::size_t k = std::min(buf.size(), n - off);
            fill_pattern(std::span(buf).first(k), off);
            REQUIRE_FALSE(w.write(std::span(buf).first(k)));
        }
        REQUIRE_FALSE(w.close());
    });
    stream_checksum sum;
    for (auto chunk : r.chunks()) sum.update(chunk);
    t.join();
    CHECK_FALSE(r.status());
    CHECK(sum.bytes() == n);
    return sum.value();
}

}  // namespace

TEST_CASE("tls: workers, invocations and socket ends over wss://", "[engine][tls]") {
    engine eng(tls_engine());
    REQUIRE(eng.url().rfind("wss://127.0.0.1:", 0) == 0);
    worker callee(eng.url(), trusting(cert("ca.pem")));
    worker caller(eng.url(), trusting(cert("ca.pem")));
    // The callee reads a channel's bytes through the engine's socket (forced), over TLS.
    worker_options sock = trusting(cert("ca.pem"));
    sock.via = transport::socket;
    worker reader_side(eng.url(), sock);
    reader_side.register_function("files::sum", [](invocation& c) {
        stream_checksum sum;
        for (auto chunk : c.reader("reader").chunks()) sum.update(chunk);
        return json{{"bytes", sum.bytes()}, {"checksum", sum.value()}, {"via", c.reader("reader").via() == transport::socket}};
    });
    callee.register_function("math::add", [](invocation& c) { return json{{"sum", c.input().at("a").get<int>() + 1}}; });
    // Registrations go out asynchronously, each on its own socket: wait until both are known.
    auto known = [&](const char* fid) {
        try {
            (void)caller.trigger({fid, json{{"a", 0}}, 5s});
        } catch (const invocation_error& e) {
            return e.code() != "function_not_found";
        } catch (const std::exception&) {
        }
        return true;
    };
    REQUIRE(shmchan::test::eventually([&] { return known("math::add"); }));
    REQUIRE(shmchan::test::eventually([&] { return known("files::sum"); }));
    CHECK(caller.trigger({"math::add", json{{"a", 41}}}).at("sum") == 42);

    channel ch = caller.create_channel(8);
    auto pending = std::async(std::launch::async, [&] {
        return caller.trigger({"files::sum", json{{"reader", ch.reader_ref.to_json()}}});
    });
    constexpr std::size_t n = 3u << 20;
    std::thread t([&] {
        std::vector<std::byte> buf(1 << 20);
        for (std::size_t off = 0; off < n; off += buf.size()) {
            fill_pattern(buf, off);
            REQUIRE_FALSE(ch.writer.write(buf));
        }
        REQUIRE_FALSE(ch.writer.close());
    });
    const json r = pending.get();
    t.join();
    CHECK(r.at("bytes") == n);
    CHECK(r.at("checksum") == pattern_sum(n));
    CHECK(r.at("via") == true);

    // Both ends on the socket, the channel made by the engine.
    channel ch2 = caller.create_channel(4);
    channel_options o;
    o.via = transport::socket;
    o.engine = eng.url();
    o.tls.ca_file = cert("ca.pem");
    writer w = open_writer(ch2.writer_ref, o);
    reader rd = open_reader(ch2.reader_ref, o);
    CHECK(w.via() == transport::socket);
    CHECK(stream_through(w, rd, 1u << 20) == pattern_sum(1u << 20));
}

// The engine writes records to a wss:// reader as its own frames through the TLS stream, and
// answers pings between them (ring_to_socket_test.cpp has the same over ws://).
TEST_CASE("tls: a client pinging all along a 64 MiB wss:// stream gets every byte and every pong", "[engine][tls]") {
    namespace asio = boost::asio;
    namespace beast = boost::beast;
    engine eng(tls_engine());
    worker wk(eng.url(), trusting(cert("ca.pem")));
    channel ch = wk.create_channel();

    asio::io_context ioc;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.load_verify_file(cert("ca.pem"));
    beast::websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(ioc, ctx);
    ws.next_layer().set_verify_mode(asio::ssl::verify_peer);
    const auto port = shmchan::test::port_of(eng.url());
    beast::get_lowest_layer(ws).connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    ws.next_layer().handshake(asio::ssl::stream_base::client);
    ws.handshake("127.0.0.1:" + std::to_string(port),
                 "/ws/channels/" + ch.reader_ref.channel_id + "?key=" + ch.reader_ref.access_key + "&dir=read");
    ws.read_message_max(std::size_t{64} << 20);

    constexpr std::uint64_t min_bytes = std::uint64_t{64} << 20;
    std::atomic<int> pongs{0};
    std::uint64_t written = 0;
    std::error_code werr;
    std::thread t([&] { werr = shmchan::test::write_pattern_until(ch.writer, min_bytes, [&] { return pongs.load() >= 100; }, written); });
    const auto got = shmchan::test::read_while_pinging(ws, ioc, pongs, 120s);
    t.join();

    CHECK_FALSE(werr);
    shmchan::test::check_pinged_stream(got, written, min_bytes);
}

TEST_CASE("tls: a certificate that does not verify is engine_unreachable, and says why", "[engine][tls][errors]") {
    engine eng(tls_engine());
    // Trusting another CA.
    auto [code, what] = failure([&] { worker w(eng.url(), trusting(cert("other-ca.pem"))); });
    CHECK(code == errc::engine_unreachable);
    CHECK(has(what, "certificate verify failed: unable to get local issuer certificate"));
    CHECK(has(what, eng.url()));
    // The system's store (no test CA in it).
    std::tie(code, what) = failure([&] { worker w(eng.url(), trusting("")); });
    CHECK(code == errc::engine_unreachable);
    CHECK(has(what, "certificate verify failed"));
    // A socket end, the same.
    engine plain(quiet_engine());
    worker pw(plain.url());
    channel ch = pw.create_channel(1);
    channel_options o;
    o.via = transport::socket;
    o.engine = eng.url();
    o.tls.ca_file = cert("other-ca.pem");
    std::tie(code, what) = failure([&] { (void)open_reader(ch.reader_ref, o); });
    CHECK(code == errc::engine_unreachable);
    CHECK(has(what, "certificate verify failed"));

    // A self-signed engine certificate, trusted as nothing.
    engine self(tls_engine("self"));
    std::tie(code, what) = failure([&] { worker w(self.url(), trusting(cert("ca.pem"))); });
    CHECK(code == errc::engine_unreachable);
    CHECK(has(what, "certificate verify failed: self-signed certificate"));
    // Trusted, but for another name: it names 127.0.0.1 only.
    const std::string by_name = "wss://localhost:" + std::to_string(self.port());
    std::tie(code, what) = failure([&] { worker w(by_name, trusting(cert("self.pem"))); });
    CHECK(code == errc::engine_unreachable);
    CHECK(has(what, "certificate verify failed: hostname mismatch"));
    worker by_address(self.url(), trusting(cert("self.pem")));  // the name it does carry
    CHECK(by_address.connected());
}

TEST_CASE("tls: plain ws:// to a wss:// engine and wss:// to a plain one are clear errors", "[engine][tls][errors]") {
    engine tls(tls_engine());
    const std::string as_plain = "ws://127.0.0.1:" + std::to_string(tls.port());
    auto [code, what] = failure([&] { worker w(as_plain, trusting(cert("ca.pem"))); });
    CHECK(code == errc::engine_unreachable);
    CHECK(has(what, "serves TLS only: connect with wss://"));

    engine plain(quiet_engine());
    const std::string as_tls = "wss://127.0.0.1:" + std::to_string(plain.port());
    std::tie(code, what) = failure([&] { worker w(as_tls, trusting(cert("ca.pem"))); });
    CHECK(code == errc::engine_unreachable);
    CHECK(has(what, "TLS handshake with the engine at " + as_tls + " failed"));
    CHECK(has(what, "plain ws://"));
    // Both engines keep serving.
    worker a(tls.url(), trusting(cert("ca.pem")));
    worker b(plain.url());
    CHECK((a.connected() && b.connected()));
}

TEST_CASE("tls: with --tls-ca the engine asks for a client certificate from that CA", "[engine][tls][errors]") {
    engine_options eo = tls_engine();
    eo.tls_ca_file = cert("ca.pem");
    engine eng(eo);
    auto [code, what] = failure([&] {
        worker w(eng.url(), trusting(cert("ca.pem")));
        // TLS 1.3 refuses a missing client certificate after the handshake: the upgrade fails.
    });
    CHECK(code == errc::engine_unreachable);
    CHECK(has(what, "certificate"));
    worker_options with_cert = trusting(cert("ca.pem"));
    with_cert.tls.cert_file = cert("client.pem");
    with_cert.tls.key_file = cert("client.key");
    worker w(eng.url(), with_cert);
    channel ch = w.create_channel(2);  // its ends inherit the client certificate
    channel_options o;
    o.via = transport::socket;
    o.engine = eng.url();
    o.tls = with_cert.tls;
    reader r = open_reader(ch.reader_ref, o);
    CHECK(stream_through(ch.writer, r, 256u << 10) == pattern_sum(256u << 10));
    // A client certificate from another CA: refused too.
    worker_options self_cert = trusting(cert("ca.pem"));
    self_cert.tls.cert_file = cert("self.pem");
    self_cert.tls.key_file = cert("self.key");
    std::tie(code, what) = failure([&] { worker x(eng.url(), self_cert); });
    CHECK(code == errc::engine_unreachable);
}

TEST_CASE("tls: files that cannot be used are invalid_argument, naming the file", "[engine][tls][errors]") {
    engine_options o = tls_engine();
    o.tls_cert_file = cert("missing.pem");
    auto [code, what] = failure([&] { engine e(o); });
    CHECK(code == errc::invalid_argument);
    CHECK(has(what, "missing.pem"));
    o = tls_engine();
    o.tls_key_file = cert("self.key");  // not the certificate's key
    std::tie(code, what) = failure([&] { engine e(o); });
    CHECK(code == errc::invalid_argument);
    CHECK(has(what, "does not belong to the certificate"));
    o = tls_engine();
    o.tls_key_file.clear();
    CHECK(failure([&] { engine e(o); }).first == errc::invalid_argument);
    o = quiet_engine();
    o.tls_ca_file = cert("ca.pem");  // client certificates without TLS
    CHECK(failure([&] { engine e(o); }).first == errc::invalid_argument);
    o = tls_engine();
    o.tls_cert_file = cert("ca.key");  // a key where the certificate should be
    CHECK(failure([&] { engine e(o); }).first == errc::invalid_argument);

    engine eng(tls_engine());
    std::tie(code, what) = failure([&] { worker w(eng.url(), trusting(cert("nowhere.pem"))); });
    CHECK(code == errc::invalid_argument);
    CHECK(has(what, "nowhere.pem"));
}

TEST_CASE("tls: the CLI: engine --tls-cert/--tls-key, send --tls-ca, recv with SHMCHAN_TLS_CA", "[engine][tls][cli]") {
    shmchan::test::engine_process eng({"--tls-cert", cert("server.pem"), "--tls-key", cert("server.key")});
    REQUIRE(eng.url.rfind("wss://127.0.0.1:", 0) == 0);
    const std::string input = certs() + "/input.bin";
    {
        std::vector<std::byte> buf(700000);
        fill_pattern(buf, 0);
        std::ofstream(input, std::ios::binary).write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size()));
    }
    child send = child::spawn({cli_path(), "send", "--engine", eng.url, "--tls-ca", cert("ca.pem"), input});
    const std::string ref = send.read_line(30s);
    REQUIRE(has(ref, "access_key"));
    child recv = child::spawn({cli_path(), "recv", "--engine", eng.url, "--transport", "socket", ref}, false, false,
                              {"SHMCHAN_TLS_CA=" + cert("ca.pem")});
    const std::string got = recv.read_all(60s);
    CHECK(recv.wait(30s) == 0);
    CHECK(send.wait(30s) == 0);
    CHECK(got.size() == 700000);
    stream_checksum sum;
    sum.update(std::as_bytes(std::span(got.data(), got.size())));
    CHECK(sum.value() == pattern_sum(700000));

    // The wrong CA: exit 1, the cause on stderr.
    child bad = child::spawn({cli_path(), "recv", "--engine", eng.url, "--transport", "socket", "--tls-ca",
                              cert("other-ca.pem"), ref},
                             false, true);
    const std::string said = bad.read_all(30s);
    CHECK(bad.wait(30s) == 1);
    CHECK(has(said, "engine_unreachable"));
    CHECK(has(said, "certificate verify failed: unable to get local issuer certificate"));
}

TEST_CASE("tls: a non-loopback listener warns only without TLS, and keys stay out of the logs", "[engine][tls][security]") {
    // With TLS on 0.0.0.0: no warning.
    child tls = child::spawn({cli_path(), "engine", "--listen", "0.0.0.0:0", "--verbose", "--tls-cert",
                              cert("server.pem"), "--tls-key", cert("server.key")},
                             false, true);
    const std::string first = shmchan::test::listening_line(tls);
    CHECK(has(first, "listening on wss://0.0.0.0:"));
    const std::string url = "wss://127.0.0.1:" + first.substr(first.rfind(':') + 1);
    {
        // A flow with refs in invocations, and a channel socket with a wrong key, all logged.
        worker w(url, trusting(cert("ca.pem")));
        w.register_function("noop", [](invocation& c) {
            (void)c.reader("reader").read_all(10s);
            return json{};
        });
        channel ch = w.create_channel(1);
        std::thread t([&] {
            (void)ch.writer.write(std::as_bytes(std::span("data", 4)));
            (void)ch.writer.close();
        });
        (void)w.trigger({"noop", json{{"reader", ch.reader_ref.to_json()}}});
        t.join();
        channel_ref wrong = ch.writer_ref;
        wrong.access_key = ch.reader_ref.access_key;
        channel_options o;
        o.via = transport::socket;
        o.engine = url;
        o.tls.ca_file = cert("ca.pem");
        CHECK(failure([&] { (void)open_writer(wrong, o); }).first != errc::ok);
        tls.kill(SIGTERM);
        const std::string log = tls.read_all(10s);
        CHECK(has(log, "invokefunction"));  // verbose: the invocation was logged...
        CHECK_FALSE(has(log, ch.reader_ref.access_key));  // ...without its keys
        CHECK_FALSE(has(log, ch.writer_ref.access_key));
        CHECK_FALSE(has(log, "warning"));
    }
    tls.wait(10s);

    child plain = child::spawn({cli_path(), "engine", "--listen", "0.0.0.0:0"}, false, true);
    const std::string warning = plain.read_line();
    CHECK(has(warning, "warning: listening on 0.0.0.0 without TLS: traffic and access keys travel in clear"));
    CHECK(has(shmchan::test::listening_line(plain), "listening on ws://0.0.0.0:"));
    plain.kill(SIGTERM);
    plain.wait(10s);
}
