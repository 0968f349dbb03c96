// TLS on the engine's sockets (wss://): what a client trusts and what it shows. The engine's
// side is in engine_options (tls_cert_file, tls_key_file, tls_ca_file). docs/engine.md, "TLS".
#pragma once

#include <string>

namespace shmchan {

struct tls_client_options {
    // PEM file of the certificate authorities trusted for the engine's certificate. Empty:
    // $SHMCHAN_TLS_CA when set, else the system's store (/etc/ssl/certs). The engine's name
    // (or IP address) in the wss:// URL must match its certificate either way.
    std::string ca_file;
    // A client certificate and its key (PEM), for an engine that asks for one (started with
    // --tls-ca). Empty: $SHMCHAN_TLS_CERT and $SHMCHAN_TLS_KEY when set, else none.
    std::string cert_file;
    std::string key_file;
};

}  // namespace shmchan
