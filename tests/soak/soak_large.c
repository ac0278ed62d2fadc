/* soak_large.c - very large allocations and impossible ones.
 *
 * usage: soak_large big N    N rounds of 1 GiB malloc (first and last page
 *                            touched), 1 GiB calloc, aligned_alloc and
 *                            posix_memalign of 256 MiB, a realloc from
 *                            512 MiB to 1.5 GiB: allocation, free, requested
 *                            and usable bytes planted exactly.
 *        soak_large fail N   N rounds of requests that must fail: calloc
 *                            overflow, malloc(SIZE_MAX), posix_memalign and
 *                            aligned_alloc of absurd sizes, reallocarray
 *                            overflow (the old block survives), realloc to
 *                            SIZE_MAX: each a failed_count, no allocation.
 */
#include "soak.h"
#include <errno.h>
#include <malloc.h>

#define GiB (1024ull * 1024 * 1024)
#define MiB (1024ull * 1024)

static uint64_t allocs, frees, bytes, usable_in, usable_out, failed;

static void *took(void *p, uint64_t req) {
  if (!p) soak_die("a large allocation failed (is there 3 GiB of address space?)");
  allocs++;
  bytes += req;
  usable_in += malloc_usable_size(p);
  return p;
}

static void give(void *p) {
  usable_out += malloc_usable_size(p);
  frees++;
  free(p);
}

static void round_big(void) {
  char *p = took(malloc(GiB), GiB);
  p[0] = 1;
  p[GiB - 1] = 2; /* two pages of RSS, not a gigabyte */
  give(p);
  p = took(calloc(GiB / 16, 16), GiB);
  if (p[12345] != 0 || p[GiB - 7] != 0) soak_die("calloc memory not zero");
  give(p);
  p = took(aligned_alloc(1 << 21, 256 * MiB), 256 * MiB);
  if ((uintptr_t)p & ((1 << 21) - 1)) soak_die("aligned_alloc alignment");
  give(p);
  void *q = NULL;
  if (posix_memalign(&q, 4096, 256 * MiB)) soak_die("posix_memalign");
  took(q, 256 * MiB);
  give(q);
  /* realloc moves 512 MiB -> 1.5 GiB: one allocation, one realloc; the shim
   * counts the old usable size as given back and the new one as handed out. */
  p = took(malloc(512 * MiB), 512 * MiB);
  p[512 * MiB - 1] = 5;
  usable_out += malloc_usable_size(p);
  char *r = realloc(p, 3 * 512 * MiB);
  if (!r) soak_die("realloc to 1.5 GiB");
  if (r[512 * MiB - 1] != 5) soak_die("realloc lost the content");
  bytes += 3 * 512 * MiB;
  usable_in += malloc_usable_size(r);
  give(r);
}

/* Read through a volatile so the compiler neither warns about nor folds
 * the impossible sizes (built with -fno-builtin as well). */
static volatile size_t vmax = SIZE_MAX;

static void round_fail(void) {
  void *p;
  size_t max = vmax;
  /* calloc whose product overflows size_t: must be NULL, never a small block */
  errno = 0;
  p = calloc(max / 2 + 2, 2);
  if (p) soak_die("calloc overflow returned memory");
  failed++;
  p = calloc((max >> 24) + 1, (max >> 24) + 1);
  if (p) soak_die("calloc overflow returned memory");
  failed++;
  p = malloc(max);
  if (p) soak_die("malloc(SIZE_MAX) returned memory");
  failed++;
  p = malloc(max / 2);
  if (p) soak_die("malloc(SIZE_MAX/2) returned memory");
  failed++;
  void *q = NULL;
  if (posix_memalign(&q, 64, max - 4096) != ENOMEM) soak_die("posix_memalign did not fail");
  failed++;
  p = aligned_alloc(4096, max - 8192);
  if (p) soak_die("aligned_alloc returned memory");
  failed++;
  /* a failing realloc/reallocarray leaves the old block alone */
  char *keep = malloc(100);
  if (!keep) soak_die("malloc");
  keep[99] = 7;
  p = reallocarray(keep, max / 8, 16);
  if (p) soak_die("reallocarray overflow returned memory");
  failed++;
  p = realloc(keep, max - 64);
  if (p) soak_die("realloc(SIZE_MAX) returned memory");
  failed++;
  if (keep[99] != 7) soak_die("failed realloc damaged the block");
  free(keep);
  allocs++;
  frees++;
  bytes += 100;
}

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "big") && strcmp(argv[1], "fail"))) soak_die("usage: soak_large big|fail N");
  int big = !strcmp(argv[1], "big");
  uint64_t n = soak_arg(argc, argv, 2, 3);
  for (uint64_t i = 0; i < n; i++) big ? round_big() : round_fail();

  soak_obj_t planted = {0}, atleast = {0};
  soak_put(&planted, "totals.alloc_count", (int64_t)allocs);
  soak_put(&planted, "totals.free_count", (int64_t)frees);
  soak_put(&planted, "totals.failed_count", (int64_t)failed);
  soak_put(&planted, "live.count", 0);
  soak_put(&planted, "live.bytes", 0);
  if (big) {
    soak_put(&planted, "totals.alloc_bytes", (int64_t)bytes);
    soak_put(&planted, "totals.alloc_usable_bytes", (int64_t)usable_in);
    soak_put(&planted, "totals.free_usable_bytes", (int64_t)usable_out);
    soak_put(&planted, "totals.realloc_count", (int64_t)n);
    soak_put(&atleast, "totals.size_hist.30", (int64_t)(2 * n)); /* [1 GiB, 2 GiB) */
  } else {
    soak_put(&planted, "totals.realloc_count", 0);
    soak_put(&atleast, "totals.failed_count", (int64_t)failed);
  }
  soak_print(&planted, NULL, &atleast, NULL);
  return 0;
}
