// The accept step-aside (shm::share_view, Worker::balance): a worker holding more than
// its share of the open connections stops accepting for 2 ms, so that
// kept-alive connections spread over the workers. It must never leave a
// new connection waiting, whatever the shared view of who accepts says for
// a moment (review 35: a worker importing its app, a draining one,
// reuse_port's own sockets, workers added by TTIN), nor may a worker that
// cannot accept keep a connection's wake-up from the others (review 36: a
// full worker, with the listeners in EPOLLEXCLUSIVE mode; now the accept
// kick passes it on, also for a worker out of descriptors).
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "conf/json.h"
#include "tests/integration/raw_http.h"
#include "tests/support/sanitized.h"

namespace pasture::test {
namespace {

namespace json = conf::json;
using Clock = std::chrono::steady_clock;

const std::string kEchoSite =
    "[composite:main]\nuse = egg:Paste#urlmap\n/ = echo\n/status = stat\n\n"
    "[app:stat]\nuse = egg:pasture#status\n\n[app:echo]\nuse = egg:pasture#echo\n";

// `n` kept-alive connections, each answered once and left open.
std::vector<std::unique_ptr<HttpConn>> hold(uint16_t port, int n) {
  std::vector<std::unique_ptr<HttpConn>> v;
  for (int i = 0; i < n; i++) {
    auto c = std::make_unique<HttpConn>(port, Millis(8000));
    Response r = c->request("GET", "/hold");
    EXPECT_EQ(r.status, 200) << r.error;
    v.push_back(std::move(c));
  }
  return v;
}

// How many of `n` new connections, one after the other, were not answered
// within `limit` (each: connect, GET, answer, close). `gap`: a pause before
// each, so that every worker is back in epoll_wait when it comes (a busy
// worker also finds it on its ready list).
int slow_answers(uint16_t port, int n, Millis limit, std::string* detail, Millis gap = Millis(0)) {
  int slow = 0;
  for (int i = 0; i < n; i++) {
    std::this_thread::sleep_for(gap);
    auto t0 = Clock::now();
    HttpConn c(port, limit);
    Response r = c.request("GET", "/probe");
    auto ms = std::chrono::duration_cast<Millis>(Clock::now() - t0).count();
    if (r.status != 200 || Millis(ms) >= limit) {
      slow++;
      *detail += " #" + std::to_string(i) + ": " + std::to_string(r.status) + " in " + std::to_string(ms) + " ms";
    }
  }
  return slow;
}

// Open client connections per worker pid, from the status app (one of them
// is the status request's own).
std::map<int, uint64_t> connections_by_pid(uint16_t port) {
  std::map<int, uint64_t> m;
  Response r = http_get(port, "/status?format=json");
  EXPECT_EQ(r.status, 200) << r.error;
  if (r.status != 200) return m;
  json::Value v = json::parse(r.body);
  for (const json::Value& w : v.find("workers")->items())
    m[(int)typed_value(w, {"pid"})] = typed_value(w, {"connections"});
  return m;
}

// The worker pid holding each accepted connection, by the client's port:
// the workers' socket inodes (/proc/PID/fd) matched with /proc/net/tcp.
std::map<uint16_t, int> owner_by_client_port(int master, uint16_t server_port) {
  std::map<std::string, int> pid_of_inode;
  for (int pid : children_of(master)) {
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d)) {
        char link[128];
        ssize_t n = readlink((dir + "/" + e->d_name).c_str(), link, sizeof link - 1);
        if (n <= 0) continue;
        link[n] = 0;
        std::string l(link);
        if (l.rfind("socket:[", 0) == 0) pid_of_inode[l.substr(8, l.size() - 9)] = pid;
      }
      closedir(d);
    }
  }
  std::map<uint16_t, int> owner;
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  while (std::getline(tcp, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, st, q, tr, rt, uid, to, inode;
    f >> sl >> local >> remote >> st >> q >> tr >> rt >> uid >> to >> inode;
    if (st != "01") continue;  // ESTABLISHED
    if (std::stoul(local.substr(local.find(':') + 1), nullptr, 16) != server_port) continue;
    auto it = pid_of_inode.find(inode);
    if (it != pid_of_inode.end())
      owner[(uint16_t)std::stoul(remote.substr(remote.find(':') + 1), nullptr, 16)] = it->second;
  }
  return owner;
}

// Whether every worker of `master` takes connections (its app imported):
// 8 connections held, each answered, are owned by as many pids as there are
// workers (a worker holding 5 is over its share and steps aside for the
// others; one still importing its app takes none).
bool all_accepting(int master, uint16_t port) {
  auto held = hold(port, 8);
  std::map<uint16_t, int> owner;
  if (!wait_until([&] { return (owner = owner_by_client_port(master, port)).size() == held.size(); }))
    return false;
  std::set<int> pids;
  for (auto& [client_port, pid] : owner) pids.insert(pid);
  return pids.size() == children_of(master).size();
}

// Kills worker `victim` and waits until the master has replaced it (2 workers again).
bool kill_and_replace(int master, int victim) {
  if (kill(victim, SIGKILL) != 0) return false;
  return wait_until([&] {
    auto now = children_of(master);
    return now.size() == 2 && std::find(now.begin(), now.end(), victim) == now.end();
  });
}

// reuse_port: the kernel queues a connection on one worker's own socket
// whoever else accepts; a worker over its share stepped aside from those too,
// and they waited as long as the imbalance lasted (review 35 H-2: 4-6 of 20
// timed out after a kill -9 left one worker holding everything).
TEST(AcceptShare, ReusePortConnectionsAreAnsweredByAWorkerOverItsShare) {
  PastureServer srv("reuse_port = true\n" + kEchoSite, 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 2; }));
  auto held = hold(srv.port(), 40);
  auto pids = children_of(master);
  ASSERT_EQ(pids.size(), 2u);
  // Its connections close; the survivor holds the rest.
  ASSERT_TRUE(kill_and_replace(master, pids[0])) << srv.output();
  std::string detail;
  EXPECT_EQ(slow_answers(srv.port(), 30, Millis(1000), &detail), 0) << detail << "\n" << srv.output();
}

// A worker whose first connection-count fell after TTOU retired it kept
// clearing its "aside" flag, so the survivor over its share stepped aside
// for a worker that accepts nothing: new connections waited until it
// exited (review 35 M-1: about 7 s, up to graceful_timeout).
TEST(AcceptShare, ADrainingWorkerNeverCountsAsAccepting) {
  PastureServer srv("max_connections = 20\ngraceful_timeout = 8\n[app:main]\nuse = egg:pasture#echo\n", 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 2; }));
  // Requests whose bodies never finish fill both workers to max_connections
  // (each stops accepting: starved).
  std::map<uint16_t, std::unique_ptr<HttpConn>> busy;
  for (int i = 0; i < 40; i++) {
    auto c = std::make_unique<HttpConn>(srv.port());
    ASSERT_TRUE(c->send_raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789"));
    busy[c->local_port()] = std::move(c);
  }
  std::map<uint16_t, int> owner;
  ASSERT_TRUE(wait_until([&] { return (owner = owner_by_client_port(master, srv.port())).size() == 40; }))
      << owner.size() << "\n" << srv.output();
  auto wp = srv.worker_pids();  // TTOU retires the newest: worker 1
  ASSERT_EQ(wp.size(), 2u) << srv.output();
  int retiring = wp[1];
  srv.proc().signal(SIGTTOU);
  ASSERT_TRUE(wait_for_output(srv.proc(), "workers: 1")) << srv.output();
  // The retiring worker keeps 2, the survivor 12: more than its share (14
  // / 2 + 2) if the retiring one counted as accepting.
  int keep_retiring = 2, keep_survivor = 12;
  for (auto& [port, pid] : owner) {
    int& keep = pid == retiring ? keep_retiring : keep_survivor;
    if (keep > 0)
      keep--;
    else
      busy.erase(port);
  }
  ASSERT_TRUE(wait_until([&] { return owner_by_client_port(master, srv.port()).size() == 14; }));
  std::string detail;
  EXPECT_EQ(slow_answers(srv.port(), 10, Millis(1000), &detail), 0) << detail << "\n" << srv.output();
}

// Workers added by TTIN after the others started were not in their view of
// the slots: the spread of kept-alive connections went uneven (review 35
// M-2: 53/129/13/5 after 4 -> 1 -> 4; a fresh 4-worker server ~50 each).
TEST(AcceptShare, WorkersAddedByTtinTakeTheirShare) {
  PastureServer srv(kEchoSite, 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  for (int n = 2; n <= 4; n++) {  // one at a time: pending signals of one kind coalesce
    srv.proc().signal(SIGTTIN);
    ASSERT_TRUE(wait_until([&] { return children_of(master).size() == (size_t)n; })) << srv.output();
  }
  ASSERT_TRUE(wait_until([&] { return connections_by_pid(srv.port()).size() == 4; })) << srv.output();
  auto held = hold(srv.port(), 200);
  auto by_pid = connections_by_pid(srv.port());
  ASSERT_EQ(by_pid.size(), 4u);
  std::string spread;
  for (auto& [pid, n] : by_pid) spread += " " + std::to_string(n);
  for (auto& [pid, n] : by_pid) {
    EXPECT_GE(n, 30u) << "connections per worker:" << spread;
    EXPECT_LE(n, 75u) << "connections per worker:" << spread;
  }
}

// A WSGI app, pasture_slowimport:factory, in `mod`, whose import takes 3 s
// once the file "slow" exists beside it.
void write_slow_import_app(TempDir& mod) {
  mod.write("pasture_slowimport.py",
            "import os, time\n"
            "if os.path.exists(os.path.join(os.path.dirname(__file__), 'slow')): time.sleep(3)\n"
            "def app(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '3')])\n"
            "    return [b'ok\\n']\n"
            "def factory(global_conf, **local):\n"
            "    return app\n");
}

// A worker still importing its app (after a kill -9, or TTIN) has its pid in
// its slot but accepts nothing; the survivors over their share stepped aside
// for it, and new connections waited for the whole import (review 35 H-1).
TEST(AcceptShare, AWorkerImportingItsAppDoesNotMakeTheOthersStepAside) {
  TempDir mod;
  write_slow_import_app(mod);
  const char* old = getenv("PYTHONPATH");
  std::string saved = old ? old : "";
  setenv("PYTHONPATH", mod.path().c_str(), 1);
  PastureServer srv("graceful_timeout = 5\n[composite:main]\nuse = egg:Paste#urlmap\n/ = py\n/status = stat\n\n"
                    "[app:stat]\nuse = egg:pasture#status\n\n"
                    "[app:py]\npaste.app_factory = pasture_slowimport:factory\n", 2);
  if (old)
    setenv("PYTHONPATH", saved.c_str(), 1);
  else
    unsetenv("PYTHONPATH");
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  ASSERT_TRUE(wait_until([&] { return connections_by_pid(srv.port()).size() == 2; })) << srv.output();
  auto held = hold(srv.port(), 40);
  // The worker holding fewer connections dies; its replacement imports for
  // 3 s while the survivor holds more than half.
  auto by_pid = connections_by_pid(srv.port());
  ASSERT_EQ(by_pid.size(), 2u);
  int victim = by_pid.begin()->second <= by_pid.rbegin()->second ? by_pid.begin()->first : by_pid.rbegin()->first;
  mod.write("slow", "");
  ASSERT_TRUE(kill_and_replace(master, victim)) << srv.output();
  std::string detail;
  EXPECT_EQ(slow_answers(srv.port(), 10, Millis(1000), &detail), 0) << detail << "\n" << srv.output();
}

// A worker the kernel woke for a connection dies before it accepts it (a
// crash, the OOM killer): the master kicks the others when it reaps a
// worker, and the connection waits neither for the replacement's app import
// (3 s) nor for the next connection (review 53 M-2: 3,275 ms).
TEST(AcceptShare, AWorkerDyingBeforeItAcceptsLeavesTheConnectionToTheOthers) {
  TempDir mod;
  write_slow_import_app(mod);
  std::string die = mod.path() + "/die";
  Process::Env env = preload_env(PASTURE_ACCEPT_DIES, {{"PASTURE_TEST_DIE_AT_ACCEPT", die}, {"PYTHONPATH", mod.path()}});
  PastureServer srv("[app:main]\npaste.app_factory = pasture_slowimport:factory\n", 2, {}, env);
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 2; }));
  // Both have imported the app before the import turns slow: one still
  // importing then would take 3 s itself, and with the other dead the
  // connection had nobody to take it (1 run in 20 under ctest -j2's load).
  ASSERT_TRUE(wait_until([&] { return all_accepting(master, srv.port()); })) << srv.output();
  std::string detail;
  ASSERT_EQ(slow_answers(srv.port(), 2, Millis(2000), &detail, Millis(50)), 0) << detail << srv.output();
  mod.write("slow", "");  // the replacement imports for 3 s
  mod.write("die", "");   // the next worker to accept dies first
  std::this_thread::sleep_for(Millis(50));
  EXPECT_EQ(slow_answers(srv.port(), 1, Millis(1000), &detail), 0) << detail << "\n" << srv.output();
  EXPECT_FALSE(std::ifstream(die).good()) << "no worker died at its accept";
}

// A worker woken for one connection accepts it and calls accept4() no
// more: the listener is level-triggered (its event comes back while more
// wait), and an accept4() made only to meet EAGAIN costs the kernel a
// socket and a file made and undone: 2.2 µs a connection of the close
// shape's ~45 (bench --shapes, 1 worker). 100 connections one after the
// other, each answered and closed: before, each cost one accept4() that
// met EAGAIN. The shim logs the accepts too, so a shim that did not load
// cannot pass for none.
TEST(AcceptShare, AWorkerWokenForOneConnectionMakesOneAccept) {
  TempDir dir;
  std::string log = dir.path() + "/accepts";
  Process::Env env = preload_env(PASTURE_ACCEPT_COUNT, {{"PASTURE_TEST_ACCEPT_LOG", log}});
  // One worker: with two, one busy when the other is woken finds the
  // listener on its ready list too (EPOLLEXCLUSIVE), and its accept4() may
  // meet EAGAIN for a connection the other took (0-30 of 100 here).
  PastureServer srv(kEchoSite, 1, {}, env);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::string detail;
  ASSERT_EQ(slow_answers(srv.port(), 100, Millis(2000), &detail), 0) << detail << srv.output();
  std::ifstream in(log);
  std::string calls((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t accepted = std::count(calls.begin(), calls.end(), 'a');
  size_t eagain = std::count(calls.begin(), calls.end(), 'e');
  EXPECT_GE(accepted, 100u) << "accept4() calls that took a connection (the shim loaded?)";
  EXPECT_LT(eagain, 10u) << "accept4() calls that met EAGAIN, for 100 connections";
}

// A worker at max_connections woken for a listener does not accept; with
// EPOLLEXCLUSIVE no other worker was woken, and the connection waited for
// the next one to arrive (review 36 H-1: 15 s and more). Both workers full,
// then one is killed: its replacement has room and must get the next one.
TEST(AcceptShare, AFullWorkerLeavesTheConnectionToOneWithRoom) {
  PastureServer srv("max_connections = 10\n[app:main]\nuse = egg:pasture#echo\n", 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 2; }));
  auto held = hold(srv.port(), 20);
  std::map<uint16_t, int> owner;
  ASSERT_TRUE(wait_until([&] { return (owner = owner_by_client_port(master, srv.port())).size() == 20; }));
  std::map<int, int> per_pid;
  for (auto& [port, pid] : owner) per_pid[pid]++;
  ASSERT_EQ(per_pid.size(), 2u);
  // Both full: the listeners come back to their sets after the full pause
  // (1 s), and the survivor is woken first for what comes next.
  std::this_thread::sleep_for(Millis(1500));
  int victim = per_pid.begin()->first;
  ASSERT_TRUE(kill_and_replace(master, victim)) << srv.output();
  std::this_thread::sleep_for(Millis(1000));  // the replacement's listeners are in its set
  std::string detail;
  EXPECT_EQ(slow_answers(srv.port(), 5, Millis(1000), &detail), 0) << detail << "\n" << srv.output();
}

// The lowest descriptor number `pid` has free: a soft RLIMIT_NOFILE there
// makes its next accept4() fail with EMFILE.
int lowest_free_fd(int pid) {
  std::vector<bool> used;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      size_t n = std::stoul(e->d_name);
      if (n >= used.size()) used.resize(n + 1);
      used[n] = true;
    }
    closedir(d);
  }
  size_t i = 0;
  while (i < used.size() && used[i]) i++;
  return (int)i;
}

// A worker woken alone (EPOLLEXCLUSIVE) whose accept4() fails for want of
// descriptors leaves the connection queued; it must wake the others (the
// accept kick), not keep the connection until the next one arrives or it
// has descriptors again. The kernel wakes the idle worker first in the
// listener's wait queue, which is the one that took the last connection
// with both idle: that one is starved for the next. A log line of the
// failure did not prove it (review 54 L-1: accept4 fails before it looks
// at the queue, so a worker that found the listener on its ready list
// after the other was woken logged it too, and the test passed 2 of 8
// times without the kick).
TEST(AcceptShare, AWorkerOutOfDescriptorsLeavesTheConnectionToTheOthers) {
  PastureServer srv(kEchoSite, 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 2; }));
  std::string detail;
  ASSERT_EQ(slow_answers(srv.port(), 4, Millis(2000), &detail, Millis(20)), 0) << detail;
  std::set<int> starved_ones;
  for (int round = 0; round < 4; round++) {
    std::this_thread::sleep_for(Millis(150));  // a starved worker's pause is over: both idle
    int first = 0;
    {
      HttpConn c(srv.port(), Millis(2000));
      ASSERT_EQ(c.request("GET", "/probe").status, 200);
      std::map<uint16_t, int> owner = owner_by_client_port(master, srv.port());
      ASSERT_EQ(owner.size(), 1u);
      first = owner.begin()->second;
    }
    ASSERT_TRUE(wait_until([&] { return owner_by_client_port(master, srv.port()).empty(); }));
    std::this_thread::sleep_for(Millis(20));
    rlimit was{};
    ASSERT_EQ(prlimit(first, RLIMIT_NOFILE, nullptr, &was), 0) << strerror(errno);
    rlimit low = was;
    low.rlim_cur = (rlim_t)lowest_free_fd(first);
    ASSERT_EQ(prlimit(first, RLIMIT_NOFILE, &low, nullptr), 0) << strerror(errno);
    detail.clear();
    EXPECT_EQ(slow_answers(srv.port(), 1, Millis(1000), &detail), 0)
        << "worker " << first << " out of descriptors:" << detail << "\n" << srv.output();
    ASSERT_EQ(prlimit(first, RLIMIT_NOFILE, &was, nullptr), 0) << strerror(errno);
    starved_ones.insert(first);
  }
  // Each starved worker logs its first failure (then one line per 5 s).
  for (int pid : starved_ones) {
    std::istringstream out(srv.output());
    int logged = 0;
    for (std::string line; std::getline(out, line);)
      logged += line.find("pasture[" + std::to_string(pid) + "] worker") != std::string::npos &&
                line.find("accept4() failed") != std::string::npos;
    EXPECT_EQ(logged, 1) << "worker " << pid << " was starved\n" << srv.output();
  }
  EXPECT_EQ(children_of(master).size(), 2u) << srv.output();
}

// Voluntary context switches of `pid`'s threads so far: each is a sleep,
// so each wake-up counts one.
uint64_t sleeps_of(int pid) {
  uint64_t n = 0;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream f(dir + "/" + e->d_name + "/status");
      std::string line;
      while (std::getline(f, line))
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0) n += std::stoull(line.substr(24));
    }
    closedir(d);
  }
  return n;
}

// The listeners are exclusive: a new connection wakes one idle worker, not
// every one of them to race accept4 (the thundering herd; review 53 L-6:
// with the herd back, every other test here passed).
TEST(AcceptShare, ANewConnectionWakesOneIdleWorker) {
  PastureServer srv(kEchoSite, 4);
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 4; }));
  std::this_thread::sleep_for(Millis(300));
  auto sleeps = [&] {
    uint64_t n = 0;
    for (int pid : children_of(master)) n += sleeps_of(pid);
    return n;
  };
  uint64_t before = sleeps();
  auto t0 = Clock::now();
  std::string detail;
  EXPECT_EQ(slow_answers(srv.port(), 40, Millis(1000), &detail, Millis(10)), 0) << detail;
  uint64_t woken = sleeps() - before;
  // The loops' ticks (every 100 ms in each worker) are not the listener's:
  // on a slow run they alone would reach the bound (review 54 L-2).
  auto ms = std::chrono::duration_cast<Millis>(Clock::now() - t0).count();
  uint64_t ticks = 4 * (uint64_t)ms / 100;
  uint64_t by_connections = woken > ticks ? woken - ticks : 0;
  RecordProperty("wakeups", (int)woken);
  RecordProperty("ticks", (int)ticks);
  // One wake-up per connection for its worker (more when its request comes
  // apart from the connect): 60 in all here, 40 of them not ticks
  // (2026-12-03); the herd: 4 or more per connection (225-236 in all).
  // Under CPU load up to 117 (review 55 L-3); the herd 234-237 even so.
  EXPECT_LT(by_connections, 160u) << woken << " wake-ups in " << ms << " ms\n" << srv.output();
}

// A burst of connects (a client opening 40 connections at once from two
// threads, as wrk does) spreads over the workers: the worker that stepped
// aside first comes back when the last one accepting goes over its share,
// and that one steps aside for it while connections are still queued
// (review 54 M-2: it called the other back only at the end of its turn,
// when it had taken the rest: 8 and 43 of 51 in 7 of 12 wrk runs).
TEST(AcceptShare, ABurstOfConnectsSpreadsOverTheWorkers) {
  PastureServer srv(kEchoSite, 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 2; }));
  std::string detail;
  ASSERT_EQ(slow_answers(srv.port(), 4, Millis(2000), &detail, Millis(20)), 0) << detail;
  // When both workers share a core, one may still run through a whole
  // burst before the other is scheduled: most rounds, not all. The lesser
  // worker held one batch (8) or so in half the rounds before (review 55
  // L-2: 6 rounds missed it 7 times in 12).
  std::string spreads;
  int uneven = 0;
  for (int round = 0; round < 12; round++) {
    std::vector<Fd> conns[2];
    std::atomic<int> ready{0};
    auto burst = [&](std::vector<Fd>* out) {
      for (ready++; ready < 2;) {
      }
      for (int i = 0; i < 20; i++) out->push_back(connect_loopback(srv.port()));
    };
    std::thread a(burst, &conns[0]), b(burst, &conns[1]);
    a.join();
    b.join();
    for (auto& v : conns)
      for (Fd& fd : v) ASSERT_TRUE(fd.valid());
    std::map<uint16_t, int> owner;
    ASSERT_TRUE(wait_until([&] { return (owner = owner_by_client_port(master, srv.port())).size() == 40; }));
    std::map<int, int> per_pid;
    for (auto& [port, pid] : owner) per_pid[pid]++;
    int least = per_pid.size() < 2 ? 0 : std::min(per_pid.begin()->second, per_pid.rbegin()->second);
    spreads += " " + std::to_string(least) + "/" + std::to_string(40 - least);
    uneven += least <= 9;
    for (auto& v : conns) v.clear();
    ASSERT_TRUE(wait_until([&] { return owner_by_client_port(master, srv.port()).empty(); }));
    std::this_thread::sleep_for(Millis(20));  // no worker left aside
  }
  RecordProperty("spreads", spreads);
  EXPECT_LE(uneven, 3) << "the fewer of 40 connections a worker took, per round:" << spreads;
}

// A WSGI app, pasture_sleepy:factory, in `mod`: GET /sleep takes 1.5 s, and
// the app is called on the worker's loop (threads = 1), which waits for it.
void write_sleepy_app(TempDir& mod) {
  mod.write("pasture_sleepy.py",
            "import time\n"
            "def app(environ, start_response):\n"
            "    if environ['PATH_INFO'] == '/sleep': time.sleep(1.5)\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '3')])\n"
            "    return [b'ok\\n']\n"
            "def factory(global_conf, **local):\n"
            "    return app\n");
}

// A worker blocked in an app call counts as accepting but takes nothing:
// the other, over its share in a burst, stepped aside for it with
// connections still queued and took them 8 per 2 ms (review 54 M-1: the
// last of 200 answered at 57 ms instead of 12). It steps aside in the
// middle of a queue only for a worker waiting in epoll_wait now. 800
// connects: 99 pauses, 198 ms at least, the old way.
TEST(AcceptShare, AWorkerBlockedInItsAppDoesNotSlowABurstForTheOther) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 2048 && rl.rlim_max >= 2048) {
    rl.rlim_cur = 2048;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  ASSERT_GE(rl.rlim_cur, 1024u);
  const int n = rl.rlim_cur >= 2048 ? 800 : 600;
  TempDir mod;
  write_sleepy_app(mod);
  PastureServer srv("[app:main]\npaste.app_factory = pasture_sleepy:factory\n", 2, {},
                    {{"PYTHONPATH", mod.path()}});
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 2; }));
  std::string detail;
  ASSERT_EQ(slow_answers(srv.port(), 4, Millis(2000), &detail, Millis(20)), 0) << detail;
  std::thread blocker([&] {
    HttpConn c(srv.port(), Millis(5000));
    EXPECT_EQ(c.request("GET", "/sleep").status, 200);
  });
  std::this_thread::sleep_for(Millis(200));  // its worker is in the app
  auto t0 = Clock::now();
  std::vector<Fd> conns;
  const std::string req = "GET /x HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < n; i++) {
    conns.push_back(connect_loopback(srv.port()));
    ASSERT_TRUE(conns.back().valid());
    ASSERT_EQ(send(conns.back().get(), req.data(), req.size(), MSG_NOSIGNAL), (ssize_t)req.size());
  }
  // Every answer ends in "ok\n" (one read each: they are small).
  std::vector<pollfd> pfds;
  for (Fd& fd : conns) pfds.push_back({fd.get(), POLLIN, 0});
  int answered = 0;
  while (answered < n && Clock::now() - t0 < Millis(1000)) {
    if (poll(pfds.data(), pfds.size(), 100) <= 0) continue;
    for (pollfd& p : pfds) {
      if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[512];
      ssize_t got = recv(p.fd, buf, sizeof buf, 0);
      EXPECT_GT(got, 0);
      EXPECT_NE(std::string(buf, got > 0 ? got : 0).find("200 OK"), std::string::npos);
      p.fd = -1;
      answered++;
    }
  }
  auto ms = std::chrono::duration_cast<Millis>(Clock::now() - t0).count();
  blocker.join();
  RecordProperty("burst_ms", (int)ms);
  ASSERT_EQ(answered, n) << "answered before the blocked worker's app call ended" << srv.output();
  EXPECT_LT(ms, 170) << n << " connects answered by the free worker in " << ms << " ms";
}

// A binary upgrade: the old master's worker, full, is woken first for a
// connection; its kick must reach the new master's worker, which has room
// (the new master inherits the kick with the listen sockets).
TEST(AcceptShare, AFullWorkerOfTheOldMasterLeavesTheConnectionToTheNewOne) {
  PastureServer srv("max_connections = 2\n" + kEchoSite, 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  int master = srv.proc().pid();
  ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 1; }));
  auto held = hold(srv.port(), 2);
  // Full, the worker leaves the listener for 1 s, then comes back to its
  // wait queue: ahead of the new master's worker, which joins after.
  std::this_thread::sleep_for(Millis(1500));
  ASSERT_TRUE(srv.proc().signal(SIGUSR2));
  ASSERT_TRUE(wait_until([&] { return occurrences(srv.output(), "serving on") >= 2; })) << srv.output();
  std::this_thread::sleep_for(Millis(500));  // the new worker's listener is in its set
  std::string detail;
  EXPECT_EQ(slow_answers(srv.port(), 3, Millis(1000), &detail, Millis(50)), 0) << detail << "\n" << srv.output();
}

}  // namespace
}  // namespace pasture::test
