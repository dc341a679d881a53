// Value parsers for pool and listener settings, shared by the site builder.
// Every parser throws ConfigError at `loc` (the key's file:line).
#pragma once

#include <string>
#include <vector>

#include "conf/model.h"
#include "conf/pyutil.h"

namespace pasture::conf {

// `servers = host:port [weight=N] [max_conns=N] [max_fails=N] [fail_timeout=T]
// [slow_start=T] [backup] [down] ...`:
// whitespace/newline separated; parameters attach to the preceding
// host:port; IPv6 as [::1]:port; `unix:/abs/path` for a unix-domain socket. Rejects an empty list, a missing port,
// bad numbers, unknown parameters and duplicate host:port.
std::vector<UpstreamServer> parse_servers(const std::string& value, const SourceLoc& loc);
// A `servers` token that names no host:port but a form of its own
// (`unix:PATH`, `dns:NAME:PORT`, `dns+srv:NAME`): server_spec writes a host
// whose host:port would read as one with its `http://`.
bool names_server_form(const std::string& tok);

// round_robin least_conn random random2 ip_hash hash cookie
BalanceMethod parse_method(const std::string& value, const SourceLoc& loc);

// "5" / "0.5" (seconds), "250ms", "5s", "2m" -> milliseconds.
uint32_t parse_duration_ms(const std::string& value, const SourceLoc& loc);

// paste.deploy's asbool spellings (true/false, yes/no, on/off, 1/0, ...):
// as_bool gives 1, 0, or -1 for anything else; parse_bool throws for that.
int as_bool(const std::string& value);
bool parse_bool(const std::string& value, const SourceLoc& loc, const std::string& what);

// A non-negative decimal integer <= max.
uint32_t parse_uint(const std::string& value, uint32_t max, const SourceLoc& loc, const std::string& what);

// "host:port", "[v6]:port" (port required unless default_port >= 0; "*" -> 0.0.0.0).
Listener parse_host_port(const std::string& value, int default_port, const SourceLoc& loc);
// Raises a config error if `host` is written as an IP address but is not one.
void check_host(const std::string& host, const SourceLoc& loc);

// The PATH of `unix:PATH` (a server or listen token) or of waitress's
// `unix_socket = PATH`: absolute, and short enough for sockaddr_un.
std::string parse_unix_path(const std::string& path, const SourceLoc& loc, const std::string& what);

// waitress's `unix_socket_perms = 660`: octal (int(value, 8)), at most 0777.
uint32_t parse_unix_perms(const std::string& value, const SourceLoc& loc);

// `trusted_proxies = 127.0.0.1 10.0.0.0/8 ::1 unix`, a status app's
// `allow = ...` (commas allowed): addresses, CIDR blocks, `unix`. `key`
// names the key in errors.
std::vector<AddressRange> parse_address_ranges(const py::Value& v, const std::string& key);
// A status app's `allow` when none is given: 127.0.0.0/8, ::1 and unix.
std::vector<AddressRange> default_status_allow();
// A status app's `hosts = status.example.com, admin.internal` (or `*`): Host
// names, lower-cased; a port, scheme or path is an error.
std::vector<std::string> parse_status_hosts(const py::Value& v);

// Fills a Pool's tunables (method, timeouts, keepalive, cookie_secret) and
// its servers from a balancer section's local_conf. Keys it does not know
// are returned for the caller to report.
// Moves the `dns:` / `dns+srv:` entries of pool.servers into pool.sources
// and checks the discovery keys together (`loc`: the servers line).
// fill_pool calls it; a loader that sets pool.servers afterwards calls it again.
void take_sources(Pool& pool, const SourceLoc& loc);

std::vector<std::string> fill_pool(Pool& pool, const py::Dict& local_conf, const SourceLoc& section_loc);

// egg:Paste#proxy's `address = http://host[:port][/base]` (or https://,
// port 443 by default): a pool of one server that sends the upstream's
// host:port as Host. Name and loc are left to the caller.
Pool proxy_pool(const std::string& address, const SourceLoc& loc);

// A pool's TLS key (tls_verify, tls_ca_certs, tls_server_name,
// tls_client_cert, tls_client_key; files relative to the config file's
// directory) into pool.tls; false for another key. fill_pool takes them,
// and so does egg:Paste#proxy with an https:// address.
bool fill_tls_key(Pool& pool, const std::string& key, const py::Value& v);
// Once the keys are in: TLS keys on a pool without an https:// server, or
// tls_client_key without tls_client_cert, are errors at their line. The
// files are checked later, with the rest of the site (check_upstream_tls).
void check_tls_keys(const Pool& pool);

}  // namespace pasture::conf
