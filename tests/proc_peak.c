/* proc_peak.c - a live-heap peak the program knows exactly
 * (tests/proc_test.py "peak"). T threads each allocate their share of a
 * heap in blocks of many sizes, wait until all hold theirs (the peak), then
 * free in small steps while others still hold, and go through smaller
 * rounds afterwards; the freed order interleaves with allocations so that
 * a check that came late or early would show. The program prints the
 * usable bytes it held at the peak, summed with malloc_usable_size.
 *
 *   proc_peak THREADS MIB
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define MAXB 200000
static int nthreads;
static size_t share;
static pthread_barrier_t bar;
static size_t held[64];

static void *work(void *arg) {
  int me = (int)(long)arg;
  void **b = malloc(MAXB * sizeof *b);
  size_t n = 0, u = 0;
  unsigned seed = 12345u + (unsigned)me;
  while (u < share && n < MAXB) {
    seed = seed * 1103515245u + 12345u;
    size_t sz = 16 + (seed >> 8) % 3000;
    if ((seed >> 4) % 97 == 0) sz = 200000 + (seed >> 8) % 100000; /* a few mmapped ones */
    b[n] = malloc(sz);
    u += malloc_usable_size(b[n]);
    n++;
  }
  held[me] = u + malloc_usable_size(b); /* the pointer array is held too */
  pthread_barrier_wait(&bar); /* every thread holds its share: the peak */
  pthread_barrier_wait(&bar);
  /* Down in small steps, each followed by a smaller allocation freed again. */
  for (size_t i = 0; i < n; i++) {
    free(b[i]);
    if (i % 8 == 0) free(malloc(64));
  }
  /* Smaller rounds: never higher than the peak. */
  for (int r = 0; r < 20; r++) {
    size_t k = n / 4;
    for (size_t i = 0; i < k; i++) b[i] = malloc(100);
    for (size_t i = 0; i < k; i++) free(b[i]);
  }
  free(b);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: proc_peak THREADS MIB\n");
    return 2;
  }
  nthreads = atoi(argv[1]);
  if (nthreads < 1 || nthreads > 64) return 2;
  share = (size_t)atoi(argv[2]) * 1024 * 1024 / (size_t)nthreads;
  pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
  pthread_t t[64];
  for (int i = 1; i < nthreads; i++) pthread_create(&t[i], NULL, work, (void *)(long)i);
  work((void *)0);
  for (int i = 1; i < nthreads; i++) pthread_join(t[i], NULL);
  size_t total = 0;
  for (int i = 0; i < nthreads; i++) total += held[i];
  printf("%zu\n", total);
  return 0;
}
