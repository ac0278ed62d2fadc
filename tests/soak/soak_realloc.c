/* soak_realloc.c - realloc chains with exact counts.
 *
 * usage: soak_realloc N
 * Two threads each run a chain: one malloc, then N reallocs (and every 16th
 * a reallocarray) growing and shrinking between 1 byte and ~300 KiB (so
 * chunks move between the heap and mmap), then one free. A third chain
 * starts with realloc(NULL, n). Planted per run: alloc/free/realloc counts,
 * requested bytes; live count and bytes come back to where they were.
 */
#include "soak.h"
#include <malloc.h>
#include <pthread.h>

typedef struct {
  uint64_t n, seed;
  uint64_t allocs, frees, reallocs, bytes;
} chain_t;

static size_t next_size(uint64_t *s, uint64_t i) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  /* mostly small, sometimes large: crosses the 128 KiB mmap threshold */
  if (i % 97 == 0) return 140000 + x % 160000;
  if (i % 7 == 0) return 1 + x % 20000;
  return 1 + x % 600;
}

static void *chain(void *arg) {
  chain_t *c = arg;
  char *p = malloc(24);
  if (!p) soak_die("malloc");
  c->allocs++;
  c->bytes += 24;
  p[0] = 0;
  for (uint64_t i = 1; i <= c->n; i++) {
    size_t sz = next_size(&c->seed, i);
    char *q;
    if (i % 16 == 0) {
      size_t elems = (sz + 3) / 4;
      q = reallocarray(p, elems, 4);
      c->bytes += elems * 4;
    } else {
      q = realloc(p, sz);
      c->bytes += sz;
    }
    if (!q) soak_die("realloc");
    c->reallocs++;
    if (q[0] != (char)(i - 1)) soak_die("realloc lost the content");
    q[0] = (char)i;
    p = q;
  }
  free(p);
  c->frees++;
  return NULL;
}

int main(int argc, char **argv) {
  uint64_t n = soak_arg(argc, argv, 1, 20000);
  chain_t c[3] = {{.n = n, .seed = 11}, {.n = n, .seed = 22}, {.n = n / 2 + 1, .seed = 33}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    if (pthread_create(&t[i], NULL, chain, &c[i])) soak_die("pthread_create");
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);

  /* Third chain from realloc(NULL, n): counts as an allocation and a realloc. */
  chain_t *z = &c[2];
  char *p = realloc(NULL, 100);
  if (!p) soak_die("realloc(NULL)");
  z->allocs++;
  z->reallocs++;
  z->bytes += 100;
  for (uint64_t i = 1; i <= z->n; i++) {
    size_t sz = next_size(&z->seed, i);
    char *q = realloc(p, sz);
    if (!q) soak_die("realloc");
    z->reallocs++;
    z->bytes += sz;
    p = q;
  }
  free(p);
  z->frees++;

  soak_obj_t planted = {0}, atleast = {0};
  uint64_t a = 0, f = 0, r = 0, b = 0;
  for (int i = 0; i < 3; i++) {
    a += c[i].allocs;
    f += c[i].frees;
    r += c[i].reallocs;
    b += c[i].bytes;
  }
  soak_put(&planted, "totals.alloc_count", (int64_t)a);
  soak_put(&planted, "totals.free_count", (int64_t)f);
  soak_put(&planted, "totals.realloc_count", (int64_t)r);
  soak_put(&planted, "totals.alloc_bytes", (int64_t)b);
  soak_put(&planted, "totals.failed_count", 0);
  soak_put(&planted, "live.count", 0);
  soak_put(&planted, "live.bytes", 0);
  soak_put(&atleast, "totals.realloc_count", (int64_t)r);
  soak_print(&planted, NULL, &atleast, NULL);
  return 0;
}
