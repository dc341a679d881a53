// The OpenSSL server context of the TLS listeners (issue 15): what every
// TLS connection of a generation shares. Built by the master from the
// validated conf model, before it drops privileges at start (the private
// keys may be readable by root only) and again, as the user it runs as, on
// a reload (HUP); the workers inherit it across fork(). Never logs key
// material.
//
// Policy, fixed here rather than configurable: TLS 1.2 and 1.3 only; TLS 1.2
// with ECDHE suites only (forward secrecy), Mozilla's "intermediate" list by
// default, in the server's order; no renegotiation, no compression; ALPN
// `h2` (only when the listener serves HTTP/2) or `http/1.1`, a client that
// offers neither gets the no_application_protocol alert (as nginx); the
// certificate picked by SNI; an OCSP staple from a file; client
// certificates verified when asked. Resumption is by session tickets only
// (no server-side session cache), their keys in shared memory
// (common/ticket_keys.h), so a ticket resumes on any worker and, the keys
// being carried over a reload, in the next generation too: but only where
// the session-id context is the same, a digest of what decides whom a
// session authenticated (session_context()).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/shm_layout.h"
#include "conf/model.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace pasture::worker {

class TlsContext {
 public:
  struct Options {
    // The listener serves HTTP/2: ALPN may pick `h2` (else only `http/1.1`).
    bool http2 = false;
    // Shared ticket keys; null = no session tickets (full handshakes only).
    shm::TicketKeys* tickets = nullptr;
    // Lifetime of a ticket (SSL_CTX_set_timeout): twice the master's
    // rotation period, so a ticket stays good until its key is dropped.
    uint32_t ticket_lifetime_s = 2 * 3600;
  };

  // Reads the certificates, keys and OCSP files `s` names (or makes the
  // self-signed development certificate) and builds one SSL_CTX per
  // certificate. Null + `err` ("cert.pem: ..." naming the file and
  // OpenSSL's reason) on failure.
  static std::unique_ptr<TlsContext> build(const conf::TlsSettings& s, const Options& o, std::string* err);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Shares the ticket keys of a generation's region (the master builds the
  // context before it maps the region); null turns tickets off. Before fork.
  void set_ticket_keys(shm::TicketKeys* keys);

  // A new server-side SSL on the default certificate; SNI may switch it.
  // The caller owns it (SSL_free). Null when OpenSSL is out of memory.
  SSL* new_ssl() const;
  // The header that carries the verified client subject ("" = none).
  const std::string& client_subject_header() const { return client_subject_header_; }
  bool verifies_clients() const { return verify_clients_; }
  bool requires_client_cert() const { return require_client_cert_; }
  // The session-id context of every SSL_CTX of this context: SHA-256 over
  // the certificates served, the client-verification mode and depth, and
  // the CA certificates and CRLs loaded from ca_certs. OpenSSL resumes a
  // session (TLS 1.2 and 1.3 tickets alike) only under the context it was
  // made in, so a reload that changes any of these (client certificates
  // turned on, a CA replaced, a certificate renewed) costs every client one
  // full handshake, while one that changes nothing of them keeps resumption.
  const std::string& session_context() const { return session_context_; }
  size_t certificates() const { return certs_.size(); }

  // Callbacks (C linkage for OpenSSL; public only for tls_context.cc).
  struct Cert;
  const std::vector<std::unique_ptr<Cert>>& certs() const { return certs_; }
  const Options& options() const { return opts_; }

 private:
  TlsContext() = default;
  Options opts_;
  std::vector<std::unique_ptr<Cert>> certs_;  // [0] is the default
  bool set_session_context(std::string* err);
  std::string client_subject_header_;
  std::string session_context_;  // 32 bytes
  bool verify_clients_ = false;
  bool require_client_cert_ = false;
};

}  // namespace pasture::worker
