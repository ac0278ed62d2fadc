/* soak_classes.c - usable bytes exact at every request size.
 *
 * usage: soak_classes N
 * N rounds; each allocates every size from 0 to 4200 bytes and a few larger
 * ones, once with malloc and once with calloc, asks the allocator for each
 * block's usable size (malloc_usable_size), then frees them all, in an
 * order unlike the allocation order. Planted per run: allocation and free
 * counts, requested bytes, and usable bytes in and out (the sum of what the
 * allocator itself says); live count and bytes come back to where they
 * were.
 *
 * This is the check on the usable-size shortcuts: glibc's chunk header read
 * inline, and the size-class table built from another allocator's nallocx
 * or mi_good_size (interpose/hot.h, vkm_class_lookup), which malloc uses
 * while free asks the allocator. If either disagreed with the allocator for
 * any size, alloc_usable_bytes or free_usable_bytes would be off here.
 */
#include "soak.h"
#include <malloc.h>

#define SMALL_MAX 4200
static const size_t large[] = {5000, 8192, 10000, 16385, 40000, 100000, 140000, 300000};
#define NLARGE (sizeof large / sizeof large[0])
#define PER_ROUND (2 * (SMALL_MAX + 1 + NLARGE))

static size_t size_at(size_t i) {
  i %= SMALL_MAX + 1 + NLARGE;
  return i <= SMALL_MAX ? i : large[i - SMALL_MAX - 1];
}

int main(int argc, char **argv) {
  uint64_t rounds = soak_arg(argc, argv, 1, 4);
  static void *blocks[PER_ROUND];
  uint64_t allocs = 0, bytes = 0, usable = 0;
  for (uint64_t r = 0; r < rounds; r++) {
    for (size_t i = 0; i < PER_ROUND; i++) {
      size_t n = size_at(i);
      void *p = i < PER_ROUND / 2 ? malloc(n) : calloc(1, n);
      if (!p) soak_die("allocation failed");
      memset(p, 0x5a, n);
      blocks[i] = p;
      allocs++;
      bytes += n;
      usable += malloc_usable_size(p);
    }
    /* Free with a prime stride (coprime to PER_ROUND = 2 * 3 * 23 * 61):
     * neighbours in size are freed far apart, so no allocator sees a
     * simple LIFO pattern. */
    for (size_t k = 0, i = 0; k < PER_ROUND; k++, i = (i + 7919) % PER_ROUND) {
      free(blocks[i]);
      blocks[i] = NULL;
    }
    for (size_t i = 0; i < PER_ROUND; i++)
      if (blocks[i]) soak_die("a block was not freed: the stride is not coprime");
  }
  soak_obj_t planted = {0};
  soak_put(&planted, "totals.alloc_count", (int64_t)allocs);
  soak_put(&planted, "totals.free_count", (int64_t)allocs);
  soak_put(&planted, "totals.alloc_bytes", (int64_t)bytes);
  soak_put(&planted, "totals.alloc_usable_bytes", (int64_t)usable);
  soak_put(&planted, "totals.free_usable_bytes", (int64_t)usable);
  soak_put(&planted, "totals.failed_count", 0);
  soak_put(&planted, "live.count", 0);
  soak_put(&planted, "live.bytes", 0);
  soak_print(&planted, NULL, NULL, NULL);
  return 0;
}
