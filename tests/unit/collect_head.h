// Test helper: parse a complete request head with llhttp into a
// HeadCollector, the way the worker does (spans as offsets into `raw`).
#pragma once

#include <llhttp.h>

#include <string>
#include <vector>

#include "worker/http_head.h"

namespace pasture::worker {

// The collector callbacks ClientConn installs, for a parser whose `data` is
// a HeadCollector.
inline llhttp_settings_t collector_settings() {
  llhttp_settings_t st;
  llhttp_settings_init(&st);
  st.on_url = [](llhttp_t* p, const char* a, size_t n) {
    static_cast<HeadCollector*>(p->data)->on_url(a, n);
    return 0;
  };
  st.on_header_field = [](llhttp_t* p, const char* a, size_t n) {
    static_cast<HeadCollector*>(p->data)->on_field(a, n);
    return 0;
  };
  st.on_header_value = [](llhttp_t* p, const char* a, size_t n) {
    static_cast<HeadCollector*>(p->data)->on_value(a, n);
    return 0;
  };
  return st;
}

}  // namespace pasture::worker
