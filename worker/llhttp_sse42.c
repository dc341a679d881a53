/* A second copy of llhttp's generated parser, built with SSE4.2: llparse
 * emits a 16-byte _mm_cmpestri scan of header values under __SSE4_2__, a
 * third of the worker's instructions with 3 KiB request heads (bench
 * --shapes headers). Its entry point is renamed and every other symbol made
 * local (CMakeLists.txt: -fvisibility=hidden, then objcopy --localize-hidden),
 * so it links beside the portable copy; llhttp_dispatch.c picks one per CPU. */
#include "llhttp.h"

__attribute__((visibility("default"))) int pasture_llhttp_execute_sse42(llhttp__internal_t* s, const char* p,
                                                                        const char* endp);
#define llhttp__internal_execute pasture_llhttp_execute_sse42
#define llhttp__internal_init pasture_llhttp_init_sse42
#include "llhttp.c"
