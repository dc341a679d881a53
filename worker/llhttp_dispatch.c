/* llhttp_execute's call into the generated parser (api.c is built with
 * llhttp__internal_execute renamed to this): the SSE4.2 copy
 * (llhttp_sse42.c) on CPUs that have SSE4.2, the portable one elsewhere. */
#include "llhttp.h"

int pasture_llhttp_execute(llhttp__internal_t* s, const char* p, const char* endp);
int pasture_llhttp_execute_sse42(llhttp__internal_t* s, const char* p, const char* endp);

typedef int (*execute_fn)(llhttp__internal_t*, const char*, const char*);

static execute_fn pick(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") ? pasture_llhttp_execute_sse42 : llhttp__internal_execute;
}

int pasture_llhttp_execute(llhttp__internal_t* s, const char* p, const char* endp) {
  static execute_fn fn; /* one worker thread per process: a benign first-call race at worst */
  if (!fn) fn = pick();
  return fn(s, p, endp);
}
