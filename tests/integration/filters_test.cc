// The native filters (issue 17) side by side with Paste's own: the same
// app behind egg:Paste#gzip / egg:PasteDeploy#prefix / egg:Paste#translogger
// loaded by paste.deploy under wsgiref (tests/integration/filters_peer.py),
// and behind pasture running the same filter sections natively. Same
// requests, same status, the headers that matter, the same (gunzipped)
// bodies, the same translogger lines.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <zlib.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/integration/pasture_server.h"

namespace pasture::test {
namespace {

const std::string kPeer = std::string(PASTURE_SOURCE_DIR) + "/tests/integration/filters_peer.py";

bool have_paste() {
  return system("/usr/bin/python3 -c 'import paste.gzipper, paste.translogger, paste.deploy' >/dev/null 2>&1") == 0;
}

std::string gunzip(const std::string& in, bool* ok) {
  z_stream z{};
  inflateInit2(&z, 31);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = (uInt)in.size();
  std::string out;
  int r = Z_OK;
  while (r == Z_OK) {
    char buf[16384];
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    r = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (r == Z_BUF_ERROR && z.avail_in == 0) break;
  }
  *ok = r == Z_STREAM_END;
  inflateEnd(&z);
  return out;
}

// One python server of filters_peer.py on a free port.
struct Peer {
  uint16_t port = free_port();
  std::unique_ptr<Process> proc;
  Peer(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/python3", kPeer};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(std::to_string(port));
    proc = std::make_unique<Process>(argv, Process::Env{{"PYTHONPATH", std::string(PASTURE_SOURCE_DIR) +
                                                                            "/tests/integration"}});
    EXPECT_TRUE(wait_for_output(*proc, "ready") && wait_for_port(port)) << proc->output();
  }
};

// Paste's side: `filters` sections (the same text pasture gets) in a
// pipeline in front of the app, served by paste.deploy.
struct PasteSide {
  TempDir dir;
  std::unique_ptr<Peer> peer;
  PasteSide(const std::string& pipeline, const std::string& sections) {
    std::string ini = "[pipeline:main]\npipeline = " + pipeline + " inner\n\n" + sections +
                      "\n[app:inner]\npaste.app_factory = filters_peer:make_app\n";
    peer = std::make_unique<Peer>(std::vector<std::string>{"paste", dir.write("paste.ini", ini)});
  }
};

// pasture's side: the same sections in front of a pool of the bare app.
struct PastureSide {
  Peer upstream{{"app"}};
  std::unique_ptr<PastureServer> srv;
  PastureSide(const std::string& pipeline, const std::string& sections, const std::string& server_keys = "") {
    srv = std::make_unique<PastureServer>(server_keys + "\n[pipeline:main]\npipeline = " + pipeline + " pool\n\n" + sections +
                                              "\n[app:pool]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:" +
                                              std::to_string(upstream.port) + "\n",
                                          1);
    EXPECT_TRUE(srv->started()) << srv->output();
  }
};

const char kGzip[] = "[filter:gz]\nuse = egg:Paste#gzip\ncompress_level = 6\n";

TEST(Filters, GzipLikePaste) {
  if (!have_paste()) GTEST_SKIP() << "python3-paste is not installed";
  PasteSide paste("gz", kGzip);
  PastureSide ours("gz", kGzip);
  ASSERT_TRUE(ours.srv->started());
  struct Case {
    const char* method;
    const char* path;
    bool accept;
  };
  for (const Case& c : {Case{"GET", "/text", true}, Case{"GET", "/text", false}, Case{"GET", "/html", true},
                        Case{"GET", "/json404", true}, Case{"GET", "/png", true}, Case{"GET", "/zip", true},
                        Case{"GET", "/encoded", true}, Case{"HEAD", "/text", true}, Case{"GET", "/env", true}}) {
    SCOPED_TRACE(std::string(c.method) + " " + c.path + (c.accept ? " (gzip)" : ""));
    Headers h;
    if (c.accept) h.push_back({"Accept-Encoding", "gzip, deflate"});
    Response a = http_request(paste.peer->port, c.method, c.path, h);
    Response b = http_request(ours.srv->port(), c.method, c.path, h);
    ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
    EXPECT_EQ(a.status, b.status);
    EXPECT_EQ(a.header("Content-Type"), b.header("Content-Type"));
    EXPECT_EQ(a.header("Content-Encoding"), b.header("Content-Encoding"));
    bool zipped = a.header("Content-Encoding") == "gzip";
    if (zipped) {
      // Streamed: no Content-Length, chunked on HTTP/1.1; caches told to vary.
      EXPECT_EQ(b.header("Content-Length"), "");
      EXPECT_TRUE(b.chunked);
      EXPECT_EQ(b.header("Vary"), "Accept-Encoding");
    }
    if (std::string(c.method) == "HEAD") {
      EXPECT_EQ(a.header("Content-Length"), b.header("Content-Length"));
      continue;
    }
    bool ok_a = true, ok_b = true;
    std::string body_a = zipped ? gunzip(a.body, &ok_a) : a.body;
    std::string body_b = zipped ? gunzip(b.body, &ok_b) : b.body;
    EXPECT_TRUE(ok_a && ok_b);
    if (std::string(c.path) != "/env") {
      EXPECT_EQ(body_a, body_b);
    }
    if (zipped && body_b.size() > 4096) {
      EXPECT_LT(b.body.size(), body_b.size() / 4);
    }
  }
  // What nginx adds to Paste's choice: a strong ETag made weak, q=0 refused,
  // Cache-Control: no-transform and tiny bodies left alone.
  Response r = http_get(ours.srv->port(), "/text", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(r.header("ETag"), "W/\"v1\"");
  r = http_get(ours.srv->port(), "/text", {{"Accept-Encoding", "gzip;q=0, br"}});
  EXPECT_EQ(r.header("Content-Encoding"), "");
  EXPECT_EQ(r.header("Vary"), "Accept-Encoding");
  EXPECT_EQ(r.header("ETag"), "\"v1\"");
}

// gzip in front of static files, both Paste's (paste.deploy: egg:Paste#gzip
// in front of egg:Paste#static) and pasture's native pair: the same
// encoding decisions and bodies; a large file streams through deflate
// (no sendfile then) and arrives whole; a range is left alone by pasture
// (Paste gzips the 206 too, which breaks the range: not copied).
TEST(Filters, GzipInFrontOfStaticLikePaste) {
  if (!have_paste()) GTEST_SKIP() << "python3-paste is not installed";
  TempDir dir("pasture-gzstatic");
  std::string root = dir.path() + "/root";
  mkdir(root.c_str(), 0755);
  std::string text, large, png = std::string("\x89PNG", 4) + std::string(5000, '\0');
  for (int i = 0; i < 4000; i++) text += "line " + std::to_string(i) + " of a static text file\n";
  for (int i = 0; large.size() < (3u << 20); i++) large += "row " + std::to_string(i * 7919 % 100003) + " of a large file\n";
  auto put = [&](const std::string& name, const std::string& body) {
    std::ofstream(root + "/" + name, std::ios::binary) << body;
  };
  put("a.txt", text);
  put("large.txt", large);
  put("pic.png", png);
  put("s.css", "body { color: red }\n");
  std::string sections = "[filter:gz]\nuse = egg:Paste#gzip\n\n[app:st]\nuse = egg:Paste#static\ndocument_root = " +
                         root + "\n";
  Peer paste({"paste", dir.write("paste.ini", "[pipeline:main]\npipeline = gz st\n\n" + sections)});
  PastureServer ours("http2 = on\n\n[pipeline:main]\npipeline = gz st\n\n" + sections, 1);
  ASSERT_TRUE(ours.started()) << ours.output();
  Headers gz = {{"Accept-Encoding", "gzip"}};
  for (const char* path : {"/a.txt", "/large.txt", "/pic.png", "/s.css"}) {
    for (bool accept : {true, false}) {
      SCOPED_TRACE(std::string(path) + (accept ? " (gzip)" : ""));
      Response a = http_request(paste.port, "GET", path, accept ? gz : Headers{});
      Response b = http_request(ours.port(), "GET", path, accept ? gz : Headers{});
      ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
      EXPECT_EQ(a.status, 200);
      EXPECT_EQ(b.status, 200);
      EXPECT_EQ(a.header("Content-Encoding"), b.header("Content-Encoding"));
      bool zipped = b.header("Content-Encoding") == "gzip";
      bool ok_a = true, ok_b = true;
      std::string body_a = zipped ? gunzip(a.body, &ok_a) : a.body;
      std::string body_b = zipped ? gunzip(b.body, &ok_b) : b.body;
      EXPECT_TRUE(ok_a && ok_b);
      EXPECT_EQ(body_a.size(), body_b.size());
      EXPECT_TRUE(body_a == body_b);
      if (zipped) {
        EXPECT_EQ(b.header("Vary"), "Accept-Encoding");
        EXPECT_EQ(b.header("Accept-Ranges"), "");  // the encoded body has no byte ranges to offer
        EXPECT_EQ(b.header("ETag").rfind("W/", 0), 0u) << b.header("ETag");
        if (body_b.size() > 4096) {
          EXPECT_LT(b.body.size(), body_b.size() / 3);
        }
      }
    }
  }
  // HEAD: Paste's gzip steps aside, so does pasture's (the file's own length).
  Response h = http_request(ours.port(), "HEAD", "/a.txt", gz);
  EXPECT_EQ(h.header("Content-Encoding"), "");
  EXPECT_EQ(h.header("Content-Length"), std::to_string(text.size()));
  // A range: the bytes asked for, not compressed.
  Headers range = {{"Accept-Encoding", "gzip"}, {"Range", "bytes=100-199"}};
  Response r = http_request(ours.port(), "GET", "/large.txt", range);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.header("Content-Encoding"), "");
  EXPECT_EQ(r.body, large.substr(100, 100));
  // HTTP/2 (prior knowledge) takes the same compressed stream.
  std::string out = dir.path() + "/h2.gz";
  std::string cmd = "curl -s --http2-prior-knowledge -H 'Accept-Encoding: gzip' -o " + out +
                    " -w '%{http_version} %{http_code}' http://127.0.0.1:" + std::to_string(ours.port()) + "/large.txt";
  FILE* p = popen(cmd.c_str(), "r");
  char line[64] = {0};
  ASSERT_TRUE(p && fgets(line, sizeof line, p));
  pclose(p);
  EXPECT_STREQ(line, "2 200");
  std::ifstream f(out, std::ios::binary);
  std::string zipped((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  bool ok = false;
  EXPECT_TRUE(gunzip(zipped, &ok) == large);
  EXPECT_TRUE(ok);
}

// A static app behind a prefix filter: the add-slash redirect names the URL
// the app sees (the prefix as SCRIPT_NAME, the translated host and scheme),
// as Paste's construct_url does; a urlmap's mount point itself reaches the
// app as '/' (PrefixMiddleware's `if not url: url = '/'`). Side by side with
// Paste's own pair (found by review: the internal path and host).
TEST(Filters, PrefixInFrontOfStaticRedirectsLikePaste) {
  if (!have_paste()) GTEST_SKIP() << "python3-paste is not installed";
  TempDir dir("pasture-pfxstatic");
  std::string root = dir.path() + "/root";
  mkdir(root.c_str(), 0755);
  mkdir((root + "/sub").c_str(), 0755);
  std::ofstream(root + "/index.html") << "top\n";
  std::ofstream(root + "/sub/index.html") << "sub\n";
  std::string sections = "[composite:main]\nuse = egg:Paste#urlmap\n/pfx = pfxapp\n\n[pipeline:pfxapp]\npipeline = pfx st\n\n"
                         "[filter:pfx]\nuse = egg:PasteDeploy#prefix\nprefix = /james\n\n"
                         "[app:st]\nuse = egg:Paste#static\ndocument_root = " + root + "\n";
  Peer paste({"paste", dir.write("paste.ini", sections)});
  PastureServer ours(sections, 1);
  ASSERT_TRUE(ours.started()) << ours.output();
  struct Case {
    const char* path;
    Headers h;
  };
  for (const Case& c : {Case{"/pfx/sub", {}}, Case{"/pfx/sub", {{"X-Forwarded-Host", "front.example"}}},
                        Case{"/pfx/james/sub", {{"X-Forwarded-Proto", "https"}}},
                        Case{"/pfx/sub?x=1", {{"X-Forwarded-Server", "srv.example"}, {"X-Forwarded-Scheme", "https"}}},
                        Case{"/pfx", {}}, Case{"/pfx/", {}}, Case{"/pfx/sub/", {}}}) {
    SCOPED_TRACE(c.path);
    Response a = http_request(paste.port, "GET", c.path, c.h);
    Response b = http_request(ours.port(), "GET", c.path, c.h);
    ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
    EXPECT_EQ(a.status, b.status);
    // Both name their own port when no forwarded host replaces it.
    std::string la = a.header("Location"), lb = b.header("Location");
    size_t pa = la.find(":" + std::to_string(paste.port)), pb = lb.find(":" + std::to_string(ours.port()));
    if (pa != std::string::npos) la.replace(pa, 1 + std::to_string(paste.port).size(), ":PORT");
    if (pb != std::string::npos) lb.replace(pb, 1 + std::to_string(ours.port()).size(), ":PORT");
    EXPECT_EQ(la, lb);
    if (a.status == 200) {
      EXPECT_EQ(a.body, b.body);
    }
  }
}

// An upstream's first chunk reaches the client compressed while the
// upstream still waits 2 s before its second: every read is flushed
// (Z_SYNC_FLUSH), nothing waits for the whole body.
TEST(Filters, GzipStreamsSlowUpstream) {
  PastureSide ours("gz", kGzip);
  ASSERT_TRUE(ours.srv->started());
  Fd fd = connect_loopback(ours.srv->port());
  ASSERT_TRUE(fd.valid());
  // Blocking reads, each bounded by 5 s.
  fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  timeval tv{5, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req = "GET /slow HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n";  // HTTP/1.0: the body ends at EOF, unframed
  ASSERT_EQ(send(fd.get(), req.data(), req.size(), 0), (ssize_t)req.size());
  auto start = std::chrono::steady_clock::now();
  std::string got, plain;
  z_stream z{};
  inflateInit2(&z, 31);
  size_t fed = 0;
  bool head_done = false;
  while (plain.find("first chunk") == std::string::npos &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
    char buf[4096];
    ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, (size_t)n);
    if (!head_done) {
      size_t e = got.find("\r\n\r\n");
      if (e == std::string::npos) continue;
      EXPECT_NE(got.substr(0, e).find("Content-Encoding: gzip"), std::string::npos) << got;
      head_done = true;
      fed = e + 4;
    }
    z.next_in = reinterpret_cast<Bytef*>(got.data() + fed);
    z.avail_in = (uInt)(got.size() - fed);
    fed = got.size();
    char out[4096];
    z.next_out = reinterpret_cast<Bytef*>(out);
    z.avail_out = sizeof out;
    inflate(&z, Z_SYNC_FLUSH);
    plain.append(out, sizeof out - z.avail_out);
  }
  inflateEnd(&z);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(plain.find("first chunk of a slow answer"), std::string::npos) << got;
  EXPECT_LT(took, std::chrono::milliseconds(1500));
}

const char kPrefix[] =
    "[filter:pfx]\nuse = egg:PasteDeploy#prefix\nprefix = /james/\n"
    "[filter:pfx2]\nuse = egg:PasteDeploy#prefix\nprefix = /james\nforce_port = 8443\nscheme = https\n"
    "translate_forwarded_server = false\n";

// In front of a Python app pasture calls in-process: its environ is what
// PrefixMiddleware makes of it.
TEST(Filters, PrefixEnvironLikePaste) {
  if (!have_paste()) GTEST_SKIP() << "python3-paste is not installed";
  for (const char* which : {"pfx", "pfx2"}) {
    SCOPED_TRACE(which);
    PasteSide paste(which, kPrefix);
    // pasture's embedded interpreter imports the same app module.
    setenv("PYTHONPATH", (std::string(PASTURE_SOURCE_DIR) + "/tests/integration").c_str(), 1);
    PastureServer ours(std::string("[pipeline:main]\npipeline = ") + which + " inner\n\n" + kPrefix +
                           "\n[app:inner]\npaste.app_factory = filters_peer:make_app\n",
                       1);
    ASSERT_TRUE(ours.started()) << ours.output();
    EXPECT_NE(run_pasture("check " + ours.path()).second.find("run natively"), std::string::npos);
    Headers fwd = {{"Host", "inside:8080"},          {"X-Forwarded-Server", "pub.example, other"},
                   {"X-Forwarded-Host", "www.example"}, {"X-Forwarded-For", "203.0.113.9, 10.0.0.1"},
                   {"X-Forwarded-Proto", "https"}};
    for (const char* path : {"/james/env?q=1", "/james", "/jamesx/env", "/other/env", "/james/a%20b/env"}) {
      SCOPED_TRACE(path);
      for (const Headers& h : {Headers{{"Host", "inside:8080"}}, fwd}) {
        Response a = http_request(paste.peer->port, "GET", path, h);
        Response b = http_request(ours.port(), "GET", path, h);
        ASSERT_TRUE(a.ok() && b.ok());
        EXPECT_EQ(a.status, b.status);
        // SERVER_NAME / SERVER_PORT / REMOTE_ADDR of the listener itself
        // differ between wsgiref and pasture unless the filter set them.
        auto pick = [&](const std::string& body) {
          std::string out;
          std::istringstream in(body);
          std::string line;
          bool translated = h.size() > 1 && std::string(which) == "pfx";
          while (std::getline(in, line)) {
            bool own = line.rfind("SERVER_NAME=", 0) == 0 || line.rfind("REMOTE_ADDR=", 0) == 0;
            if (line.rfind("SERVER_PORT=", 0) == 0 && std::string(which) != "pfx2") continue;
            if (own && !translated) continue;
            out += line + "\n";
          }
          return out;
        };
        EXPECT_EQ(pick(a.body), pick(b.body));
      }
    }
  }
}

// In front of a pool: the upstream gets PATH_INFO, and the prefix in X-Forwarded-Prefix.
TEST(Filters, PrefixInFrontOfPool) {
  FakeUpstream up("u");
  PastureServer ours("[pipeline:main]\npipeline = pfx pool\n\n[filter:pfx]\nuse = egg:PasteDeploy#prefix\n"
                     "prefix = /james\n\n[app:pool]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:" +
                         std::to_string(up.port()) + "\n",
                     1);
  ASSERT_TRUE(ours.started()) << ours.output();
  Response r = http_get(ours.port(), "/james/a/b?x=1");
  ASSERT_EQ(r.status, 200) << r.error;
  ASSERT_TRUE(up.wait_for_requests(1));
  RecordedRequest req = up.requests().back();
  EXPECT_EQ(req.target, "/a/b?x=1");
  EXPECT_EQ(req.header("X-Forwarded-Prefix"), "/james");
  r = http_get(ours.port(), "/james");
  ASSERT_TRUE(up.wait_for_requests(2));
  EXPECT_EQ(up.requests().back().target, "/");
}

const char kLog[] = "[filter:tl]\nuse = egg:Paste#translogger\n";

std::vector<std::string> log_lines(const std::string& out) {
  static const std::regex line(R"re(^(\S+ - - )\[(\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\]( ".*)$)re");
  std::vector<std::string> lines;
  std::istringstream in(out);
  std::string l;
  std::smatch m;
  while (std::getline(in, l))
    if (std::regex_match(l, m, line)) lines.push_back(m[1].str() + "[TIME]" + m[3].str());
  return lines;
}

TEST(Filters, TransLoggerLikePaste) {
  if (!have_paste()) GTEST_SKIP() << "python3-paste is not installed";
  PasteSide paste("tl", kLog);
  PastureSide ours("tl", kLog);
  ASSERT_TRUE(ours.srv->started());
  Headers h = {{"User-Agent", "filters-test/1"}, {"Referer", "http://ref.example/x"}};
  for (const char* path : {"/text", "/html", "/json404", "/a%20b/%C3%A9/text?x=1&y=%20"}) {
    EXPECT_EQ(http_request(paste.peer->port, "GET", path, h).status,
              http_request(ours.srv->port(), "GET", path, h).status);
  }
  EXPECT_EQ(http_request(paste.peer->port, "HEAD", "/text").status,
            http_request(ours.srv->port(), "HEAD", "/text").status);
  std::vector<std::string> a, b;
  ASSERT_TRUE(wait_until([&] {
    a = log_lines(paste.peer->proc->output());
    b = log_lines(ours.srv->output());
    return a.size() >= 5 && b.size() >= 5;
  })) << paste.peer->proc->output() << ours.srv->output();
  EXPECT_EQ(a, b);
}

// translogger names the protocol the client spoke, as the access log does
// (found by review: HTTP/1.1 for an HTTP/2 request).
TEST(Filters, TransLoggerSaysHttp2ForAnHttp2Request) {
  PastureSide ours("tl", kLog, "http2 = on\n");
  ASSERT_TRUE(ours.srv->started());
  ASSERT_EQ(system(("curl -s -o /dev/null --http2-prior-knowledge http://127.0.0.1:" + std::to_string(ours.srv->port()) +
                    "/text").c_str()),
            0);
  EXPECT_TRUE(wait_until([&] { return ours.srv->output().find("\"GET /text HTTP/2.0\" 200 ") != std::string::npos; }))
      << ours.srv->output();
}

// The status app behind a prefix filter reads the filter's PATH_INFO, as
// the static app does (found by review: its views were 404).
TEST(Filters, StatusBehindAPrefixFilter) {
  PastureServer srv("[composite:main]\nuse = egg:Paste#urlmap\n/pst = pst\n\n[pipeline:pst]\npipeline = pfx stat\n\n"
                    "[filter:pfx]\nuse = egg:PasteDeploy#prefix\nprefix = /james\n\n[app:stat]\nuse = egg:pasture#status\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r = http_get(srv.port(), "/pst/james/ready");
  EXPECT_EQ(r.status, 200) << r.body;
  r = http_get(srv.port(), "/pst/james/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("pasture_"), std::string::npos);
  r = http_get(srv.port(), "/pst/james/");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("/pst/james/"), std::string::npos);  // its links: the path the client used
}

}  // namespace
}  // namespace pasture::test
