// TLS settings checked at load time (`pasture check`, start, reload): the
// files a server section names, read with OpenSSL as the master will read
// them, each problem a ConfigError at the line that named the file. Only
// names and dates are kept; no key material leaves this file.
#pragma once

#include <string>

#include "conf/model.h"

namespace pasture::conf {

// TLS 1.2 suites when `ciphers =` is not given: Mozilla's "intermediate"
// list (v5.7) without its DHE suites: ECDHE only, AEAD only.
extern const char kTlsDefaultCiphers[];

// Checks every certificate of `tls` (readable, a PEM certificate, a
// private key that matches it, the key file not readable or writable by
// others nor writable by its group; fills TlsCertificate::names), the OCSP
// files (a successful OCSP response) and ca_certs (PEM certificates).
// Adds notices for what serves but deserves a look (an expired
// certificate, the self-signed one). Throws ConfigError.
void check_tls_files(TlsSettings& tls, std::vector<std::string>* notices);

// A pool's TLS to its https:// servers: tls_ca_certs holds PEM
// certificates; a client certificate and its key as check_tls_files checks
// a server's (matching, key not readable by others). Throws ConfigError at
// the line that named the file.
void check_upstream_tls(UpstreamTls& t, std::vector<std::string>* notices);

// "" when OpenSSL accepts `list` and every TLS 1.2 suite it selects uses
// ECDHE (forward secrecy); else why not.
std::string check_cipher_list(const std::string& list);

// "required", "optional", "none" (the cert_reqs words).
const char* client_certs_word(ClientCerts c);

}  // namespace pasture::conf
