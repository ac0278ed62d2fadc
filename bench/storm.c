/* storm.c - the malloc/free storm: the hardest case for the shim.
 *
 * T threads (default 2), each replacing a random slot of a small live window
 * (16 pointers) with a fresh allocation of a random size in 8..512 bytes, so
 * almost every pair is a glibc tcache hit (~9 ns per malloc+free pair without
 * the shim on the reference machine). Everything the shim adds per call shows
 * up undiluted here.
 *
 * usage: bench_storm [pairs_per_thread] [threads] [min_size max_size]
 * The size range defaults to 8..512 (glibc tcache sizes); e.g. 1040 2048
 * exercises the sizes glibc serves from its bins instead.
 * Prints one line: key=value pairs; the driver (bench/run.py) parses
 * `loop_ns` (first worker's loop start to the last worker's loop end) and
 * `ns_per_pair` (loop_ns / pairs_per_thread: per-thread cost of one pair).
 * Deterministic: every thread has a fixed seed, so the allocation sequence is
 * the same in every run with and without the shim.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WINDOW 16

typedef struct {
  uint64_t pairs;
  size_t min_size, span_mask; /* sizes min_size + (r & span_mask), span_mask = 2^k - 8 */
  uint64_t seed;
  uint64_t checksum; /* keeps the compiler from dropping the loop */
  uint64_t t_start, t_end;
} worker_t;

static pthread_barrier_t start_barrier;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t xorshift64(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static void *worker(void *arg) {
  worker_t *w = arg;
  void *slot[WINDOW];
  uint64_t rng = w->seed, sum = 0;
  for (int i = 0; i < WINDOW; i++) slot[i] = malloc(8 + (size_t)i * 8);
  pthread_barrier_wait(&start_barrier);
  /* Timed in the workers: the main thread may be descheduled after the
   * barrier on a busy machine, and must not miss the start. */
  w->t_start = now_ns();
  for (uint64_t i = 0; i < w->pairs; i++) {
    uint64_t r = xorshift64(&rng);
    unsigned idx = (unsigned)(r & (WINDOW - 1));
    size_t size = w->min_size + (size_t)((r >> 8) & w->span_mask); /* steps of 8, no division */
    free(slot[idx]);
    char *p = malloc(size);
    if (!p) abort();
    p[0] = (char)i; /* touch it, as a real program would */
    sum += (uintptr_t)p & 0xff;
    slot[idx] = p;
  }
  w->t_end = now_ns();
  for (int i = 0; i < WINDOW; i++) free(slot[i]);
  w->checksum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  uint64_t pairs = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000;
  int threads = argc > 2 ? atoi(argv[2]) : 2;
  size_t min_size = argc > 4 ? strtoull(argv[3], NULL, 10) : 8;
  size_t max_size = argc > 4 ? strtoull(argv[4], NULL, 10) : 512;
  size_t span = 8;
  while (span * 2 <= max_size - min_size + 8) span *= 2; /* largest power of two range that fits */
  if (pairs == 0 || threads < 1 || threads > 64 || min_size == 0 || max_size < min_size) {
    fprintf(stderr, "usage: %s [pairs_per_thread>0] [threads 1..64] [min_size max_size]\n", argv[0]);
    return 2;
  }
  pthread_t tid[64];
  worker_t w[64];
  pthread_barrier_init(&start_barrier, NULL, (unsigned)threads + 1);
  for (int t = 0; t < threads; t++) {
    w[t] = (worker_t){.pairs = pairs, .min_size = min_size, .span_mask = span - 8,
                      .seed = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1)};
    if (pthread_create(&tid[t], NULL, worker, &w[t]) != 0) {
      fprintf(stderr, "bench_storm: error: pthread_create: failed\n");
      return 1;
    }
  }
  pthread_barrier_wait(&start_barrier);
  uint64_t sum = 0, t0 = UINT64_MAX, t1 = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(tid[t], NULL);
    sum += w[t].checksum;
    if (w[t].t_start < t0) t0 = w[t].t_start;
    if (w[t].t_end > t1) t1 = w[t].t_end;
  }
  uint64_t dt = t1 - t0; /* first worker's start to last worker's end */
  printf("threads=%d sizes=%zu..%zu pairs_per_thread=%" PRIu64 " loop_ns=%" PRIu64 " ns_per_pair=%.3f checksum=%" PRIu64 "\n",
         threads, min_size, min_size + span - 8, pairs, dt, (double)dt / (double)pairs, sum);
  return 0;
}
