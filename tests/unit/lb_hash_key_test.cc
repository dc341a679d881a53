// common/hash_key.cc: hash_key parsing and extraction from request pieces.
#include <gtest/gtest.h>

#include <map>

#include "common/hash_key.h"

namespace pasture::lb {
namespace {

TEST(LbHashKey, Parse) {
  struct Case {
    const char* text;
    bool ok;
    HashKeyKind kind;
    const char* name;
  } cases[] = {
      {"remote_addr", true, HashKeyKind::RemoteAddr, ""},
      {"  uri ", true, HashKeyKind::Uri, ""},
      {"path", true, HashKeyKind::Path, ""},
      {"header:X-User", true, HashKeyKind::Header, "X-User"},
      {"cookie: session ", true, HashKeyKind::Cookie, "session"},
      {"arg:id", true, HashKeyKind::Arg, "id"},
      {"header:", false, HashKeyKind::RemoteAddr, ""},
      {"arg:a b", false, HashKeyKind::RemoteAddr, ""},
      {"cookie:a=b", false, HashKeyKind::RemoteAddr, ""},
      {"url", false, HashKeyKind::RemoteAddr, ""},
      {"Header:x", false, HashKeyKind::RemoteAddr, ""},
      {"", false, HashKeyKind::RemoteAddr, ""},
  };
  for (const Case& c : cases) {
    HashKeySpec spec;
    EXPECT_EQ(parse_hash_key(c.text, &spec), c.ok) << c.text;
    EXPECT_EQ(spec.kind, c.kind) << c.text;
    EXPECT_EQ(spec.name, c.name) << c.text;
  }
}

TEST(LbHashKey, FindCookie) {
  EXPECT_EQ(find_cookie("a=1; b=2", "b"), "2");
  EXPECT_EQ(find_cookie("a=1;b=2", "a"), "1");
  EXPECT_EQ(find_cookie(" sid = \"q v\" ; x=y", "sid"), "q v");
  EXPECT_EQ(find_cookie("ab=1; b=2", "b"), "2");
  EXPECT_EQ(find_cookie("b=first; b=second", "b"), "first");
  EXPECT_EQ(find_cookie("b; a=1", "b"), "");
  EXPECT_EQ(find_cookie("a=1", "b"), "");
  EXPECT_EQ(find_cookie("", "b"), "");
  EXPECT_EQ(find_cookie("v=a=b", "v"), "a=b");
}

TEST(LbHashKey, FindArg) {
  EXPECT_EQ(find_arg("id=7&x=1", "id"), "7");
  EXPECT_EQ(find_arg("x=1&id=%41b", "id"), "%41b");
  EXPECT_EQ(find_arg("xid=1&id=2", "id"), "2");
  EXPECT_EQ(find_arg("id&x=1", "id"), "");
  EXPECT_EQ(find_arg("x=1", "id"), "");
  EXPECT_EQ(find_arg("id=1&id=2", "id"), "1");
}

TEST(LbHashKey, Extract) {
  std::map<std::string, std::string, std::less<>> headers = {{"x-user", " alice "}};
  auto lookup = [&](std::string_view name) -> std::string_view {
    std::string lower(name);
    for (char& c : lower) c = (char)std::tolower((unsigned char)c);
    auto it = headers.find(lower);
    return it == headers.end() ? std::string_view() : std::string_view(it->second);
  };
  KeySources src;
  src.remote_addr = "10.0.0.7";
  src.uri = "/a/b?id=42&x";
  src.path = "/a/b";
  src.query = "id=42&x";
  src.cookie_header = "sid=abc; theme=dark";
  auto key = [&](const char* spec_text) {
    HashKeySpec spec;
    EXPECT_TRUE(parse_hash_key(spec_text, &spec));
    return std::string(extract_hash_key(spec, src, lookup));
  };
  EXPECT_EQ(key("remote_addr"), "10.0.0.7");
  EXPECT_EQ(key("uri"), "/a/b?id=42&x");
  EXPECT_EQ(key("path"), "/a/b");
  EXPECT_EQ(key("header:X-User"), "alice");
  EXPECT_EQ(key("header:X-Other"), "");
  EXPECT_EQ(key("cookie:sid"), "abc");
  EXPECT_EQ(key("cookie:none"), "");
  EXPECT_EQ(key("arg:id"), "42");
  EXPECT_EQ(key("arg:x"), "");
}

}  // namespace
}  // namespace pasture::lb
