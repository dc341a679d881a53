// pasture's YAML config: the same Site as the INI vocabulary pasture serves
// natively, without paste.deploy's sections, interpolation and inheritance.
// `pasture convert site.ini` prints the YAML form of any servable INI file.
//
//   server:                        # optional; default 127.0.0.1:8080
//     use: egg:pasture#main        # or egg:Paste#http, egg:waitress#main, egg:gunicorn#main
//     host: 127.0.0.1              # host + port, or
//     port: 8080
//     listen: ["127.0.0.1:8080", "[::1]:8080", "unix:/run/site.sock"]   # a list (or one "a:1 b:2" string)
//     # unix_socket: /run/site.sock  # waitress's key: instead of host/port/listen
//     # unix_socket_perms: "0660"    # octal mode of the socket files (unix_socket: 600, unix: 666)
//     workers: 2                   # default: number of CPUs
//     backlog: 1024
//     client_header_timeout: 60s   # durations: 5, 0.5, 250ms, 5s, 2m
//     keepalive_timeout: 75s
//     max_header_bytes: 32768
//     max_url_bytes: 8192
//     max_header_fields: 100
//     via: pasture                 # Via received-by name; off = no Via
//     trace: off                   # on: forward TRACE (else 405)
//     # ... and every other egg:pasture#main key: client_body_timeout,
//     # send_timeout, graceful_timeout, drain_idle_grace, worker_timeout, max_requests,
//     # max_requests_jitter, reuse_port, access_log, underscores_in_headers (false),
//     # trusted_proxies ("127.0.0.1 10.0.0.0/8 unix"), user and group (names
//     # or numbers: dropped to once the listeners are bound), core_dumps (false)
//   app: main                      # the root app; default "main" (CONFIG#name and -n override)
//   apps:
//     main:
//       use: egg:Paste#urlmap      # short forms: urlmap, balancer, proxy, echo
//       routes:                    # paste.urlmap keys -> app names
//         /: pool
//         /hello: hello
//         "domain example.com port 8080 /api": pool   # or "http://example.com:8080/api"
//       not_found_app: hello       # optional
//     pool:
//       use: egg:pasture#balancer  # (egg:Paste#balancer too)
//       servers:                   # same syntax as the INI `servers =` lines
//         - 127.0.0.1:8081 weight=2 max_conns=100
//         - 127.0.0.1:8082 backup
//         - {host: 127.0.0.1, port: 8083, weight: 1, down: true}
//         - unix:/run/app.sock     # or {unix: /run/app.sock}: a unix-domain socket
//         - https://api.internal:8443   # or {host: ..., port: ..., tls: true}: TLS to it
//       # tls_ca_certs: ca.pem     # TLS to the https:// servers: verified against this bundle
//       #                          # (default: the system CA store); tls_verify: off (testing only),
//       #                          # tls_server_name, tls_client_cert, tls_client_key
//       # servers_from: pool.yaml  # instead of servers: a file read at load time
//       method: round_robin        # least_conn random random2 ip_hash hash cookie
//       connect_timeout: 5s
//       read_timeout: 60s
//       send_timeout: 60s
//       keepalive: 32
//       cookie_secret: s3cret      # method cookie (also cookie_name, cookie_max_age: 12h)
//       # hash_key: header:X-User  # method hash; consistent: maglev|ring|none (hash, ip_hash);
//       # hash_whole_ip: true      # ip_hash
//     old: {use: egg:Paste#proxy, address: "http://127.0.0.1:9000/base"}   # or https://, with tls_* keys
//     hello: {use: egg:pasture#echo, name: hi}   # name defaults to the app's name
//     files:
//       use: egg:pasture#static    # (short: static); or egg:Paste#static (its two keys only)
//       document_root: /srv/www    # relative: to this file's directory (Paste#static: the cwd)
//       index: [index.html]        # default; [] = none
//       cache_max_age: 3600        # Cache-Control max-age + Expires
//       follow_symlinks: beneath   # off | beneath (default) | on
//       dotfiles: off              # default off (Paste#static: served)
//       precompressed: [br, gzip]  # serve x.br / x.gz for x when accepted
//       charset: utf-8             # on text types; default none
//       fallback: pool             # a request that finds no file goes to this app
//
// Unknown keys are errors (a YAML file is pasture's own, so a typo is not
// silently ignored). Every error reads "file:line: message" (yaml-cpp Mark).
// Handlers and pools are named "app:NAME" ("composite:NAME" for a urlmap) so
// that log messages read the same as for the equivalent INI file.
//
// A servers file (`servers_from`) is a YAML list of server strings or maps as
// above, or a map whose `servers:` key holds that list.
#pragma once

#include <string>
#include <vector>

#include "conf/model.h"
#include "conf/pyutil.h"

namespace pasture::conf {

// Loads a YAML site. `path` is absolute; `app_name` overrides the file's
// `app:` when non-empty (CONFIG#name, -n). `vars` and `server_name` have no
// meaning for YAML and become notices. Throws ConfigError.
Site load_yaml_site(const std::string& path, const std::string& app_name, const std::string& server_name,
                    const std::vector<std::pair<std::string, std::string>>& vars);

// Reads a servers file (see above). Throws ConfigError with the file's
// file:line; an unreadable file is reported at line 0 of `path`.
std::vector<UpstreamServer> load_servers_file(const std::string& path);

// The `servers_from = FILE` setting of a pool: FILE relative to the directory
// of the file it was written in. Stores the absolute path in *resolved and
// returns the servers; an unreadable file is reported at the setting's line.
std::vector<UpstreamServer> load_servers_from(const py::Value& setting, std::string* resolved);

// True for a config path that names a YAML file (.yaml / .yml).
bool is_yaml_path(const std::string& path);

}  // namespace pasture::conf
