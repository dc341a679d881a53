// The access log, in Apache/nginx "combined" format, written without
// blocking the event loop: lines collect in a buffer that is handed to
// libuv's thread pool (uv_fs_write) on every tick or when it grows large.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace pasture::worker {

class AccessLog {
 public:
  // `path`: a file (opened O_APPEND, created 0644), or "-" for stdout.
  // Returns false with errno set if the file cannot be opened.
  bool open(uv_loop_t* loop, const std::string& path);
  // Lines to a descriptor the log does not own (stderr: translogger's console handler).
  void open_fd(uv_loop_t* loop, int fd) {
    loop_ = loop;
    fd_ = fd;
    own_fd_ = false;
  }
  bool enabled() const { return fd_ >= 0; }
  // Reopen the file (logrotate moved it away); SIGUSR1.
  void reopen();
  // Append one finished line (with its newline).
  std::string& buffer() { return buf_; }
  void maybe_flush() {
    if (buf_.size() >= kFlushBytes) flush();
  }
  void flush();
  // At exit, after the loop stopped: waits for the write in flight (running
  // the loop until its callback), then writes the rest here, so every line
  // arrives, whole and in order. No write is started afterwards.
  void finish();

  // "[25/Nov/2026:18:55:13 +0000]", recomputed once per second.
  std::string_view timestamp();

 private:
  static constexpr size_t kFlushBytes = 64 * 1024;
  static void on_written(uv_fs_t* req);
  void write_sync();  // buf_, on this thread; only while no write is in flight

  uv_loop_t* loop_ = nullptr;
  int fd_ = -1;
  bool own_fd_ = false;
  std::string path_;
  std::string buf_, inflight_;
  uv_fs_t req_;
  bool busy_ = false;  // inflight_ is being written by a pool thread
  bool finishing_ = false;
  bool reopen_pending_ = false;
  int64_t stamp_sec_ = -1;
  char stamp_[40] = {0};
};

}  // namespace pasture::worker
