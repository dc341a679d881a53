#include "tests/support/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace pasture::test {

namespace {

// argv[0] as execve() wants it: searched in $PATH when it has no '/'.
std::string resolve(const std::string& prog) {
  if (prog.find('/') != std::string::npos) return prog;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string cand = (dir.empty() ? "." : dir) + "/" + prog;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
  }
  return prog;  // execve fails with ENOENT, reported via exit 127
}

std::vector<std::string> merged_env(const Process::Env& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    std::string_view key = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const auto& [k, v] : extra) overridden = overridden || k == key;
    if (!overridden) env.emplace_back(kv);
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

std::vector<char*> c_array(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void write_str(int fd, const char* s) { (void)!::write(fd, s, std::strlen(s)); }

// Runs in the forked child of a possibly multi-threaded parent: only
// async-signal-safe calls until execve().
[[noreturn]] void exec_child(pid_t parent, int out_fd, int null_fd, const char* cwd,
                             const char* path, char* const* argv, char* const* envp) {
  ::setpgid(0, 0);
  // Die with the test binary even if it crashes before ~Process runs. Note:
  // fires when the forking *thread* exits, so start Processes from the test's
  // own thread.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(126);
  // The test process may block or ignore signals (e.g. SIGPIPE); both are
  // inherited across exec, so restore defaults.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);
  ::dup2(null_fd, 0);
  ::dup2(out_fd, 1);
  ::dup2(out_fd, 2);
  // Keep the child from holding test sockets (a stopped FakeUpstream's port).
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
    for (int fd = 3; fd < 4096; ++fd) ::close(fd);
  if (cwd[0] && ::chdir(cwd) != 0) {
    write_str(2, "Process: chdir failed: ");
    write_str(2, cwd);
    write_str(2, "\n");
    ::_exit(127);
  }
  ::execve(path, argv, envp);
  write_str(2, "Process: execve failed: ");
  write_str(2, path);
  write_str(2, "\n");
  ::_exit(127);
}

std::string tail(const std::string& s, size_t n) {
  return s.size() <= n ? s : "[...]\n" + s.substr(s.size() - n);
}

}  // namespace

Process::Process(std::vector<std::string> argv, Env env, std::string cwd) : argv_(std::move(argv)) {
  if (argv_.empty()) throw std::invalid_argument("Process: empty argv");
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/pasture-proc-XXXXXX.log";
  Fd out(::mkostemps(tmpl.data(), 4, O_CLOEXEC | O_APPEND));
  if (!out.valid()) throw std::runtime_error("mkostemps(" + tmpl + "): " + std::strerror(errno));
  output_path_ = tmpl;
  Fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));

  // Everything the child needs is built before fork().
  std::string path = resolve(argv_[0]);
  std::vector<std::string> args = argv_;
  std::vector<std::string> envs = merged_env(env);
  std::vector<char*> c_args = c_array(args), c_env = c_array(envs);
  const pid_t parent = ::getpid();

  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0)
    exec_child(parent, out.get(), null_fd.get(), cwd.c_str(), path.c_str(), c_args.data(),
               c_env.data());
  // Also from the parent, so killpg() works even before the child runs.
  // EACCES means the child already exec'd, having set it itself.
  ::setpgid(pid_, pid_);
}

Process::~Process() {
  if (pid_ < 0) return;
  const int st = kill_and_wait();
  if (::testing::Test::HasFailure()) {
    std::string cmd;
    for (const auto& a : argv_) cmd += (cmd.empty() ? "" : " ") + a;
    std::fprintf(stderr, "--- output of `%s` (pid %d, %s) ---\n%s\n--- end of output ---\n",
                 cmd.c_str(), static_cast<int>(pid_), describe_status(st).c_str(),
                 tail(output(), 16 * 1024).c_str());
  }
  ::unlink(output_path_.c_str());
}

bool Process::running() {
  if (status_ || pid_ < 0) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return r == 0;
}

bool Process::signal(int sig) { return !status_ && ::kill(pid_, sig) == 0; }

bool Process::signal_group(int sig) { return ::killpg(pid_, sig) == 0; }

std::optional<int> Process::wait_exit(Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Millis nap{1};
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, Millis{20});
  }
  return status_;
}

int Process::kill_and_wait() {
  if (pid_ < 0) return -1;
  // A fast shutdown first, as Ctrl-C in a terminal would (SIGINT to the
  // group), so a master removes what it made (unix socket files, hosted
  // apps' socket directory); then, even if the leader has exited, its
  // workers may live on in the group.
  if (running() && ::killpg(pid_, SIGINT) == 0) wait_exit(Millis{2000});
  ::killpg(pid_, SIGKILL);
  if (!status_) wait_exit(kDefaultTimeout);
  return status_.value_or(-1);
}

std::string Process::output() const {
  std::ifstream in(output_path_, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string describe_status(int status) {
  if (status < 0) return "not reaped";
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           ::strsignal(WTERMSIG(status)) + ")";
  return "wait status " + std::to_string(status);
}

bool exited_with(const std::optional<int>& status, int code) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == code;
}

bool wait_for_output(Process& proc, std::string_view needle, Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const bool alive = proc.running();
    if (proc.output().find(needle) != std::string::npos) return true;
    if (!alive || std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(Millis{10});
  }
}

bool wait_for_port(uint16_t port, Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (connect_loopback(port, Millis{500}).valid()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(Millis{10});
  }
}

uint16_t free_port() {
  Fd fd = listen_loopback(0);
  return fd.valid() ? local_port(fd.get()) : 0;
}

}  // namespace pasture::test
