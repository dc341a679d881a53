// A connection's socket (a client's, an upstream's), on the worker's own
// epoll set instead of a libuv stream handle.
//
// Each connection is one descriptor, added once at accept with
// EPOLLIN | EPOLLRDHUP | EPOLLET: starting and stopping reads or queueing a
// write costs no epoll_ctl, and close() alone takes it out of the set (no
// EPOLL_CTL_DEL, no FIONBIO: accept4 made it non-blocking), as nginx does.
// EPOLLOUT is added (EPOLL_CTL_MOD, once) the first time the kernel does
// not take a whole write (write_out): most connections never fill their
// send buffer, and with EPOLLOUT from the start each of them woke the
// worker for nothing at its accept (a new socket is writable). In bench
// --shapes close at 1 worker with the worker not saturated, that was 1.9
// epoll_wait calls per request, 1.1 without (2-core PVM guest, 2026-12-03).
// Upstream sockets start with it (the connect's end is an EPOLLOUT). The state is 40 bytes where uv_tcp_t was 248 (bench
// --shapes memory holds thousands of idle ones).
//
// Edge-triggered means a readiness seen once must be remembered: rd_ready_
// stays set until a read comes back short or EAGAIN (a short read drains the
// socket; new bytes raise a new edge), except that a hang-up seen in an
// event keeps it set until the EOF itself is read (the edge that brought
// the last bytes may have brought the FIN too). Reads restarted while
// readiness is remembered, and reads cut short by the per-event budget, go
// through the worker's ready list (read at the end of the loop turn).
//
// Events arrive by descriptor through the worker's table (Worker::sockets_),
// never by pointer: a descriptor closed while a forked child still holds it
// stays in the set, and its late events then find no socket, or the new
// connection that reuses the number, which reads EAGAIN.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>

namespace pasture::worker {

class Worker;

class SocketOwner {
 public:
  // Bytes read (valid during the call only: the worker's read buffer).
  virtual void on_sock_read(const char* p, size_t n) = 0;
  // The read side ended: UV_EOF, or a negative errno. Reading has stopped.
  virtual void on_sock_end(int err) = 0;
  // Queued bytes were written (status 0), or writing failed (a negative
  // errno; the connection should close). Not called after close().
  virtual void on_write_done(int status) = 0;
  // shutdown(): the queue drained and the write side was shut (0), or it
  // failed. Never called from within shutdown() itself.
  virtual void on_sock_shut(int status) = 0;
  // wait_connect(): the connect finished (0) or failed (a negative errno).
  virtual void on_sock_connected(int) {}
  // While its output is held (EdgeSocket::hold): the answers it has
  // completed (a change restarts the hold's gap) and how long an idle
  // worker may wait for the next one (µs; 0: not at all). Worker::scan_holds.
  struct HoldWait {
    uint32_t answers = 0;
    uint32_t wait_us = 0;
  };
  virtual HoldWait hold_wait() const { return {}; }

 protected:
  ~SocketOwner() = default;
};

class EdgeSocket {
 public:
  EdgeSocket() = default;
  EdgeSocket(const EdgeSocket&) = delete;
  EdgeSocket& operator=(const EdgeSocket&) = delete;
  ~EdgeSocket();

  // Takes `fd` (non-blocking) into the worker's epoll set, watched for
  // write space from the start if `out` (else from the first write the
  // kernel does not take whole): 0, or epoll_ctl's negative errno (the
  // descriptor is then closed).
  int open(Worker* w, int fd, SocketOwner* owner, bool out);
  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }

  void read_start();
  void read_stop() { reading_ = false; }
  bool reading() const { return reading_; }

  // 0, or a negative errno; what the kernel does not take at once is copied
  // and queued (written on EPOLLOUT; on_write_done tells). `written`: how
  // much the kernel took at once.
  int send(const uv_buf_t* bufs, unsigned n, size_t* written = nullptr);
  // A connect in progress: on_sock_connected once the socket is writable
  // (or fails). Writes may be queued meanwhile.
  void wait_connect() { connecting_ = true; }
  size_t queued() const { return queued_; }
  // Hold the output back: send() queues without writing, until release()
  // (then it leaves at the end of this loop turn, in one sendmsg), until
  // kHoldMax bytes are held, or until the worker releases it (it was held
  // kHoldMs, or the worker has nothing else to do and its owner completed
  // no answer for as long as it may wait: Worker::release_held,
  // Worker::scan_holds, SocketOwner::hold_wait).
  // For the answers to pipelined requests (ClientConn::next_request): one
  // write for many answers, where nginx and HAProxy write one each.
  // shutdown() and close() release it too.
  static constexpr size_t kHoldMax = 16 * 1024;  // under kLowWater: never back-pressure
  void hold();
  void release();
  // Release and write what is held (or released and not written yet) now,
  // without the write callback: for sendfile(2) straight to the socket,
  // which must come after it, and for close(); what the kernel does not
  // take stays queued for EPOLLOUT.
  void release_now();
  bool held() const { return hold_; }
  SocketOwner* owner() const { return owner_; }
  // Shut the write side once the queue is written; on_sock_shut follows.
  int shutdown();
  // Closes the descriptor now (queued bytes are dropped; no callback
  // follows). `rst`: with SO_LINGER 0, so the peer sees a reset.
  void close(bool rst = false);

  // From the worker: an event for this descriptor, and a turn of the
  // ready list.
  void on_event(uint32_t events);
  void on_ready();

 private:
  struct Block;
  void read_some();
  void flush();
  int write_queue(bool* wrote);
  void finish_shut();
  void queue_ready();
  ssize_t write_out(const iovec* iov, int n, size_t want);

  SocketOwner* owner_ = nullptr;
  Block* head_ = nullptr;  // queued output, oldest first
  Block* tail_ = nullptr;
  size_t queued_ = 0;
  int fd_ = -1;
  bool reading_ : 1 = false;
  bool rd_ready_ : 1 = false;  // bytes (or the EOF) may be waiting
  bool hup_ : 1 = false;       // an event said the peer hung up (or erred): read to the end
  bool shut_want_ : 1 = false; // shutdown() asked; done once the queue is empty
  bool shut_done_ : 1 = false;
  bool connecting_ : 1 = false;  // wait_connect()
  bool hold_ : 1 = false;        // hold()
  bool flush_due_ : 1 = false;   // released with bytes queued: on_ready writes them
  bool out_ : 1 = false;         // EPOLLOUT is in the set (write_out)
  bool out_failed_ : 1 = false;  // epoll refused it: on_ready reports a write error

 public:
  bool in_ready = false;  // on the worker's ready list (Worker::socket_ready)
  bool in_held = false;   // on the worker's held list (Worker::socket_held)
};

}  // namespace pasture::worker
