/* A second copy of llhttp's generated parser, built with SSE4.2: llparse
 * emits a 16-byte _mm_cmpestri scan of header values under __SSE4_2__, a
 * third of the worker's instructions with 3 KiB request heads (bench
 * --shapes headers). Its entry point is renamed and every other symbol made
 * local (CMakeLists.txt: -fvisibility=hidden, then objcopy --localize-hidden),
 * so it links beside the portable copy; llhttp_dispatch.c picks one per CPU.
 *
 * The header-value scan is ours (pasture_run below): llparse's loop takes
 * one pcmpestri per 16 bytes and re-enters the state with p advanced by its
 * result, so each block waits on the one before (load, pcmpestri, add: half
 * of llhttp's time with 2 KiB of cookies, perf annotate 2026-12-04). Ours
 * runs over whole 16-byte blocks (independent loads, SSE2 compares) and
 * returns the length of the whole run of matching bytes, which the
 * generated code takes as it takes pcmpestri's 0-16: `p += match_len` and
 * the state again (at the end of the input it suspends, as byte by byte).
 * It reads the generated function's `p` and `endp` by name: llparse's
 * output has named them so since its first release, and a rename fails the
 * build here rather than changing behaviour. Only for short range lists
 * (header values: 3 ranges; field names' second list, '~' alone); tchar's
 * first 8 ranges and the URL's 6 keep pcmpestri. */
#include <x86intrin.h>

#include "llhttp.h"

__attribute__((visibility("default"))) int pasture_llhttp_execute_sse42(llhttp__internal_t* s, const char* p,
                                                                        const char* endp);

/* The number of bytes from p on (at least the first 16 are there) that lie
 * in one of the la / 2 byte ranges of `ranges`, up to a byte that does not
 * or to fewer than 16 left. */
static inline __attribute__((always_inline)) int pasture_run(__m128i ranges, int la, const unsigned char* p,
                                                             const unsigned char* endp) {
  unsigned char r[16];
  _mm_storeu_si128((__m128i*)r, ranges);
  const unsigned char* s = p;
  do {
    __m128i x = _mm_loadu_si128((const __m128i*)s);
    __m128i in = _mm_setzero_si128();
    for (int i = 0; i + 1 < la; i += 2) {
      __m128i ge = _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8((char)r[i])), x);
      __m128i le = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8((char)r[i + 1])), x);
      in = _mm_or_si128(in, _mm_and_si128(ge, le));
    }
    unsigned out = ~(unsigned)_mm_movemask_epi8(in) & 0xffffu;
    if (out) return (int)(s - p) + __builtin_ctz(out);
    s += 16;
  } while (endp - s >= 16);
  return (int)(s - p);
}

/* Header values' list, {TAB, ' '..'~', 0x80..0xff}: the same run, as the
 * bytes that end it (a control byte but TAB, or DEL), in four compares a
 * block where the three ranges took nine (2 KiB of cookies: 10,000
 * instructions of a request's 37,000, callgrind, bench --shapes headers). */
static inline __attribute__((always_inline)) int pasture_is_value_list(__m128i ranges) {
  const __m128i list = _mm_setr_epi8(9, 9, ' ', '~', (char)0x80, (char)0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm_movemask_epi8(_mm_cmpeq_epi8(ranges, list)) == 0xffff;
}

static inline __attribute__((always_inline)) int pasture_value_run(const unsigned char* p,
                                                                   const unsigned char* endp) {
  const __m128i c1f = _mm_set1_epi8(0x1f), tab = _mm_set1_epi8('\t'), del = _mm_set1_epi8(0x7f);
  const unsigned char* s = p;
  do {
    __m128i x = _mm_loadu_si128((const __m128i*)s);
    __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(x, c1f), x); /* x <= 0x1f */
    __m128i end = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(x, tab), ctl), _mm_cmpeq_epi8(x, del));
    unsigned m = (unsigned)_mm_movemask_epi8(end);
    if (m) return (int)(s - p) + __builtin_ctz(m);
    s += 16;
  } while (endp - s >= 16);
  return (int)(s - p);
}

/* (`la` is a constant at each use, and `ranges` a constant blob's: the
 * choice folds away.) */
#define _mm_cmpestri(ranges, la, input, lb, mode)                                    \
  ((la) == 6 && pasture_is_value_list(ranges) ? pasture_value_run(p, endp)           \
   : (la) <= 6                                ? pasture_run((ranges), (la), p, endp) \
                                              : __builtin_ia32_pcmpestri128((__v16qi)(ranges), (la), \
                                                                            (__v16qi)(input), (lb), (mode)))

#define llhttp__internal_execute pasture_llhttp_execute_sse42
#define llhttp__internal_init pasture_llhttp_init_sse42
#include "llhttp.c"
