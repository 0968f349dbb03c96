#include "engine/tls_context.hpp"

#include <openssl/ssl.h>

#include "shmchan/error.hpp"
#include "tls.hpp"

namespace shmchan::detail {

namespace ssl = boost::asio::ssl;

std::shared_ptr<ssl::context> server_tls_context(const engine_options& opt) {
    if (opt.tls_cert_file.empty() && opt.tls_key_file.empty()) {
        if (!opt.tls_ca_file.empty())
            throw error(errc::invalid_argument, "--tls-ca needs --tls-cert and --tls-key (client certificates are "
                                                "asked for only over TLS)");
        return nullptr;
    }
    if (opt.tls_cert_file.empty() || opt.tls_key_file.empty())
        throw error(errc::invalid_argument, "TLS needs both a certificate (--tls-cert) and its key (--tls-key)");
    check_readable(opt.tls_cert_file, "TLS certificate");
    check_readable(opt.tls_key_file, "TLS key");
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(opt.tls_cert_file, ec);
    if (ec) throw error(errc::invalid_argument, "TLS certificate " + opt.tls_cert_file + ": " + ec.message());
    ctx->use_private_key_file(opt.tls_key_file, ssl::context::pem, ec);
    // OpenSSL refuses a key of another certificate here already ("key values mismatch").
    if (ec || SSL_CTX_check_private_key(ctx->native_handle()) != 1)
        throw error(errc::invalid_argument,
                    "TLS key " + opt.tls_key_file + " does not belong to the certificate " + opt.tls_cert_file +
                        (ec ? " or is no PEM key (" + ec.message() + ")" : ""));
    if (!opt.tls_ca_file.empty()) {
        // Mutual TLS: only clients with a certificate issued by this CA get past the handshake.
        check_readable(opt.tls_ca_file, "TLS CA file");
        ctx->load_verify_file(opt.tls_ca_file, ec);
        if (ec) throw error(errc::invalid_argument, "TLS CA file " + opt.tls_ca_file + ": " + ec.message());
        if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(opt.tls_ca_file.c_str()))
            SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
        ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    return ctx;
}

}  // namespace shmchan::detail
