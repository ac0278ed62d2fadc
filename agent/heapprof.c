/* heapprof.c - the heap profile's buckets, as Go's runtime keeps them: one
 * per (call site, requested size), holding raw sample counts and bytes,
 * allocated and freed, since the process started.
 *
 * Why not the per-site estimates of sites.c: Go's profile carries a block
 * size per sample (the `bytes` label), scales each bucket by its own size
 * (1 / (1 - exp(-size/rate))), and its legacy text form (?debug=1) prints
 * raw, unscaled counts that the reader scales. All three need raw counts
 * per size, which a per-site weighted sum has already lost.
 *
 * Fed by sites.c (vkm_heapprof_alloc/free, with the site index it
 * interned the stack under and the event's requested size), agent thread
 * only. Buckets live in one array in creation order and never move or go
 * away until a reset, so a delta profile's baseline is just the first n
 * buckets' counts (debug_pprof.c). The table is bounded: past
 * HEAPPROF_MAX buckets, a new (site, size) pair goes into its site's
 * "mixed sizes" bucket, which is scaled by its mean size (what Go does
 * with every bucket) - exact in total, coarser in the label.
 */
#include "debug_pprof.h"

#include <string.h>

#ifndef HEAPPROF_MAX /* tests set a small one */
#define HEAPPROF_MAX (1u << 20)
#endif

static vkm_hbucket_t *bk;
static size_t nbk, capbk;
static uint32_t *slots; /* index + 1; 0 = empty */
static size_t nslots;
static uint64_t gen = 1;

static size_t slot_of(uint32_t site, uint64_t size) {
  uint64_t x = size * 0x9e3779b97f4a7c15ull ^ ((uint64_t)site * 0xbf58476d1ce4e5b9ull);
  x ^= x >> 31;
  return (size_t)x & (nslots - 1);
}

static vkm_hbucket_t *find(uint32_t site, uint64_t size) {
  if (!nslots) return NULL;
  for (size_t i = slot_of(site, size);; i = (i + 1) & (nslots - 1)) {
    uint32_t k = slots[i];
    if (!k) return NULL;
    vkm_hbucket_t *b = &bk[k - 1];
    if (b->site == site && b->size == size) return b;
  }
}

static int rehash(size_t ns) {
  uint32_t *s = vkm_malloc(ns * sizeof *s);
  if (!s) return -1;
  memset(s, 0, ns * sizeof *s);
  vkm_free(slots);
  slots = s;
  nslots = ns;
  for (size_t j = 0; j < nbk; j++) {
    size_t i = slot_of(bk[j].site, bk[j].size);
    while (slots[i]) i = (i + 1) & (nslots - 1);
    slots[i] = (uint32_t)j + 1;
  }
  return 0;
}

static vkm_hbucket_t *add(uint32_t site, uint64_t size) {
  if (nbk == capbk) {
    size_t nc = capbk ? capbk * 2 : 1024;
    vkm_hbucket_t *nb = vkm_malloc(nc * sizeof *nb);
    if (!nb) return NULL;
    if (nbk) memcpy(nb, bk, nbk * sizeof *nb);
    vkm_free(bk);
    bk = nb;
    capbk = nc;
  }
  if ((nbk + 1) * 2 > nslots && rehash(nslots ? nslots * 2 : 2048) != 0) return NULL;
  vkm_hbucket_t *b = &bk[nbk];
  memset(b, 0, sizeof *b);
  b->site = site;
  b->size = size;
  size_t i = slot_of(site, size);
  while (slots[i]) i = (i + 1) & (nslots - 1);
  slots[i] = (uint32_t)++nbk;
  return b;
}

/* The bucket a (site, size) pair counts in: its own, or when the table is
 * full (or out of memory) its site's mixed one. NULL only when even that
 * cannot be had. */
static vkm_hbucket_t *bucket(uint32_t site, uint64_t size, bool create) {
  vkm_hbucket_t *b = find(site, size);
  if (b) return b;
  if (create && nbk < HEAPPROF_MAX && (b = add(site, size))) return b;
  b = find(site, VKM_HBUCKET_MIXED);
  return b || !create ? b : add(site, VKM_HBUCKET_MIXED);
}

void vkm_heapprof_alloc(uint32_t site, uint64_t size) {
  vkm_hbucket_t *b = bucket(site, size, true);
  if (!b) return;
  b->allocs++;
  b->alloc_bytes += size;
}

void vkm_heapprof_free(uint32_t site, uint64_t size) {
  /* An alloc that found no bucket at all was not counted: neither is its free. */
  vkm_hbucket_t *b = bucket(site, size, false);
  if (!b || b->frees >= b->allocs) return;
  b->frees++;
  b->free_bytes += size;
}

void vkm_heapprof_reset(void) {
  vkm_free(bk);
  vkm_free(slots);
  bk = NULL;
  slots = NULL;
  nbk = capbk = nslots = 0;
  gen++;
}

const vkm_hbucket_t *vkm_heapprof_buckets(size_t *n, uint64_t *generation) {
  *n = nbk;
  if (generation) *generation = gen;
  return bk;
}
