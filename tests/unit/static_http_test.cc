// worker/static_http.h and worker/static_mime.h: validators, conditionals,
// ranges and media types, as tables.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/temp_dir.h"
#include "worker/static_http.h"
#include "worker/static_mime.h"

namespace pasture::worker::files {
namespace {

TEST(StaticHttp, DatesRoundTripInTheThreeForms) {
  EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 -0000"), 784111777);  // Paste's own Last-Modified
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 +0100"), -1);
  EXPECT_EQ(parse_http_date("yesterday"), -1);
  EXPECT_EQ(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), -1);
}

TEST(StaticHttp, EtagsAsPasteAndNginxWriteThem) {
  // Python: str(1796153643.5766656) from st_mtime_ns 1796153643576665600.
  EXPECT_EQ(paste_etag(1796153643576665600, 9), "\"1796153643.5766656-9\"");
  EXPECT_EQ(paste_etag(1700000000000000000, 10), "\"1700000000.0-10\"");
  EXPECT_EQ(nginx_etag(0x6b0f212b, 6), "\"6b0f212b-6\"");
}

TEST(StaticHttp, IfNoneMatchIsAWeakComparisonOverAList) {
  EXPECT_TRUE(none_match("\"a\"", "\"a\""));
  EXPECT_TRUE(none_match("W/\"a\"", "\"a\""));
  EXPECT_TRUE(none_match("\"x\", \"a\"", "\"a\""));
  EXPECT_TRUE(none_match("*", "\"a\""));
  EXPECT_FALSE(none_match("\"b\"", "\"a\""));
  EXPECT_FALSE(none_match("a", "\"a\""));
}

TEST(StaticHttp, Ranges) {
  struct Case {
    const char* range;
    uint64_t size;
    RangeResult want;
    std::vector<std::pair<uint64_t, uint64_t>> parts;
  };
  const Case cases[] = {
      {"bytes=0-0", 100, RangeResult::kSatisfiable, {{0, 0}}},
      {"bytes=0-", 100, RangeResult::kSatisfiable, {{0, 99}}},
      {"bytes=-10", 100, RangeResult::kSatisfiable, {{90, 99}}},
      {"bytes=-1000", 100, RangeResult::kSatisfiable, {{0, 99}}},
      {"bytes=90-1000", 100, RangeResult::kSatisfiable, {{90, 99}}},
      {"Bytes = 1-2 , 5-6", 100, RangeResult::kSatisfiable, {{1, 2}, {5, 6}}},
      {"bytes=100-", 100, RangeResult::kUnsatisfiable, {}},
      {"bytes=-0", 100, RangeResult::kUnsatisfiable, {}},
      {"bytes=5-2", 100, RangeResult::kUnsatisfiable, {}},
      {"bytes=200-300,1-1", 100, RangeResult::kSatisfiable, {{1, 1}}},
      {"bytes=0-", 0, RangeResult::kUnsatisfiable, {}},
      {"items=0-1", 100, RangeResult::kIgnore, {}},
      {"bytes=a-b", 100, RangeResult::kIgnore, {}},
      {"bytes=1", 100, RangeResult::kIgnore, {}},
      {"bytes=", 100, RangeResult::kIgnore, {}},
      {"bytes=0-9999,0-9999,0-9999", 10000, RangeResult::kIgnore, {}},  // more than twice the file
      {"bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13,14-15,16-17,18-19,20-21,22-23,24-25,26-27,28-29,30-31,32-33", 100,
       RangeResult::kIgnore, {}},  // 17 ranges
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.range);
    std::vector<ByteRange> out;
    EXPECT_EQ(parse_range(c.range, c.size, &out), c.want);
    std::vector<std::pair<uint64_t, uint64_t>> got;
    for (const ByteRange& r : out) got.emplace_back(r.first, r.last);
    EXPECT_EQ(got, c.parts);
  }
}

TEST(StaticHttp, IfRangeNeedsAStrongMatch) {
  EXPECT_TRUE(if_range_holds("", "\"a\"", 5));
  EXPECT_TRUE(if_range_holds("\"a\"", "\"a\"", 5));
  EXPECT_FALSE(if_range_holds("\"b\"", "\"a\"", 5));
  EXPECT_FALSE(if_range_holds("W/\"a\"", "\"a\"", 5));
  EXPECT_TRUE(if_range_holds("Sun, 06 Nov 1994 08:49:37 GMT", "\"a\"", 784111777));
  EXPECT_FALSE(if_range_holds("Sun, 06 Nov 1994 08:49:38 GMT", "\"a\"", 784111777));
}

TEST(StaticHttp, AcceptEncoding) {
  EXPECT_TRUE(accepts_encoding("gzip, deflate, br", "br"));
  EXPECT_TRUE(accepts_encoding("GZIP", "gzip"));
  EXPECT_FALSE(accepts_encoding("gzip;q=0", "gzip"));
  EXPECT_FALSE(accepts_encoding("gzip; q=0.000", "gzip"));
  EXPECT_TRUE(accepts_encoding("gzip;q=0.5", "gzip"));
  EXPECT_TRUE(accepts_encoding("*", "br"));
  EXPECT_FALSE(accepts_encoding("*, br;q=0", "br"));
  EXPECT_FALSE(accepts_encoding("", "gzip"));
  EXPECT_FALSE(accepts_encoding("identity", "gzip"));
}

TEST(StaticMime, GuessesAsPythonMimetypesAndAsNginx) {
  test::TempDir d("pasture-mime");
  std::string f = d.write("mime.types", "# comment\ntext/plain txt text\ntext/html html htm\nimage/svg+xml svg\n"
                                        "application/x-tar tar\napplication/gzip gz\ntext/javascript js\n");
  set_mime_file(f);
  EXPECT_EQ(guess_paste("a.txt").type, "text/plain");
  EXPECT_EQ(guess_paste("A.TXT").type, "text/plain");
  EXPECT_EQ(guess_paste("a.txt.gz").type, "text/plain");
  EXPECT_EQ(guess_paste("a.txt.gz").encoding, "gzip");
  EXPECT_EQ(guess_paste("a.txt.GZ").encoding, "");  // encodings are case-sensitive in Python
  EXPECT_EQ(guess_paste("x.svgz").type, "image/svg+xml");
  EXPECT_EQ(guess_paste("x.svgz").encoding, "gzip");
  EXPECT_EQ(guess_paste("x.tgz").type, "application/x-tar");
  EXPECT_EQ(guess_paste("dir/.txt").type, "");  // a dotfile has no extension
  EXPECT_EQ(guess_paste("a.").type, "");
  EXPECT_EQ(guess_paste("noext").type, "");
  EXPECT_EQ(guess_plain("a.txt.gz"), "application/gzip");
  EXPECT_EQ(guess_plain("sub.d/x.JS"), "text/javascript");
  EXPECT_EQ(guess_plain("sub.d/x"), "");
  set_mime_file("/etc/mime.types");
}

}  // namespace
}  // namespace pasture::worker::files
