/* selfmem.c - a "typical process" for measuring valkmem's own memory.
 *
 * Keeps a working set of about HEAP_MB MiB in blocks of mixed sizes from
 * several call sites (so the agent interns a realistic number of stacks),
 * churning a fraction of it every 10 ms for SECONDS seconds, with two
 * threads. The driver compares peak RSS with and without the shim and reads
 * self_bytes from the report (bench/run.py --selfmem).
 *
 * usage: bench_selfmem [seconds] [heap_mb]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 4096

typedef struct {
  double seconds;
  size_t heap_bytes;
  uint64_t seed;
} job_t;

static inline uint64_t xorshift64(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Distinct call sites, kept out of line so each has its own stack. */
__attribute__((noinline)) static void *site_small(size_t n) { return malloc(n); }
__attribute__((noinline)) static void *site_string(size_t n) { return calloc(1, n); }
__attribute__((noinline)) static void *site_buffer(size_t n) { return malloc(n); }
__attribute__((noinline)) static void *site_table(size_t n) { return realloc(malloc(n / 2 + 1), n); }

static void *alloc_one(uint64_t r, size_t avg) {
  switch (r & 3) {
  case 0: return site_small(16 + (r >> 8) % 240);
  case 1: return site_string(32 + (r >> 8) % 480);
  case 2: return site_buffer(avg + (r >> 8) % avg);
  default: return site_table(avg / 2 + (r >> 8) % avg);
  }
}

static void *worker(void *arg) {
  job_t *j = arg;
  void **slot = calloc(SLOTS, sizeof *slot);
  uint64_t rng = j->seed;
  size_t avg = j->heap_bytes / SLOTS; /* mixed with the small sites: roughly heap_bytes in total */
  if (avg < 64) avg = 64;
  for (int i = 0; i < SLOTS; i++) slot[i] = alloc_one(xorshift64(&rng), avg);
  double end = now_s() + j->seconds;
  struct timespec pause = {0, 10 * 1000 * 1000};
  while (now_s() < end) {
    for (int k = 0; k < SLOTS / 16; k++) {
      uint64_t r = xorshift64(&rng);
      unsigned idx = (unsigned)(r % SLOTS);
      free(slot[idx]);
      slot[idx] = alloc_one(r >> 12, avg);
      if (slot[idx]) memset(slot[idx], 1, 8);
    }
    nanosleep(&pause, NULL);
  }
  for (int i = 0; i < SLOTS; i++) free(slot[i]);
  free(slot);
  return NULL;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 10;
  size_t heap_mb = argc > 2 ? strtoull(argv[2], NULL, 10) : 64;
  job_t jobs[2];
  pthread_t tid[2];
  for (int t = 0; t < 2; t++) {
    jobs[t] = (job_t){seconds, heap_mb * 1024 * 1024 / 2, 0x9e3779b97f4a7c15ull * (uint64_t)(t + 7)};
    if (pthread_create(&tid[t], NULL, worker, &jobs[t]) != 0) return 1;
  }
  for (int t = 0; t < 2; t++) pthread_join(tid[t], NULL);
  printf("selfmem: done seconds=%.1f heap_mb=%zu\n", seconds, heap_mb);
  return 0;
}
