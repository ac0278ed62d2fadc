/* live_allocstats.c - allocator statistics against a heap whose shape we
 * planted. Compiles agent/allocstats.c and the platform reader directly.
 *
 *   live_allocstats glibc        glibc's malloc is the next one: fragment the
 *                                heap (free every other block) and check
 *                                free_held ~ freed bytes, frag_pct rises.
 *   live_allocstats_mi none      mimalloc linked first, no VALKMEM_ALLOCATOR:
 *                                the next malloc is neither ours nor glibc's.
 *   live_allocstats_mi mimalloc  VALKMEM_ALLOCATOR=mimalloc.
 */
#include "check.h"
#include "agent.h"
#include "os_alloc.h"

#include <malloc.h>
#include <mimalloc.h>

extern vkm_tick_t live_stub_tick;

#define SEC 1000000000ull

#ifdef LIVE_STUB_MIMALLOC
/* This executable must keep glibc's malloc: no libmimalloc here. */
static int mi_called;
void mi_process_info(size_t *elapsed, size_t *user, size_t *sys, size_t *rss, size_t *peak_rss,
                     size_t *commit, size_t *peak_commit, size_t *faults) {
  mi_called = 1;
  *elapsed = *user = *sys = *rss = *peak_rss = *commit = *peak_commit = *faults = 0;
}
#endif

static cJSON *json_of(const vkm_allocstats_t *a) {
  cJSON *o = cJSON_CreateObject();
  vkm_allocstats_json(a, o);
  return o;
}

#define NBLOCKS 20000
#define BLOCK 1000

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* The sanitizer's malloc is the next one: neither glibc's nor mimalloc. */
static void test_glibc(void) {
  CHECK_EQ(vkm_os_native_malloc(), 0);
  vkm_allocstats_t a;
  vkm_allocstats_sample(&a, 1 * SEC);
  CHECK_STREQ(a.source, "none");
  CHECK_EQ(a.held, 0);
  cJSON *o = json_of(&a);
  CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "allocator"), "source")), "none");
  cJSON_Delete(o);
  fprintf(stderr, "sanitizer build: allocator source \"%s\"\n", a.source);
}
#else
static void test_glibc(void) {
  CHECK_EQ(vkm_os_native_malloc(), 1);
  vkm_allocstats_t base, a, b;
  vkm_allocstats_sample(&base, 1 * SEC);
  CHECK_STREQ(base.source, "glibc");
  CHECK_EQ(base.in_use + base.free_held, base.held);

  static void *blk[NBLOCKS];
  for (int i = 0; i < NBLOCKS; i++) {
    blk[i] = malloc(BLOCK);
    memset(blk[i], 0xab, BLOCK);
  }
  void *fence = malloc(BLOCK); /* keeps the top chunk from swallowing the last hole */
  uint64_t freed = 0;
  for (int i = 0; i < NBLOCKS; i += 2) {
    freed += malloc_usable_size(blk[i]) + sizeof(size_t); /* the chunk: usable + its size word */
    free(blk[i]);
    blk[i] = NULL;
  }

  /* within the second: the cached sample, no new mallinfo2 */
  vkm_allocstats_sample(&a, 1 * SEC + SEC / 2);
  CHECK_EQ(a.held, base.held);
  CHECK_EQ(a.free_held, base.free_held);

  vkm_allocstats_sample(&b, 2 * SEC + 1);
  CHECK_STREQ(b.source, "glibc");
  CHECK_EQ(b.in_use + b.free_held, b.held);
  uint64_t grown = b.held - base.held;
  CHECK_GE(grown, (uint64_t)NBLOCKS * BLOCK);
  CHECK_LE(grown, (uint64_t)NBLOCKS * (BLOCK + 64) + 1024 * 1024);
  /* tcache keeps up to 7 freed chunks per size for itself (counted in use) */
  CHECK_NEAR((double)(b.free_held - base.free_held), (double)freed, 0.02 * (double)freed);
  CHECK_GT(b.frag_pct, base.frag_pct);
  CHECK_NEAR(b.frag_pct, (double)b.free_held * 100.0 / (double)b.held, 1e-9);
  CHECK_GE(b.frag_pct, 25.0);
  CHECK_EQ(b.frag_warn, 1);
  fprintf(stderr, "glibc: held %llu in_use %llu free_held %llu frag %.1f%% (freed %llu)\n",
          (unsigned long long)b.held, (unsigned long long)b.in_use, (unsigned long long)b.free_held, b.frag_pct,
          (unsigned long long)freed);

  cJSON *o = json_of(&b);
  cJSON *al = cJSON_GetObjectItem(o, "allocator");
  CHECK(al != NULL);
  CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(al, "source")), "glibc");
  CHECK_EQ(cJSON_GetObjectItem(al, "held")->valuedouble, (double)b.held);
  CHECK_EQ(cJSON_GetObjectItem(al, "free_held")->valuedouble, (double)b.free_held);
  CHECK(cJSON_IsTrue(cJSON_GetObjectItem(al, "frag_warn")));
  cJSON_Delete(o);

  /* free the rest: the holes coalesce and glibc gives memory back */
  for (int i = 1; i < NBLOCKS; i += 2) free(blk[i]);
  free(fence);
  malloc_trim(0);
  vkm_allocstats_sample(&a, 100 * SEC); /* past any back-off (1000x the last call) */
  CHECK_LT(a.held, b.held);
  CHECK_LT(a.frag_pct, b.frag_pct);
#ifdef LIVE_STUB_MIMALLOC
  CHECK_EQ(mi_called, 0);
#endif
}
#endif

#ifndef LIVE_STUB_MIMALLOC
static void test_none(void) {
  CHECK_EQ(vkm_os_native_malloc(), 0);
  vkm_allocstats_t a;
  vkm_allocstats_sample(&a, 1 * SEC);
  CHECK_STREQ(a.source, "none");
  CHECK_EQ(a.held, 0);
  CHECK_EQ(a.frag_pct, 0);
  CHECK_EQ(a.frag_warn, 0);
  cJSON *o = json_of(&a);
  CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "allocator"), "source")), "none");
  cJSON_Delete(o);
}

static void test_mimalloc(void) {
  strcpy(vkm_config.allocator, "mimalloc");
  static void *blk[4096];
  for (int i = 0; i < 4096; i++) {
    blk[i] = mi_malloc(4096);
    memset(blk[i], 1, 4096);
  }
  live_stub_tick.live_bytes = 4096 * 4096;
  vkm_allocstats_t a;
  vkm_allocstats_sample(&a, 1 * SEC);
  CHECK_STREQ(a.source, "mimalloc");
  CHECK_GE(a.held, 4096 * 4096);
  CHECK_EQ(a.in_use, 4096 * 4096);
  CHECK_EQ(a.free_held, a.held - a.in_use);
  CHECK_NEAR(a.frag_pct, (double)a.free_held * 100.0 / (double)a.held, 1e-9);
  CHECK_EQ(a.frag_warn, a.frag_pct >= 25.0);
  fprintf(stderr, "mimalloc: held %llu in_use %llu frag %.1f%%\n", (unsigned long long)a.held,
          (unsigned long long)a.in_use, a.frag_pct);
  for (int i = 0; i < 4096; i++) mi_free(blk[i]);
}
#endif

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "glibc";
  if (strcmp(mode, "glibc") == 0) test_glibc();
#ifndef LIVE_STUB_MIMALLOC
  else if (strcmp(mode, "none") == 0) test_none();
  else if (strcmp(mode, "mimalloc") == 0) test_mimalloc();
#endif
  else {
    fprintf(stderr, "live_allocstats: unknown mode %s\n", mode);
    return 2;
  }
  return check_done(mode);
}
