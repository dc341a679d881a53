// Google Benchmark of Balancer::pick() per method, on a pool of 8 servers in
// a real shm::Region. Arg 0: one process. Arg 1: a forked second process
// picks from the same pool in a loop (and counts its requests in and out of
// ServerSlot::active, as a worker does) while the benchmark runs, so shared
// cache lines bounce between cores as they do between workers.
//
//   build-lb/tests/lb_bench [--benchmark_filter=hash]
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "common/balancer.h"
#include "common/shm_layout.h"
#include "common/sticky_cookie.h"

namespace pasture::lb {
namespace {

constexpr uint32_t kWeights[] = {5, 1, 1, 3, 2, 1, 4, 1};
constexpr int32_t kActive[] = {4, 1, 1, 2, 2, 1, 3, 1};
constexpr size_t kServers = std::size(kWeights);
constexpr size_t kKeys = 1024;  // power of two

struct Setup {
  Method method;
  Consistency consistent = Consistency::Maglev;
  bool with_cookie = false;
};

// Everything one benchmark run needs, built like the worker builds it.
class Bench {
 public:
  explicit Bench(const Setup& s) {
    shm::LayoutSizes sz;
    sz.n_pools = 1;
    sz.n_servers = kServers;
    sz.n_workers = 2;
    if (!region_.create(sz)) throw std::runtime_error("mmap failed");
    PoolParams p;
    p.method = s.method;
    p.consistent = s.consistent;
    p.cookie_secret = "bench-secret";
    for (size_t i = 0; i < kServers; i++) {
      ServerParams sp;
      sp.id = "10.0.0." + std::to_string(i + 1) + ":8080";
      sp.weight = kWeights[i];
      p.servers.push_back(sp);
      region_.servers()[i].active.store(kActive[i]);
    }
    state_.slot = &region_.pools()[0];
    state_.server_slots = region_.servers();
    build_tables(state_, p);
    balancer_ = make_balancer(s.method);
    for (size_t i = 0; i < kKeys; i++) {
      keys_.push_back("/api/v1/users/" + std::to_string(i * 7919) + "/profile?lang=en");
      addrs_.push_back("192.168." + std::to_string(i / 256) + "." + std::to_string(i % 256));
    }
    if (s.with_cookie) cookie_ = make_sticky_cookie(p.cookie_secret, p.servers[3].id, unix_seconds());
  }

  int pick(size_t i) {
    RequestView rv;
    rv.client_addr = addrs_[i & (kKeys - 1)];
    rv.hash_key = keys_[i & (kKeys - 1)];
    rv.sticky_cookie = cookie_;
    rv.rng = &rng_;
    return balancer_->pick(rv, state_, 1000);
  }

  // A second process picking until stop() (Arg 1); a no-op for Arg 0.
  void start_rival(bool contended) {
    if (!contended) return;
    stop_ = static_cast<std::atomic<int>*>(
        mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    stop_->store(0);
    rival_ = fork();
    if (rival_ != 0) return;
    rng_ = WyRand(seed_from_os());
    for (size_t i = 0; !stop_->load(std::memory_order_relaxed); i++) {
      int s = pick(i * 31);
      if (s < 0) continue;
      state_.server_slots[s].active.fetch_add(1, std::memory_order_relaxed);
      state_.server_slots[s].active.fetch_sub(1, std::memory_order_relaxed);
    }
    _exit(0);
  }

  void stop_rival() {
    if (rival_ <= 0) return;
    stop_->store(1);
    waitpid(rival_, nullptr, 0);
    munmap(stop_, 4096);
    rival_ = -1;
  }

 private:
  shm::Region region_;
  PoolState state_;
  std::unique_ptr<Balancer> balancer_;
  WyRand rng_{12345};
  std::vector<std::string> keys_, addrs_;
  std::string cookie_;
  std::atomic<int>* stop_ = nullptr;
  pid_t rival_ = -1;
};

void BM_Pick(benchmark::State& st, Setup setup) {
  Bench b(setup);
  b.start_rival(st.range(0) != 0);
  size_t i = 0;
  for (auto _ : st) benchmark::DoNotOptimize(b.pick(i++));
  b.stop_rival();
  st.SetItemsProcessed(st.iterations());
}

#define PICK_BENCH(name, ...) \
  BENCHMARK_CAPTURE(BM_Pick, name, Setup{__VA_ARGS__})->Arg(0)->Arg(1)->ArgName("procs2")

PICK_BENCH(round_robin, Method::RoundRobin);
PICK_BENCH(least_conn, Method::LeastConn);
PICK_BENCH(random, Method::Random);
PICK_BENCH(random2, Method::Random2);
PICK_BENCH(ip_hash, Method::IpHash);
PICK_BENCH(hash_maglev, Method::Hash, Consistency::Maglev);
PICK_BENCH(hash_ring, Method::Hash, Consistency::Ring);
PICK_BENCH(hash_none, Method::Hash, Consistency::None);
PICK_BENCH(cookie_valid, Method::Cookie, Consistency::Maglev, true);
PICK_BENCH(cookie_none, Method::Cookie, Consistency::Maglev, false);

}  // namespace
}  // namespace pasture::lb

BENCHMARK_MAIN();
