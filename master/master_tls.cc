// TLS in the master (issue 15): contexts built from the checked model, the
// private keys read before privileges are dropped at start (again, as the
// user, on a reload), session-ticket keys in each generation's region,
// rotated on the master's tick.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "common/ticket_keys.h"
#include "master/master.h"

namespace pasture::master {

uint64_t Master::ticket_rotation_from_env(uint64_t fallback) {
  // The tests cannot wait an hour for a rotation.
  const char* v = getenv("PASTURE_TICKET_ROTATION_MS");
  long long ms = v ? atoll(v) : 0;
  return ms > 0 ? (uint64_t)ms : fallback;
}

bool Master::build_tls(const conf::Site& site, std::unique_ptr<worker::TlsContext>* out, std::string* err) {
  out->reset();
  if (!site.server.tls.enabled()) return true;
  worker::TlsContext::Options o;
  o.ticket_lifetime_s = (uint32_t)std::max<uint64_t>(1, 2 * ticket_rotation_ms_ / 1000);
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
  if (!shm::rotate_ticket_keys(g.shm->tickets(), monotonic_ms())) {
    *err = "RAND_bytes failed: no session-ticket keys";
    return false;
  }
  g.tls->set_ticket_keys(&g.shm->tickets());
  g.setup.tls = g.tls.get();
  return true;
}

void Master::tls_tick(uint64_t now) {
  if (!gen_ || !gen_->tls || now < ticket_retry_at_ms_) return;
  shm::TicketKeys& keys = gen_->shm->tickets();
  if (!shm::ticket_key_due(keys, now, ticket_rotation_ms_)) return;
  if (!shm::rotate_ticket_keys(keys, now)) {
    PLOG_ERROR("RAND_bytes failed: session-ticket keys not rotated (trying again in a minute)");
    ticket_retry_at_ms_ = now + 60 * 1000;
  }
}

}  // namespace pasture::master
