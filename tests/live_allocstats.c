/* live_allocstats.c - the allocator estimate seen from outside the
 * process (agent/allocstats.c) against a heap whose shape we planted in
 * this process. Compiles agent/allocstats.c and the platform reader
 * directly; "the recorded process" is this one (live_stubs.c), and the
 * segment is a header of our own saying which allocator the recorder
 * found.
 *
 *   live_allocstats glibc        fragment the heap (free every other block):
 *                                free_held grows by ~ the freed bytes,
 *                                frag_pct rises past the warning line.
 *   live_allocstats_mi none      the recorder found another allocator
 *                                (jemalloc, tcmalloc): nothing is guessed.
 *   live_allocstats_mi mimalloc  VALKMEM_ALLOCATOR=mimalloc: held covers
 *                                the live heap.
 */
#include "check.h"
#include "agent.h"
#include "os_alloc.h"
#include "segment.h"

#include <malloc.h>
#ifndef LIVE_STUB_MIMALLOC
#include <mimalloc.h>
#endif

extern vkm_tick_t live_stub_tick;
static vkm_seg_hdr_t fake_seg;

#define SEC 1000000000ull
#define NBLOCKS 20000
#define BLOCK 1000

static cJSON *json_of(const vkm_allocstats_t *a) {
  cJSON *o = cJSON_CreateObject();
  vkm_allocstats_json(a, o);
  return o;
}

/* A fresh smaps breakdown of this process, then the estimate. */
static void sample(vkm_allocstats_t *a, uint64_t t_ns) {
  vkm_os_t os;
  vkm_os_sample(&os, t_ns, VKM_SMAPS_FORCE);
  live_stub_tick.rss_bytes = os.rss;
  vkm_allocstats_sample(a, &live_stub_tick, fake_seg.allocator);
}

static void test_glibc(void) {
  snprintf(fake_seg.allocator, sizeof fake_seg.allocator, "glibc");
  vkm_allocstats_t base, b;
  /* Before and after the planting, glibc's own word on what is in use
   * stands in for the recorder's counters. */
  struct mallinfo2 mi = mallinfo2();
  uint64_t before = mi.uordblks + mi.hblkhd;
  live_stub_tick.live_bytes = (int64_t)before;
  sample(&base, 1 * SEC);
  CHECK_STREQ(base.source, "glibc");
  CHECK_EQ(base.in_use + base.free_held, base.held);

  static void *blk[NBLOCKS];
  uint64_t live = before;
  for (int i = 0; i < NBLOCKS; i++) {
    blk[i] = malloc(BLOCK);
    memset(blk[i], 0xab, BLOCK);
    live += malloc_usable_size(blk[i]);
  }
  void *fence = malloc(BLOCK); /* keeps the top chunk from swallowing the last hole */
  live += malloc_usable_size(fence);
  uint64_t freed = 0;
  for (int i = 0; i < NBLOCKS; i += 2) {
    uint64_t u = malloc_usable_size(blk[i]);
    freed += u + sizeof(size_t); /* the chunk: usable + its size word */
    live -= u;
    free(blk[i]);
    blk[i] = NULL;
  }
  /* What the recorder's counters would say: the live heap, exactly. */
  live_stub_tick.live_bytes = (int64_t)live;
  sample(&b, 2 * SEC);
  CHECK_STREQ(b.source, "glibc");
  CHECK_EQ(b.in_use, live);
  CHECK_EQ(b.in_use + b.free_held, b.held);
  /* The holes are free_held; so is what glibc and this process held before
   * (base), and a page or two of slack. */
  CHECK_GE((double)b.free_held, 0.97 * (double)freed);
  CHECK_LE((double)b.free_held, (double)freed + (double)base.held + 256 * 1024.0);
  /* (No comparison with base.frag_pct: a heap of a few KiB in a process
   * whose other anonymous memory is larger reads as mostly free from
   * outside; the estimate is an upper bound.) */
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

  /* The program's own anonymous mmap is not heap: the recorder counts it
   * (mmap_bytes) and the estimate leaves it out. */
  size_t mlen = 8u << 20;
  char *m = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  memset(m, 3, mlen);
  live_stub_tick.c.mmap_bytes = mlen;
  vkm_allocstats_t c;
  sample(&c, 3 * SEC);
  CHECK_LE((double)c.held, (double)b.held + 256 * 1024.0);
  munmap(m, mlen);
  live_stub_tick.c.mmap_bytes = 0;

  /* free the rest: the holes coalesce and glibc gives memory back */
  for (int i = 1; i < NBLOCKS; i += 2) free(blk[i]);
  free(fence);
  malloc_trim(0);
  mi = mallinfo2();
  live_stub_tick.live_bytes = (int64_t)(mi.uordblks + mi.hblkhd);
  vkm_allocstats_t a;
  sample(&a, 100 * SEC);
  CHECK_LT(a.held, b.held);
}

#ifndef LIVE_STUB_MIMALLOC
static void test_none(void) {
  snprintf(fake_seg.allocator, sizeof fake_seg.allocator, "other");
  vkm_allocstats_t a;
  sample(&a, 1 * SEC);
  CHECK_STREQ(a.source, "none");
  CHECK_EQ(a.held, 0);
  CHECK_EQ(a.frag_pct, 0);
  CHECK_EQ(a.frag_warn, 0);
  cJSON *o = json_of(&a);
  CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "allocator"), "source")), "none");
  cJSON_Delete(o);
}

static void test_mimalloc(void) {
  snprintf(fake_seg.allocator, sizeof fake_seg.allocator, "mimalloc");
  static void *blk[4096];
  for (int i = 0; i < 4096; i++) {
    blk[i] = mi_malloc(4096);
    memset(blk[i], 1, 4096);
  }
  live_stub_tick.live_bytes = 4096 * 4096;
  vkm_allocstats_t a;
  sample(&a, 1 * SEC);
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
  vkm_seg = &fake_seg;
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
