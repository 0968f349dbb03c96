#include "tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <tuple>

#include "shmchan/error.hpp"

namespace shmchan::detail {

namespace ssl = boost::asio::ssl;

namespace {
std::string or_env(const std::string& v, const char* name) {
    if (!v.empty()) return v;
    const char* e = std::getenv(name);
    return e ? e : "";
}
}  // namespace

void check_readable(const std::string& path, const char* what) {
    std::ifstream f(path);
    if (!f) throw error(errc::invalid_argument, std::string("cannot read ") + what + " " + path + ": " + std::strerror(errno));
}

std::shared_ptr<ssl::context> client_tls_context(const tls_client_options& given) {
    const std::string ca = or_env(given.ca_file, "SHMCHAN_TLS_CA");
    const std::string cert = or_env(given.cert_file, "SHMCHAN_TLS_CERT");
    const std::string key = or_env(given.key_file, "SHMCHAN_TLS_KEY");
    static std::mutex mu;
    static std::map<std::tuple<std::string, std::string, std::string>, std::shared_ptr<ssl::context>> made;
    std::lock_guard lk(mu);
    auto& slot = made[{ca, cert, key}];
    if (slot) return slot;

    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (!ca.empty()) {
        check_readable(ca, "TLS CA file");
        ctx->load_verify_file(ca, ec);
        if (ec) throw error(errc::invalid_argument, "TLS CA file " + ca + ": " + ec.message());
    } else {
        ctx->set_default_verify_paths(ec);
        if (ec) throw error(errc::system_error, "cannot load the system's TLS certificate store: " + ec.message());
    }
    if (cert.empty() != key.empty())
        throw error(errc::invalid_argument, "a TLS client certificate needs its key, and a key its certificate "
                                            "(SHMCHAN_TLS_CERT and SHMCHAN_TLS_KEY)");
    if (!cert.empty()) {
        check_readable(cert, "TLS client certificate");
        check_readable(key, "TLS client key");
        ctx->use_certificate_chain_file(cert, ec);
        if (ec) throw error(errc::invalid_argument, "TLS client certificate " + cert + ": " + ec.message());
        ctx->use_private_key_file(key, ssl::context::pem, ec);
        if (ec) throw error(errc::invalid_argument, "TLS client key " + key + ": " + ec.message());
    }
    slot = ctx;
    return ctx;
}

void expect_server_name(net_stream::tls_stream& s, const std::string& host_in) {
    // "[::1]" in a URL is the address ::1.
    std::string host = host_in;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    SSL* h = s.native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(h);
    boost::system::error_code not_ip;
    boost::asio::ip::make_address(host, not_ip);
    if (!not_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());  // an IP SAN must match
    } else {
        SSL_set_tlsext_host_name(h, host.c_str());
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    }
}

bool is_tls_error(const boost::system::error_code& ec) {
    return ec.category() == boost::asio::error::get_ssl_category() ||
           ec.category() == ssl::error::get_stream_category();
}

std::string tls_failure(net_stream::tls_stream& s, const boost::system::error_code& ec) {
    const long v = SSL_get_verify_result(s.native_handle());
    if (v != X509_V_OK) return std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
    if (ec.category() == boost::asio::error::get_ssl_category()) {
        const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
        const char* r = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
        const std::string what = r ? r : ec.message();
        if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG)
            return what + " (the engine does not speak TLS there: is it serving plain ws://?)";
        if (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED || reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
            reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA || reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE)
            return what + " (the engine refused this client's certificate or its absence: see SHMCHAN_TLS_CERT)";
        return what;
    }
    if (ec == ssl::error::stream_truncated || ec == boost::asio::error::eof)
        return "the engine closed the connection during the TLS handshake";
    return ec.message();
}

}  // namespace shmchan::detail
