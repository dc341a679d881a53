// Scratch directories for tests, removed (recursively) on destruction.
#pragma once

#include <string>
#include <string_view>

namespace pasture::test {

class TempDir {
 public:
  // Creates /tmp/<prefix>-XXXXXX (honours $TMPDIR). Throws std::runtime_error.
  explicit TempDir(std::string_view prefix = "pasture-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string file(std::string_view name) const;
  // Writes `contents` to a new file named after `name_hint` ("conf.ini";
  // "conf-2.ini" if taken) and returns its full path. Throws on I/O failure.
  std::string write(std::string_view name_hint, std::string_view contents) const;

 private:
  std::string path_;
};

// write() into a directory private to the running GoogleTest test; the
// directory is removed when that test ends.
std::string write_temp_file(std::string_view name_hint, std::string_view contents);
// That directory's path (created on first use).
std::string test_temp_dir();

}  // namespace pasture::test
