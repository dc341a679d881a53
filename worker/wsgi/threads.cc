// App threads (threads = N > 1): the loop hands complete requests to N
// threads; each runs the app under the GIL and hands the response back
// through a uv_async_t. Back-pressure: a thread waits (GIL released) while
// its call has more than kHighWater bytes the loop has not taken, and the
// loop takes none while the client is behind (Sink::app_body said so).
#include <deque>
#include <thread>
#include <vector>

#include "common/log.h"
#include "worker/stream_io.h"
#include "worker/wsgi/call_impl.h"

namespace pasture::worker::wsgi {
namespace {

struct Pool {
  std::mutex mu;
  std::condition_variable work;
  std::deque<Call::Impl*> jobs;
  std::vector<Call::Impl*> ready;  // calls with something for the loop
  uv_async_t async;
  size_t calls = 0;  // loop only: calls submitted and not freed; the async holds the loop while > 0
};
Pool* pool_ = nullptr;

// Loop thread: the call is over for both sides.
void release(Call::Impl* c) {
  c->free_call();
  if (--pool_->calls == 0) uv_unref(reinterpret_cast<uv_handle_t*>(&pool_->async));
}

// mu held.
void post(Call::Impl* c) {
  if (c->pending) return;
  c->pending = true;
  pool_->ready.push_back(c);
  uv_async_send(&pool_->async);
}

void thread_main() {
  // Through PyGILState, so C extensions that call PyGILState_Ensure on
  // this thread find its state instead of making a second one.
  PyGILState_Ensure();
  PyThreadState* ts = PyEval_SaveThread();
  for (;;) {
    Call::Impl* c;
    {
      std::unique_lock<std::mutex> l(pool_->mu);
      pool_->work.wait(l, [] { return !pool_->jobs.empty(); });
      c = pool_->jobs.front();
      pool_->jobs.pop_front();
    }
    if (!c->cancelled) {
      PyEval_RestoreThread(ts);
      c->start();  // to the end: a threaded send waits instead of pausing
      ts = PyEval_SaveThread();
    }
    std::lock_guard<std::mutex> l(pool_->mu);
    c->thread_done = true;
    post(c);
  }
}

// `posted`: called for the ready list (the call stays `pending`, so
// nothing frees it, until here).
void deliver(Call::Impl* c, bool posted) {
  bool head = false, end = false, gone = false;
  std::string chunk;
  {
    std::lock_guard<std::mutex> l(pool_->mu);
    if (posted) c->pending = false;
    if (c->cancelled) {
      gone = c->thread_done && !c->pending;
    } else {
      if (c->head_ready && !c->head_delivered) head = c->head_delivered = true;
      if (!c->paused && c->head_delivered && !c->out.empty()) {
        chunk.swap(c->out);
        c->space.notify_all();
      }
      // Still in the ready list: on_async ends it (and only then may free it).
      end = c->thread_done && c->out.empty() && c->head_delivered && !c->pending;
    }
  }
  if (c->cancelled) {
    if (gone) release(c);
    return;
  }
  c->delivering = true;
  if (head) c->sink->app_head(c->status, c->status_line, c->fields, c->clen, c->conn_close);
  if (!chunk.empty() && !c->cancelled && !c->sink->app_body(chunk.data(), chunk.size())) c->paused = true;
  c->delivering = false;
  if (c->cancelled) {  // the sink closed the connection meanwhile
    bool dead;
    {
      std::lock_guard<std::mutex> l(pool_->mu);
      dead = c->thread_done && !c->pending;
    }
    if (dead) release(c);
    return;
  }
  if (end) {
    c->sink->app_end(c->ok);
    release(c);
  }
}

void on_async(uv_async_t*) {
  std::vector<Call::Impl*> batch;
  {
    std::lock_guard<std::mutex> l(pool_->mu);
    batch.swap(pool_->ready);
  }
  for (Call::Impl* c : batch) deliver(c, true);
}

}  // namespace

bool start_threads(uv_loop_t* loop, std::string* err) {
  if (!g().multithread || pool_) return true;
  pool_ = new Pool;
  if (int r = uv_async_init(loop, &pool_->async, on_async); r < 0) {
    *err = std::string("uv_async_init: ") + uv_strerror(r);
    return false;
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(&pool_->async));  // the drain decides when the loop ends
  for (uint32_t i = 0; i < g().threads; i++) std::thread(thread_main).detach();
  return true;
}

void Call::Impl::thread_submit() {
  if (pool_->calls++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(&pool_->async));
  std::lock_guard<std::mutex> l(pool_->mu);
  pool_->jobs.push_back(this);
  pool_->work.notify_one();
}

void Call::Impl::thread_head() {
  std::lock_guard<std::mutex> l(pool_->mu);
  head_ready = true;
  post(this);
}

// GIL held; waits with it released while the loop has not taken enough.
bool Call::Impl::thread_send(const char* p, size_t n) {
  {
    std::lock_guard<std::mutex> l(pool_->mu);
    out.append(p, n);
    post(this);
    if (out.size() <= kHighWater) return !cancelled;
  }
  bool more;
  Py_BEGIN_ALLOW_THREADS
  {
    std::unique_lock<std::mutex> l(pool_->mu);
    space.wait(l, [this] { return out.size() <= kHighWater || cancelled; });
    more = !cancelled;
  }
  Py_END_ALLOW_THREADS
  return more;
}

void Call::Impl::loop_resume() {
  paused = false;
  if (!delivering) deliver(this, false);
}

void Call::Impl::loop_cancel() {
  bool dead;
  {
    std::lock_guard<std::mutex> l(pool_->mu);
    cancelled = true;
    space.notify_all();
    dead = thread_done && !pending && !delivering;
  }
  if (!started)
    free_call();  // never submitted
  else if (dead)
    release(this);
}

}  // namespace pasture::worker::wsgi
