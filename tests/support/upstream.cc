#include "tests/support/upstream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace pasture::test {

namespace {

// Long enough to never fire in a test; stop() interrupts it via the wake fd.
constexpr Millis kForever{3600 * 1000};

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

bool body_allowed(int status) { return status >= 200 && status != 204 && status != 304; }

std::string hex(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

// Serialises `rep` as the answer to `req`; `close` says the connection ends
// after it.
std::string format_reply(const std::string& name, const RecordedRequest& req, const Reply& rep,
                         bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(rep.status) + " " +
                    (rep.reason.empty() ? reason_phrase(rep.status) : rep.reason) + "\r\n";
  for (const auto& [k, v] : rep.headers) out.append(k).append(": ").append(v).append("\r\n");
  if (count_header(rep.headers, "X-Upstream") == 0) out += "X-Upstream: " + name + "\r\n";
  const bool framed = count_header(rep.headers, "Content-Length") > 0 ||
                      count_header(rep.headers, "Transfer-Encoding") > 0;
  if (!framed && body_allowed(rep.status)) {
    out += rep.chunked ? std::string("Transfer-Encoding: chunked\r\n")
                       : "Content-Length: " + std::to_string(rep.body.size()) + "\r\n";
  }
  if (count_header(rep.headers, "Connection") == 0) {
    if (close)
      out += "Connection: close\r\n";
    else if (req.http_major == 1 && req.http_minor == 0)
      out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  if (req.method == "HEAD" || !body_allowed(rep.status)) return out;
  if (!rep.chunked) return out += rep.body;
  const size_t step = rep.chunk_size ? rep.chunk_size : rep.body.size();
  for (size_t off = 0; off < rep.body.size(); off += step) {
    std::string_view piece = std::string_view(rep.body).substr(off, step);
    out.append(hex(piece.size())).append("\r\n").append(piece).append("\r\n");
  }
  return out += "0\r\n\r\n";
}

}  // namespace

// One accepted connection: reads, parses and answers requests in order until
// the peer closes, a reply closes, or stop() wakes it.
class FakeUpstream::Session {
 public:
  Session(FakeUpstream& up, Fd fd, uint64_t id, uint16_t peer_port)
      : up_(up), fd_(std::move(fd)), id_(id), peer_port_(peer_port) {
    llhttp_init(&p_, HTTP_REQUEST, &settings());
    p_.data = this;
  }

  void run() {
    std::string buf;
    for (;;) {
      while (!buf.empty()) {
        llhttp_errno_t e = llhttp_execute(&p_, buf.data(), buf.size());
        size_t used = buf.size();
        if (e == HPE_PAUSED) {
          used = static_cast<size_t>(llhttp_get_error_pos(&p_) - buf.data());
          llhttp_resume(&p_);
        } else if (e != HPE_OK) {
          bad_request(e);
          return;
        }
        buf.erase(0, used);
        if (complete_) {
          complete_ = false;
          if (!answer()) return;
        }
      }
      IoResult io = recv_some(fd_.get(), buf, kForever, up_.wake_r_.get());
      if (io != IoResult::kOk) return;  // peer closed, error, or stop()
    }
  }

 private:
  static Session& self(llhttp_t* p) { return *static_cast<Session*>(p->data); }

  // llhttp keeps a pointer to its settings: one static table for all.
  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t table = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = [](llhttp_t* p) {
        Session& ss = self(p);
        ss.req_ = RecordedRequest{};
        ss.req_.conn_id = ss.id_;
        ss.req_.peer_port = ss.peer_port_;
        ss.field_.clear();
        ss.value_.clear();
        return 0;
      };
      s.on_method = [](llhttp_t* p, const char* at, size_t n) {
        self(p).req_.method.append(at, n);
        return 0;
      };
      s.on_url = [](llhttp_t* p, const char* at, size_t n) {
        self(p).req_.target.append(at, n);
        return 0;
      };
      s.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
        self(p).field_.append(at, n);
        return 0;
      };
      s.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
        self(p).value_.append(at, n);
        return 0;
      };
      s.on_header_value_complete = [](llhttp_t* p) {
        Session& ss = self(p);
        ss.req_.headers.emplace_back(std::move(ss.field_), std::move(ss.value_));
        ss.field_.clear();
        ss.value_.clear();
        return 0;
      };
      s.on_headers_complete = [](llhttp_t* p) {
        Session& ss = self(p);
        ss.req_.http_major = llhttp_get_http_major(p);
        ss.req_.http_minor = llhttp_get_http_minor(p);
        ss.req_.chunked = (p->flags & F_CHUNKED) != 0;
        if (ss.up_.auto_continue_ && iequals(ss.req_.header("Expect"), "100-continue"))
          send_all(ss.fd_.get(), "HTTP/1.1 100 Continue\r\n\r\n", kDefaultTimeout,
                   ss.up_.wake_r_.get());
        return 0;
      };
      s.on_body = [](llhttp_t* p, const char* at, size_t n) {
        self(p).req_.body.append(at, n);
        return 0;
      };
      s.on_message_complete = [](llhttp_t* p) {
        Session& ss = self(p);
        ss.req_.keep_alive = llhttp_should_keep_alive(p) != 0;
        ss.complete_ = true;
        return static_cast<int>(HPE_PAUSED);  // answer before parsing the next one
      };
      return s;
    }();
    return table;
  }

  // Returns false when the connection must close.
  bool answer() {
    up_.record(req_);
    Reply rep;
    try {
      Handler h = up_.handler();
      rep = h ? h(req_) : up_.default_reply(req_);
    } catch (const std::exception& ex) {
      rep = Reply{.status = 500,
                  .body = std::string("handler threw: ") + ex.what() + "\n",
                  .close_after = true};
    }
    const Millis delay = Millis{up_.delay_ms_.load()} + rep.delay;
    if (delay > Millis{0} && wait_fd(up_.wake_r_.get(), POLLIN, delay) != IoResult::kTimeout)
      return false;  // stopped while waiting
    switch (rep.kind) {
      case Reply::Kind::kClose: return false;
      case Reply::Kind::kRaw: return send(rep.raw) && !rep.close_after;
      case Reply::Kind::kRespond: {
        const bool close = rep.close_after || !req_.keep_alive;
        return send(format_reply(up_.name_, req_, rep, close)) && !close;
      }
    }
    return false;
  }

  bool send(std::string_view data) {
    return send_all(fd_.get(), data, kDefaultTimeout, up_.wake_r_.get()) == IoResult::kOk;
  }

  void bad_request(llhttp_errno_t e) {
    std::string what = std::string(llhttp_errno_name(e)) + ": " + llhttp_get_error_reason(&p_);
    up_.record_error(what);
    Reply rep{.status = 400, .body = what + "\n"};
    send(format_reply(up_.name_, RecordedRequest{}, rep, true));
  }

  FakeUpstream& up_;
  Fd fd_;
  uint64_t id_ = 0;
  uint16_t peer_port_ = 0;
  llhttp_t p_;
  RecordedRequest req_;
  std::string field_, value_;
  bool complete_ = false;
};

FakeUpstream::FakeUpstream(std::string name, uint16_t port) : name_(std::move(name)), port_(port) {
  std::string err;
  if (!start(&err)) throw std::runtime_error("FakeUpstream " + name_ + ": " + err);
}

FakeUpstream::FakeUpstream(std::string name, uint16_t port, std::string ip)
    : name_(std::move(name)), port_(port), ip_(std::move(ip)) {
  std::string err;
  if (!start(&err)) throw std::runtime_error("FakeUpstream " + name_ + ": " + err);
}

FakeUpstream::~FakeUpstream() { stop(); }

bool FakeUpstream::start(std::string* err) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    *err = std::string("pipe2: ") + std::strerror(errno);
    return false;
  }
  wake_r_.reset(p[0]);
  wake_w_.reset(p[1]);
  listener_ = ip_ == "127.0.0.1" ? listen_loopback(port_, err) : listen_on(ip_, port_, err);
  if (!listener_.valid()) return false;
  port_ = local_port(listener_.get());
  acceptor_ = std::thread([this] { accept_loop(); });
  return true;
}

bool FakeUpstream::restart() {
  if (running()) return true;
  std::string err;
  if (start(&err)) return true;
  listener_.reset();
  return false;
}

void FakeUpstream::stop() {
  if (!acceptor_.joinable()) return;
  char c = 1;
  (void)!::write(wake_w_.get(), &c, 1);  // level-triggered: wakes every poll()
  acceptor_.join();
  std::list<std::unique_ptr<Conn>> conns;
  {
    std::lock_guard lk(conns_mu_);
    conns.swap(conns_);
  }
  for (auto& c : conns) c->thread.join();  // each closes its own socket
  listener_.reset();
  wake_r_.reset();
  wake_w_.reset();
}

void FakeUpstream::accept_loop() {
  for (;;) {
    if (wait_fd(listener_.get(), POLLIN, kForever, wake_r_.get()) != IoResult::kOk) return;
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    int fd = ::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;  // EAGAIN, ECONNABORTED, EMFILE: try again
    const uint64_t id = ++accepted_;
    ++open_;
    auto conn = std::make_unique<Conn>();
    Conn* raw = conn.get();
    std::lock_guard lk(conns_mu_);
    reap_finished_locked();
    raw->thread = std::thread([this, raw, fd, id, port = ntohs(peer.sin_port)] {
      {
        Session s(*this, Fd(fd), id, port);
        s.run();
      }
      --open_;
      raw->done = true;
    });
    conns_.push_back(std::move(conn));
  }
}

void FakeUpstream::reap_finished_locked() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if ((*it)->done) {
      (*it)->thread.join();
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void FakeUpstream::record(const RecordedRequest& req) {
  std::lock_guard lk(mu_);
  log_.push_back(req);
  cv_.notify_all();
}

void FakeUpstream::record_error(std::string e) {
  std::lock_guard lk(mu_);
  errors_.push_back(std::move(e));
}

Handler FakeUpstream::handler() const {
  std::lock_guard lk(mu_);
  return handler_;
}

void FakeUpstream::set_handler(Handler h) {
  std::lock_guard lk(mu_);
  handler_ = std::move(h);
}

void FakeUpstream::reset_handler() { set_handler(nullptr); }

Reply FakeUpstream::default_reply(const RecordedRequest& req) const {
  return Reply{.body = name_ + " " + req.method + " " + req.target + "\n"};
}

void FakeUpstream::echo_body(bool chunked) {
  set_handler([chunked](const RecordedRequest& req) {
    return Reply{.body = req.body, .chunked = chunked};
  });
}

void FakeUpstream::respond_pattern(size_t n, bool chunked) {
  std::string body = pattern_bytes(n);
  set_handler([body = std::move(body), chunked](const RecordedRequest&) {
    return Reply{.body = body, .chunked = chunked};
  });
}

void FakeUpstream::respond_raw(std::string bytes, bool close_after) {
  set_handler([bytes = std::move(bytes), close_after](const RecordedRequest&) {
    return Reply::raw_bytes(bytes, close_after);
  });
}

void FakeUpstream::answer_then_close() {
  set_handler([this](const RecordedRequest& req) {
    Reply r = default_reply(req);
    r.close_after = true;
    return r;
  });
}

void FakeUpstream::close_without_answer() {
  set_handler([](const RecordedRequest&) { return Reply::close_connection(); });
}

std::vector<RecordedRequest> FakeUpstream::requests() const {
  std::lock_guard lk(mu_);
  return log_;
}

size_t FakeUpstream::request_count() const {
  std::lock_guard lk(mu_);
  return log_.size();
}

bool FakeUpstream::wait_for_requests(size_t n, Millis timeout) const {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return log_.size() >= n; });
}

void FakeUpstream::clear() {
  std::lock_guard lk(mu_);
  log_.clear();
  errors_.clear();
}

std::vector<std::string> FakeUpstream::errors() const {
  std::lock_guard lk(mu_);
  return errors_;
}

}  // namespace pasture::test
