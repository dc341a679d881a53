// Every real-world config of the paste corpus (../shared/corpus/paste beside
// the repo) must resolve exactly like paste.deploy did: inspect_json() is
// compared, as parsed JSON with @@ROOT@@ substituted, to <file>.expected.json.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "conf/inspect.h"
#include "conf/json.h"
#include "conf_test_util.h"

namespace pasture::conf {
namespace {

namespace fs = std::filesystem;
using json::Value;

using testing::kCorpus;
using testing::slurp;

Value replace_root(const Value& v, const std::string& root) {
  auto sub = [&](std::string s) {
    for (size_t p = s.find(root); p != std::string::npos; p = s.find(root, p + 8)) s.replace(p, root.size(), "@@ROOT@@");
    return s;
  };
  switch (v.type()) {
    case Value::Type::String:
      return Value(sub(v.as_string()));
    case Value::Type::Array: {
      Value out = Value::array();
      for (const auto& x : v.items()) out.push(replace_root(x, root));
      return out;
    }
    case Value::Type::Object: {
      Value out = Value::object();
      for (const auto& [k, x] : v.members()) out[sub(k)] = replace_root(x, root);
      return out;
    }
    default:
      return v;
  }
}

// First differing JSON path, "" when equal.
std::string first_diff(const Value& a, const Value& b, const std::string& path) {
  if (a.type() != b.type()) return path + ": type differs";
  if (a.type() == Value::Type::Object) {
    for (const auto& [k, x] : a.members()) {
      const Value* y = b.find(k);
      if (!y) return path + "." + k + ": missing";
      std::string d = first_diff(x, *y, path + "." + k);
      if (!d.empty()) return d;
    }
    for (const auto& [k, y] : b.members()) {
      if (!a.find(k)) return path + "." + k + ": unexpected";
    }
    return "";
  }
  if (a.type() == Value::Type::Array) {
    if (a.items().size() != b.items().size()) return path + ": list length differs";
    for (size_t i = 0; i < a.items().size(); ++i) {
      std::string d = first_diff(a.items()[i], b.items()[i], path + "[" + std::to_string(i) + "]");
      if (!d.empty()) return d;
    }
    return "";
  }
  return a == b ? "" : path + ": expected " + json::dump(a) + " got " + json::dump(b);
}

TEST(ConfCorpus, EveryFileResolvesLikePasteDeploy) {
  if (!fs::exists(kCorpus + "/SOURCES.json")) GTEST_SKIP() << "no corpus at " << kCorpus;
  Value sources = json::parse(slurp(kCorpus + "/SOURCES.json"));
  // Lay the files of one repository out at their original relative paths,
  // like dump_pastedeploy.py --corpus, so config: includes resolve.
  std::map<std::string, std::vector<const Value*>> by_repo;
  for (const auto& ent : sources.items()) by_repo[ent.find("repo")->as_string()].push_back(&ent);
  testing::TempDir tmp;
  int matched = 0, total = 0;
  for (const auto& [repo, ents] : by_repo) {
    std::string root = tmp.path() + "/" + repo.substr(0, repo.find('/')) + "__" + repo.substr(repo.find('/') + 1);
    for (const Value* ent : ents) {
      tmp.write(root.substr(tmp.path().size() + 1) + "/" + ent->find("path")->as_string(),
                slurp(kCorpus + "/" + ent->find("file")->as_string()));
    }
    for (const Value* ent : ents) {
      const std::string& file = ent->find("file")->as_string();
      ++total;
      Value expected = json::parse(slurp(kCorpus + "/" + file + ".expected.json"));
      Value actual = replace_root(json::parse(inspect_json(root + "/" + ent->find("path")->as_string(), {})), root);
      std::string diff = first_diff(expected, actual, "$");
      if (diff.empty()) {
        ++matched;
      } else {
        ADD_FAILURE() << file << ": " << diff;
      }
    }
  }
  std::cout << "[ corpus ] " << matched << " of " << total << " corpus files match paste.deploy exactly\n";
  EXPECT_GT(total, 0);
}

}  // namespace
}  // namespace pasture::conf
