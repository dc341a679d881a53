// TLS in the master (issue 15): contexts built from the checked model, the
// private keys read before privileges are dropped at start (again, as the
// user, on a reload), session-ticket keys in each generation's region,
// rotated on the master's tick.
#include <cstring>

#include "common/log.h"
#include "common/ticket_keys.h"
#include "master/master.h"

namespace pasture::master {

bool Master::build_tls(const conf::Site& site, std::unique_ptr<worker::TlsContext>* out, std::string* err) {
  out->reset();
  if (!site.server.tls.enabled()) return true;
  worker::TlsContext::Options o;
  o.ticket_lifetime_s = (uint32_t)(2 * kTicketRotationMs / 1000);
  o.http2 = site.server.http2;  // ALPN offers h2 (worker/client_tls.cc hands the connection to H2Conn)
  std::string why;
  *out = worker::TlsContext::build(site.server.tls, o, &why);
  if (!*out) {
    *err = site.server.tls.loc.str() + ": TLS: " + why;
    if (run_as_.set_user && why.find(strerror(EACCES)) != std::string::npos)
      *err += " (a reload reads the keys as " + run_as_.text() + ": make them readable by its group, e.g. 0640)";
    return false;
  }
  return true;
}

bool Master::setup_tls(Generation& g, std::string* err) {
  if (!g.site.server.tls.enabled()) return true;
  if (first_tls_) {
    g.tls = std::move(first_tls_);
  } else if (!build_tls(g.site, &g.tls, err)) {
    return false;
  }
  if (!shm::rotate_ticket_keys(g.shm->tickets())) {
    *err = "RAND_bytes failed: no session-ticket keys";
    return false;
  }
  g.tls->set_ticket_keys(&g.shm->tickets());
  g.setup.tls = g.tls.get();
  next_ticket_rotation_ms_ = monotonic_ms() + kTicketRotationMs;
  return true;
}

void Master::tls_tick(uint64_t now) {
  if (!gen_ || !gen_->tls || now < next_ticket_rotation_ms_) return;
  next_ticket_rotation_ms_ = now + kTicketRotationMs;
  if (!shm::rotate_ticket_keys(gen_->shm->tickets())) PLOG_ERROR("RAND_bytes failed: session-ticket keys not rotated");
}

}  // namespace pasture::master
