// Which of a client's header fields reach an upstream (issue 20 #6): names
// with '_' (which CGI/WSGI servers read as the '-' spelling), pasture's own
// X-Pasture-* fields, and forwarding claims (X-Forwarded-*, Forwarded,
// X-Real-IP), which pass on only from a peer in trusted_proxies.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/raw_http.h"

namespace pasture::test {
namespace {

const std::string kClaims =
    "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n"
    "Forwarded: for=6.6.6.6;proto=https\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Port: 443\r\n"
    "X-Forwarded-Ssl: on\r\nX-Forwarded-Scheme: https\r\nX-Forwarded-Server: evil.test\r\n";

RecordedRequest send(PastureServer& srv, FakeUpstream& up, const std::string& fields) {
  up.clear();
  Exchange ex = exchange(srv.port(), "GET /f HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n" + fields + "\r\n");
  EXPECT_EQ(ex.status(), 200) << ex.bytes;
  EXPECT_EQ(up.request_count(), 1u);
  return up.request_count() ? up.requests()[0] : RecordedRequest{};
}

TEST(ForwardedHeaders, UntrustedClientsClaimsAreReplacedByPasturesOwn) {
  FakeUpstream up("u");
  PastureServer srv(balancer(up.port()), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  RecordedRequest r = send(srv, up, kClaims);
  EXPECT_EQ(r.header_count("x-forwarded-for"), 1u);
  EXPECT_EQ(r.header("x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(r.header("x-forwarded-proto"), "http");
  EXPECT_EQ(r.header("x-forwarded-host"), "site.test");
  for (const char* name : {"forwarded", "x-real-ip", "x-forwarded-port", "x-forwarded-ssl",
                           "x-forwarded-scheme", "x-forwarded-server"})
    EXPECT_EQ(r.header_count(name), 0u) << name;
}

TEST(ForwardedHeaders, TrustedProxysClaimsPassOn) {
  FakeUpstream up("u");
  PastureServer srv(balancer(up.port(), "trusted_proxies = 10.0.0.0/8, 127.0.0.1\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  RecordedRequest r = send(srv, up, kClaims);
  EXPECT_EQ(r.header("x-forwarded-for"), "6.6.6.6, 127.0.0.1");
  EXPECT_EQ(r.header("x-forwarded-proto"), "https");
  EXPECT_EQ(r.header("x-forwarded-host"), "evil.test");
  EXPECT_EQ(r.header("forwarded"), "for=6.6.6.6;proto=https");
  EXPECT_EQ(r.header("x-real-ip"), "6.6.6.6");
  EXPECT_EQ(r.header("x-forwarded-ssl"), "on");
  EXPECT_EQ(r.header("x-forwarded-server"), "evil.test");
  // Another range does not make this peer trusted.
  PastureServer other(balancer(up.port(), "trusted_proxies = 10.0.0.0/8 ::1\n"), 1);
  ASSERT_TRUE(other.started()) << other.output();
  r = send(other, up, kClaims);
  EXPECT_EQ(r.header("x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(r.header_count("forwarded"), 0u);
}

// An IPv6 client's address as text, wherever it goes: X-Forwarded-For,
// the access log, ip_hash (the connection keeps it in binary and each
// request writes it out).
TEST(ForwardedHeaders, AnIpv6ClientIsNamedAsItsAddress) {
  FakeUpstream up("u");
  TempDir dir;
  uint16_t port = free_port();
  std::string log = dir.file("access.log");
  std::string site = dir.write("site.ini", "[server:main]\nuse = egg:pasture#main\nlisten = [::1]:" +
                                               std::to_string(port) + "\nworkers = 1\naccess_log = " + log +
                                               "\n\n[app:main]\nuse = egg:pasture#balancer\nmethod = ip_hash\n"
                                               "servers = " + up.address() + "\n");
  Process p({PASTURE_BINARY, "serve", site});
  ASSERT_TRUE(wait_for_output(p, "serving on")) << p.output();
  for (int i = 0; i < 2; i++) {
    Fd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    a.sin6_addr = in6addr_loopback;
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    ASSERT_EQ(send_all(fd.get(), "GET /six HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), IoResult::kOk);
    Exchange ex;
    drain(fd.get(), ex, Millis(3000));
    EXPECT_EQ(ex.status(), 200) << ex.bytes;
  }
  ASSERT_EQ(up.request_count(), 2u);
  EXPECT_EQ(up.requests()[0].header("x-forwarded-for"), "::1");
  EXPECT_EQ(up.requests()[1].header("x-forwarded-for"), "::1");
  std::string lines;
  ASSERT_TRUE(wait_until([&] {
    std::ifstream f(log);
    lines.assign(std::istreambuf_iterator<char>(f), {});
    return std::count(lines.begin(), lines.end(), '\n') >= 2;
  })) << lines;
  EXPECT_EQ(lines.rfind("::1 - - [", 0), 0u) << lines;
  EXPECT_NE(lines.find("\n::1 - - ["), std::string::npos) << lines;
}

TEST(ForwardedHeaders, BadSettingsAreConfigErrors) {
  for (const auto& [line, want] : std::vector<std::pair<std::string, std::string>>{
           {"trusted_proxies = 10.0.0.0/33", "prefix length must be 0-32"},
           {"trusted_proxies = 127.0.0.1 example.com", "'example.com' is not an IP address"},
           {"underscores_in_headers = maybe", "expected true or false"}}) {
    TempDir dir;
    std::string site = dir.write("site.ini", "[server:main]\nuse = egg:pasture#main\n" + line +
                                                 "\n[app:main]\nuse = egg:pasture#echo\n");
    Process p({PASTURE_BINARY, "check", site});
    std::optional<int> st = p.wait_exit();
    EXPECT_FALSE(exited_with(st, 0)) << line;
    EXPECT_NE(p.output().find(site + ":3: "), std::string::npos) << p.output();
    EXPECT_NE(p.output().find(want), std::string::npos) << p.output();
  }
}

// nginx's underscores_in_headers: off by default (dropped); on keeps them,
// except spellings of fields pasture sets or strips.
TEST(ForwardedHeaders, UnderscoreNamesAreDroppedUnlessAllowed) {
  const std::string fields =
      "X_Custom: 1\r\nX_Pasture_Script_Name: /admin\r\nX_Forwarded_For: 6.6.6.6\r\n"
      "x_forwarded_proto: https\r\nX_Real_IP: 6.6.6.6\r\nContent_Length: 5\r\nX-Custom-2: 2\r\n";
  FakeUpstream up("u");
  {
    PastureServer srv(balancer(up.port()), 1);
    ASSERT_TRUE(srv.started()) << srv.output();
    RecordedRequest r = send(srv, up, fields);
    for (const auto& [name, value] : r.headers)
      EXPECT_EQ(name.find('_'), std::string::npos) << name << ": " << value;
    EXPECT_EQ(r.header("x-custom-2"), "2");
    EXPECT_EQ(r.header("x-forwarded-for"), "127.0.0.1");
  }
  PastureServer srv(balancer(up.port(), "underscores_in_headers = on\ntrusted_proxies = 127.0.0.1\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  RecordedRequest r = send(srv, up, fields);
  EXPECT_EQ(r.header("x_custom"), "1");
  for (const char* name : {"x_pasture_script_name", "x_forwarded_for", "x_forwarded_proto", "x_real_ip",
                           "content_length"})
    EXPECT_EQ(r.header_count(name), 0u) << name;
  EXPECT_EQ(r.header("x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(r.header("x-forwarded-proto"), "http");
}

TEST(ForwardedHeaders, PastureFieldsFromClientsNeverPass) {
  FakeUpstream up("u");
  PastureServer srv(balancer(up.port(), "trusted_proxies = 127.0.0.1\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  RecordedRequest r = send(srv, up, "X-Pasture-Script-Name: /admin\r\nx-pasture-other: 1\r\nX-Kept: 1\r\n");
  EXPECT_EQ(r.header_count("x-pasture-script-name"), 0u);
  EXPECT_EQ(r.header_count("x-pasture-other"), 0u);
  EXPECT_EQ(r.header("x-kept"), "1");
}

}  // namespace
}  // namespace pasture::test
