// worker/llhttp_sse42.c: the SSE4.2 copy of llhttp, with pasture's own
// header-value scan, against the portable copy, on the same bytes fed in
// the same pieces: the same callbacks on the same spans, the same error at
// the same byte. Field names include runs of '~'; header values mix the
// bytes either side of every range edge (tab, CTLs, SP, '~', DEL, 0x80,
// 0xff, CR, LF) at lengths across 16-byte blocks.
#include <gtest/gtest.h>
#include <llhttp.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
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

// Where the piece being parsed is (`buf`) and where it starts in the
// message (`off`): spans are logged as offsets in the message.
struct Log {
  const char* buf;
  long off;
  std::vector<Event> ev;
};

template <int K>
int span(llhttp_t* p, const char* at, size_t n) {
  auto* l = static_cast<Log*>(p->data);
  l->ev.push_back({K, (at - l->buf) + l->off, n});
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

// A piece's bytes placed to end where an inaccessible page begins: a scan
// that reads one byte past `endp` faults, sanitizer or not. One mapping for
// every piece (llhttp holds no pointer into a piece once it returned).
char* guarded(const char* p, size_t n) {
  static constexpr size_t kRoom = 1 << 16;
  static char* room = [] {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void* m = mmap(nullptr, kRoom + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(static_cast<char*>(m) + kRoom, page, PROT_NONE) != 0) abort();
    return static_cast<char*>(m);
  }();
  if (n > kRoom) abort();
  return static_cast<char*>(memcpy(room + kRoom - n, p, n));
}

// Each piece is parsed where it ends at an inaccessible page (guarded()).
Result run(Exec exec, llhttp_type_t type, const std::string& in, const std::vector<size_t>& cuts) {
  llhttp_settings_t st = settings();
  llhttp_t p;
  llhttp_init(&p, type, &st);
  Log log{nullptr, 0, {}};
  p.data = &log;
  Result r;
  size_t at = 0;
  for (size_t i = 0; i <= cuts.size() && r.err == 0; i++) {
    size_t end = i < cuts.size() ? cuts[i] : in.size();
    char* piece = guarded(in.data() + at, end - at);
    log.buf = piece;
    log.off = (long)at;
    r.err = exec(&p, piece, piece + (end - at));
    if (r.err) r.err_at = llhttp_get_error_pos(&p) ? (llhttp_get_error_pos(&p) - piece) + (long)at : -2;
    at = end;
  }
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

// Every byte value at every offset of a header value three blocks long (and
// of one a block long, and one just over), in requests and answers, parsed
// whole and in pieces cut inside the value: the bytes that end a value
// (the controls but TAB, DEL) are each a byte pasture's own value scan
// must stop at (review 58: the random values above never held 0x01-0x07,
// 0x0c or 0x0e-0x1e).
TEST(LlhttpScan, EveryByteAtEveryOffsetOfAValue) {
  if (!__builtin_cpu_supports("sse4.2")) GTEST_SKIP() << "no SSE4.2 on this CPU";
  int stopped = 0, passed = 0;
  for (llhttp_type_t type : {HTTP_REQUEST, HTTP_RESPONSE}) {
    for (size_t len : {16, 17, 48}) {
      for (size_t k = 0; k < len; k++) {
        for (int b = 0; b < 256; b++) {
          std::string v(len, 'v');
          v[k] = (char)b;
          std::string head = type == HTTP_REQUEST ? "GET / HTTP/1.1\r\nHost: a\r\nCookie: "
                                                  : "HTTP/1.1 200 OK\r\nSet-Cookie: ";
          std::string in = head + v + "\r\nX-After: 1\r\nContent-Length: 2\r\n\r\nok";
          for (int split = 0; split < 2; split++) {
            std::vector<size_t> cuts;
            if (split) cuts = {head.size() + k / 2, head.size() + k + 1};
            Result a = run(llhttp__internal_execute, type, in, cuts);
            Result c = run(pasture_llhttp_execute_sse42, type, in, cuts);
            ASSERT_EQ(a.err, c.err) << "byte " << b << " at " << k << " of " << len;
            ASSERT_EQ(a.err_at, c.err_at) << "byte " << b << " at " << k << " of " << len;
            ASSERT_EQ(a.ev, c.ev) << "byte " << b << " at " << k << " of " << len;
            bool whole = false;  // the value came as one span of all its bytes
            for (const Event& e : a.ev)
              whole |= e.kind == 6 && e.off == (long)head.size() && e.len == len;
            (whole ? passed : stopped)++;
          }
        }
      }
    }
  }
  // Both ways out were taken: the bytes a value may hold, the ones that end it.
  EXPECT_GT(stopped, 2 * 81 * 30);
  EXPECT_GT(passed, 2 * 81 * 100);
}

}  // namespace
#endif
