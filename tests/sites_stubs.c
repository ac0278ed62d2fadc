/* sites_stubs.c - what sites.c, symbols.c and pprof.c need from the rest of
 * valkmem, for unit tests that compile those files directly. */
#include "vkm.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

vkm_config_t vkm_config = {.sample_bytes = 1, .max_frames = 64, .exact = true, .top_sites = 50};

void *vkm_malloc(size_t n) { return malloc(n); }
void *vkm_calloc(size_t n, size_t m) { return calloc(n, m); }
void *vkm_realloc(void *p, size_t n) { return realloc(p, n); }
char *vkm_strdup(const char *s) { return strdup(s); }
void vkm_free(void *p) { free(p); }
uint64_t vkm_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
void vkm_say(const char *level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "valkmem: %s: ", level);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
