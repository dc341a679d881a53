// Child processes for integration tests (the real `pasture` binary, shells).
// Output goes to a temp file readable at any time; the child leads its own
// process group, and destruction SIGKILLs that whole group and reaps it, so a
// failing test never leaves workers behind.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/net.h"
#include "tests/support/temp_dir.h"

namespace pasture::test {

class Process {
 public:
  using Env = std::vector<std::pair<std::string, std::string>>;

  // Starts argv[0] (searched in $PATH if it has no '/') with the test's
  // environment plus `env` (overriding), in `cwd` if non-empty, stdin from
  // /dev/null, stdout+stderr to one file. Throws std::runtime_error if the
  // fork fails; an exec failure shows as exit status 127 with a message in
  // output().
  explicit Process(std::vector<std::string> argv, Env env = {}, std::string cwd = {});
  // kill_and_wait(). If the current test failed, prints the output's tail.
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::vector<std::string>& argv() const { return argv_; }
  // False once the child has exited (and been reaped).
  bool running();
  // kill(pid, sig): the leader only, as an operator would signal a master.
  bool signal(int sig);
  // killpg(pid, sig): the leader and everything it forked.
  bool signal_group(int sig);
  // Waits for the leader to exit; its waitpid() status, or nullopt on timeout.
  std::optional<int> wait_exit(Millis timeout = kDefaultTimeout);
  // Status once reaped, without waiting.
  std::optional<int> exit_status() const { return status_; }
  // SIGINT to the group (up to 2 s for the leader to exit: pasture's fast
  // shutdown cleans up its files), then SIGKILLs the group, reaps the
  // leader, returns its status.
  int kill_and_wait();

  // Everything written to stdout/stderr so far.
  std::string output() const;
  const std::string& output_path() const { return output_path_; }

 private:
  std::vector<std::string> argv_;
  std::string output_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;
  bool group_killed_ = false;
};

// "exited 0", "killed by signal 9 (Killed)"...: for assertion messages.
std::string describe_status(int status);
// True when `status` is a normal exit with code `code`.
bool exited_with(const std::optional<int>& status, int code);

// Polls output() until it contains `needle`. Gives up early if the process
// exits without having printed it.
bool wait_for_output(Process& proc, std::string_view needle, Millis timeout = kDefaultTimeout);
// Polls until a TCP connect to 127.0.0.1:port succeeds.
bool wait_for_port(uint16_t port, Millis timeout = kDefaultTimeout);
// A port that was free on 127.0.0.1 a moment ago (bind port 0, read, close).
uint16_t free_port();

}  // namespace pasture::test
