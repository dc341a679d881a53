// Embedded-mode WSGI (worker/wsgi/): the app runs in each worker's CPython,
// inline on the event loop (threads = 1) or on app threads (threads = 4).
// Every check reads the bytes on the wire; what the wire cannot show
// (close() calls, imports) the app records in a temp dir. The app is
// tests/wsgi/pasture_embedapp, loaded from tests/wsgi/embed_app.ini.
#include <chrono>

#include "tests/integration/embed_site.h"

namespace pasture::test {
namespace {

class WsgiEmbedded : public ::testing::TestWithParam<int> {};

INSTANTIATE_TEST_SUITE_P(Threads, WsgiEmbedded, ::testing::Values(1, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "threads" + std::to_string(p.param); });

// ------------------------------------------------------------ write() --
// write() sends the head without a length; the list the app then returns
// must follow in the same (chunked) body.
TEST_P(WsgiEmbedded, WriteCallableThenAReturnedList) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  int pid = site.worker_pid();
  HttpConn c(site.port(), Millis(3000));
  Response r = c.request("GET", "/write");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.body == "write1 write2 iter1 iter2") << brief(r.body);
  EXPECT_EQ(c.request("GET", "/text").body, "hello\n") << "the connection did not survive";
  EXPECT_EQ(site.worker_pid(), pid) << "the worker died:\n" << site.log();
}

TEST_P(WsgiEmbedded, WriteCallableWithContentLength) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  HttpConn c(site.port(), Millis(3000));
  Response r = c.request("GET", "/write_cl");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "write1 write2 iter1 iter2");
  EXPECT_EQ(r.header("Content-Length"), "25");
  EXPECT_FALSE(r.chunked);
  EXPECT_EQ(c.request("GET", "/text").body, "hello\n");
}

// ----------------------------------------------------------- exc_info --
TEST_P(WsgiEmbedded, ExcInfoBeforeTheHeadReplacesTheResponse) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  HttpConn c(site.port(), Millis(3000));
  Response r = c.request("GET", "/exc_before");
  EXPECT_EQ(r.status, 500) << r.error;
  EXPECT_EQ(r.body, "the app says: it failed\n");
  EXPECT_EQ(r.header("X-First"), "") << "a field of the replaced 200 went out";
  EXPECT_EQ(r.header("Content-Length"), "24");
  EXPECT_EQ(c.request("GET", "/text").body, "hello\n");
}

TEST_P(WsgiEmbedded, ExcInfoAfterTheHeadAbortsTheConnection) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  int pid = site.worker_pid();
  RawConn c(site.port());
  c.send("GET /exc_after" + kGet);
  EXPECT_TRUE(c.closed_within(Millis(3000))) << brief(c.got);
  EXPECT_EQ(c.got.compare(0, 15, "HTTP/1.1 200 OK"), 0) << brief(c.got);
  EXPECT_NE(c.body().find("partial body "), kNpos) << brief(c.got);
  EXPECT_EQ(c.got.find("never sent"), kNpos) << brief(c.got);
  EXPECT_EQ(c.body().find("0\r\n\r\n"), kNpos) << "a complete chunked body hides the failure: " << brief(c.got);
  EXPECT_TRUE(wait_for_output(site.proc(), "ValueError: embedapp: failed after the head", Millis(2000)));
  EXPECT_EQ(site.worker_pid(), pid) << site.log();
}

// ---------------------------------------------------------- exceptions --
TEST_P(WsgiEmbedded, AppExceptionIs500WithTracebackAndTheWorkerServesOn) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  int pid = site.worker_pid();
  HttpConn c(site.port(), Millis(3000));
  Response r = c.request("GET", "/raise");
  EXPECT_EQ(r.status, 500) << r.error;
  EXPECT_EQ(r.body, "500 Internal Server Error\n");
  EXPECT_TRUE(wait_for_output(site.proc(), "RuntimeError: embedapp: /raise was asked to fail", Millis(2000)));
  std::string log = site.log();
  EXPECT_NE(log.find("app error on GET /raise"), kNpos) << log;
  EXPECT_NE(log.find("Traceback (most recent call last)"), kNpos) << log;
  Response next = c.request("GET", "/pid");  // the same connection, the same worker
  EXPECT_EQ(next.status, 200) << next.error;
  EXPECT_EQ(atoi(next.body.c_str()), pid);
}

// ------------------------------------------------------------- close() --
TEST_P(WsgiEmbedded, CloseIsCalledAfterANormalEndAndAfterAnErrorMidIteration) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  Response r = http_get(site.port(), "/close?tag=normal");
  EXPECT_EQ(r.body, "part1 part2") << r.error;
  RawConn c(site.port());
  c.send("GET /close?tag=raise&mode=raise" + kGet);
  EXPECT_TRUE(c.closed_within(Millis(3000))) << brief(c.got);
  EXPECT_NE(c.body().find("part1 "), kNpos) << brief(c.got);
  EXPECT_EQ(c.body().find("0\r\n\r\n"), kNpos) << brief(c.got);
  EXPECT_TRUE(site.wait_record("closed", "raise 2\n")) << site.record("closed");
  // __next__ calls before close(): 3 (two items, the end), 2 (one item, the raise); once each.
  EXPECT_EQ(site.record("closed"), "normal 3\nraise 2\n");
}

TEST_P(WsgiEmbedded, CloseIsCalledWhenTheClientLeaves) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  {
    RawConn c(site.port(), 16384);
    c.send("GET /close?tag=gone&mode=endless" + kGet);
    ASSERT_TRUE(c.read_bytes(300000)) << c.got.size();
  }  // closed with the endless body unread
  // Another that leaves while the app has not answered yet.
  {
    RawConn c(site.port());
    c.send("GET /close?tag=early&ms=200" + kGet);
    std::this_thread::sleep_for(Millis(50));
  }
  EXPECT_TRUE(site.wait_record("closed", "gone ")) << site.log();
  EXPECT_TRUE(site.wait_record("closed", "early ")) << site.log();
  std::this_thread::sleep_for(Millis(100));
  EXPECT_EQ(count_of(site.record("closed"), "gone "), 1u) << site.record("closed");
  EXPECT_EQ(count_of(site.record("closed"), "early "), 1u) << site.record("closed");
  EXPECT_EQ(http_get(site.port(), "/text").body, "hello\n");
}

// ---------------------------------------------------------- wsgi.input --
// What the app's reads give, each piece as "[len]bytes".
std::string framed(const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) out += "[" + std::to_string(p.size()) + "]" + p;
  return out;
}

// readline(limit) until b"" (limit 0: none).
std::vector<std::string> lines_of(const std::string& s, size_t limit) {
  std::vector<std::string> out;
  for (size_t p = 0; p < s.size();) {
    size_t nl = s.find('\n', p);
    size_t n = (nl == kNpos ? s.size() : nl + 1) - p;
    if (limit && n > limit) n = limit;
    out.push_back(s.substr(p, n));
    p += n;
  }
  return out;
}

TEST_P(WsgiEmbedded, InputReadReadNReadlineIterationAndReadlines) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  const std::string body = "line one\nline two, longer\n\nlast line without newline";
  std::vector<std::string> sevens;
  for (size_t p = 0; p < body.size(); p += 7) sevens.push_back(body.substr(p, 7));
  const std::vector<std::pair<std::string, std::string>> modes = {
      {"read", framed({body})},
      {"readn", framed(sevens)},
      {"readline", framed(lines_of(body, 0))},
      {"readline5", framed(lines_of(body, 5))},
      {"iter", framed(lines_of(body, 0))},
      {"readlines", framed(lines_of(body, 0))},
  };
  HttpConn c(site.port(), Millis(3000));
  for (bool chunked : {false, true})
    for (const auto& [mode, want] : modes) {
      SCOPED_TRACE(mode + (chunked ? " chunked" : ""));
      Response r = c.request("POST", "/input?mode=" + mode, {}, body, chunked);
      EXPECT_EQ(r.status, 200) << r.error << site.log();
      EXPECT_EQ(r.body, want);
    }
  // Past 1 MiB the body is read from its spool file: lines across the
  // reader's blocks, one far longer than a block.
  std::string big;
  for (int i = 0; big.size() < (3u << 19); i++) {
    big += std::string(i == 500 ? 20000 : i % 97, (char)('a' + i % 26)) + "\n";
  }
  big += "tail";
  for (const char* mode : {"read", "readline", "iter", "readlines"}) {
    SCOPED_TRACE(std::string("spooled ") + mode);
    Response r = c.request("POST", std::string("/input?mode=") + mode, {}, big);
    std::string mode_s = mode;
    std::string want = mode_s == "read" ? framed({big}) : framed(lines_of(big, 0));
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body.size(), want.size());
    EXPECT_TRUE(r.body == want) << brief(r.body);
  }
}

TEST_P(WsgiEmbedded, ChunkedAndSpooledBodiesAreEchoedExactly) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  HttpConn c(site.port(), Millis(5000));
  struct Case {
    size_t size;
    bool chunked;
  };
  for (Case k : {Case{100000, true}, Case{3 << 20, false}, Case{3 << 20, true}}) {
    SCOPED_TRACE(std::to_string(k.size) + (k.chunked ? " chunked" : ""));
    Response r = c.request_pattern("POST", "/echo", k.size, k.chunked);
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body.size(), k.size);
    EXPECT_EQ(pattern_mismatch(r.body), kNpos);
    EXPECT_EQ(r.header("X-Content-Length"), std::to_string(k.size)) << "environ CONTENT_LENGTH";
  }
}

TEST_P(WsgiEmbedded, ExpectContinueIsAnsweredBeforeTheBody) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  RawConn c(site.port());
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_TRUE(c.read_until("\r\n\r\n", Millis(2000))) << "no interim answer while the body waits: " << brief(c.got);
  EXPECT_EQ(c.got, "HTTP/1.1 100 Continue\r\n\r\n");
  c.got.clear();
  c.send("hello world");
  ASSERT_TRUE(c.read_until("hello world")) << brief(c.got);
  EXPECT_EQ(c.got.compare(0, 15, "HTTP/1.1 200 OK"), 0) << brief(c.got);
  EXPECT_EQ(c.body(), "hello world");
}

// ----------------------------------------------------- file_wrapper --
TEST_P(WsgiEmbedded, FileWrapperServesTheFileExactlyAndClosesIt) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  std::string file = site.rec().write("served.bin", pattern_bytes(300000));
  HttpConn c(site.port(), Millis(3000));
  Response a = c.request("GET", "/file?cl=1&tag=a&path=" + file);
  ASSERT_EQ(a.status, 200) << a.error;
  EXPECT_EQ(a.body.size(), 300000u);
  EXPECT_EQ(pattern_mismatch(a.body), kNpos);
  EXPECT_EQ(a.header("Content-Length"), "300000");
  EXPECT_FALSE(a.chunked);
  Response b = c.request("GET", "/file?cl=0&tag=b&path=" + file);
  ASSERT_EQ(b.status, 200) << b.error;
  EXPECT_EQ(b.body.size(), 300000u);
  EXPECT_EQ(pattern_mismatch(b.body), kNpos);
  EXPECT_TRUE(b.chunked);
  EXPECT_TRUE(site.wait_record("closed", "file b\n"));
  EXPECT_EQ(site.record("closed"), "file a\nfile b\n");
}

// A real file object (fileno()): with threads = 1 pasture sends it with
// sendfile(2) from the file's position, its size as Content-Length.
TEST_P(WsgiEmbedded, FileWrapperOverARealFileFromItsPosition) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  std::string file = site.rec().write("served.bin", pattern_bytes(300000));
  HttpConn c(site.port(), Millis(3000));
  struct Case {
    std::string query;
    size_t skip;
  };
  for (const Case& k : {Case{"cl=0&tag=a", 0}, Case{"cl=0&tag=b&skip=1000", 1000}, Case{"cl=1&tag=c&skip=77", 77}}) {
    SCOPED_TRACE(k.query);
    Response r = c.request("GET", "/file?real=1&" + k.query + "&path=" + file);
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body.size(), 300000 - k.skip);
    EXPECT_EQ(pattern_mismatch(r.body, k.skip), kNpos);
    if (GetParam() == 1 || k.query.find("cl=1") != kNpos) {
      EXPECT_EQ(r.header("Content-Length"), std::to_string(300000 - k.skip));
    }
  }
  Response head = c.request("HEAD", "/file?real=1&cl=0&tag=d&path=" + file);
  EXPECT_EQ(head.status, 200) << head.error;
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(c.request("GET", "/text").body, "hello\n") << "the connection did not survive the HEAD";
  EXPECT_TRUE(site.wait_record("closed", "file d\n"));
  EXPECT_EQ(site.record("closed"), "file a\nfile b\nfile c\nfile d\n");
}

// sendfile bodies go out corked with their heads and the cork is released
// at the answer's end (chunked too: the last chunk is not held back by the
// kernel's 200 ms cork timer): ten answers in a row, each followed by a
// small one on the same connection, take well under 10 x 200 ms.
TEST_P(WsgiEmbedded, CorkedFileWrapperAnswersEndWithoutDelay) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  std::string file = site.rec().write("served.bin", pattern_bytes(300000));
  HttpConn c(site.port(), Millis(3000));
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; i++) {
    Response r = c.request("GET", "/file?real=1&cl=" + std::to_string(i % 2) + "&tag=t" + std::to_string(i) +
                                      "&path=" + file);
    ASSERT_EQ(r.status, 200) << r.error;
    ASSERT_EQ(r.body.size(), 300000u);
    ASSERT_EQ(c.request("GET", "/text").body, "hello\n");
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 1200.0);
}

// A client that asks for the close is closed at once with its answer: the
// corked file_wrapper body (3 MiB, several sendfile turns while the client
// reads late) arrives whole, chunked or with its length (or close-delimited
// for HTTP/1.0), and the connection ends in a FIN, not a reset, well inside
// the kernel's 200 ms cork timer once the client reads.
TEST_P(WsgiEmbedded, CorkedFileWrapperEndsWholeWhenTheClientAskedForTheClose) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  std::string data = pattern_bytes(3 << 20);
  std::string file = site.rec().write("served.bin", data);
  for (const char* cl : {"0", "1"}) {
    for (const char* version : {"HTTP/1.1\r\nHost: t\r\nConnection: close", "HTTP/1.0"}) {
      SCOPED_TRACE(std::string(version) + " cl=" + cl);
      Fd fd = connect_loopback(site.port());
      std::string req = std::string("GET /file?real=1&cl=") + cl + "&tag=c" + cl + "&path=" + file + " " + version +
                        "\r\n\r\n";
      ASSERT_EQ(send_all(fd.get(), req), IoResult::kOk);
      std::this_thread::sleep_for(Millis(200));
      auto t0 = Clock::now();
      std::string got;
      EXPECT_EQ(recv_to_fin(fd.get(), got, Millis(3000)), IoResult::kClosed)
          << "not an orderly close after " << got.size() << " bytes";
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      size_t p = got.find("\r\n\r\n");
      ASSERT_NE(p, kNpos);
      std::string head = got.substr(0, p + 4), body = got.substr(p + 4);
      EXPECT_EQ(head.compare(9, 3, "200"), 0) << head;
      if (head_has(head, "Transfer-Encoding: chunked")) body = dechunk(body);
      EXPECT_TRUE(body == data) << body.size() << " body bytes; " << head;
      EXPECT_LT(ms, 1000.0);
    }
  }
}

// ------------------------------------------------------- bodiless answers --
TEST_P(WsgiEmbedded, HeadSendsNoBodyAndKeepsTheConnection) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  RawConn c(site.port());
  // The head a GET would get, Content-Length included when the app gives one.
  const std::pair<const char*, const char*> cases[] = {{"/text", "\r\nContent-Length: 6\r\n"},
                                                       {"/big?cl=1&size=100000", "\r\nContent-Length: 100000\r\n"},
                                                       {"/write_cl", "\r\nContent-Length: 25\r\n"},
                                                       {"/gen", nullptr},
                                                       {"/big?size=100000", nullptr}};
  for (const auto& [target, length] : cases) {
    SCOPED_TRACE(target);
    c.got.clear();
    c.send(std::string("HEAD ") + target + kGet);
    ASSERT_TRUE(c.read_until("\r\n\r\n")) << brief(c.got);
    EXPECT_FALSE(c.quiet()) << "closed after HEAD";
    EXPECT_EQ(c.got.compare(0, 15, "HTTP/1.1 200 OK"), 0) << brief(c.got);
    EXPECT_EQ(c.body(), "") << "body bytes after a HEAD answer";
    if (length) {
      EXPECT_TRUE(head_has(c.head(), length)) << brief(c.got);
    }
  }
  c.got.clear();
  c.send("GET /text" + kGet);
  ASSERT_TRUE(c.read_until("hello\n")) << brief(c.got);
  EXPECT_EQ(c.body(), "hello\n");
}

// Each on its own keep-alive connection, then a GET on it. A 304 may carry
// the Content-Length of the representation it stands for (RFC 9110 8.6);
// a 204's Content-Length is dropped.
TEST_P(WsgiEmbedded, NoBodyFor204And304) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  for (const char* target : {"/status?code=204", "/status?code=204&body=xx", "/status?code=204&cl=0",
                             "/status?code=304", "/status?code=304&body=xx", "/status?code=304&cl=1234"}) {
    SCOPED_TRACE(target);
    RawConn c(site.port());
    c.send(std::string("GET ") + target + kGet);
    bool head = c.read_until("\r\n\r\n");
    EXPECT_TRUE(head) << "no answer: " << brief(c.got);
    if (!head) continue;
    EXPECT_FALSE(c.quiet()) << "closed";
    bool is204 = std::string(target).find("204") != kNpos;
    EXPECT_EQ(c.got.compare(0, 12, is204 ? "HTTP/1.1 204" : "HTTP/1.1 304"), 0) << brief(c.got);
    EXPECT_EQ(c.body(), "") << "body bytes";
    EXPECT_FALSE(head_has(c.head(), "Transfer-Encoding")) << brief(c.got);
    if (is204) {
      EXPECT_FALSE(head_has(c.head(), "Content-Length")) << brief(c.got);
    }
    c.got.clear();
    c.send("GET /text" + kGet);
    EXPECT_TRUE(c.read_until("hello\n")) << brief(c.got);
    EXPECT_EQ(c.body(), "hello\n");
  }
}

// --------------------------------------------------------------- framing --
TEST_P(WsgiEmbedded, ConnectionCloseFromTheAppClosesAfterTheResponse) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  HttpConn c(site.port(), Millis(3000));
  Response r = c.request("GET", "/conn_close");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "bye\n");
  EXPECT_EQ(lower(r.header("Connection")), "close");
  EXPECT_EQ(r.header_count("Connection"), 1u);
  EXPECT_TRUE(c.closed(Millis(2000))) << "still open after Connection: close";
}

TEST_P(WsgiEmbedded, ContentLengthShorterThanTheBodyTruncatesAndKeepsTheConnection) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  RawConn c(site.port());
  c.send("GET /cl_short" + kGet);
  ASSERT_TRUE(c.read_until("\r\n\r\n01234")) << brief(c.got);
  EXPECT_FALSE(c.quiet()) << "closed";
  EXPECT_TRUE(head_has(c.head(), "\r\nContent-Length: 5\r\n")) << brief(c.got);
  EXPECT_EQ(c.body(), "01234");
  c.got.clear();
  c.send("GET /text" + kGet);
  ASSERT_TRUE(c.read_until("hello\n")) << brief(c.got);
  EXPECT_EQ(c.got.compare(0, 15, "HTTP/1.1 200 OK"), 0) << brief(c.got);
}

TEST_P(WsgiEmbedded, ContentLengthLongerThanTheBodyClosesTheConnection) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  RawConn c(site.port());
  auto t0 = Clock::now();
  c.send("GET /cl_long" + kGet);
  EXPECT_TRUE(c.closed_within(Millis(3000))) << "hangs: " << brief(c.got);
  EXPECT_LT(ms_since(t0), 2000);
  EXPECT_TRUE(head_has(c.head(), "\r\nContent-Length: 100\r\n")) << brief(c.got);
  EXPECT_EQ(c.body(), "0123456789");
  EXPECT_TRUE(wait_for_output(site.proc(), "ended after 10 of its Content-Length 100", Millis(1000)));
  EXPECT_EQ(http_get(site.port(), "/text").body, "hello\n");
}

TEST_P(WsgiEmbedded, GeneratorIsChunkedOn11CloseDelimitedOn10AndAListGetsALength) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  {
    RawConn c(site.port());
    c.send("GET /gen" + kGet);
    ASSERT_TRUE(c.read_until("\r\n0\r\n\r\n")) << brief(c.got);
    EXPECT_FALSE(c.quiet()) << "closed";
    EXPECT_TRUE(head_has(c.head(), "\r\nTransfer-Encoding: chunked\r\n")) << brief(c.got);
    EXPECT_FALSE(head_has(c.head(), "Content-Length")) << brief(c.got);
    EXPECT_EQ(dechunk(c.body()), "gen0\ngen1\ngen2\n") << brief(c.got);
  }
  for (const char* ka : {"", "Connection: keep-alive\r\n"}) {
    RawConn c(site.port());
    c.send(std::string("GET /gen HTTP/1.0\r\nHost: t\r\n") + ka + "\r\n");
    EXPECT_TRUE(c.closed_within(Millis(3000))) << brief(c.got);
    EXPECT_EQ(c.got.compare(0, 15, "HTTP/1.1 200 OK"), 0) << brief(c.got);
    EXPECT_FALSE(head_has(c.head(), "Transfer-Encoding")) << brief(c.got);
    EXPECT_FALSE(head_has(c.head(), "Content-Length")) << brief(c.got);
    EXPECT_EQ(c.body(), "gen0\ngen1\ngen2\n");
  }
  RawConn c(site.port());
  c.send("GET /onelist" + kGet);
  ASSERT_TRUE(c.read_until("one item")) << brief(c.got);
  EXPECT_FALSE(c.quiet());
  EXPECT_TRUE(head_has(c.head(), "\r\nContent-Length: 8\r\n")) << brief(c.got);
  EXPECT_FALSE(head_has(c.head(), "Transfer-Encoding")) << brief(c.got);
  EXPECT_EQ(c.body(), "one item");
}

// ---------------------------------------------------------- back-pressure --
// A 20 MB pattern answer (`target(size)`: its target for a body of that
// size) read slowly: the app must be held back, so the worker's RSS does
// not grow by the body.
void expect_held_back(EmbedSite& site, const std::function<std::string(size_t)>& target) {
  int pid = site.worker_pid();
  ASSERT_GT(pid, 0);
  Response warm = http_get(site.port(), target(2 << 20));  // buffers at their working size
  ASSERT_EQ(warm.body.size(), 2u << 20) << warm.error;
  long base = rss_kb(pid);
  constexpr size_t kSize = 20 << 20;
  RawConn c(site.port(), 32768);
  c.send("GET " + target(kSize) + kGet);
  ASSERT_TRUE(c.read_until("\r\n\r\n")) << brief(c.got);
  size_t head = c.head().size();
  std::this_thread::sleep_for(Millis(400));  // an unbounded producer would have made all 20 MB by now
  long peak = rss_kb(pid);
  auto t0 = Clock::now();
  size_t next_sample = head + (1 << 20);
  while (c.got.size() < head + kSize && ms_since(t0) < 4000) {
    if (!c.read_bytes(std::min(c.got.size() + 65536, head + kSize), Millis(2000))) break;
    std::this_thread::sleep_for(Millis(3));
    if (c.got.size() >= next_sample) {
      peak = std::max(peak, rss_kb(pid));
      next_sample += 1 << 20;
    }
  }
  ASSERT_EQ(c.got.size(), head + kSize) << "read " << c.got.size() - head << " in " << ms_since(t0) << " ms";
  EXPECT_EQ(pattern_mismatch(std::string_view(c.got).substr(head)), kNpos);
  if (check_resource_bound("worker RSS growth (ASan's quarantine keeps freed buffers)")) {
    EXPECT_LT(peak - base, 8 * 1024) << "worker RSS grew from " << base << " to " << peak << " KiB";
  }
  EXPECT_EQ(site.worker_pid(), pid);
}

TEST_P(WsgiEmbedded, SlowReaderHoldsTheIterableBack) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  expect_held_back(site, [](size_t n) { return "/big?cl=1&size=" + std::to_string(n); });
}

// The same body through write() calls: PEP 3333 lets write() buffer, not
// without bound. Only app threads can wait in write(): with threads = 1 the
// call runs on the event loop, which cannot block, and what write() gets
// is queued (README, "Python WSGI apps").
TEST_P(WsgiEmbedded, SlowReaderHoldsWriteBack) {
  if (GetParam() == 1) GTEST_SKIP() << "threads = 1: write() queues (a known limit, in the README)";
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  expect_held_back(site, [](size_t n) { return "/write_big?size=" + std::to_string(n); });
}

TEST_P(WsgiEmbedded, SlowReaderHoldsAFileWrapperBack) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  std::string small = site.rec().write("2m.bin", pattern_bytes(2 << 20));
  std::string big = site.rec().write("20m.bin", pattern_bytes(20 << 20));
  expect_held_back(site, [&](size_t n) { return "/file?real=1&cl=1&path=" + (n == (2 << 20) ? small : big); });
}

// --------------------------------------------------------- pipelining --
TEST_P(WsgiEmbedded, PipelinedRequestsAreAnsweredInOrder) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  RawConn c(site.port());
  c.send("GET /sleep?ms=150&tag=first" + kGet + "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond" +
         "GET /sleep?ms=0&tag=third" + kGet);
  ASSERT_TRUE(c.read_until("slept third\n")) << brief(c.got);
  EXPECT_FALSE(c.quiet());
  EXPECT_EQ(count_of(c.got, "HTTP/1.1 200 OK\r\n"), 3u) << brief(c.got);
  size_t a = c.got.find("slept first\n"), b = c.got.find("\r\n\r\nsecond"), d = c.got.find("slept third\n");
  EXPECT_TRUE(a < b && b < d) << brief(c.got);
  EXPECT_EQ(c.got.size(), d + 12) << "bytes after the third answer: " << brief(c.got);
}

// ------------------------------------------------------------ crashes --
TEST_P(WsgiEmbedded, CExtensionCrashKillsOneWorkerTheMasterRespawnsIt) {
  EmbedSite site(GetParam(), 2, "", deliberate_crash_env());
  ASSERT_TRUE(site.started()) << site.log();
  RawConn c(site.port());
  c.send("GET /crash" + kGet);
  EXPECT_TRUE(c.closed_within(Millis(3000))) << brief(c.got);
  EXPECT_EQ(c.got.find("survived"), kNpos) << brief(c.got);
  EXPECT_TRUE(wait_for_output(site.proc(), "killed by signal 11", Millis(3000))) << site.log();
  EXPECT_TRUE(wait_until([&] { return count_of(site.log(), "started, pid ") >= 3; })) << site.log();
  EXPECT_TRUE(site.proc().running());
  for (int i = 0; i < 20; i++) {
    Response r = http_get(site.port(), "/text");
    ASSERT_EQ(r.status, 200) << i << ": " << r.error;
  }
}

// ------------------------------------------------------------- recycling --
TEST_P(WsgiEmbedded, MaxRequestsRecyclesWorkersWithoutFailingARequest) {
  EmbedSite site(GetParam(), 2, "max_requests = 50\n");
  ASSERT_TRUE(site.started()) << site.log();
  std::atomic<int> failed{0};
  std::mutex mu;
  std::set<int> pids;
  std::string last_error;
  std::vector<std::thread> clients;
  for (int t = 0; t < 2; t++)
    clients.emplace_back([&] {
      for (int i = 0; i < 75; i++) {
        Response r = http_get(site.port(), "/pid");
        std::lock_guard<std::mutex> l(mu);
        if (r.status == 200)
          pids.insert(atoi(r.body.c_str()));
        else {
          failed++;
          last_error = std::to_string(r.status) + " " + r.error;
        }
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0) << last_error;
  EXPECT_GE(pids.size(), 3u) << "no worker was recycled";
  EXPECT_NE(site.log().find("(max_requests): recycling"), kNpos) << site.log();
}

// A keep-alive client across a recycle: the worker's last answer must say
// "Connection: close" (as gunicorn's does), or the client's next request
// on that connection meets a close it could not foresee.
TEST(WsgiEmbeddedWorkers, MaxRequestsWarnsKeepAliveClientsBeforeRecycling) {
  EmbedSite site(1, 1, "max_requests = 20\n");
  ASSERT_TRUE(site.started()) << site.log();
  std::unique_ptr<HttpConn> c;
  int failed = 0, closes = 0;
  std::string failures;
  for (int i = 0; i < 45; i++) {
    if (!c) c = std::make_unique<HttpConn>(site.port(), Millis(3000));
    Response r = c->request("GET", "/pid");
    if (r.status != 200) {
      failed++;
      failures += " #" + std::to_string(i + 1) + ": " + (r.error.empty() ? std::to_string(r.status) : r.error) + ";";
      c.reset();
    } else if (!r.keep_alive) {
      closes++;
      c.reset();
    }
  }
  EXPECT_EQ(failed, 0) << "requests lost on a keep-alive connection the recycling worker closed:" << failures;
  EXPECT_GE(closes, 2) << "no answer said Connection: close";
  EXPECT_GE(count_of(site.log(), "(max_requests): recycling"), 2u) << site.log();
}

// ---------------------------------------------------------- app threads --
// `n` concurrent GETs of `target` (fresh connections); their bodies, and
// the time until the last answered.
struct Burst {
  std::vector<std::string> bodies;
  long ms = 0;
};
Burst burst(uint16_t port, int n, const std::string& target) {
  Burst b;
  b.bodies.resize(n);
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int i = 0; i < n; i++)
    ts.emplace_back([&, i] {
      Response r = http_get(port, target + "&tag=" + std::to_string(i));
      b.bodies[i] = r.status == 200 ? r.body : std::to_string(r.status) + " " + r.error;
    });
  for (auto& t : ts) t.join();
  b.ms = ms_since(t0);
  return b;
}

TEST(WsgiEmbeddedAppThreads, SleepingRequestsDoNotHoldTheWorker) {
  EmbedSite site(4, 1);
  ASSERT_TRUE(site.started()) << site.log();
  ASSERT_GT(site.worker_pid(), 0);
  Burst b = burst(site.port(), 4, "/sleep?ms=300");
  for (int i = 0; i < 4; i++) EXPECT_EQ(b.bodies[i], "slept " + std::to_string(i) + "\n");
  EXPECT_GE(b.ms, 290);
  EXPECT_LT(b.ms, 750) << "4 sleeps of 300 ms on 4 app threads did not overlap";
  // Three sleepers in flight: a fast route still answers at once.
  std::thread sleepers([&] { b = burst(site.port(), 3, "/sleep?ms=800"); });
  std::this_thread::sleep_for(Millis(200));
  auto t0 = Clock::now();
  Response fast = http_get(site.port(), "/text");
  long fast_ms = ms_since(t0);
  sleepers.join();
  EXPECT_EQ(fast.body, "hello\n") << fast.error;
  EXPECT_LT(fast_ms, 100);
  for (int i = 0; i < 3; i++) EXPECT_EQ(b.bodies[i], "slept " + std::to_string(i) + "\n");
}

// The counterpart: with threads = 1 the app runs on the loop, one call at a time.
TEST(WsgiEmbeddedAppThreads, InlineCallsTakeTurns) {
  EmbedSite site(1, 1);
  ASSERT_TRUE(site.started()) << site.log();
  ASSERT_GT(site.worker_pid(), 0);
  Burst b = burst(site.port(), 3, "/sleep?ms=250");
  for (int i = 0; i < 3; i++) EXPECT_EQ(b.bodies[i], "slept " + std::to_string(i) + "\n");
  EXPECT_GE(b.ms, 740);
}

TEST(WsgiEmbeddedAppThreads, StuckInlineAppGetsTheWorkerKilledAndReplaced) {
  EmbedSite site(1, 1, "worker_timeout = 2\n");
  ASSERT_TRUE(site.started()) << site.log();
  int pid = site.worker_pid();
  ASSERT_GT(pid, 0);
  RawConn c(site.port());
  c.send("GET /hang" + kGet);
  EXPECT_TRUE(wait_for_output(site.proc(), "stuck", Millis(6000))) << site.log();
  EXPECT_TRUE(c.closed_within(Millis(3000))) << "the stuck worker's client is still connected";
  int again = site.worker_pid();
  EXPECT_GT(again, 0) << site.log();
  EXPECT_NE(again, pid);
  EXPECT_TRUE(site.proc().running());
}

// ------------------------------------------------------------- preload --
std::vector<int> lines_as_pids(const std::string& s) {
  std::vector<int> out;
  std::istringstream in(s);
  for (int p; in >> p;) out.push_back(p);
  return out;
}

// Worker pids seen answering /pid from concurrent clients (a worker busy
// in a 30 ms inline call leaves the next connection to another).
std::set<int> answering_pids(const EmbedSite& site, size_t want) {
  std::set<int> pids;
  for (int round = 0; round < 20 && pids.size() < want; round++) {
    std::vector<int> got(4);
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; i++) ts.emplace_back([&, i] { got[i] = site.worker_pid(30); });
    for (auto& t : ts) t.join();
    for (int p : got)
      if (p) pids.insert(p);
  }
  return pids;
}

TEST(WsgiEmbeddedWorkers, PreloadImportsTheAppOnceInTheMaster) {
  EmbedSite site(1, 2, "preload = true\n");
  ASSERT_TRUE(site.started()) << site.log();
  std::set<int> pids = answering_pids(site, 2);
  EXPECT_EQ(pids.size(), 2u);
  int master = site.proc().pid();
  std::vector<int> kids = children_of(master);
  for (int p : pids) {
    EXPECT_NE(p, master);
    EXPECT_NE(std::find(kids.begin(), kids.end(), p), kids.end()) << p << " is not a worker of the master";
  }
  EXPECT_EQ(site.record("imports"), std::to_string(master) + "\n");
}

TEST(WsgiEmbeddedWorkers, WithoutPreloadEachWorkerImportsTheApp) {
  EmbedSite site(1, 2);
  ASSERT_TRUE(site.started()) << site.log();
  std::set<int> pids = answering_pids(site, 2);
  EXPECT_EQ(pids.size(), 2u);
  std::vector<int> imports = lines_as_pids(site.record("imports"));
  for (int p : pids) EXPECT_NE(std::find(imports.begin(), imports.end(), p), imports.end()) << p;
  EXPECT_EQ(std::find(imports.begin(), imports.end(), site.proc().pid()), imports.end()) << "the master imported";
}

// ------------------------------------------------------------- environ --
std::string json_value(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\": ");
  if (at == kNpos) return "<absent>";
  at += key.size() + 4;
  size_t end = json.find_first_of(",}", at);
  std::string v = json.substr(at, end - at);
  if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

TEST(WsgiEmbeddedWorkers, EnvironIsTruthful) {
  struct Case {
    int threads, workers;
    std::string keys, multithread, multiprocess, scheme;
  };
  for (const Case& k : {Case{1, 1, "", "false", "false", "http"},
                        Case{4, 2, "trusted_proxies = 127.0.0.1\n", "true", "true", "https"}}) {
    SCOPED_TRACE("threads " + std::to_string(k.threads) + ", workers " + std::to_string(k.workers));
    EmbedSite site(k.threads, k.workers, k.keys);
    ASSERT_TRUE(site.started()) << site.log();
    // X-Forwarded-Proto counts from a trusted proxy only.
    Response r = http_get(site.port(), "/environ?x=1", {{"X-Forwarded-Proto", "https"}});
    ASSERT_EQ(r.status, 200) << r.error;
    const std::string& j = r.body;
    EXPECT_EQ(json_value(j, "wsgi.multithread"), k.multithread) << j;
    EXPECT_EQ(json_value(j, "wsgi.multiprocess"), k.multiprocess) << j;
    EXPECT_EQ(json_value(j, "wsgi.url_scheme"), k.scheme) << j;
    EXPECT_EQ(json_value(j, "wsgi.run_once"), "false") << j;
    EXPECT_EQ(json_value(j, "SERVER_NAME"), "127.0.0.1") << j;
    EXPECT_EQ(json_value(j, "SERVER_PORT"), std::to_string(site.port())) << j;
    EXPECT_EQ(json_value(j, "REMOTE_ADDR"), "127.0.0.1") << j;
    EXPECT_EQ(json_value(j, "SERVER_PROTOCOL"), "HTTP/1.1") << j;
    EXPECT_EQ(json_value(j, "QUERY_STRING"), "x=1") << j;
    EXPECT_EQ(json_value(j, "PATH_INFO"), "/environ") << j;
    EXPECT_NE(j.find("\"wsgi.version\": [1, 0]"), kNpos) << j;
  }
}

}  // namespace
}  // namespace pasture::test
