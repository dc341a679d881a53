// The TLS keys of a server section -> ServerSettings::tls (issue 15):
// Paste's ssl_pem, gunicorn's certfile / keyfile / ca_certs / cert_reqs /
// ciphers, pasture's tls_cert / tls_key / tls_ocsp /
// tls_client_subject_header and `listen = ADDR tls`.
#include <algorithm>
#include <cctype>

#include "conf/error.h"
#include "conf/site_builder.h"
#include "conf/tls_check.h"

namespace pasture::conf {

namespace {

[[noreturn]] void bad(const SourceLoc& loc, const std::string& msg) { throw ConfigError(loc.file, loc.line, msg); }

std::string lower(std::string s) {
  for (char& c : s) c = (char)tolower((unsigned char)c);
  return s;
}

// The keys each form knows.
bool known(TlsFlavour fl, const std::string& key) {
  static const char* const paste[] = {"ssl_pem"};
  static const char* const gunicorn[] = {"certfile", "keyfile", "ca_certs", "cert_reqs", "ciphers"};
  static const char* const pasture[] = {"tls_cert", "tls_key", "tls_ocsp", "tls_client_subject_header"};
  auto in = [&](const auto& list) { return std::find(std::begin(list), std::end(list), key) != std::end(list); };
  switch (fl) {
    case TlsFlavour::Paste: return in(paste);
    case TlsFlavour::Gunicorn: return in(gunicorn);
    case TlsFlavour::Pasture: return in(paste) || in(gunicorn) || in(pasture);
    case TlsFlavour::None: return false;
  }
  return false;
}

bool tls_looking(const std::string& key) {
  return known(TlsFlavour::Pasture, key) || key == "ssl_certificate" || key == "ssl_key";
}

// A file named in the config: absolute, or relative to that config file's directory.
std::string path_of(const std::string& name, const SourceLoc& loc) {
  if (py::isabs(name) || loc.file.empty()) return py::normpath(name);
  return py::normpath(py::dirname(loc.file) + "/" + name);
}

std::vector<std::string> files(const py::Value& v) { return py::split(v.value); }

ClientCerts parse_cert_reqs(const py::Value& v) {
  std::string w = lower(py::strip(v.value));
  if (w == "0" || w == "none" || w == "cert_none") return ClientCerts::None;
  if (w == "1" || w == "optional" || w == "cert_optional") return ClientCerts::Optional;
  if (w == "2" || w == "required" || w == "cert_required") return ClientCerts::Required;
  bad(v.loc, "cert_reqs: expected 0, 1 or 2 (none, optional, required; ssl.CERT_*), got '" + py::strip(v.value) + "'");
}

void check_header_name(const py::Value& v) {
  std::string h = py::strip(v.value);
  bool ok = !h.empty() && h.size() <= 128;
  for (char c : h)
    if (!isalnum((unsigned char)c) && c != '-' && c != '_') ok = false;
  if (!ok) bad(v.loc, "tls_client_subject_header: expected a header name such as X-Client-Subject, got '" + h + "'");
}

}  // namespace

bool take_tls_key(TlsKeys& keys, TlsFlavour fl, const std::string& key_as_written, const py::Value& v) {
  std::string key = lower(key_as_written);
  if (!tls_looking(key)) return false;
  if (!known(fl, key)) {
    // Ignoring it would serve plain HTTP on a port the operator believes is encrypted.
    std::string which = fl == TlsFlavour::Paste      ? "egg:Paste#http takes ssl_pem"
                        : fl == TlsFlavour::Gunicorn ? "egg:gunicorn#main takes certfile, keyfile, ca_certs, cert_reqs, ciphers"
                                                     : "this server has no TLS";
    bad(v.loc, key_as_written + ": not a TLS setting of this server (" + which +
                   "; egg:pasture#main takes all of them and tls_cert / tls_key)");
  }
  keys.values[key] = v;
  return true;
}

void finish_tls(Site& site, const TlsKeys& keys) {
  ServerSettings& s = site.server;
  TlsSettings& t = s.tls;
  auto get = [&](const char* k) -> const py::Value* {
    auto it = keys.values.find(k);
    return it == keys.values.end() || py::strip(it->second.value).empty() ? nullptr : &it->second;
  };
  const py::Value *pem = get("ssl_pem"), *certfile = get("certfile"), *keyfile = get("keyfile"),
                  *tls_cert = get("tls_cert"), *tls_key = get("tls_key"), *ocsp = get("tls_ocsp");
  int sources = (pem != nullptr) + (certfile != nullptr) + (tls_cert != nullptr);
  if (sources > 1) {
    const py::Value* second = tls_cert ? tls_cert : certfile;
    bad(second->loc, "ssl_pem, certfile and tls_cert name the certificate each; give one of them");
  }
  if (keyfile && !certfile) bad(keyfile->loc, "keyfile without certfile");
  if (tls_key && !tls_cert) bad(tls_key->loc, "tls_key without tls_cert");
  if ((keyfile && tls_cert) || (tls_key && certfile)) bad((keyfile ? keyfile : tls_key)->loc, "keyfile goes with certfile, tls_key with tls_cert");
  if (pem) {
    t.loc = pem->loc;
    std::string v = py::strip(pem->value);
    if (v == "*") {
      t.self_signed = true;
    } else {
      TlsCertificate c;
      c.cert_file = c.key_file = path_of(v, pem->loc);
      c.loc = c.key_loc = pem->loc;
      t.certs.push_back(c);
    }
  } else if (certfile) {
    t.loc = certfile->loc;
    TlsCertificate c;
    c.cert_file = path_of(py::strip(certfile->value), certfile->loc);
    c.loc = certfile->loc;
    c.key_file = keyfile ? path_of(py::strip(keyfile->value), keyfile->loc) : c.cert_file;
    c.key_loc = keyfile ? keyfile->loc : certfile->loc;
    t.certs.push_back(c);
  } else if (tls_cert) {
    t.loc = tls_cert->loc;
    std::vector<std::string> certs = files(*tls_cert), ks = tls_key ? files(*tls_key) : std::vector<std::string>();
    if (tls_key && ks.size() != certs.size())
      bad(tls_key->loc, "tls_key: " + std::to_string(ks.size()) + " keys for " + std::to_string(certs.size()) +
                            " certificates in tls_cert (one key per certificate, in the same order)");
    for (size_t i = 0; i < certs.size(); i++) {
      TlsCertificate c;
      c.cert_file = path_of(certs[i], tls_cert->loc);
      c.loc = tls_cert->loc;
      c.key_file = tls_key ? path_of(ks[i], tls_key->loc) : c.cert_file;
      c.key_loc = tls_key ? tls_key->loc : tls_cert->loc;
      t.certs.push_back(c);
    }
  }
  if (ocsp) {
    std::vector<std::string> fs = files(*ocsp);
    if (!tls_cert && !certfile && !(pem && !t.self_signed)) bad(ocsp->loc, "tls_ocsp: no certificate to staple it for");
    if (fs.size() != t.certs.size())
      bad(ocsp->loc, "tls_ocsp: " + std::to_string(fs.size()) + " files for " + std::to_string(t.certs.size()) +
                         " certificates (one per certificate, in the tls_cert order)");
    for (size_t i = 0; i < fs.size(); i++) {
      t.certs[i].ocsp_file = path_of(fs[i], ocsp->loc);
      t.certs[i].ocsp_loc = ocsp->loc;
    }
  }
  // The rest needs a certificate.
  for (const char* k : {"ca_certs", "cert_reqs", "ciphers", "tls_client_subject_header"}) {
    const py::Value* v = get(k);
    if (v && !t.enabled())
      bad(v->loc, std::string(k) + ": TLS is not on (no ssl_pem, certfile or tls_cert in this server)");
  }
  if (const py::Value* v = get("ca_certs")) {
    t.ca_certs = path_of(py::strip(v->value), v->loc);
    t.ca_loc = v->loc;
  }
  if (const py::Value* v = get("cert_reqs")) {
    t.client_certs = parse_cert_reqs(*v);
    if (t.client_certs != ClientCerts::None && t.ca_certs.empty())
      bad(v->loc, "cert_reqs: client certificates need ca_certs (the CAs they must chain to)");
  }
  if (const py::Value* v = get("ciphers")) {
    t.ciphers = py::strip(v->value);
    std::string why = check_cipher_list(t.ciphers);
    if (!why.empty()) bad(v->loc, "ciphers: " + why);
  }
  if (const py::Value* v = get("tls_client_subject_header")) {
    check_header_name(*v);
    if (t.client_certs == ClientCerts::None)
      bad(v->loc, "tls_client_subject_header: no client certificate is asked for (cert_reqs = 1 or 2)");
    t.client_subject_header = py::strip(v->value);
  }
  bool marked = std::any_of(s.listen.begin(), s.listen.end(), [](const Listener& l) { return l.tls; });
  if (!t.enabled()) {
    for (const Listener& l : s.listen)
      if (l.tls) bad(l.loc, "listen " + l.url() + ": a TLS listener needs a certificate (tls_cert = FILE)");
    return;
  }
  if (!marked)
    for (Listener& l : s.listen) l.tls = true;  // as gunicorn's certfile: every listener
  check_tls_files(t, &site.notices);
}

}  // namespace pasture::conf
