#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace pasture::test {

namespace fs = std::filesystem;

TempDir::TempDir(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(tmp && *tmp ? tmp : "/tmp") + "/" + std::string(prefix) + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error("mkdtemp(" + tmpl + "): " + std::strerror(errno));
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TempDir::file(std::string_view name) const { return path_ + "/" + std::string(name); }

std::string TempDir::write(std::string_view name_hint, std::string_view contents) const {
  fs::path hint(name_hint.empty() ? "file" : std::string(name_hint));
  fs::path p = fs::path(path_) / hint;
  for (int n = 2; fs::exists(p); ++n)
    p = fs::path(path_) /
        (hint.stem().string() + "-" + std::to_string(n) + hint.extension().string());
  std::ofstream out(p, std::ios::binary);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) throw std::runtime_error("writing " + p.string() + " failed");
  return p.string();
}

namespace {

struct PerTestDir {
  std::mutex mu;
  std::string owner;  // full name of the test that owns `dir`
  std::unique_ptr<TempDir> dir;
  bool listening = false;
};

PerTestDir& per_test_dir() {
  static PerTestDir d;  // destroyed at exit, removing any directory left
  return d;
}

// Removes the directory when its test ends (also under --gtest_repeat, where
// the same test name runs again).
class DropDirAtTestEnd : public ::testing::EmptyTestEventListener {
  void OnTestEnd(const ::testing::TestInfo&) override {
    PerTestDir& d = per_test_dir();
    std::lock_guard lk(d.mu);
    d.dir.reset();
  }
};

std::string current_test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info ? std::string(info->test_suite_name()) + "." + info->name() : "";
}

TempDir& dir_for_current_test(PerTestDir& d) {
  if (!d.listening) {
    // Appended from inside a test body, never during listener dispatch.
    ::testing::UnitTest::GetInstance()->listeners().Append(new DropDirAtTestEnd);
    d.listening = true;
  }
  std::string owner = current_test_name();
  if (!d.dir || d.owner != owner) {
    d.dir.reset();
    d.dir = std::make_unique<TempDir>();
    d.owner = owner;
  }
  return *d.dir;
}

}  // namespace

std::string write_temp_file(std::string_view name_hint, std::string_view contents) {
  PerTestDir& d = per_test_dir();
  std::lock_guard lk(d.mu);
  return dir_for_current_test(d).write(name_hint, contents);
}

std::string test_temp_dir() {
  PerTestDir& d = per_test_dir();
  std::lock_guard lk(d.mu);
  return dir_for_current_test(d).path();
}

}  // namespace pasture::test
