#pragma once

#include <stdexcept>
#include <string>

namespace pasture::conf {

// A configuration problem. what() reads "file:line: message" (or "file: message"
// when no line applies), ready to print.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, const std::string& msg)
      : std::runtime_error(format(file, line, msg)), file_(std::move(file)), line_(line), msg_(msg) {}
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& message() const { return msg_; }

 private:
  static std::string format(const std::string& f, int l, const std::string& m) {
    if (f.empty()) return m;
    return l > 0 ? f + ":" + std::to_string(l) + ": " + m : f + ": " + m;
  }
  std::string file_;
  int line_;
  std::string msg_;
};

}  // namespace pasture::conf
