// The discovery tests' DNS server: tests/integration/dns_server.py
// (python3-dnslib) started on loopback, its zone a JSON file the test
// rewrites to change the records at run time.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "conf/json.h"
#include "tests/integration/pasture_server.h"

namespace pasture::test {

inline bool have_dnslib() { return system("/usr/bin/python3 -c 'import dnslib' >/dev/null 2>&1") == 0; }

class DnsServer {
 public:
  explicit DnsServer(const std::string& zone_json) {
    zone_ = dir_.path() + "/zone.json";
    log_ = dir_.path() + "/queries.log";
    set_zone(zone_json);
    std::string script = std::string(PASTURE_SOURCE_DIR) + "/tests/integration/dns_server.py";
    proc_ = std::make_unique<Process>(std::vector<std::string>{"/usr/bin/python3", script, zone_, log_});
    if (wait_for_output(*proc_, "port ")) {
      std::string out = proc_->output();
      port_ = (uint16_t)atoi(out.c_str() + out.find("port ") + 5);
    }
  }
  bool started() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string output() const { return proc_->output(); }

  // Atomically (write + rename): a query never reads half a zone.
  void set_zone(const std::string& zone_json) {
    std::string tmp = zone_ + ".tmp";
    std::ofstream(tmp) << zone_json;
    rename(tmp.c_str(), zone_.c_str());
  }
  // Queries for `name` of `type` ("A", "SRV", ...) so far; `transport` "" = any.
  int queries(const std::string& name, const std::string& type, const std::string& transport = "") const {
    std::ifstream f(log_);
    std::string line;
    int n = 0;
    while (std::getline(f, line)) {
      std::istringstream in(line);
      std::string t, qn, qt, tr;
      in >> t >> qn >> qt >> tr;
      n += qn == name && qt == type && (transport.empty() || tr == transport);
    }
    return n;
  }

 private:
  TempDir dir_;
  std::string zone_, log_;
  std::unique_ptr<Process> proc_;
  uint16_t port_ = 0;
};

// A zone of A (and AAAA) records for `name`.
inline std::string a_zone(const std::string& name, const std::vector<std::string>& v4, int ttl = 1,
                          const std::vector<std::string>& v6 = {}, const std::string& extra = "") {
  auto list = [](const std::vector<std::string>& ips) {
    std::string s;
    for (const std::string& ip : ips) s += (s.empty() ? "\"" : ", \"") + ip + "\"";
    return "[" + s + "]";
  };
  return "{\"ttl\": " + std::to_string(ttl) + extra + ", \"a\": {\"" + name + "\": " + list(v4) + "}, \"aaaa\": {\"" +
         name + "\": " + list(v6) + "}}";
}

namespace json = conf::json;

// The status app's JSON, and the row of server `name` in it (or null).
inline json::Value status_json(uint16_t port) { return json::parse(http_get(port, "/status?format=json").body); }

inline const json::Value* server_row(const json::Value& v, const std::string& name) {
  for (const json::Value& p : v.find("pools")->items())
    for (const json::Value& s : p.find("servers")->items())
      if (s.find("name")->as_string() == name) return &s;
  return nullptr;
}

// Requests an upstream has served.
inline int count(const FakeUpstream& u) { return (int)u.request_count(); }

// Waits until the log holds `needle` (from `from` on); the position after it, or npos.
inline size_t wait_log(const PastureServer& srv, const std::string& needle, size_t from = 0,
                       Millis timeout = Millis(8000)) {
  size_t at = std::string::npos;
  wait_until([&] { return (at = srv.output().find(needle, from)) != std::string::npos; }, timeout);
  return at == std::string::npos ? at : at + needle.size();
}

}  // namespace pasture::test
