// Temp-file helpers and a load-a-site fixture for the conf/ unit tests.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "conf/error.h"
#include "conf/load.h"

namespace pasture::conf::testing {

// The real-world paste.deploy configs (with Python's dumps) beside the
// project; tests that use them skip when it is absent.
inline const std::string kCorpus = PASTURE_SOURCE_DIR "/../shared/corpus/paste";

// A whole file's bytes ("" if unreadable).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pasture-conf-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `text` to path()/rel (creating directories); returns the full path.
  std::string write(const std::string& rel, const std::string& text) const {
    std::filesystem::path p = std::filesystem::path(path_) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

 private:
  std::string path_;
};

// Writes a config into a fresh temp dir and loads it as `pasture serve` would.
class SiteFixture : public ::testing::Test {
 protected:
  // Writes `text` to `name` and loads it (or opts.config, when set).
  Site load_file(const std::string& name, const std::string& text, LoadOptions opts = {}) {
    file_ = dir_.write(name, text);
    if (opts.config.empty()) opts.config = file_;
    return load_site(opts);
  }
  Site load(const std::string& text, LoadOptions opts = {}) { return load_file("site.ini", text, opts); }
  // Expects the config to fail in the file written; returns "line: message".
  std::string error(const std::string& text, LoadOptions opts = {}) {
    try {
      load(text, opts);
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.file(), file_);
      return std::to_string(e.line()) + ": " + e.message();
    }
    return "no error";
  }
  // Expects `name` to fail to load; returns "file-basename:line: message".
  std::string error_in(const std::string& name, const std::string& text) {
    try {
      load_file(name, text);
    } catch (const ConfigError& e) {
      return e.file().substr(e.file().rfind('/') + 1) + ":" + std::to_string(e.line()) + ": " + e.message();
    }
    return "no error";
  }

  TempDir dir_;
  std::string file_;
};

}  // namespace pasture::conf::testing
