// A unix datagram socket standing in for systemd's $NOTIFY_SOCKET that also
// records who sent each message (SO_PASSCRED), as systemd does to apply
// NotifyAccess=.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace pasture::test {

class NotifySocket {
 public:
  struct Message {
    pid_t pid;         // the sender, from its credentials
    std::string text;  // "READY=1\nSTATUS=..."
  };
  // Bound in the current test's temp dir. Throws std::runtime_error.
  NotifySocket();
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }
  // Every message received so far (does not wait).
  const std::vector<Message>& drain();
  // Whether some message from `pid` (any sender if 0) contains `needle`.
  bool got(pid_t pid, const std::string& needle);

 private:
  std::string path_;
  std::vector<Message> messages_;
  int fd_ = -1;
};

}  // namespace pasture::test
