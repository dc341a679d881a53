// Helpers shared by the fuzz targets: reading an input as options and
// pieces, failing with a message libFuzzer shows, and files for the loaders
// that only read files.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace pasture::fuzz {

// A property of the code under test does not hold: print what, then abort
// (libFuzzer saves the input as a crash).
[[noreturn]] inline void fail(const std::string& what, std::string_view detail = {}) {
  fprintf(stderr, "\n*** fuzz property failed: %s\n", what.c_str());
  if (!detail.empty()) {
    fprintf(stderr, "--- detail (%zu bytes, escaped):\n", detail.size());
    for (unsigned char c : detail) {
      if (c == '\n')
        fputs("\\n\n", stderr);
      else if (c == '\r')
        fputs("\\r", stderr);
      else if (c < 0x20 || c >= 0x7f)
        fprintf(stderr, "\\x%02x", c);
      else
        fputc(c, stderr);
    }
    fputs("\n---\n", stderr);
  }
  abort();
}

#define FUZZ_CHECK(cond, what, detail) \
  do {                                 \
    if (!(cond)) ::pasture::fuzz::fail(what, detail); \
  } while (0)

// The bytes of one input, consumed from the front.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}
  uint8_t byte() {
    if (rest_.empty()) return 0;
    auto b = (uint8_t)rest_[0];
    rest_.remove_prefix(1);
    return b;
  }
  // Up to the next `sep` (not included; consumed), or everything left.
  std::string_view until(char sep) {
    size_t i = rest_.find(sep);
    std::string_view out = rest_.substr(0, i);
    rest_.remove_prefix(i == std::string_view::npos ? rest_.size() : i + 1);
    return out;
  }
  std::string_view rest() const { return rest_; }
  bool empty() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

// A private directory for config files, removed at exit. The loaders read
// the files a config names (config: includes, servers_from); inputs that
// name device or proc files are skipped by the targets (paths_ok), so a run
// never blocks on /dev/stdin or reads /dev/zero forever.
class Scratch {
 public:
  Scratch() {
    char tmpl[] = "/tmp/pasture-fuzz-XXXXXX";
    if (!mkdtemp(tmpl)) abort();
    dir_ = tmpl;
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& dir() const { return dir_; }
  std::string write(const std::string& name, std::string_view text) const {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(text.data(), (std::streamsize)text.size());
    return path;
  }

 private:
  std::string dir_;
};

inline bool paths_ok(std::string_view text) {
  for (std::string_view bad : {"/dev", "/proc", "/sys", "fd/"})
    if (text.find(bad) != std::string_view::npos) return false;
  return true;
}

}  // namespace pasture::fuzz
