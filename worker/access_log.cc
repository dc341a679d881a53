#include "worker/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "common/log.h"

namespace pasture::worker {

bool AccessLog::open(uv_loop_t* loop, const std::string& path) {
  loop_ = loop;
  path_ = path;
  if (path == "-") {
    fd_ = STDOUT_FILENO;
    own_fd_ = false;
    return true;
  }
  fd_ = log::open_no_follow(path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  own_fd_ = fd_ >= 0;
  return fd_ >= 0;
}

void AccessLog::reopen() {
  if (!own_fd_) return;
  if (busy_) {  // a pool thread is writing to the old fd: reopen when it is done
    reopen_pending_ = true;
    return;
  }
  reopen_pending_ = false;
  write_sync();
  int fd = log::open_no_follow(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return;  // keep writing to the old file rather than lose lines
  ::close(fd_);
  fd_ = fd;
}

void AccessLog::flush() {
  if (busy_ || finishing_ || buf_.empty() || fd_ < 0) return;
  inflight_.swap(buf_);
  buf_.clear();
  busy_ = true;
  req_.data = this;
  uv_buf_t b = uv_buf_init(inflight_.data(), (unsigned)inflight_.size());
  if (uv_fs_write(loop_, &req_, fd_, &b, 1, -1, on_written) < 0) {
    busy_ = false;
    inflight_.clear();
  }
}

void AccessLog::on_written(uv_fs_t* req) {
  auto* log = static_cast<AccessLog*>(req->data);
  uv_fs_req_cleanup(req);
  log->busy_ = false;
  log->inflight_.clear();
  if (log->reopen_pending_) log->reopen();
  if (log->buf_.size() >= kFlushBytes) log->flush();
}

void AccessLog::finish() {
  finishing_ = true;
  // The pool thread may not even have started this write: writing buf_ now
  // would put newer lines first, or tear lines where the two writes meet,
  // and exiting would drop what the thread had not written yet.
  while (busy_) uv_run(loop_, UV_RUN_ONCE);
  write_sync();
}

void AccessLog::write_sync() {
  if (fd_ < 0 || buf_.empty()) return;
  const char* p = buf_.data();
  size_t n = buf_.size();
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    p += w;
    n -= (size_t)w;
  }
  buf_.clear();
}

std::string_view AccessLog::timestamp() {
  time_t now = time(nullptr);
  if (now != stamp_sec_) {
    stamp_sec_ = now;
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp_, sizeof stamp_, "[%d/%b/%Y:%H:%M:%S %z]", &tm);
  }
  return stamp_;
}

}  // namespace pasture::worker
