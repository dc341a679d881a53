// A call's state, shared by call.cc (the steps) and threads.cc (app threads).
#pragma once

#include <pthread.h>

#include <atomic>
#include <string>

#include "worker/wsgi/py.h"

namespace pasture::worker::wsgi {

struct Call::Impl {
  enum Step { kPaused, kDone };

  Call* call = nullptr;
  Sink* sink = nullptr;
  int app = 0;
  Body body;
  bool threaded = false;
  bool started = false;  // run() was called

  // Python objects of the call (GIL).
  PyObject* env = nullptr;
  PyObject* input = nullptr;
  PyObject* start_fn = nullptr;
  PyObject* result = nullptr;
  PyObject* iter = nullptr;
  Py_ssize_t list_i = -1;  // result is a list or tuple: index of the next item
  // result is a wsgi.file_wrapper over a regular file (inline only): sent
  // with sendfile from file_off, file_left bytes to go.
  int file_fd = -1;
  uint64_t file_off = 0, file_left = 0;

  // The response (written by whoever runs the app).
  bool have_status = false;
  int status = 0;
  std::string status_line, fields;
  int64_t clen = -1;
  bool conn_close = false;
  bool head_sent = false;
  uint64_t sent = 0;
  bool ok = true;

  // Inline: inside run_inline (cancel() only marks).
  bool busy = false;
  // The thread running the app call (the loop's, or an app thread's):
  // write() from any other thread is refused, since the sink is reached
  // from this one only.
  pthread_t runner{};
  std::atomic<bool> cancelled{false};

  // Threaded (threads.cc), under the pool's mutex unless said otherwise.
  std::string out;              // body bytes the loop has not taken yet
  bool head_ready = false;      // the head may go to the sink
  bool head_delivered = false;  // loop only
  bool thread_done = false;     // the app thread let go of the call
  bool pending = false;         // in the pool's ready list
  bool paused = false;          // loop only: the sink is behind
  bool delivering = false;      // loop only: inside deliver()
  std::condition_variable space;  // the thread waits here while `out` is full

  Step start();
  Step produce();
  Step produce_file();
  bool open_file();
  Step finish(bool complete);
  Step fail();
  bool send(const char* p, size_t n);
  void send_head();
  void close_result();
  void run_inline(bool first);
  void free_call() { delete call; }  // frees this Impl too

  // threads.cc
  void thread_submit();
  bool thread_send(const char* p, size_t n);
  void thread_head();
  void loop_resume();
  void loop_cancel();
};

}  // namespace pasture::worker::wsgi
