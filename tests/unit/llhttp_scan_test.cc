// worker/llhttp_sse42.c: the SSE4.2 copy of llhttp, with pasture's own
// header-value scan, against the portable copy, on the same bytes fed in
// the same pieces: the same callbacks on the same spans, the same error at
// the same byte. Field names include runs of '~'; header values mix the
// bytes either side of every range edge (tab, CTLs, SP, '~', DEL, 0x80,
// 0xff, CR, LF) at lengths across 16-byte blocks.
#include <gtest/gtest.h>
#include <llhttp.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__)
extern "C" int llhttp__internal_execute(llhttp_t* s, const char* p, const char* endp);
extern "C" int pasture_llhttp_execute_sse42(llhttp_t* s, const char* p, const char* endp);

namespace {

using Exec = int (*)(llhttp_t*, const char*, const char*);

struct Event {
  int kind;
  long off;
  size_t len;
  bool operator==(const Event&) const = default;
};

struct Log {
  const char* base;
  std::vector<Event> ev;
};

template <int K>
int span(llhttp_t* p, const char* at, size_t n) {
  auto* l = static_cast<Log*>(p->data);
  l->ev.push_back({K, at - l->base, n});
  return 0;
}
template <int K>
int note(llhttp_t* p) {
  static_cast<Log*>(p->data)->ev.push_back({K, -1, 0});
  return 0;
}

llhttp_settings_t settings() {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_url = span<1>;
  s.on_status = span<2>;
  s.on_method = span<3>;
  s.on_version = span<4>;
  s.on_header_field = span<5>;
  s.on_header_value = span<6>;
  s.on_body = span<7>;
  s.on_headers_complete = note<8>;
  s.on_message_complete = note<9>;
  s.on_header_value_complete = note<10>;
  s.on_header_field_complete = note<11>;
  return s;
}

struct Result {
  std::vector<Event> ev;
  int err = 0;
  long err_at = -1;
};

Result run(Exec exec, llhttp_type_t type, const std::string& in, const std::vector<size_t>& cuts) {
  llhttp_settings_t st = settings();
  llhttp_t p;
  llhttp_init(&p, type, &st);
  Log log{in.data(), {}};
  p.data = &log;
  Result r;
  size_t at = 0;
  for (size_t i = 0; i <= cuts.size() && r.err == 0; i++) {
    size_t end = i < cuts.size() ? cuts[i] : in.size();
    r.err = exec(&p, in.data() + at, in.data() + end);
    at = end;
  }
  if (r.err) r.err_at = llhttp_get_error_pos(&p) ? llhttp_get_error_pos(&p) - in.data() : -2;
  r.ev = std::move(log.ev);
  return r;
}

// A header value's bytes: mostly ordinary, with the edges of each range.
std::string value(std::mt19937& rng) {
  static const unsigned char edge[] = {0x00, 0x08, 0x09, 0x0a, 0x0b, 0x0d, 0x1f, 0x20,
                                       0x21, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff};
  size_t n = rng() % 80;
  bool clean = rng() % 2;
  std::string v;
  for (size_t i = 0; i < n; i++) {
    unsigned k = rng() % 100;
    if (!clean && k < 3)
      v += (char)edge[rng() % sizeof edge];
    else if (k < 6)
      v += (char)(0x80 + rng() % 0x80);
    else if (k < 9)
      v += '\t';
    else
      v += (char)(0x20 + rng() % 0x5f);
  }
  return v;
}

std::string message(std::mt19937& rng, llhttp_type_t type) {
  std::string m = type == HTTP_REQUEST ? "GET /a/b?c=d HTTP/1.1\r\n" : "HTTP/1.1 200 OK\r\n";
  int headers = rng() % 12;
  for (int i = 0; i < headers; i++) {
    // Runs of '~' reach the second replaced scan (field names: tchar's
    // other ranges keep pcmpestri, '~' alone is pasture_run's).
    static const char* names[] = {"Cookie", "X-A", "User-Agent", "Accept-Language", "X-Forwarded-For",
                                  "X~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~Y", "A~b~~c", "~~~~~~~~~~~~~~~~~~~~~~~~"};
    m += names[rng() % 8];
    m += ": ";
    m += value(rng);
    m += rng() % 20 ? "\r\n" : "\n";
  }
  m += type == HTTP_REQUEST ? "Content-Length: 3\r\n\r\nabc" : "Content-Length: 2\r\n\r\nok";
  return m;
}

TEST(LlhttpScan, Sse42CopyParsesAsThePortableOne) {
  if (!__builtin_cpu_supports("sse4.2")) GTEST_SKIP() << "no SSE4.2 on this CPU";
  std::mt19937 rng(20261204);
  int errors = 0, long_values = 0;
  for (int round = 0; round < 20000; round++) {
    llhttp_type_t type = round % 3 ? HTTP_REQUEST : HTTP_RESPONSE;
    std::string in = message(rng, type);
    std::vector<size_t> cuts;
    if (round % 2) {  // in pieces, so that runs end at endp too
      for (size_t at = rng() % 40; at < in.size(); at += 1 + rng() % 40) cuts.push_back(at);
    }
    Result a = run(llhttp__internal_execute, type, in, cuts);
    Result b = run(pasture_llhttp_execute_sse42, type, in, cuts);
    ASSERT_EQ(a.err, b.err) << "round " << round;
    ASSERT_EQ(a.err_at, b.err_at) << "round " << round;
    ASSERT_EQ(a.ev, b.ev) << "round " << round;
    errors += a.err != 0;
    for (const Event& e : a.ev) long_values += e.kind == 6 && e.len >= 32;
  }
  // Both outcomes and the long runs were exercised.
  EXPECT_GT(errors, 1000);
  EXPECT_LT(errors, 19000);
  EXPECT_GT(long_values, 10000);
}

}  // namespace
#endif
