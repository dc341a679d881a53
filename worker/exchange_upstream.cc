// Exchange, a proxied request: picking a server, the upstream request head,
// retries, passive health, and the upstream's response on its way to the sink.
#include <cstdio>
#include <cstring>

#include "common/health_state.h"
#include "common/log.h"
#include "worker/exchange.h"
#include "worker/head_check.h"
#include "worker/proxy_head.h"
#include "worker/upstream_conn.h"

namespace pasture::worker {

void Exchange::start_proxy(const char* base, int pool_index, const RequestTarget& t,
                             const NormalPath& np) {
  PoolRt& pool = w_->pools()[pool_index];
  pool_ = pool_index;
  std::string key_scratch;  // a hash key in the forwarded form, until pick()
  lb::RequestView rv = request_view(base, pool, t, np, key_scratch);
  w_->sync_pool(pool);
  int s = lb::pick(*pool.balancer, rv, *pool.state, w_->now());
  w_->pool_stats(pool_index).requests.add();
  if (s < 0) {
    w_->pool_stats(pool_index).no_server.add();
    respond_local(503, "503 Service Unavailable: no upstream server available\n", false);
    return;
  }
  take_server(pool, s, rv.sticky_cookie);
  std::string upgrade = upgrade_asked_ ? allowed_upgrade(base, pool) : std::string();
  upgrading_ = !upgrade.empty();
  build_upstream_head(base, pool, s, t, np, upgrade);
  mode_ = Mode::kProxy;
  connect_upstream();
}

// What the pool's balancing method looks at, as views into the request head
// or `scratch`: uri and path in the form forwarded (NormalPath::wire, origin
// form), Host an absolute-form target's authority, as build_proxy_head sends.
lb::RequestView Exchange::request_view(const char* base, const PoolRt& pool,
                                         const RequestTarget& t, const NormalPath& np,
                                         std::string& scratch) {
  lb::RequestView rv;
  const conf::Pool& cfg = *pool.cfg;
  if (cfg.method == conf::BalanceMethod::IpHash) rv.client_addr = peer_text();
  rv.rng = &w_->rng();
  bool hash = cfg.method == conf::BalanceMethod::Hash;
  bool cookie = cfg.method == conf::BalanceMethod::Cookie;
  if (!hash && !cookie) return rv;
  std::string_view url = span_view(base, head_->url);
  auto header = [&](std::string_view name) -> std::string_view {
    if (!t.authority.empty() && iequals(name, "host")) return t.authority;
    for (const HeaderSpan& h : *head_->headers)
      if (iequals(span_view(base, h.name), name)) return span_view(base, h.value);
    return {};
  };
  std::string_view cookies = header("cookie");
  if (cookie) {
    rv.sticky_cookie = lb::find_cookie(cookies, cfg.cookie_name);
    return rv;
  }
  std::string_view uri = url, path = np.wire;
  if (np.wire.data() != t.path.data() || !t.authority.empty()) {
    scratch.assign(np.wire.data(), np.wire.size());
    if (t.has_query) scratch.append("?").append(t.query);
    uri = scratch;
    path = uri.substr(0, np.wire.size());
  }
  lb::KeySources src{peer_text(), uri, path, t.query, cookies};
  rv.hash_key = lb::extract_hash_key(pool.hash_key, src, header);
  return rv;
}

// Count the request against server `s` and remember the sticky cookie's
// server id to send back (a view into the pool's table, valid for the
// worker's life; the signed value is made with the response head).
void Exchange::take_server(PoolRt& pool, int s, std::string_view request_cookie) {
  server_ = s;
  server_generation_ = pool.targets[s].member_generation;
  if (s < 64) tried_ |= 1ull << s;
  if (!in_flight_) {
    in_flight_ = true;
    pool.in_flight++;
  }
  shm::ServerSlot& slot = pool.state->server_slots[s];
  // Also in this worker's held row: if it dies, the master gives it back.
  shm::take_active(slot, w_->held(pool.targets[s].shm_index));
  slot.requests.fetch_add(1, std::memory_order_relaxed);
  server_stats().selected.add();
  taken_ns_ = uv_hrtime();
  set_cookie_ = pool.cfg->method == conf::BalanceMethod::Cookie
                    ? lb::sticky_cookie_to_set(*pool.state, request_cookie, s)
                    : std::string_view();
}

void Exchange::build_upstream_head(const char* base, const PoolRt& pool, int server,
                                     const RequestTarget& t, const NormalPath& np, std::string_view upgrade) {
  const conf::Pool& cfg = *pool.cfg;
  if (!uphead_) uphead_ = w_->take_buf();
  uphead_->clear();
  ProxyHeadInput in;
  in.method = llhttp_method_name((llhttp_method_t)method_);
  in.url = span_view(base, head_->url);
  in.base = base;
  in.headers = head_->headers;
  in.lines = true;  // a head llhttp parsed whole (HTTP/1, or HTTP/2 as HTTP/1 lines)
  in.peer = peer_text();
  in.trusted_peer = peer_->trusted;
  in.tls = peer_->tls;
  in.subject_header = w_->site().server.tls.client_subject_header;
  in.subject = in.subject_header.empty() ? std::string_view() : sink_->tls_subject();
  in.script_len = script_len_;
  in.http10 = http10_;
  in.target = &t;
  in.path = &np;
  in.upgrade = upgrade;
  if (chunked_) {
    in.body = ProxyHeadInput::Body::kChunked;
  } else if (content_length_ >= 0) {
    in.body = ProxyHeadInput::Body::kLength;
    in.content_length = (uint64_t)content_length_;
  }
  // After a prefix filter the upstream gets PATH_INFO, and the prefix in
  // X-Forwarded-Prefix (nginx's `proxy_pass http://up/;` under a location,
  // Traefik's StripPrefix); a hosted app gets both in its path and
  // X-Pasture-Script-Name, so its environ is the prefix filter's.
  std::string pscratch, pwire;
  std::string prefix;
  NormalPath pnp;
  if (rf_ && rf_->prefixed) {
    prefix = prefix_script();
    if (pool.hosted) {
      pscratch = prefix;
      pscratch.append(prefix_path_info());
      in.script_len = (uint32_t)prefix.size();
    } else {
      pscratch.assign(prefix_path_info());
      in.forwarded_prefix = prefix;
      in.script_len = 0;
    }
    append_path_encoded(pwire, pscratch);
    pnp.decoded = pscratch;
    pnp.wire = pwire;
    in.path = &pnp;
  }
  ProxyHeadPolicy p;
  p.base_path = cfg.base_path;
  p.preserve_host = cfg.preserve_host;
  p.hosted = pool.hosted;
  p.underscores = w_->site().server.underscores_in_headers;
  p.upstream_host = pool.targets[server].addr.host_header;
  p.fallback_host = pool.targets[0].addr.host_header;
  // A hosted app's server is pasture itself, as under paster serve: no Via.
  if (!pool.hosted) p.via = w_->site().server.via;
  build_proxy_head(*uphead_, in, p);  // fails only on a target on_head refused
}

void Exchange::connect_upstream() {
  PoolRt& pool = w_->pools()[pool_];
  int err = 0;
  up_ = UpstreamConn::acquire(w_, &pool, server_, fresh_, &err);
  if (!up_) {
    char why[96];
    snprintf(why, sizeof why, "connect() failed: %s", uv_strerror(err));
    on_upstream_error(502, FailKind::kConnect, why, nullptr);
    return;
  }
  up_->start(this, uphead_, method_ == HTTP_HEAD);
}

// The slot of server_ still holds the member it was picked for: by this
// worker's view and by the shared record (the resolver publishes a new
// member before it resets the slot's health, so a failure of the old member
// seen before this worker's next sync is not charged to the new one either).
bool Exchange::same_member(const PoolRt& pool) const {
  if (pool.targets[server_].member_generation != server_generation_) return false;
  const shm::MemberSlot* m = pool.state->member_slots;
  return !m || m[server_].generation.load(std::memory_order_acquire) == server_generation_;
}

void Exchange::release_server(bool failed) {
  if (server_ < 0 || pool_ < 0) return;
  PoolRt& pool = w_->pools()[pool_];
  shm::ServerSlot& slot = pool.state->server_slots[server_];
  // Counted for a member another took the slot from: Worker::refresh_targets
  // already gave the count back.
  if (pool.targets[server_].member_generation == server_generation_)
    shm::release_active(slot, w_->held(pool.targets[server_].shm_index));
  if (failed && same_member(pool)) slot.failures.fetch_add(1, std::memory_order_relaxed);
  server_ = -1;
}

namespace {

bool idempotent(uint8_t m) {
  return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_PUT || m == HTTP_DELETE ||
         m == HTTP_OPTIONS || m == HTTP_TRACE;
}

// Methods that choose a server for the request (a hash of a key, a sticky
// cookie): an attempt elsewhere gives up what they were chosen for.
bool affine(conf::BalanceMethod m) {
  return m == conf::BalanceMethod::Hash || m == conf::BalanceMethod::IpHash ||
         m == conf::BalanceMethod::Cookie;
}

// Retries after stale pooled connections, per request: enough to get past a
// few dead connections to a server that died, bounded because they count
// against nothing else.
constexpr uint8_t kMaxStaleRetries = 4;

}  // namespace

// Passive health: one failure or success against the current server. A
// single-server pool is never marked down (nginx's rule: there is nowhere
// else to go, so marking it would only turn 502s into 503s).
void Exchange::note_health(PoolRt& pool, bool failed, const char* why) {
  if (server_ < 0) return;
  // A discovered member replaced in its slot since the pick: the outcome is
  // the old member's, not the newcomer's health.
  if (!same_member(pool)) return;
  const conf::UpstreamServer& srv = pool.cfg->servers[server_];
  shm::ServerSlot& slot = pool.state->server_slots[server_];
  uint64_t now = w_->now();
  if (!failed) {
    lb::note_success(slot, now, pool.cfg->name, pool.targets[server_].label);
  } else if (pool.cfg->servers.size() > 1) {
    lb::note_failure(slot, srv.max_fails, srv.fail_timeout_ms, now, pool.cfg->name, pool.targets[server_].label,
                     why);
  } else {
    slot.failures.fetch_add(1, std::memory_order_relaxed);
  }
}

// nginx's proxy_next_upstream rules: only while nothing went to the client,
// at most `retries` times, never replaying request body bytes already sent,
// and, once the request reached the upstream, only for idempotent methods
// (unless `retry_on = non_idempotent`). `condition` is a conf::kRetry* flag,
// or 0 with `status` for http_NNN.
bool Exchange::may_retry(const PoolRt& pool, bool sent, uint32_t condition, int status) {
  const conf::Pool& cfg = *pool.cfg;
  if (resp_started_ || tries_ >= cfg.retries) return false;
  if (condition ? !(cfg.retry_on & condition) : !lb::status_in(cfg.retry_on_status, status))
    return false;
  if (sent && !idempotent(method_) && !(cfg.retry_on & conf::kRetryNonIdempotent)) return false;
  return true;
}

// Envoy's budget: retries in flight at most retry_budget% of requests in
// flight, so a pool that is failing because it is overloaded (timeouts,
// 503s) is not sent more. At least kMinRetryConcurrency are always allowed
// (Envoy's default min_retry_concurrency, 3): a worker with few requests in
// flight still retries the odd failure. Only Retry::kBudgeted retries count
// and are checked: a server that dies or refuses connections fails every
// request it holds at once (dozens in a burst under load), its failures add
// no work to any server, and no floor sized for timeouts would cover them.
bool Exchange::budget_allows(PoolRt& pool, const char* why) {
  constexpr uint32_t kMinRetryConcurrency = 3;
  const conf::Pool& cfg = *pool.cfg;
  uint32_t allowed =
      std::max<uint32_t>(kMinRetryConcurrency, pool.in_flight * cfg.retry_budget_percent / 100);
  if (cfg.retry_budget_percent >= 100 || pool.retries_in_flight + (retry_flight_ ? 0 : 1) <= allowed)
    return true;
  w_->pool_stats(pool.index).budget_refusals.add();
  uint64_t now = w_->now();
  if (now >= pool.budget_logged_ms + 1000) {
    pool.budget_logged_ms = now;
    PLOG_WARN("pool %s: retry budget exhausted (%u retries in flight of %u requests); "
              "not retrying: %s",
              cfg.name.c_str(), pool.retries_in_flight, pool.in_flight, why);
  }
  return false;
}

// The server for the next attempt: a usable one not tried yet for this
// request, or -1 when none can be had (or a kBudgeted retry finds the budget
// spent). Changes nothing.
int Exchange::pick_retry(PoolRt& pool, const char* why, Retry r) {
  if (r == Retry::kBudgeted && !budget_allows(pool, why)) return -1;
  lb::RequestView rv;  // the head is gone: no request keys, round robin order
  if (pool.cfg->method == conf::BalanceMethod::IpHash) rv.client_addr = peer_text();
  rv.rng = &w_->rng();
  w_->sync_pool(pool);
  // Its member gone from the slot since: the slot's newcomer is another server.
  if (server_ >= 0 && server_ < 64 && !same_member(pool)) tried_ &= ~(1ull << server_);
  for (int i = 0; i < 4; i++) {
    int c = lb::pick(*pool.balancer, rv, *pool.state, w_->now());
    if (c < 0) break;
    if (c >= 64 || !(tried_ & (1ull << c))) return c;
  }
  return -1;
}

// Send the request again, to server `s`.
void Exchange::start_retry(PoolRt& pool, int s, const char* why, std::string* unsent, Retry r) {
  const conf::Pool& cfg = *pool.cfg;
  const std::string failed = pool.targets[server_].label;
  stale_same_ = r == Retry::kStale && s == server_;
  release_server(false);
  if (r != Retry::kStale) tries_++;
  fresh_ = true;
  if (r == Retry::kBudgeted && !retry_flight_) {
    retry_flight_ = true;
    pool.retries_in_flight++;
  }
  PLOG_INFO("pool %s: %s %s; retrying on %s (retry %u%s)", cfg.name.c_str(), failed.c_str(),
            why, pool.targets[s].label.c_str(), tries_ + stale_tries_,
            r == Retry::kStale ? ", stale keep-alive connection" : "");
  take_server(pool, s, {});
  w_->pool_stats(pool.index).retries.add();
  server_stats().retries.add();
  connect_upstream();
  if (up_ && unsent && !unsent->empty()) up_->send_body(unsent->data(), unsent->size());
  if (up_ && req_done_) up_->request_done();
}

void Exchange::on_upstream_error(int status, FailKind kind, const char* why,
                                   std::string* unsent) {
  up_ = nullptr;
  PoolRt& pool = w_->pools()[pool_];
  const conf::UpstreamServer& srv = pool.cfg->servers[server_];
  if (kind != FailKind::kStale) note_health(pool, true, why);
  shm::ServerStats& ss = server_stats();
  switch (kind) {
    case FailKind::kConnect:
    case FailKind::kConnectTimeout: ss.connect_errors.add(); break;
    case FailKind::kTimeout: ss.timeouts.add(); break;
    case FailKind::kReset:
    case FailKind::kInvalid: ss.response_errors.add(); break;
    case FailKind::kStale: break;  // an idle connection the server closed: no fault
  }
  // Body bytes already sent cannot be replayed; those never sent came back.
  bool body_lost = body_bytes_ > (unsent ? unsent->size() : 0);
  bool sent = kind != FailKind::kConnect && kind != FailKind::kConnectTimeout;
  uint32_t condition = kind == FailKind::kTimeout || kind == FailKind::kConnectTimeout
                           ? conf::kRetryTimeout
                       : kind == FailKind::kInvalid ? conf::kRetryInvalidHeader
                                                    : conf::kRetryError;
  // A reused keep-alive connection found closed is no fault of the server:
  // its retry counts against neither `retries` (as in nginx) nor the budget,
  // and goes to another server when there is one (as in nginx too): when a
  // server dies, every connection to it fails at once and its address then
  // refuses the retry. Methods with affinity try the same server first over
  // a fresh connection (most often it lives and had closed an idle
  // connection); if that connect fails the server is gone, and the request
  // moves on, still uncounted.
  bool stale = kind == FailKind::kStale || (stale_same_ && !sent);
  if (stale && !body_lost && !resp_started_ && idempotent(method_) &&
      stale_tries_ < kMaxStaleRetries) {
    int next = kind == FailKind::kStale && affine(pool.cfg->method)
                   ? -1
                   : pick_retry(pool, why, Retry::kStale);
    if (next < 0 && kind == FailKind::kStale) next = server_;
    if (next >= 0) {
      stale_tries_++;
      start_retry(pool, next, why, unsent, Retry::kStale);
      if (unsent) w_->give_buf(unsent);
      return;
    }
  }
  bool ok = !body_lost && kind != FailKind::kStale && may_retry(pool, sent, condition, 0);
  Retry r = kind == FailKind::kConnect || kind == FailKind::kReset ? Retry::kConnection
                                                                   : Retry::kBudgeted;
  int next = ok ? pick_retry(pool, why, r) : -1;
  if (next >= 0) {
    start_retry(pool, next, why, unsent, r);
    if (unsent) w_->give_buf(unsent);
    return;
  }
  if (unsent) w_->give_buf(unsent);
  PLOG_WARN("pool %s: %s %s (%d)", pool.cfg->name.c_str(), srv.label().c_str(), why, status);
  release_server(false);
  end_flight();
  respond_error(status, why);
}

void Exchange::end_flight() {
  if (pool_ < 0) return;
  PoolRt& pool = w_->pools()[pool_];
  if (in_flight_) {
    in_flight_ = false;
    pool.in_flight--;
  }
  if (retry_flight_) {
    retry_flight_ = false;
    pool.retries_in_flight--;
  }
}

void Exchange::on_upstream_abort() {
  up_ = nullptr;
  if (pool_ >= 0) note_health(w_->pools()[pool_], true, "failed while answering");
  if (server_ >= 0) server_stats().response_errors.add();
  release_server(false);
  if (mode_ == Mode::kProxy && sink_->retract_head()) {
    // The response head was still held back (see ResponseSink::head):
    // nothing reached the client, which gets a clean 502 instead of an
    // empty reply.
    resp_started_ = false;
    resp_bytes_ = 0;
    end_flight();
    respond_error(502, "upstream response broken before any byte was sent");
    return;
  }
  sink_->abort();
}

bool Exchange::on_response_head(const char* base, const HeadCollector& h, const llhttp_t* p) {
  int status = p->status_code;
  if (!valid_response_head(base, h, *p)) {
    // llhttp accepts obs-fold, empty names and whitespace before the colon;
    // RFC 9112 5 lets a proxy reject them, and nothing of it may reach the
    // client. The upstream connection cannot be reused.
    UpstreamConn* old = up_;
    up_ = nullptr;
    old->abort();
    on_upstream_error(502, FailKind::kInvalid, "invalid header line in the upstream's response", nullptr);
    return false;
  }
  if (status < 200) {
    // RFC 9110 15.2: a proxy forwards every interim response, except to an
    // HTTP/1.0 client. 100 goes bare, as pasture sends it itself, and only
    // when the client asked with Expect (an upstream may send it unasked).
    // 101 never gets here (UpstreamConn).
    if (http10_ || (status == 100 && !expect_continue_)) return false;
    int r = status == 100 ? sink_->interim("HTTP/1.1 100 Continue\r\n") : send_interim(base, h, p);
    if (r < 0) sink_->abort();
    return false;
  }
  PoolRt& pool = w_->pools()[pool_];
  {
    shm::ServerStats& ss = server_stats();
    ss.responses[shm::status_class(status)].add();
    ss.ttfb.observe(since_taken_us());
  }
  bool bad = lb::status_in(pool.cfg->fail_on, status);
  char why[48];
  if (bad) snprintf(why, sizeof why, "answered %d", status);
  note_health(pool, bad, why);
  if (lb::status_in(pool.cfg->retry_on_status, status) && body_bytes_ == 0 && may_retry(pool, true, 0, status)) {
    int next = pick_retry(pool, why);
    if (next >= 0) {
      UpstreamConn* old = up_;
      up_ = nullptr;
      old->abort();  // mid-response: that connection cannot be reused
      start_retry(pool, next, why, nullptr, Retry::kBudgeted);
      return false;
    }
    // Nowhere else to go: the client gets this answer.
  }
  resp_started_ = true;
  status_ = (uint16_t)status;
  if (uphead_) {
    w_->give_buf(uphead_);
    uphead_ = nullptr;
  }
  ResponseHead rh;
  rh.status = status;
  rh.text = w_->take_buf();
  std::string& o = *rh.text;
  o.clear();
  append_response_head(o, base, h, *p, via_name());
  if (!set_cookie_.empty()) {  // the server's id: the value is issued now
    o.append("Set-Cookie: ").append(pool.cfg->cookie_name).push_back('=');
    o.append(lb::sticky_cookie_value(*pool.state, set_cookie_));
    if (pool.cfg->cookie_max_age_s != 0) {
      o.append("; Max-Age=");
      append_uint(o, pool.cfg->cookie_max_age_s);
    }
    o.append("; Path=/; HttpOnly\r\n");
  }
  // The framing is the sink's, from llhttp's parse of the upstream's head
  // (its own fields were dropped by append_response_head).
  bool chunked = p->flags & F_CHUNKED;
  rh.framing = chunked                           ? ResponseHead::Length::kChunked
               : (p->flags & F_CONTENT_LENGTH) ? ResponseHead::Length::kKnown
                                                 : ResponseHead::Length::kNone;
  rh.length = p->content_length;
  rh.no_body = method_ == HTTP_HEAD || status == 204 || status == 304;
  bool decode = chunked && !rh.no_body;
  sink_->head(rh);
  // A chunked body is never forwarded as it came: llhttp's lenient build
  // skips the CRLF after chunk data unchecked, so bytes it framed one way a
  // client would frame another. UpstreamConn hands over the decoded payload.
  return decode;
}

// The Via received-by name for this pool's responses: none from pasture's
// own app processes (as paster serve, whose server is pasture itself).
std::string_view Exchange::via_name() const {
  return w_->pools()[pool_].hosted ? std::string_view() : std::string_view(w_->site().server.via);
}

// An interim (1xx) response, forwarded at once: it has no framing of its
// own, and the final response follows. Returns 0 or a libuv error.
int Exchange::send_interim(const char* base, const HeadCollector& h, const llhttp_t* p) {
  std::string* b = w_->take_buf();
  b->clear();
  append_response_head(*b, base, h, *p, via_name());
  int r = sink_->interim(*b);
  w_->give_buf(b);
  return r;
}

void Exchange::flush() {
  if (mode_ != Mode::kProxy || !resp_started_) return;
  if (!sink_->flush() && up_) up_->pause_read();
}

void Exchange::on_response_body(const char* p, size_t n) {
  resp_bytes_ += n;
  if (server_ >= 0) server_stats().bytes_out.add(n);
  // Batched: UpstreamConn calls flush() once it has parsed the read, so the
  // chunks of one read leave in one write. The client being the bottleneck,
  // the upstream waits (and its read_timeout with it).
  if (!sink_->body(p, n, true) && up_) up_->pause_read();
}

void Exchange::on_response_done(bool upstream_keepalive) {
  (void)upstream_keepalive;
  up_ = nullptr;
  resp_done_ = true;
  count_response();
  if (server_ >= 0) {
    uint64_t took = since_taken_us();
    server_stats().total.observe(took);
    PoolRt& pool = w_->pools()[pool_];
    if (same_member(pool)) pool.targets[server_].note_answer(took);  // (not a slot's previous member)
  }
  release_server(false);
  sink_->end();  // what it holds, the last chunk; last: the connection may start its next request
}

uint32_t Exchange::hold_wait_us() const {
  // (Its head may have come: the wait runs from the last answer completed,
  // so a body in several reads keeps its batch whole and a long stream
  // holds the answers before it no longer than the wait; review 63.)
  if (server_ < 0 || resp_done_) return 0;
  return w_->pools()[pool_].targets[server_].hold_wait_us();
}

}  // namespace pasture::worker
