// Broken and unusual configs: every one must load (when paste.deploy would
// accept it) or fail with a ConfigError naming a file and a line. Never a
// crash, a hang, or another exception type.
//
// Seeds: the paste corpus (../shared/corpus/paste beside the repo, as
// ConfCorpus reads it; skipped when absent), conf/examples/*.ini and a few
// pasture configs below that use every pool and server key. Each seed is
// mutated (truncated at every line, a line duplicated, a section header
// removed, `%(` broken, an unknown egg, garbage values for pasture's keys,
// a missing config: include, use/pipeline/include cycles) and loaded in
// process with load_site().
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>

#include "conf/inspect.h"
#include "conf/json.h"
#include "conf/load.h"
#include "conf_test_util.h"

namespace pasture::conf {
namespace {

namespace fs = std::filesystem;

using testing::kCorpus;
using testing::slurp;

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

bool is_header(const std::string& l) { return !l.empty() && l[0] == '['; }

// "key = value" at the start of a line (not a continuation): the key.
std::string key_of(const std::string& l) {
  if (l.empty() || l[0] == ' ' || l[0] == '\t' || l[0] == '#' || l[0] == ';' || l[0] == '[') return "";
  size_t eq = l.find_first_of("=:");
  if (eq == std::string::npos) return "";
  std::string k = l.substr(0, eq);
  while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
  return k;
}

// Pasture configs that use the keys pasture validates itself.
const char* const kPastureSeeds[] = {
    R"([server:main]
use = egg:pasture#main
host = 127.0.0.1
port = 8080
workers = 2
graceful_timeout = 30s
worker_timeout = 30s
client_header_timeout = 60s
client_body_timeout = 60s
keepalive_timeout = 75s
max_requests = 1000
max_requests_jitter = 50

[composite:main]
use = egg:Paste#urlmap
/ = pool
/old = old
/hello = hello

[app:pool]
use = egg:pasture#balancer
servers =
    127.0.0.1:8001 weight=3 max_fails=2 fail_timeout=5s slow_start=10s
    127.0.0.1:8002 max_conns=10
    127.0.0.1:8003 backup
method = least_conn
connect_timeout = 5s
read_timeout = 60s
send_timeout = 60s
keepalive = 16
retries = 1
retry_on = error timeout http_502
retry_budget = 20
fail_on = 502 503 504
health_check = /health
health_interval = 2s
health_timeout = 1s
rise = 2
fall = 3
health_status = 200-399

[app:old]
use = egg:Paste#proxy
address = http://127.0.0.1:9000

[app:hello]
use = egg:pasture#echo
name = hi
)",
    R"([DEFAULT]
port = 8090
secret = s3cret

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:%(port)s

[pipeline:main]
pipeline = balancer app

[filter:balancer]
use = egg:Paste#balancer
servers = 127.0.0.1:8001 127.0.0.1:8002
method = cookie
cookie_name = sticky
cookie_secret = %(secret)s

[app:app]
use = egg:pasture#echo
)",
    R"([server:main]
use = egg:pasture#main
port = 8091

[app:main]
use = egg:pasture#balancer
method = hash
hash_key = header:X-User
consistent = maglev
servers = 127.0.0.1:8001 127.0.0.1:8002 unix:/tmp/pasture-fuzz.sock
)",
};

// Values a careless operator might write, per key pasture parses.
const std::map<std::string, std::vector<std::string>> kGarbage = {
    {"workers", {"-1", "0", "abc", "99999999999", ""}},
    {"port", {"99999", "-1", "0x50", "", "80 81"}},
    {"host", {"", "[::1", "999.1.1.1"}},
    {"listen", {"", "127.0.0.1:", ":99999", "[::1"}},
    {"graceful_timeout", {"abc", "-1", "1e9", ""}},
    {"worker_timeout", {"abc", "5x", ""}},
    {"client_header_timeout", {"abc", "."}},
    {"keepalive_timeout", {"-5s"}},
    {"max_requests", {"-1", "x"}},
    {"max_requests_jitter", {"-1", "x"}},
    {"connect_timeout", {"abc", "1.2.3", "ms", ""}},
    {"read_timeout", {"abc", "99999999999s"}},
    {"send_timeout", {"abc"}},
    {"servers",
     {"", "   ", "127.0.0.1:8001 weight=0", "127.0.0.1:8001 weight=-1", "127.0.0.1:99999", "127.0.0.1:8001 bogus",
      "127.0.0.1:8001 127.0.0.1:8001", "unix:", "127.0.0.1:8001 slow_start=abc", "127.0.0.1:8001 fail_timeout=0",
      "127.0.0.1:8001 max_fails=x", "weight=2", ":8001", "[::1]:8001 max_conns=-1"}},
    {"method", {"", "fastest", "ROUND_ROBIN"}},
    {"keepalive", {"-1", "many"}},
    {"retries", {"-1", "1000", "x"}},
    {"retry_on", {"", "everything", "http_200"}},
    {"retry_budget", {"-5", "101", "x%", ""}},
    {"fail_on", {"", "600", "200-100", "abc"}},
    {"health_check", {"", "health", "http://x/", "/a b"}},
    {"health_interval", {"0", "abc", ""}},
    {"health_timeout", {"0", "abc"}},
    {"rise", {"0", "-1", "x"}},
    {"fall", {"0", "x"}},
    {"health_status", {"", "99", "200-", "abc"}},
    {"hash_key", {"", "header:", "cookie:", "body"}},
    {"consistent", {"", "sometimes"}},
    {"cookie_name", {"", "a b", "a;b"}},
    {"cookie_secret", {""}},
    {"hash_whole_ip", {"maybe"}},
    {"address", {"", "ftp://x", "http://", "http://127.0.0.1:99999"}},
    {"pipeline", {"", "nothing_here", "balancer"}},
    {"use", {"", "egg:", "egg:NoSuchDist#nope", "egg:Paste#nothing", "config:", "call:", "call:no_colon"}},
};

const char* const kServerTail = "\n[server:main]\nuse = egg:pasture#main\nport = 8080\n";

struct Variant {
  std::string what;
  std::string text;
};

// The mutations of `text`. Truncation, duplication and appended
// interpolation take every line of a file up to `per_mutation` lines, then
// `per_mutation` lines spread evenly (the corpus has files of 1,000 lines
// and 40 files: every line of each would take a minute).
std::vector<Variant> variants(const std::string& text, size_t per_mutation) {
  std::vector<std::string> lines = split_lines(text);
  std::vector<Variant> out;
  size_t step = lines.size() / per_mutation + 1;
  // Truncated at every line.
  for (size_t n = 0; n < lines.size(); n += step)
    out.push_back({"truncated to " + std::to_string(n) + " lines",
                   join_lines(std::vector<std::string>(lines.begin(), lines.begin() + (long)n))});
  // Each line duplicated; each header removed.
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < lines.size(); i++) {
    if (i % step == 0) {
      auto dup = lines;
      dup.insert(dup.begin() + (long)i, lines[i]);
      out.push_back({"line " + std::to_string(i + 1) + " duplicated", join_lines(dup)});
    }
    if (is_header(lines[i]) && seen["["]++ < per_mutation) {
      auto rm = lines;
      rm.erase(rm.begin() + (long)i);
      out.push_back({"header of line " + std::to_string(i + 1) + " removed", join_lines(rm)});
    }
  }
  // Interpolation broken: unterminated, unknown name, bad format character.
  for (size_t i = 0; i < lines.size(); i++) {
    size_t p = lines[i].find("%(");
    if (p == std::string::npos ? i % step != 0 : seen["%("]++ >= per_mutation) continue;
    if (p != std::string::npos) {
      for (const char* repl : {"%(", "%(nope)s", "%(here)d"}) {
        auto m = lines;
        m[i] = m[i].substr(0, p) + repl;
        out.push_back({"line " + std::to_string(i + 1) + ": interpolation cut to " + repl, join_lines(m)});
      }
    } else if (!key_of(lines[i]).empty()) {
      for (const char* repl : {" %(", " %(nope)s"}) {
        auto m = lines;
        m[i] += repl;
        out.push_back({"line " + std::to_string(i + 1) + ": appended " + std::string(repl), join_lines(m)});
      }
    }
  }
  // Garbage values for keys pasture parses (and `use`): the first
  // `per_mutation` such keys of each name.
  for (size_t i = 0; i < lines.size(); i++) {
    auto g = kGarbage.find(key_of(lines[i]));
    if (g == kGarbage.end() || seen[g->first]++ >= per_mutation) continue;
    // A multi-line value: drop its continuation lines.
    size_t end = i + 1;
    while (end < lines.size() && !lines[end].empty() && (lines[end][0] == ' ' || lines[end][0] == '\t')) end++;
    for (const std::string& v : g->second) {
      auto m = lines;
      m.erase(m.begin() + (long)i + 1, m.begin() + (long)end);
      m[i] = g->first + " = " + v;
      out.push_back({"line " + std::to_string(i + 1) + ": " + g->first + " = '" + v + "'", join_lines(m)});
    }
  }
  return out;
}

enum class Outcome {
  Accepted,
  ErrorWithLine,
  ErrorForFile,  // "file: ..." where no line applies: the section asked for exists nowhere
  ErrorWithoutLine,
  OtherException,
};

struct Result {
  Outcome outcome;
  std::string message;
};

Result load(const std::string& path) {
  LoadOptions o;
  o.config = path;
  try {
    load_site(o);
    return {Outcome::Accepted, ""};
  } catch (const ConfigError& e) {
    if (!e.file().empty() && e.line() <= 0 && e.message().starts_with("LookupError: No section '") &&
        e.message().find("found in config") != std::string::npos)
      return {Outcome::ErrorForFile, e.what()};
    if (e.file().empty() || e.line() <= 0) return {Outcome::ErrorWithoutLine, e.what()};
    return {Outcome::ErrorWithLine, e.what()};
  } catch (const std::exception& e) {
    return {Outcome::OtherException, std::string("std::exception: ") + e.what()};
  } catch (...) {
    return {Outcome::OtherException, "unknown exception"};
  }
}

// Also `pasture inspect`'s path, which must not throw at all.
std::string inspect(const std::string& path) {
  try {
    inspect_json(path, {});
    return "";
  } catch (const std::exception& e) {
    return std::string("inspect_json threw: ") + e.what();
  }
}

struct Tally {
  std::map<Outcome, int> counts;
  std::vector<std::string> failures;
  double slowest_ms = 0;
  std::string slowest;
};

// Writes `text` (+ `tail`) at `path`, loads it, checks the contract.
void check_one(Tally& t, const std::string& seed, const Variant& v, const std::string& path,
               const std::string& tail = "") {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << v.text << tail;
  auto t0 = std::chrono::steady_clock::now();
  Result r = load(path);
  std::string insp = inspect(path);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (ms > t.slowest_ms) t.slowest_ms = ms, t.slowest = seed + " (" + v.what + ")";
  t.counts[r.outcome]++;
  if (r.outcome == Outcome::ErrorWithoutLine || r.outcome == Outcome::OtherException)
    t.failures.push_back(seed + " (" + v.what + "): " + r.message);
  if (!insp.empty()) t.failures.push_back(seed + " (" + v.what + "): " + insp);
}

void report(const Tally& t, const char* what) {
  auto n = [&](Outcome o) {
    auto it = t.counts.find(o);
    return it == t.counts.end() ? 0 : it->second;
  };
  printf("[ fuzz ] %s: %d accepted, %d errors with file:line, %d missing sections (file only), %d errors "
         "without file:line, %d other exceptions; slowest %.1f ms: %s\n",
         what, n(Outcome::Accepted), n(Outcome::ErrorWithLine), n(Outcome::ErrorForFile),
         n(Outcome::ErrorWithoutLine), n(Outcome::OtherException), t.slowest_ms, t.slowest.c_str());
  for (const auto& f : t.failures) ADD_FAILURE() << f;
}

TEST(ConfFuzz, PastureConfigsWithBrokenValues) {
  testing::TempDir tmp;
  Tally t;
  int i = 0;
  std::vector<std::pair<std::string, std::string>> seeds;
  for (const char* s : kPastureSeeds) seeds.emplace_back("seed" + std::to_string(i++), s);
  for (const auto& e : fs::directory_iterator(PASTURE_SOURCE_DIR "/conf/examples"))
    if (e.path().extension() == ".ini") seeds.emplace_back(e.path().filename().string(), slurp(e.path().string()));
  for (const auto& [name, text] : seeds) {
    Result base = load(tmp.write("site.ini", text));
    EXPECT_EQ(base.outcome, Outcome::Accepted) << name << ": " << base.message;
    for (const Variant& v : variants(text, 100)) check_one(t, name, v, tmp.path() + "/site.ini");
  }
  report(t, "pasture seeds");
}

// Broken on purpose, each with the file and line the error must name and
// a piece of its message. Files: site.ini (loaded) and other.ini.
struct Scenario {
  const char* name;
  const char* site;
  const char* other;
  const char* want_file;
  int want_line;
  const char* want;
};

const char* const kServer = "[server:main]\nuse = egg:pasture#main\nport = 8080\n";

const Scenario kScenarios[] = {
    {"missing include", "[app:main]\nuse = config:missing.ini\n", "", "site.ini", 5, "No such file"},
    {"include cycle", "[app:main]\nuse = config:other.ini\n", "[app:main]\nuse = config:site.ini\n", "other.ini", 2,
     "RecursionError"},
    {"use cycle", "[app:main]\nuse = other\n[app:other]\nuse = main\n", "", "site.ini", 7, "RecursionError"},
    {"pipeline cycle", "[pipeline:main]\npipeline = gz main\n[filter:gz]\nuse = egg:Paste#gzip\n", "", "site.ini", 5,
     "RecursionError"},
    {"filter-app cycle", "[filter-app:main]\nuse = egg:Paste#gzip\nnext = main\n", "", "site.ini", 6,
     "RecursionError"},
    {"urlmap cycle", "[composite:main]\nuse = egg:Paste#urlmap\n/ = main\n", "", "site.ini", 4, "refers to itself"},
    {"urlmap to a missing app", "[composite:main]\nuse = egg:Paste#urlmap\n/ = nowhere\n", "", "site.ini", 6,
     "No section 'nowhere'"},
    {"no loader", "[app:main]\nkey = value\n", "", "site.ini", 4, "No loader given"},
    {"pipeline without pipeline", "[pipeline:main]\n", "", "site.ini", 4, "missing a 'pipeline' setting"},
    {"pipeline with extra keys", "[pipeline:main]\npipeline = app\nworkers = 2\n[app:app]\nuse = egg:pasture#echo\n", "",
     "site.ini", 6, "extra (disallowed) settings: workers"},
    {"filter-app without next", "[filter-app:main]\nuse = egg:Paste#gzip\n", "", "site.ini", 4,
     "missing a 'next' setting"},
    {"unknown egg entry point", "[app:main]\nuse = egg:Paste#nothing\n", "", "site.ini", 5, "Entry point 'nothing'"},
    {"broken interpolation", "[app:main]\nuse = egg:pasture#echo\nname = %(nope\n", "", "site.ini", 6,
     "InterpolationSyntaxError"},
    {"unknown interpolation", "[app:main]\nuse = egg:pasture#echo\nname = %(nope)s\n", "", "site.ini", 6,
     "InterpolationMissingOptionError"},
    {"health_check without path",
     "[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:1\nhealth_check =\n", "", "site.ini", 7,
     "health_check"},
    {"empty servers", "[app:main]\nuse = egg:pasture#balancer\nservers =\n", "", "site.ini", 6, "empty server list"},
    {"weight 0", "[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:1 weight=0\n", "", "site.ini", 6,
     "must be at least 1"},
    {"timeout abc", "[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:1\nread_timeout = abc\n", "",
     "site.ini", 7, "expected a duration"},
};

TEST(ConfFuzz, BrokenOnPurposeNamesFileAndLine) {
  for (const Scenario& s : kScenarios) {
    testing::TempDir tmp;
    std::string site = tmp.write("site.ini", std::string(kServer) + s.site);
    if (*s.other) tmp.write("other.ini", s.other);
    Result r = load(site);
    ASSERT_EQ(r.outcome, Outcome::ErrorWithLine) << s.name << ": " << r.message;
    std::string want = tmp.path() + "/" + s.want_file + ":" + std::to_string(s.want_line) + ": ";
    EXPECT_TRUE(r.message.starts_with(want)) << s.name << ": want " << want << "...\n got " << r.message;
    EXPECT_NE(r.message.find(s.want), std::string::npos) << s.name << ": " << r.message;
    EXPECT_EQ(inspect(site), "") << s.name;
  }
}

TEST(ConfFuzz, CorpusConfigsMutated) {
  if (!fs::exists(kCorpus + "/SOURCES.json")) GTEST_SKIP() << "no corpus at " << kCorpus;
  json::Value sources = json::parse(slurp(kCorpus + "/SOURCES.json"));
  testing::TempDir tmp;
  Tally t;
  // One repository's files at their original relative paths, so that
  // config: includes between them resolve (as ConfCorpus lays them out).
  std::map<std::string, std::vector<const json::Value*>> by_repo;
  for (const auto& ent : sources.items()) by_repo[ent.find("repo")->as_string()].push_back(&ent);
  int n = 0;
  for (const auto& [repo, ents] : by_repo) {
    std::string root = "r" + std::to_string(n++);
    for (const json::Value* ent : ents)
      tmp.write(root + "/" + ent->find("path")->as_string(), slurp(kCorpus + "/" + ent->find("file")->as_string()));
    for (const json::Value* ent : ents) {
      std::string path = tmp.path() + "/" + root + "/" + ent->find("path")->as_string();
      std::string text = slurp(path);
      // Most corpus files have no [server:main] (they are served by
      // pserve's -s or a WSGI container): give them one, after the
      // mutated text, so that the app side gets resolved too.
      std::string tail = text.find("[server:main]") == std::string::npos ? kServerTail : "";
      for (const Variant& v : variants(text, 4)) check_one(t, ent->find("file")->as_string(), v, path, tail);
      std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    }
  }
  report(t, "corpus");
}

}  // namespace
}  // namespace pasture::conf
