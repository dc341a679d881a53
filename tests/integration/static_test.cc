// Static files (worker/exchange_static.cc, worker/static_*.cc): egg:Paste#static
// side by side with Paste's own StaticURLParser (Debian's python3-paste under
// wsgiref, on the same document root, mounted by paste.urlmap as pasture
// mounts it), egg:pasture#static's own keys, the traversal corpus
// (tests/data/static_traversal.txt), and the HTTP/2 and TLS paths.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "tests/integration/pasture_server.h"
#include "tests/integration/raw_http.h"
#include "tests/support/tls_certs.h"

namespace pasture::test {
namespace {

constexpr const char* kSecret = "TOPSECRET-OUTSIDE";
constexpr const char* kDotSecret = "TOPSECRET-DOTFILE";

// A document root with the cases the tests need, and files outside it.
struct Tree {
  TempDir dir{"pasture-static"};
  std::string root = dir.path() + "/root";
  std::string big;    // 10,000 bytes (above the cache's small-file size)
  std::string large;  // 3 MiB: sendfile, several turns

  explicit Tree() {
    mkdir(root.c_str(), 0755);
    mkdir((root + "/sub").c_str(), 0755);
    mkdir((root + "/empty").c_str(), 0755);
    mkdir((root + "/.git").c_str(), 0755);
    mkdir((dir.path() + "/outside").c_str(), 0755);
    put("secret.txt", kSecret, dir.path());
    put("outside/secret.txt", kSecret, dir.path());
    put("a.txt", "hello\n");
    put("index.html", "<p>index</p>\n");
    put("sub/index.html", "sub\n");
    put("s.css", "body{}\n");
    put("x.js", "js\n");
    put("a.txt.gz", "gz\n");
    put("style.css", "body { color: red }\n");
    put("style.css.gz", "GZIPPED-CSS");
    put(".hidden-secret", kDotSecret);
    put(".git/config", kDotSecret);
    for (int i = 0; i < 10000; i++) big += (char)('a' + (i * 7 + i / 13) % 26);
    put("big.bin", big);
    large.resize(3 << 20);
    for (size_t i = 0; i < large.size(); i++) large[i] = (char)((i * 2654435761u) >> 13);
    put("large.bin", large);
    link("../secret.txt", "out");
    link("..", "outdir");
    link(dir.path() + "/secret.txt", "abs");
    link("/etc", "absdir");
    link("..", "sub/up");
    link("loop", "loop");
    link("sub/chain2", "chain");
    link("../../secret.txt", "sub/chain2");
    link("a.txt", "inlink");
    link("/proc/self/root", "selfroot");
    mkfifo((root + "/fifo").c_str(), 0644);
    mkfifo((root + "/sub/fifo").c_str(), 0644);
  }
  void put(const std::string& name, const std::string& body, const std::string& base = "") {
    std::ofstream((base.empty() ? root : base) + "/" + name, std::ios::binary) << body;
  }
  void link(const std::string& target, const std::string& name) {
    EXPECT_EQ(symlink(target.c_str(), (root + "/" + name).c_str()), 0) << name;
  }
};

const std::string kPasteServer = R"(
import sys
from wsgiref.simple_server import make_server, WSGIRequestHandler
from paste.urlmap import URLMap
from paste.urlparser import make_static
class Quiet(WSGIRequestHandler):
    def log_message(self, *a): pass
m = URLMap()
m['/static'] = make_static({}, sys.argv[1], cache_max_age=sys.argv[3] or None)
srv = make_server('127.0.0.1', int(sys.argv[2]), m, handler_class=Quiet)
print('ready', flush=True)
srv.serve_forever()
)";

// Paste's StaticURLParser on `root` at /static, under wsgiref.
struct PasteStatic {
  uint16_t port = free_port();
  std::unique_ptr<Process> proc;
  bool up = false;
  PasteStatic(const std::string& root, const std::string& max_age = "") {
    proc = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/python3", "-c", kPasteServer, root, std::to_string(port), max_age});
    up = wait_for_output(*proc, "ready", Millis(15000)) && wait_for_port(port);
  }
};

Response get(uint16_t port, const std::string& method, const std::string& target, Headers h = {}) {
  h.emplace_back("Host", "example.test");
  HttpConn c(port);
  return c.request(method, target, h);
}

std::string ini_for(const std::string& app, const std::string& extra = "") {
  return "[composite:main]\nuse = egg:Paste#urlmap\n/static = files\n/hello = hello\n\n[app:files]\nuse = " + app +
         "\n" + extra + "\n[app:hello]\nuse = egg:pasture#echo\n";
}

time_t date_of(const std::string& s) {
  struct tm tm = {};
  if (!strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S", &tm)) return -1;
  return timegm(&tm);
}

TEST(Static, PasteStaticAnswersAsPaste) {
  Tree t;
  PastureServer srv(ini_for("egg:Paste#static", "document_root = " + t.root + "\ncache_max_age = 600\n"), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  PasteStatic paste(t.root, "600");
  ASSERT_TRUE(paste.up) << paste.proc->output();
  std::string etag = get(paste.port, "GET", "/static/a.txt").header("ETag");
  std::string lm = get(paste.port, "GET", "/static/a.txt").header("Last-Modified");
  struct Case {
    std::string method, target;
    Headers headers;
  };
  const std::vector<Case> cases = {
      {"GET", "/static", {}},
      {"GET", "/static?x=1", {}},
      {"GET", "/static/", {}},
      {"GET", "/static/a.txt", {}},
      {"GET", "/static/%61.txt", {}},
      {"GET", "/static/a.txt/", {}},
      {"GET", "/static/a.txt/x", {}},
      {"GET", "/static/sub", {}},
      {"GET", "/static/sub?q=2", {}},
      {"GET", "/static/sub/", {}},
      {"GET", "/static/empty/", {}},
      {"GET", "/static/nope", {}},
      {"GET", "/static/a.txt.gz", {}},
      {"GET", "/static/s.css", {}},
      {"GET", "/static/x.js", {}},
      {"GET", "/static/big.bin", {}},
      {"GET", "/static/large.bin", {}},
      {"GET", "/static/.hidden-secret", {}},
      {"GET", "/static/inlink", {}},
      {"HEAD", "/static/a.txt", {}},
      {"HEAD", "/static/large.bin", {}},
      {"POST", "/static/a.txt", {}},
      {"PUT", "/static/big.bin", {}},
      {"GET", "/static/big.bin", {{"Range", "bytes=5-9"}}},
      {"GET", "/static/big.bin", {{"Range", "bytes=9995-"}}},
      {"GET", "/static/large.bin", {{"Range", "bytes=1000000-2000000"}}},
      {"GET", "/static/big.bin", {{"Range", "bytes=20000-"}}},
      {"GET", "/static/big.bin", {{"Range", "bytes=5-2"}}},
      {"GET", "/static/big.bin", {{"Range", "foo"}}},
      {"GET", "/static/a.txt", {{"If-None-Match", etag}}},
      {"GET", "/static/a.txt", {{"If-None-Match", "*"}}},
      {"GET", "/static/a.txt", {{"If-None-Match", "\"other\""}}},
      {"GET", "/static/a.txt", {{"If-Modified-Since", lm}}},
      {"GET", "/static/a.txt", {{"If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method + " " + c.target + (c.headers.empty() ? "" : " " + c.headers[0].first + ": " + c.headers[0].second));
    Response p = get(paste.port, c.method, c.target, c.headers);
    Response m = get(srv.port(), c.method, c.target, c.headers);
    ASSERT_TRUE(p.ok()) << p.error;
    ASSERT_TRUE(m.ok()) << m.error;
    EXPECT_EQ(m.status, p.status);
    EXPECT_EQ(m.header("Location"), p.header("Location"));
    if (p.status >= 300) continue;  // error bodies are each server's own text
    EXPECT_EQ(m.header("Content-Type"), p.header("Content-Type"));
    EXPECT_EQ(m.header("Content-Encoding"), p.header("Content-Encoding"));
    EXPECT_EQ(m.header("Content-Length"), p.header("Content-Length"));
    EXPECT_EQ(m.header("ETag"), p.header("ETag"));  // Paste's own '"mtime-size"', to the digit
    EXPECT_EQ(m.header("Cache-Control"), p.header("Cache-Control"));
    EXPECT_EQ(m.header("Accept-Ranges"), p.header("Accept-Ranges"));
    if (p.status == 206) {
      EXPECT_EQ(m.header("Content-Range"), p.header("Content-Range"));
    }
    // Paste writes "-0000" for GMT: the same instant.
    EXPECT_EQ(date_of(m.header("Last-Modified")), date_of(p.header("Last-Modified")));
    EXPECT_NEAR((double)date_of(m.header("Expires")), (double)date_of(p.header("Expires")), 5.0);
    EXPECT_TRUE(m.body == p.body) << "bodies differ: " << m.body.size() << " vs " << p.body.size();
  }
  // Where pasture answers otherwise, on purpose (README, Static files).
  // Paste's Range parser serves the whole file for bytes=0-0 and 0-5 for bytes=-5.
  Response r = get(srv.port(), "GET", "/static/big.bin", {{"Range", "bytes=0-0"}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, t.big.substr(0, 1));
  EXPECT_EQ(get(paste.port, "GET", "/static/big.bin", {{"Range", "bytes=0-0"}}).body.size(), t.big.size());
  r = get(srv.port(), "GET", "/static/big.bin", {{"Range", "bytes=-5"}});
  EXPECT_EQ(r.header("Content-Range"), "bytes 9995-9999/10000");
  EXPECT_EQ(r.body, t.big.substr(9995));
  // Paste puts Content-Range on a 200 too; pasture only on 206 and 416.
  EXPECT_NE(get(paste.port, "GET", "/static/a.txt").header("Content-Range"), "");
  EXPECT_EQ(get(srv.port(), "GET", "/static/a.txt").header("Content-Range"), "");
  // A date in the future: Paste says 400, pasture ignores it (RFC 9110 13.1.3).
  Headers future = {{"If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT"}};
  EXPECT_EQ(get(paste.port, "GET", "/static/a.txt", future).status, 400);
  EXPECT_EQ(get(srv.port(), "GET", "/static/a.txt", future).status, 200);
  // A symbolic link out of the root: Paste follows it, pasture does not.
  EXPECT_EQ(get(paste.port, "GET", "/static/out").body, kSecret);
  EXPECT_EQ(get(srv.port(), "GET", "/static/out").status, 404);
}

// autoindex = on (egg:pasture#static): a directory URL without an index
// file lists the directory as nginx's autoindex does: directories first,
// names escaped in the text and percent-encoded in the links, dotfiles left
// out unless served; a missing directory is a 404 (or the fallback), other
// methods 405; off (the default) keeps the 404.
TEST(Static, AutoindexListsADirectoryLikeNginx) {
  Tree t;
  mkdir((t.root + "/list").c_str(), 0755);
  mkdir((t.root + "/list/zdir").c_str(), 0755);
  t.put("list/b.txt", "12345");
  t.put("list/a <&> b.txt", "x");
  t.put("list/q?#%.txt", "");
  t.put("list/.secret", "x");
  t.put("list/" + std::string(60, 'n') + ".txt", "x");
  PastureServer srv(ini_for("egg:pasture#static", "document_root = " + t.root + "\nautoindex = on\nindex = index.html\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r = get(srv.port(), "GET", "/static/list/");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("Content-Type"), "text/html");
  EXPECT_EQ(r.header("Content-Length"), std::to_string(r.body.size()));
  EXPECT_NE(r.body.find("<title>Index of /static/list/</title>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<a href=\"../\">../</a>"), std::string::npos);
  size_t zdir = r.body.find("<a href=\"zdir/\">zdir/</a>");
  size_t a = r.body.find("<a href=\"a%20%3C%26%3E%20b.txt\">a &lt;&amp;&gt; b.txt</a>");
  size_t b = r.body.find("<a href=\"b.txt\">b.txt</a>");
  ASSERT_NE(zdir, std::string::npos) << r.body;
  ASSERT_NE(a, std::string::npos) << r.body;
  ASSERT_NE(b, std::string::npos) << r.body;
  EXPECT_LT(zdir, a);  // directories first, then by name
  EXPECT_LT(a, b);
  EXPECT_NE(r.body.find("<a href=\"q%3F%23%25.txt\">q?#%.txt</a>"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(".secret"), std::string::npos);  // dotfiles are 404 here, so not listed
  EXPECT_NE(r.body.find(std::string(47, 'n') + "..&gt;</a>"), std::string::npos) << r.body;  // nginx's cut
  // The size column: b.txt's 5 bytes, right-aligned; a directory's "-".
  std::string line = r.body.substr(b, r.body.find("\r\n", b) - b);
  EXPECT_EQ(line.substr(line.size() - 2), " 5") << line;
  // Every link the page gives resolves.
  EXPECT_EQ(get(srv.port(), "GET", "/static/list/a%20%3C%26%3E%20b.txt").body, "x");
  EXPECT_EQ(get(srv.port(), "GET", "/static/list/q%3F%23%25.txt").status, 200);
  EXPECT_EQ(get(srv.port(), "GET", "/static/list/zdir/").status, 200);
  // The root has index.html: the index wins over the listing.
  EXPECT_EQ(get(srv.port(), "GET", "/static/").body, "<p>index</p>\n");
  EXPECT_EQ(get(srv.port(), "GET", "/static/nosuch/").status, 404);
  EXPECT_EQ(get(srv.port(), "DELETE", "/static/list/").status, 405);
  Response head = get(srv.port(), "HEAD", "/static/list/");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Length"), std::to_string(r.body.size()));
  // A link out of the root is not followed for a listing either.
  EXPECT_EQ(get(srv.port(), "GET", "/static/absdir/").status, 404);

  PastureServer off(ini_for("egg:pasture#static", "document_root = " + t.root + "\n"), 1);
  ASSERT_TRUE(off.started()) << off.output();
  EXPECT_EQ(get(off.port(), "GET", "/static/list/").status, 404);
}

// A listing is bounded (found by review: a huge directory read whole per
// request stalled the loop): at most 2,000 entries are read, a line says the
// listing is cut; the page is made once a second per directory (a file
// added shows after that second).
TEST(Static, AutoindexIsBoundedAndMadeOnceASecond) {
  Tree t;
  mkdir((t.root + "/many").c_str(), 0755);
  for (int i = 0; i < 2500; i++) t.put("many/f" + std::to_string(i), "");
  mkdir((t.root + "/few").c_str(), 0755);
  t.put("few/one.txt", "1");
  PastureServer srv(ini_for("egg:pasture#static", "document_root = " + t.root + "\nautoindex = on\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r = get(srv.port(), "GET", "/static/many/");
  ASSERT_EQ(r.status, 200);
  size_t links = 0;
  for (size_t at = r.body.find("<a href=\"f"); at != std::string::npos; at = r.body.find("<a href=\"f", at + 1)) links++;
  EXPECT_EQ(links, 2000u);
  EXPECT_NE(r.body.find("(the listing is cut: at most 2000 entries"), std::string::npos);
  auto t0 = std::chrono::steady_clock::now();
  r = get(srv.port(), "GET", "/static/few/");
  ASSERT_NE(r.body.find("one.txt"), std::string::npos);
  t.put("few/two.txt", "2");
  r = get(srv.port(), "GET", "/static/few/");
  if (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(900)) {
    EXPECT_EQ(r.body.find("two.txt"), std::string::npos);  // the same page, within its second
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_NE(get(srv.port(), "GET", "/static/few/").body.find("two.txt"), std::string::npos);
}

// Listings not in the cache take at most ~200 ms of a worker's loop a
// second; past that they are 503 with Retry-After (found by review: 17+
// large directories asked in turn froze the loop). Sequential requests on
// one connection: if they took longer than the budget allows, some must
// have been refused.
TEST(Static, AutoindexListingsHaveALoopBudget) {
  Tree t;
  for (int d = 0; d < 30; d++) {
    std::string dir = "d" + std::to_string(d);
    mkdir((t.root + "/" + dir).c_str(), 0755);
    for (int i = 0; i < 2000; i++) t.put(dir + "/" + std::string(40, 'f') + std::to_string(i), "");
  }
  PastureServer srv(ini_for("egg:pasture#static", "document_root = " + t.root + "\nautoindex = on\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  int ok = 0, busy = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int d = 0; d < 30; d++) {
    Response r = c.request("GET", "/static/d" + std::to_string(d) + "/");
    if (r.status == 200) ok++;
    if (r.status == 503) {
      busy++;
      EXPECT_EQ(r.header("Retry-After"), "1");
    }
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(ok + busy, 30);
  EXPECT_GT(ok, 0);
  if (busy == 0) {
    EXPECT_LT(ms, 250.0) << "30 listings took " << ms << " ms and none was refused";
  }
  // A listing in the cache (made within the second) is served whatever the budget.
  Response last = c.request("GET", "/static/d29/");
  if (last.status == 200 && std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(900)) {
    EXPECT_EQ(c.request("GET", "/static/d29/").status, 200);
  }
  std::cout << "listings: " << ok << " answered, " << busy << " refused in " << ms << " ms\n";
}

// A sendfile body goes out corked with its head (TCP_CORK, nginx's
// tcp_nopush); the cork is released at the body's end, so the last partial
// segment does not wait for the kernel's 200 ms cork timer: ten 3 MiB
// answers in a row on one keep-alive connection take well under 10 x 200 ms.
TEST(Static, CorkedSendfileBodiesEndWithoutDelay) {
  Tree t;
  PastureServer srv(ini_for("egg:pasture#static", "document_root = " + t.root + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  ASSERT_EQ(c.request("GET", "/static/large.bin").status, 200);  // warm: the open-file cache
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; i++) {
    Response r = c.request("GET", "/static/large.bin");
    ASSERT_EQ(r.status, 200);
    ASSERT_TRUE(r.body == t.large);
    // A small answer right behind a large one on the same connection.
    r = c.request("GET", "/static/a.txt");
    ASSERT_EQ(r.body, "hello\n");
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 1200.0);
}

// A client that asks for the close is closed at once with its answer (no
// lingering close): a corked sendfile body of several turns still arrives
// whole and ends in a FIN, not a reset that would drop its tail, and without
// the kernel's 200 ms cork timer. The client reads late, so the last turns
// and the close happen while the socket is full.
TEST(Static, CorkedSendfileBodyEndsWholeWhenTheClientAskedForTheClose) {
  Tree t;
  PastureServer srv(ini_for("egg:pasture#static", "document_root = " + t.root + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  ASSERT_EQ(get(srv.port(), "GET", "/static/large.bin").status, 200);  // warm: the open-file cache
  for (const char* version : {"HTTP/1.1\r\nHost: x\r\nConnection: close", "HTTP/1.0"}) {
    SCOPED_TRACE(version);
    Fd fd = connect_loopback(srv.port());
    ASSERT_EQ(send_all(fd.get(), std::string("GET /static/large.bin ") + version + "\r\n\r\n"), IoResult::kOk);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto t0 = std::chrono::steady_clock::now();
    std::string got;
    EXPECT_EQ(recv_to_fin(fd.get(), got, std::chrono::milliseconds(3000)), IoResult::kClosed)
        << "not an orderly close after " << got.size() << " bytes";
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    size_t p = got.find("\r\n\r\n");
    ASSERT_NE(p, std::string::npos);
    EXPECT_EQ(got.compare(9, 3, "200"), 0) << got.substr(0, p);
    EXPECT_TRUE(got.compare(p + 4, std::string::npos, t.large) == 0) << got.size() - p - 4 << " body bytes";
    EXPECT_LT(ms, 1000.0);
  }
}

// If-Match and If-Unmodified-Since (egg:pasture#static, as nginx): 412
// when the file is not the one the client holds; strong comparison, so a
// weak tag never matches. egg:Paste#static ignores both, as Paste does.
TEST(Static, IfMatchAndIfUnmodifiedSince) {
  Tree t;
  PastureServer srv(ini_for("egg:pasture#static", "document_root = " + t.root + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response h = get(srv.port(), "HEAD", "/static/big.bin");
  std::string etag = h.header("ETag"), lm = h.header("Last-Modified");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(get(srv.port(), "GET", "/static/big.bin", {{"If-Match", etag}}).status, 200);
  EXPECT_EQ(get(srv.port(), "GET", "/static/big.bin", {{"If-Match", "\"x\", " + etag}}).status, 200);
  EXPECT_EQ(get(srv.port(), "GET", "/static/big.bin", {{"If-Match", "*"}}).status, 200);
  Response r = get(srv.port(), "GET", "/static/big.bin", {{"If-Match", "\"other\""}});
  EXPECT_EQ(r.status, 412);
  EXPECT_EQ(r.header("ETag"), etag);
  EXPECT_EQ(get(srv.port(), "GET", "/static/big.bin", {{"If-Match", "W/" + etag}}).status, 412);
  EXPECT_EQ(get(srv.port(), "GET", "/static/big.bin", {{"If-Unmodified-Since", lm}}).status, 200);
  EXPECT_EQ(get(srv.port(), "GET", "/static/big.bin", {{"If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"}}).status,
            412);
  // If-Match decides when both are there (RFC 9110 13.2.2).
  EXPECT_EQ(get(srv.port(), "GET", "/static/big.bin",
                {{"If-Match", etag}, {"If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"}})
                .status,
            200);
  PastureServer paste(ini_for("egg:Paste#static", "document_root = " + t.root + "\n"), 1);
  ASSERT_TRUE(paste.started()) << paste.output();
  EXPECT_EQ(get(paste.port(), "GET", "/static/big.bin", {{"If-Match", "\"other\""}}).status, 200);
}

// The multipart boundary is new for every response (review 18 F2): a file
// that holds an earlier answer's boundary, or the old constant one, cannot
// make a ranged answer carry parts of its choosing.
TEST(Static, MultipartBoundaryIsNewForEachAnswer) {
  Tree t;
  PastureServer srv(ini_for("egg:pasture#static", "document_root = " + t.root + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto boundary = [&](const Response& r) {
    std::string ct = r.header("Content-Type");
    EXPECT_EQ(ct.rfind("multipart/byteranges; boundary=", 0), 0u) << ct;
    return ct.substr(ct.find('=') + 1);
  };
  Response a = get(srv.port(), "GET", "/static/big.bin", {{"Range", "bytes=0-1,5-6"}});
  Response b = get(srv.port(), "GET", "/static/big.bin", {{"Range", "bytes=0-1,5-6"}});
  ASSERT_EQ(a.status, 206);
  ASSERT_EQ(b.status, 206);
  std::string ba = boundary(a), bb = boundary(b);
  EXPECT_GE(ba.size(), 20u);
  EXPECT_NE(ba, bb);
  EXPECT_NE(ba, "00000000000000000pasture");
  // An upload that carries the first answer's boundary: the next answer's
  // body holds it only as the file's own bytes; its own delimiter differs.
  std::string forged = "\r\n--" + ba + "\r\nContent-Type: text/html\r\nContent-Range: bytes 0-20/40\r\n\r\n<script>x</script>";
  t.put("upload.txt", forged + std::string(100, '.'));
  Response r = get(srv.port(), "GET", "/static/upload.txt", {{"Range", "bytes=0-139,-5"}});
  ASSERT_EQ(r.status, 206);
  std::string br = boundary(r);
  EXPECT_NE(br, ba);
  size_t delimiters = 0;
  for (size_t at = r.body.find("\r\n--" + br); at != std::string::npos; at = r.body.find("\r\n--" + br, at + 1)) delimiters++;
  EXPECT_EQ(delimiters, 3u);  // two parts and the close
}

TEST(Static, RangesConditionalsAndMultipart) {
  Tree t;
  PastureServer srv(ini_for("egg:pasture#static", "document_root = " + t.root + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r = get(srv.port(), "GET", "/static/big.bin", {{"Range", "bytes=0-1,9998-"}});
  ASSERT_EQ(r.status, 206);
  std::string ct = r.header("Content-Type");
  ASSERT_EQ(ct.rfind("multipart/byteranges; boundary=", 0), 0u) << ct;
  std::string b = ct.substr(ct.find('=') + 1);
  EXPECT_EQ(r.body, "\r\n--" + b + "\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-1/10000\r\n\r\n" +
                        t.big.substr(0, 2) + "\r\n--" + b +
                        "\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 9998-9999/10000\r\n\r\n" +
                        t.big.substr(9998) + "\r\n--" + b + "--\r\n");
  EXPECT_EQ(r.header("Content-Length"), std::to_string(r.body.size()));
  r = get(srv.port(), "GET", "/static/big.bin", {{"Range", "bytes=20000-30000"}});
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.header("Content-Range"), "bytes */10000");
  // If-Range: the current ETag honours the range, an old one gets the whole file.
  std::string etag = get(srv.port(), "HEAD", "/static/big.bin").header("ETag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(etag.front(), '"');
  r = get(srv.port(), "GET", "/static/big.bin", {{"Range", "bytes=10-19"}, {"If-Range", etag}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, t.big.substr(10, 10));
  r = get(srv.port(), "GET", "/static/big.bin", {{"Range", "bytes=10-19"}, {"If-Range", "\"stale\""}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, t.big);
  std::string lm = get(srv.port(), "HEAD", "/static/big.bin").header("Last-Modified");
  EXPECT_EQ(get(srv.port(), "GET", "/static/big.bin", {{"Range", "bytes=10-19"}, {"If-Range", lm}}).status, 206);
  // 304 keeps the validators, carries no body or length.
  r = get(srv.port(), "GET", "/static/big.bin", {{"If-None-Match", "W/" + etag}});
  EXPECT_EQ(r.status, 304);
  EXPECT_EQ(r.header("ETag"), etag);
  EXPECT_EQ(r.header("Content-Length"), "");
  EXPECT_EQ(get(srv.port(), "GET", "/static/big.bin", {{"If-Modified-Since", lm}}).status, 304);
  // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
  EXPECT_EQ(get(srv.port(), "GET", "/static/big.bin", {{"If-None-Match", "\"x\""}, {"If-Modified-Since", lm}}).status,
            200);
  // HEAD: the length, no body; other methods 405 with Allow.
  r = get(srv.port(), "HEAD", "/static/large.bin");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Length"), std::to_string(t.large.size()));
  r = get(srv.port(), "DELETE", "/static/a.txt");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("Allow"), "GET, HEAD");
  // A replaced file is seen within the cache's second.
  get(srv.port(), "GET", "/static/a.txt");
  t.put("a.txt.new", "replaced\n");
  rename((t.root + "/a.txt.new").c_str(), (t.root + "/a.txt").c_str());
  EXPECT_TRUE(wait_until([&] { return get(srv.port(), "GET", "/static/a.txt").body == "replaced\n"; }, Millis(3000)));
}

TEST(Static, PastureKeysIndexDotfilesSymlinksPrecompressedFallback) {
  Tree t;
  PastureServer srv(ini_for("egg:pasture#static", "document_root = " + t.root +
                                                       "\nindex = missing.html index.html\nprecompressed = gzip\n"
                                                       "charset = utf-8\nfallback = hello\ncache_max_age = 0\n"),
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r = get(srv.port(), "GET", "/static/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<p>index</p>\n");
  EXPECT_EQ(r.header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(r.header("Cache-Control"), "max-age=0");
  EXPECT_EQ(r.header("Vary"), "Accept-Encoding");
  // Misses go to the fallback app, unchanged; dotfiles are misses.
  EXPECT_EQ(get(srv.port(), "GET", "/static/nope?x=1").body, "hello GET /static/nope?x=1\n");
  EXPECT_EQ(get(srv.port(), "POST", "/static/nope").body, "hello POST /static/nope\n");
  EXPECT_EQ(get(srv.port(), "GET", "/static/.hidden-secret").body, "hello GET /static/.hidden-secret\n");
  EXPECT_EQ(get(srv.port(), "GET", "/static/a.txt/").body, "hello GET /static/a.txt/\n");
  EXPECT_EQ(get(srv.port(), "GET", "/static/out").body, "hello GET /static/out\n");
  // A link that stays under the root is followed (follow_symlinks = beneath).
  EXPECT_EQ(get(srv.port(), "GET", "/static/inlink").body, "hello\n");
  // x.gz for x when gzip is accepted: Content-Encoding, the type of x.
  r = get(srv.port(), "GET", "/static/style.css", {{"Accept-Encoding", "br, gzip;q=0.5"}});
  EXPECT_EQ(r.body, "GZIPPED-CSS");
  EXPECT_EQ(r.header("Content-Encoding"), "gzip");
  EXPECT_EQ(r.header("Content-Type"), "text/css; charset=utf-8");
  EXPECT_EQ(r.header("Vary"), "Accept-Encoding");
  r = get(srv.port(), "GET", "/static/style.css", {{"Accept-Encoding", "gzip;q=0"}});
  EXPECT_EQ(r.body, "body { color: red }\n");
  EXPECT_EQ(r.header("Content-Encoding"), "");
  // pasture's flavour: foo.gz is application/gzip, not text/plain encoded.
  r = get(srv.port(), "GET", "/static/a.txt.gz");
  EXPECT_EQ(r.header("Content-Type"), "application/gzip");
  EXPECT_EQ(r.header("Content-Encoding"), "");

  PastureServer off(ini_for("egg:pasture#static", "document_root = " + t.root + "\nfollow_symlinks = off\n"), 1);
  ASSERT_TRUE(off.started()) << off.output();
  EXPECT_EQ(get(off.port(), "GET", "/static/inlink").status, 404);
  EXPECT_EQ(get(off.port(), "GET", "/static/a.txt").status, 200);
  PastureServer on(ini_for("egg:pasture#static", "document_root = " + t.root + "\nfollow_symlinks = on\n"), 1);
  ASSERT_TRUE(on.started()) << on.output();
  EXPECT_EQ(get(on.port(), "GET", "/static/out").body, kSecret);  // asked for: anywhere
}

// Behind a prefix filter (egg:PasteDeploy#prefix), a static app serves the
// PATH_INFO the filter made, also through a urlmap behind it (found by
// review: the request path cut at the urlmaps' offset named another file).
TEST(Static, BehindAPrefixFilterServesThePrefixedPathInfo) {
  Tree t;
  mkdir((t.root + "/james").c_str(), 0755);
  t.put("james/a.txt", "WRONG-james\n");
  PastureServer srv("[composite:main]\nuse = egg:Paste#urlmap\n/ps = ps\n/pu = pu\n\n"
                    "[pipeline:ps]\npipeline = pfx files\n\n[pipeline:pu]\npipeline = pfx inner\n\n"
                    "[composite:inner]\nuse = egg:Paste#urlmap\n/x = files\n\n"
                    "[filter:pfx]\nuse = egg:PasteDeploy#prefix\nprefix = /james\n\n"
                    "[app:files]\nuse = egg:pasture#static\ndocument_root = " + t.root + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  EXPECT_EQ(get(srv.port(), "GET", "/ps/james/a.txt").body, "hello\n");
  EXPECT_EQ(get(srv.port(), "GET", "/pu/james/x/a.txt").body, "hello\n");
  EXPECT_EQ(get(srv.port(), "GET", "/pu/x/a.txt").body, "hello\n");  // the prefix not there: as it is
  // The review's escape: a prefix one byte longer than the inner mount, with
  // follow_symlinks = on, made the rest an absolute path openat() took.
  PastureServer esc("[composite:main]\nuse = egg:Paste#urlmap\n/pz = pz\n\n[pipeline:pz]\npipeline = pfx inner\n\n"
                    "[composite:inner]\nuse = egg:Paste#urlmap\n/etc = files\n\n"
                    "[filter:pfx]\nuse = egg:PasteDeploy#prefix\nprefix = /abcd\n\n"
                    "[app:files]\nuse = egg:pasture#static\nfollow_symlinks = on\ndocument_root = " + t.root + "\n",
                    1);
  ASSERT_TRUE(esc.started()) << esc.output();
  Response r = get(esc.port(), "GET", "/pz/abcd/etc/passwd");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(r.body.find("root:"), std::string::npos) << r.body;
}

// An answer that breaks (an upstream cut short) behind a complete pipelined
// one: the complete one still arrives whole (found by review: a reset on
// the break threw away what was still in the socket buffer).
TEST(Static, APipelinedAnswerBeforeABrokenOneArrivesWhole) {
  Tree t;
  RawUpstream up([](RawUpstream::Conn& c) {
    if (!c.read_until("\r\n\r\n")) return;
    c.send("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(1000, 'c'));  // then the close
  });
  PastureServer srv("[composite:main]\nuse = egg:Paste#urlmap\n/static = files\n/p = pool\n\n"
                    "[app:files]\nuse = egg:pasture#static\ndocument_root = " + t.root +
                        "\n\n[app:pool]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:" + std::to_string(up.port()) +
                        "\nretries = 0\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Fd fd = connect_loopback(srv.port());
  int small = 4096;
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  send_all(fd.get(), "GET /static/large.bin HTTP/1.1\r\nHost: a\r\n\r\nGET /p/cut HTTP/1.1\r\nHost: a\r\n\r\n");
  std::this_thread::sleep_for(Millis(1000));  // the cut happens while the first answer waits in the buffers
  std::string got;
  while (recv_some(fd.get(), got, Millis(5000)) == IoResult::kOk) {
  }
  size_t body = got.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos) << got.substr(0, 200);
  ASSERT_GE(got.size(), body + 4 + t.large.size()) << "the first answer was cut at " << got.size() - body - 4;
  EXPECT_EQ(got.compare(body + 4, t.large.size(), t.large), 0);
}

TEST(Static, ConfigFormsCheckAndConvert) {
  Tree t;
  TempDir d("pasture-static-conf");
  std::string ini = d.write("site.ini", "[server:main]\nuse = egg:pasture#main\nport = 8080\n\n" +
                                            ini_for("egg:pasture#static", "document_root = " + t.root +
                                                                              "\nindex = a.html b.html\nprecompressed = gzip\n"
                                                                              "fallback = hello\nfollow_symlinks = off\n"));
  auto [code, out] = run_pasture("check " + ini);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("static [app:files]: files under " + t.root), std::string::npos) << out;
  EXPECT_NE(out.find("no file there: echo [app:hello]"), std::string::npos) << out;
  std::tie(code, out) = run_pasture("convert " + ini);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("use: egg:pasture#static"), std::string::npos) << out;
  EXPECT_NE(out.find("fallback: hello"), std::string::npos) << out;
  std::string yaml = d.write("site.yaml", out);
  std::tie(code, out) = run_pasture("check " + yaml);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("symbolic links: not followed"), std::string::npos) << out;
  // A pasture key under egg:Paste#static: paster serve would refuse it, so does pasture.
  std::string bad = d.write("bad.ini", "[server:main]\nuse = egg:pasture#main\n\n" +
                                           ini_for("egg:Paste#static", "document_root = " + t.root + "\ndotfiles = off\n"));
  std::tie(code, out) = run_pasture("check " + bad);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("bad.ini:12: [app:files] 'dotfiles' is a key of egg:pasture#static"), std::string::npos) << out;
  bad = d.write("bad.ini", "[server:main]\nuse = egg:pasture#main\n\n" +
                               ini_for("egg:pasture#static", "document_root = " + t.root + "/nope\n"));
  std::tie(code, out) = run_pasture("check " + bad);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find(":11: document_root " + t.root + "/nope: no such directory"), std::string::npos) << out;
}

std::vector<std::string> corpus() {
  std::ifstream in(std::string(PASTURE_SOURCE_DIR) + "/tests/data/static_traversal.txt");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] != '#') out.push_back(line);
  return out;
}

// Every corpus target on its own connection: 400, 403 or 404, and no
// marker of a file it must not reach.
void run_corpus(uint16_t port, bool dotfiles_served) {
  std::vector<std::string> targets = corpus();
  ASSERT_GE(targets.size(), 100u);
  for (std::string target : targets) {
    if (dotfiles_served && (target.find("idden") != std::string::npos || target.find(".git") != std::string::npos))
      continue;
    size_t m = target.find("{M}");
    if (m != std::string::npos) target.replace(m, 3, "/static");
    Exchange ex = test::exchange(port, "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    SCOPED_TRACE(target);
    int st = ex.status();
    EXPECT_TRUE(st == 400 || st == 403 || st == 404) << ex.bytes.substr(0, 200);
    EXPECT_EQ(ex.bytes.find(kSecret), std::string::npos);
    EXPECT_EQ(ex.bytes.find("root:x:0:0"), std::string::npos);
    if (!dotfiles_served) {
      EXPECT_EQ(ex.bytes.find(kDotSecret), std::string::npos);
    }
  }
}

TEST(Static, TraversalCorpus) {
  Tree t;
  for (const char* no_openat2 : {"", "1"}) {
    SCOPED_TRACE(std::string("PASTURE_NO_OPENAT2=") + no_openat2);
    setenv("PASTURE_NO_OPENAT2", no_openat2, 1);
    for (const std::string& app : {std::string("egg:pasture#static\n"), std::string("egg:pasture#static\nfollow_symlinks = off\n"),
                                   std::string("egg:Paste#static\n")}) {
      SCOPED_TRACE(app);
      PastureServer srv(ini_for(app, "document_root = " + t.root + "\n"), 1);
      ASSERT_TRUE(srv.started()) << srv.output();
      // The tree serves what it should: the corpus is not 404 by accident.
      EXPECT_EQ(get(srv.port(), "GET", "/static/a.txt").body, "hello\n");
      EXPECT_EQ(get(srv.port(), "GET", "/static/sub/").body, "sub\n");
      run_corpus(srv.port(), app.find("Paste") != std::string::npos);
    }
  }
  unsetenv("PASTURE_NO_OPENAT2");
}

// curl's output and exit code.
std::pair<int, std::string> sh(const std::string& cmd) {
  Process p({"/bin/sh", "-c", cmd});
  std::optional<int> st = p.wait_exit(Millis(30000));
  return {st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1, p.output()};
}

TEST(Static, Http2AndTls) {
  Tree t;
  TempDir pki("pasture-static-tls");
  TestCa ca;
  std::string ca_file = pki.write("ca.pem", ca.cert_pem());
  TestCert c = ca.server({"localhost"});
  std::string pem = pki.write("server.pem", c.cert_pem + c.key_pem);
  chmod(pem.c_str(), 0600);
  uint16_t tls_port = free_port(), h2_port = free_port();
  std::string ini = "[server:main]\nuse = egg:pasture#main\nworkers = 1\nhttp2 = on\nlisten = 127.0.0.1:" +
                    std::to_string(h2_port) + " 127.0.0.1:" + std::to_string(tls_port) + " tls\ntls_cert = " + pem +
                    "\n\n" + ini_for("egg:pasture#static", "document_root = " + t.root + "\n");
  std::string path = pki.write("site.ini", ini);
  Process proc({PASTURE_BINARY, "serve", path});
  ASSERT_TRUE(wait_for_output(proc, "serving on", Millis(20000)) && wait_for_port(h2_port) && wait_for_port(tls_port))
      << proc.output();
  std::string out_file = pki.file("body");
  std::string tls_url = "https://localhost:" + std::to_string(tls_port);
  std::string tls = "curl -sS --max-time 20 --cacert " + ca_file + " --resolve localhost:" + std::to_string(tls_port) +
                    ":127.0.0.1";
  std::string h2c_url = "http://127.0.0.1:" + std::to_string(h2_port);
  std::string h2c = "curl -sS --max-time 20 --http2-prior-knowledge";
  const std::vector<std::pair<std::string, std::string>> ways = {
      {tls + " --http1.1", tls_url}, {tls + " --http2", tls_url}, {h2c, h2c_url}};
  for (const auto& [curl, url] : ways) {
    SCOPED_TRACE(curl);
    auto [code, out] = sh(curl + " -o " + out_file + " -w '%{http_version} %{http_code}' " + url + "/static/large.bin");
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find(" 200"), std::string::npos) << out;
    if (curl.find("http2") != std::string::npos) {
      EXPECT_EQ(out.substr(0, 1), "2") << out;
    }
    std::ifstream in(out_file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_TRUE(ss.str() == t.large) << ss.str().size();
    std::tie(code, out) = sh(curl + " -r 1000000-1000009 -w ' %{http_code}' " + url + "/static/large.bin");
    EXPECT_EQ(out, t.large.substr(1000000, 10) + " 206");
  }
}

}  // namespace
}  // namespace pasture::test
