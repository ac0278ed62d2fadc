/* fleet_unit.c - the heap profile's buckets (agent/heapprof.c), built with
 * HEAPPROF_MAX = 8 so the "mixed sizes" fallback is reached: one bucket per
 * (site, size), frees matched to their alloc's bucket, counts exact through
 * the fallback, a stable order for delta baselines, a new generation at a
 * reset. */
#include "check.h"
#include "debug_pprof.h"

#include <stdlib.h>

void *vkm_malloc(size_t n) { return malloc(n); }
void vkm_free(void *p) { free(p); }

static const vkm_hbucket_t *find(uint32_t site, uint64_t size) {
  size_t n;
  const vkm_hbucket_t *b = vkm_heapprof_buckets(&n, NULL);
  for (size_t i = 0; i < n; i++)
    if (b[i].site == site && b[i].size == size) return &b[i];
  return NULL;
}

int main(void) {
  uint64_t g0;
  size_t n;
  vkm_heapprof_buckets(&n, &g0);
  CHECK_EQ(n, 0);

  /* One bucket per (site, size). */
  for (int i = 0; i < 5; i++) vkm_heapprof_alloc(1, 100);
  vkm_heapprof_alloc(1, 200);
  vkm_heapprof_alloc(2, 100);
  vkm_heapprof_free(1, 100);
  vkm_heapprof_free(1, 100);
  const vkm_hbucket_t *b = find(1, 100);
  CHECK(b != NULL);
  CHECK_EQ(b->allocs, 5);
  CHECK_EQ(b->alloc_bytes, 500);
  CHECK_EQ(b->frees, 2);
  CHECK_EQ(b->free_bytes, 200);
  CHECK_EQ(find(1, 200)->allocs, 1);
  CHECK_EQ(find(2, 100)->allocs, 1);
  CHECK_EQ(find(2, 100)->frees, 0);
  /* A free with no alloc behind it counts nowhere. */
  vkm_heapprof_free(3, 100);
  CHECK(find(3, 100) == NULL);
  vkm_heapprof_free(2, 100);
  vkm_heapprof_free(2, 100);
  CHECK_EQ(find(2, 100)->frees, 1);

  /* Fill the table (8), then new pairs go to their site's mixed bucket. */
  for (uint64_t s = 1; s <= 5; s++) vkm_heapprof_alloc(4, s * 1000); /* 3 + 5 = 8 buckets */
  vkm_heapprof_buckets(&n, NULL);
  CHECK_EQ(n, 8);
  const vkm_hbucket_t *first = vkm_heapprof_buckets(&n, NULL);
  uint32_t site0 = first[0].site;
  uint64_t size0 = first[0].size;
  vkm_heapprof_alloc(4, 7);
  vkm_heapprof_alloc(4, 9);
  vkm_heapprof_alloc(1, 300);
  b = find(4, VKM_HBUCKET_MIXED);
  CHECK(b != NULL);
  CHECK_EQ(b->allocs, 2);
  CHECK_EQ(b->alloc_bytes, 16);
  CHECK_EQ(find(1, VKM_HBUCKET_MIXED)->alloc_bytes, 300);
  CHECK(find(4, 7) == NULL);
  vkm_heapprof_free(4, 9); /* finds the mixed bucket its alloc went to */
  CHECK_EQ(find(4, VKM_HBUCKET_MIXED)->frees, 1);
  CHECK_EQ(find(4, VKM_HBUCKET_MIXED)->free_bytes, 9);
  vkm_heapprof_alloc(4, 3000); /* an existing pair keeps its own bucket */
  CHECK_EQ(find(4, 3000)->allocs, 2);
  /* Buckets never move: a delta's baseline is an index range. */
  first = vkm_heapprof_buckets(&n, NULL);
  CHECK_EQ(first[0].site, site0);
  CHECK_EQ(first[0].size, size0);
  CHECK_EQ(n, 10);

  /* Many pairs: the hash table grows and finds every one again. */
  vkm_heapprof_reset();
  uint64_t g1;
  vkm_heapprof_buckets(&n, &g1);
  CHECK_EQ(n, 0);
  CHECK(g1 != g0);
  for (uint32_t s = 0; s < 4; s++) vkm_heapprof_alloc(s, 1);
  for (int k = 0; k < 3000; k++) vkm_heapprof_alloc((uint32_t)(k % 4), (uint64_t)(k / 4 + 2));
  uint64_t total = 0;
  const vkm_hbucket_t *all = vkm_heapprof_buckets(&n, NULL);
  for (size_t i = 0; i < n; i++) total += all[i].allocs;
  CHECK_EQ(total, 3004);
  CHECK_EQ(n, 8 + 4); /* 8 own buckets, then one mixed per site */
  return check_done("fleet_unit");
}
