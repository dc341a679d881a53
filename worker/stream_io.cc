#include "worker/stream_io.h"

#include <cstdlib>
#include <cstring>

namespace pasture::worker {
namespace {

struct WriteReq {
  uv_write_t req;
  char data[];
};

void on_written(uv_write_t* req, int status) {
  uv_stream_t* s = req->handle;
  free(req);
  if (s->data) static_cast<StreamOwner*>(s->data)->on_write_done(status);
}

}  // namespace

int stream_send(uv_stream_t* s, const uv_buf_t* bufs, unsigned nbufs) {
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
  if (total == 0) return 0;
  size_t skip = 0;
  if (s->write_queue_size == 0) {
    int r = uv_try_write(s, bufs, nbufs);
    if (r >= 0 && (size_t)r == total) return 0;
    if (r < 0 && r != UV_EAGAIN) return r;
    if (r > 0) skip = (size_t)r;
  }
  return stream_queue(s, bufs, nbufs, skip);
}

int stream_queue(uv_stream_t* s, const uv_buf_t* bufs, unsigned nbufs, size_t skip) {
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
  if (total <= skip) return 0;
  size_t rest = total - skip;
  auto* wr = static_cast<WriteReq*>(malloc(sizeof(WriteReq) + rest));
  if (!wr) return UV_ENOMEM;
  char* out = wr->data;
  for (unsigned i = 0; i < nbufs; i++) {
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
  uv_buf_t b = uv_buf_init(wr->data, (unsigned)rest);
  int r = uv_write(&wr->req, s, &b, 1, on_written);
  if (r < 0) free(wr);
  return r;
}

}  // namespace pasture::worker
