#include "worker/edge_socket.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "worker/runtime.h"

namespace pasture::worker {
namespace {

// Reads per event or ready-list turn before the other connections get
// theirs (libuv reads up to 32 times; nginx once per event).
constexpr int kReadsPerTurn = 4;
constexpr int kMaxIov = 16;
constexpr size_t kBlockMin = 4096;  // a queue block's least capacity

// The descriptor is always a socket: recv and send(msg) go to the protocol
// straight, where read and writev pass through the file layer first (its
// position lock, iovec import): perf put what that layer adds at ~0.5 µs of
// ~28 per proxied request (bench --shapes headers, 2-core PVM guest).
ssize_t send_iov(int fd, const iovec* iov, int n) {
  if (n == 1) return ::send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
  msghdr m{};
  m.msg_iov = const_cast<iovec*>(iov);
  m.msg_iovlen = (size_t)n;
  return ::sendmsg(fd, &m, MSG_NOSIGNAL);
}

Worker* g_worker = nullptr;  // one Worker per process

}  // namespace

struct EdgeSocket::Block {
  Block* next;
  size_t cap;
  size_t len;
  size_t off;  // bytes written already
  char data[];
};

EdgeSocket::~EdgeSocket() { close(); }

int EdgeSocket::open(Worker* w, int fd, SocketOwner* owner, bool out) {
  g_worker = w;
  owner_ = owner;
  if (int r = w->watch_socket(fd, this, out); r < 0) {
    ::close(fd);
    return r;
  }
  fd_ = fd;
  out_ = out;
  return 0;
}

// One write to the kernel, the only one (send() and the queue both come
// here): how much it took (EAGAIN: 0), or a negative errno. Whatever it does
// not take makes write space an event from now on (once per connection, kept
// until the close: a connection that filled its buffer once tends to again).
// Should epoll refuse that (it cannot for a descriptor in the set), the
// owner hears of a failed write at the end of the turn (on_ready), as of any
// broken connection, instead of waiting for an event that cannot come; a
// shutdown here would end an answer framed by the close with a clean FIN
// (review 48).
ssize_t EdgeSocket::write_out(const iovec* iov, int n, size_t want) {
  ssize_t w;
  do {
    w = send_iov(fd_, iov, n);
  } while (w < 0 && errno == EINTR);
  if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
  if (w < 0) w = 0;
  if ((size_t)w < want && !out_) {
    out_ = true;
    if (g_worker->watch_output(fd_) < 0) {
      out_failed_ = true;
      queue_ready();
    }
  }
  return w;
}

void EdgeSocket::queue_ready() {
  if (in_ready || fd_ < 0) return;
  in_ready = true;
  g_worker->socket_ready(this);
}

void EdgeSocket::read_start() {
  if (reading_ || fd_ < 0) return;
  reading_ = true;
  // Bytes that came while not reading raised their edge already: read them
  // at the end of this turn (never from within this call: the caller may be
  // in the middle of handling the previous request).
  if (rd_ready_) queue_ready();
}

void EdgeSocket::on_event(uint32_t events) {
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hup_ = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    rd_ready_ = true;
    if (reading_) read_some();
  }
  if (fd_ < 0) return;
  if (connecting_ && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    // Not failed and not connected yet: an event that was another
    // descriptor's, whose number this one took in the same batch (review 33).
    if (err == 0 && getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &plen) < 0 && errno == ENOTCONN) return;
    connecting_ = false;
    owner_->on_sock_connected(-err);
    if (fd_ < 0) return;
  }
  if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && (head_ || shut_want_)) flush();
}

void EdgeSocket::hold() {
  if (hold_ || fd_ < 0) return;
  hold_ = true;
  if (!in_held) {
    in_held = true;
    g_worker->socket_held(this);
  }
}

void EdgeSocket::release() {
  if (!hold_) return;
  hold_ = false;
  if (head_) {
    flush_due_ = true;
    queue_ready();
  }
}

void EdgeSocket::release_now() {
  // Held, or released with the write still to come at the end of the turn
  // (review 38: a close in between dropped complete answers).
  if (!hold_ && !flush_due_) return;
  hold_ = flush_due_ = false;
  bool wrote = false;
  write_queue(&wrote);  // (an error: the next event or read tells the owner)
}

void EdgeSocket::on_ready() {
  in_ready = false;
  if (fd_ < 0) return;
  if (out_failed_) {
    owner_->on_write_done(UV_EIO);  // (write_out) closes the connection
    return;
  }
  if (flush_due_) {
    flush_due_ = false;
    if (head_ && !hold_) flush();
    if (fd_ < 0) return;
  }
  if (reading_ && rd_ready_) read_some();
  if (fd_ >= 0 && shut_want_ && !shut_done_ && !head_) finish_shut();
}

void EdgeSocket::read_some() {
  char* buf = Worker::read_buffer();
  const size_t cap = Worker::kReadBufferSize;
  for (int k = 0; k < kReadsPerTurn; k++) {
    if (!reading_ || fd_ < 0 || !rd_ready_) return;
    ssize_t n = ::recv(fd_, buf, cap, 0);
    if (n > 0) {
      // Short: the socket is empty now (a new edge brings more), unless the
      // peer hung up, whose EOF is then read next.
      if ((size_t)n < cap && !hup_) rd_ready_ = false;
      owner_->on_sock_read(buf, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Empty, and no EOF waiting (that would read 0): a hang-up seen was
      // not this connection's (a late event of a descriptor number reused).
      rd_ready_ = hup_ = false;
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    reading_ = false;
    rd_ready_ = false;
    owner_->on_sock_end(n == 0 ? UV_EOF : -errno);
    return;
  }
  if (reading_ && fd_ >= 0 && rd_ready_) queue_ready();  // the budget ran out: the rest next turn
}

int EdgeSocket::send(const uv_buf_t* bufs, unsigned n, size_t* written) {
  if (written) *written = 0;
  if (fd_ < 0) return UV_EPIPE;
  if (shut_want_) return UV_EPIPE;
  size_t total = 0;
  for (unsigned i = 0; i < n; i++) total += bufs[i].len;
  if (total == 0) return 0;
  size_t skip = 0;
  // Over the hold's bound: no longer held; what is queued goes with the
  // rest at the end of the turn (never from here: the owner's write
  // callback must not run inside its own send).
  if (hold_ && queued_ + total > kHoldMax) release();
  if (!head_ && !hold_) {
    // uv_buf_t is laid out as struct iovec on Unix (libuv guarantees it).
    ssize_t w = write_out(reinterpret_cast<const iovec*>(bufs), (int)n, total);
    if (w < 0) return (int)w;
    if (written) *written = (size_t)w;
    if ((size_t)w == total) return 0;
    skip = (size_t)w;
  }
  size_t rest = total - skip;
  // Small answers queued one after another (pipelining, a client that does
  // not read) share a block; a large one gets its own.
  Block* b = tail_;
  if (!b || b->cap - b->len < rest) {
    size_t cap = rest < kBlockMin ? kBlockMin : rest;
    b = static_cast<Block*>(malloc(sizeof(Block) + cap));
    if (!b) return UV_ENOMEM;
    b->next = nullptr;
    b->cap = cap;
    b->len = 0;
    b->off = 0;
    if (tail_)
      tail_->next = b;
    else
      head_ = b;
    tail_ = b;
  }
  char* out = b->data + b->len;
  b->len += rest;
  for (unsigned i = 0; i < n; i++) {
    size_t len = bufs[i].len;
    const char* p = bufs[i].base;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    p += skip;
    len -= skip;
    skip = 0;
    memcpy(out, p, len);
    out += len;
  }
  queued_ += rest;
  return 0;
}

// What is queued to the kernel, oldest first, until it takes no more: 0,
// or a negative errno; `wrote`: some bytes left.
int EdgeSocket::write_queue(bool* wrote) {
  while (head_) {
    iovec iov[kMaxIov];
    int k = 0;
    size_t want = 0;
    for (Block* b = head_; b && k < kMaxIov; b = b->next, k++) {
      iov[k].iov_base = b->data + b->off;
      iov[k].iov_len = b->len - b->off;
      want += iov[k].iov_len;
    }
    ssize_t w = write_out(iov, k, want);
    if (w < 0) return (int)w;
    if (w == 0) return 0;
    *wrote = true;
    size_t left = (size_t)w;
    queued_ -= left;
    while (head_ && left >= head_->len - head_->off) {
      left -= head_->len - head_->off;
      Block* b = head_;
      head_ = b->next;
      free(b);
    }
    if (!head_) tail_ = nullptr;
    if (head_) head_->off += left;
    // The kernel took less than offered: its buffer is full and EPOLLOUT
    // comes (write_out asked for it). (All of it with more blocks behind:
    // go on.)
    if ((size_t)w < want) return 0;
  }
  return 0;
}

// EPOLLOUT: write what is queued; the owner hears once per event that
// bytes left.
void EdgeSocket::flush() {
  bool wrote = false;
  if (int err = write_queue(&wrote); err < 0) {
    owner_->on_write_done(err);  // closes the connection
    return;
  }
  // As libuv: the writes' callback first, then the shutdown's (review 32).
  if (wrote) {
    owner_->on_write_done(0);
    if (fd_ < 0) return;
  }
  if (!head_ && shut_want_ && !shut_done_) finish_shut();
}

int EdgeSocket::shutdown() {
  if (fd_ < 0) return UV_ENOTCONN;
  if (shut_want_) return UV_EALREADY;
  shut_want_ = true;
  release();  // (then on_ready writes the queue and shuts)
  if (!head_) queue_ready();  // as libuv: the callback comes later, never from here
  return 0;
}

void EdgeSocket::finish_shut() {
  shut_done_ = true;
  int r = ::shutdown(fd_, SHUT_WR) == 0 ? 0 : -errno;
  owner_->on_sock_shut(r);
}

void EdgeSocket::close(bool rst) {
  if (fd_ < 0) return;
  // Held answers are complete ones: give them to the kernel first, as they
  // would have been without the hold (best effort, no callback).
  release_now();
  if (rst) {
    struct linger lg = {1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  g_worker->forget_socket(fd_, this);
  ::close(fd_);  // leaves the epoll set with it
  fd_ = -1;
  reading_ = false;
  while (head_) {
    Block* b = head_;
    head_ = b->next;
    free(b);
  }
  tail_ = nullptr;
  queued_ = 0;
}

}  // namespace pasture::worker
