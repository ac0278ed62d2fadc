/* live_stubs.c - the little of the library that history.c, os_linux.c and
 * allocstats.c lean on, so their unit tests compile those sources alone.
 * Allocation through vkm_* is counted: tests check history never grows. */
#include "agent.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

vkm_config_t vkm_config = {.tick_ms = 100};
uint64_t live_stub_alloc_bytes, live_stub_alloc_calls;
uint64_t live_stub_gc_cycles;
double live_stub_gc_pause_ms;
vkm_tick_t live_stub_tick;

void vkm_say(const char *level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "valkmem: %s: ", level);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* The recorded process is this one; no segment. */
int vkm_target_pid(void) { return (int)getpid(); }
#include "segment.h"
vkm_seg_hdr_t *vkm_seg;

void *vkm_malloc(size_t n) {
  live_stub_alloc_bytes += n;
  live_stub_alloc_calls++;
  return malloc(n);
}
void *vkm_calloc(size_t n, size_t m) {
  live_stub_alloc_bytes += n * m;
  live_stub_alloc_calls++;
  return calloc(n, m);
}
void vkm_free(void *p) { free(p); }
int64_t live_stub_self_bytes; /* what the sources under test mapped for themselves */
void vkm_self_track(int64_t delta) { live_stub_self_bytes += delta; }

const cJSON *vkm_view_doc(void) { return NULL; } /* live data, never a saved view */

/* history.c's per-site history asks sites.c (not linked here): no sites. */
unsigned vkm_sites_top_live(uint32_t *idx, int64_t *live, unsigned n) {
  (void)idx, (void)live, (void)n;
  return 0;
}
void vkm_sites_describe(uint32_t idx, cJSON *o) { (void)idx, (void)o; }
