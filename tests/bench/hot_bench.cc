// The per-request work of a worker, without sockets: what `perf` shows as
// pasture's own share (llhttp, head handling, routing, picking). Run:
//   build/tests/hot_bench
#include <benchmark/benchmark.h>
#include <llhttp.h>

#include <string>
#include <vector>

#include "common/balancer.h"
#include "common/shm_layout.h"
#include "tests/unit/collect_head.h"
#include "worker/head_check.h"
#include "worker/http_head.h"
#include "worker/proxy_head.h"
#include "worker/router.h"

namespace {

using namespace pasture;

const std::string kRequest =
    "GET /api/items?id=42 HTTP/1.1\r\nHost: app.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
    "Cookie: session=abcdef0123456789; theme=dark\r\n\r\n";

// bench --shapes headers: 30 more fields and 2 KiB of cookies (3.4 KiB).
std::string large_request() {
  std::string r = "GET /api/items?id=42 HTTP/1.1\r\nHost: app.example.com\r\n";
  for (int i = 1; i <= 30; i++)
    r += "X-Field-" + std::to_string(i) + ": value-" + std::to_string(i) + "-abcdef0123abcdef0123abcdef0123abcdef0123\r\n";
  r += "Cookie: ";
  for (int i = 1; i <= 32; i++) r += (i > 1 ? "; cookie" : "cookie") + std::to_string(i) + "=" + std::string(53, 'a' + i % 6);
  return r + "\r\n\r\n";
}
const std::string kLargeRequest = large_request();

struct Parser {
  llhttp_settings_t st;
  llhttp_t p;
  std::vector<worker::HeaderSpan> hs;
  worker::HeadCollector c;
  Parser() {
    hs.reserve(32);
    c.headers = &hs;
    st = worker::collector_settings();
    st.on_headers_complete = [](llhttp_t*) { return (int)HPE_PAUSED; };
  }
  void parse(const std::string& s) {
    llhttp_init(&p, HTTP_REQUEST, &st);
    p.data = &c;
    c.reset();
    c.base = s.data();
    llhttp_execute(&p, s.data(), s.size());
  }
};

conf::Site make_site() {
  conf::Site s;
  conf::Handler map;
  map.kind = conf::HandlerKind::UrlMap;
  map.entries = {{"", "/static", 1, {}}, {"", "/api", 2, {}}, {"", "", 2, {}}};
  conf::Handler echo, proxy;
  echo.kind = conf::HandlerKind::Echo;
  proxy.kind = conf::HandlerKind::Proxy;
  proxy.pool = 0;
  s.handlers = {map, echo, proxy};
  s.root = 0;
  return s;
}

void BM_Parse(benchmark::State& state) {
  Parser p;
  for (auto _ : state) {
    p.parse(kRequest);
    benchmark::DoNotOptimize(p.hs.size());
  }
}
BENCHMARK(BM_Parse);

// llhttp alone over bench --shapes headers' head (3.4 KiB, 32 fields).
void BM_ParseLarge(benchmark::State& state) {
  Parser p;
  for (auto _ : state) {
    p.parse(kLargeRequest);
    benchmark::DoNotOptimize(p.hs.size());
  }
}
BENCHMARK(BM_ParseLarge);

void BM_Route(benchmark::State& state) {
  conf::Site site = make_site();
  for (auto _ : state) benchmark::DoNotOptimize(worker::route(site, "app.example.com", "/api/items"));
}
BENCHMARK(BM_Route);

void BM_PickRoundRobin(benchmark::State& state) {
  shm::Region region;
  shm::LayoutSizes sz;
  sz.n_pools = 1;
  sz.n_servers = 2;
  sz.n_workers = 1;
  region.create(sz);
  lb::PoolParams params;
  params.servers = {{"a:1", 1, 0, false, false, 0}, {"b:1", 1, 0, false, false, 0}};
  lb::PoolState st;
  lb::build_tables(st, params);
  st.slot = region.pools();
  st.server_slots = region.servers();
  auto b = lb::make_balancer(lb::Method::RoundRobin);
  lb::RequestView rv;
  for (auto _ : state) benchmark::DoNotOptimize(b->pick(rv, st, 1));
}
BENCHMARK(BM_PickRoundRobin);

// What the worker hands build_proxy_head() for kRequest parsed by `p`.
worker::ProxyHeadInput head_input(const Parser& p) {
  worker::ProxyHeadInput in;
  in.method = "GET";
  in.url = worker::span_view(kRequest.data(), p.c.url);
  in.base = kRequest.data();
  in.headers = &p.hs;
  in.peer = "127.0.0.1";
  return in;
}

void BM_BuildUpstreamHead(benchmark::State& state) {
  Parser p;
  p.parse(kRequest);
  std::string out;
  out.reserve(1024);
  worker::ProxyHeadInput in = head_input(p);
  worker::ProxyHeadPolicy pol;
  pol.via = "pasture";  // the default: Via is added
  for (auto _ : state) {
    out.clear();
    worker::build_proxy_head(out, in, pol);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_BuildUpstreamHead);

void BM_WholeRequestPath(benchmark::State& state) {
  Parser p;
  conf::Site site = make_site();
  std::string out;
  out.reserve(1024);
  worker::ProxyHeadPolicy pol;
  pol.via = "pasture";
  for (auto _ : state) {
    p.parse(kRequest);
    worker::RequestTarget t;
    worker::split_target(worker::span_view(kRequest.data(), p.c.url), &t);
    auto r = worker::route(site, "app.example.com", t.path);
    worker::ProxyHeadInput in = head_input(p);
    out.clear();
    worker::build_proxy_head(out, in, pol);
    benchmark::DoNotOptimize(r.handler);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_WholeRequestPath);

// The client side of a large head: parse, the bare-CR scan, the checks,
// then the upstream head.
void BM_LargeHeadPath(benchmark::State& state) {
  Parser p;
  std::string out, scratch;
  out.reserve(8192);
  conf::ServerSettings srv;
  worker::ProxyHeadPolicy pol;
  pol.via = "pasture";
  for (auto _ : state) {
    p.parse(kLargeRequest);
    const char* end = kLargeRequest.data() + kLargeRequest.size();
    bool bare = worker::has_bare_cr(kLargeRequest.data(), end);
    worker::RequestHead rh;
    const char* why = nullptr;
    int status = worker::check_request_head(p.p, kLargeRequest.data(), p.c, srv, scratch, &rh, &why);
    worker::ProxyHeadInput in;
    in.method = "GET";
    in.url = worker::span_view(kLargeRequest.data(), p.c.url);
    in.base = kLargeRequest.data();
    in.headers = &p.hs;
    in.lines = true;  // as the worker's heads: llhttp parsed it whole
    in.peer = "127.0.0.1";
    out.clear();
    worker::build_proxy_head(out, in, pol);
    benchmark::DoNotOptimize(bare);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_LargeHeadPath);

}  // namespace

BENCHMARK_MAIN();
