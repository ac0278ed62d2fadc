/* soak_threads.c - a storm of short-lived threads with exact totals.
 *
 * usage: soak_threads K [THREADS]
 * THREADS (default 10000) threads, at most 32 alive at once, each doing K
 * malloc/free pairs of marker size A and one marker-B block that it hands to
 * the main thread, which frees it (a cross-thread free after the allocating
 * thread has exited and its counters were folded into the retired total).
 * Exact: size_hist of A == THREADS*K, of B == THREADS. Planted (K vs 2K):
 * alloc and free counts; live count back to where it was. Threads ever seen
 * is at least THREADS.
 */
#include "soak.h"
#include <pthread.h>

#define WAVE 32

typedef struct {
  uint64_t k;
  void *handoff;
} job_t;

static void *work(void *arg) {
  job_t *j = arg;
  for (uint64_t i = 0; i < j->k; i++) {
    char *p = malloc(SOAK_MARK_A);
    if (!p) soak_die("malloc");
    p[i % SOAK_MARK_A] = 1;
    free(p);
  }
  j->handoff = malloc(SOAK_MARK_B);
  if (!j->handoff) soak_die("malloc");
  return NULL;
}

int main(int argc, char **argv) {
  uint64_t k = soak_arg(argc, argv, 1, 10);
  uint64_t threads = soak_arg(argc, argv, 2, 10000);
  static job_t jobs[WAVE];
  pthread_t tid[WAVE];
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  uint64_t started = 0;
  while (started < threads) {
    int wave = (int)(threads - started < WAVE ? threads - started : WAVE);
    for (int i = 0; i < wave; i++) {
      jobs[i] = (job_t){.k = k};
      if (pthread_create(&tid[i], &attr, work, &jobs[i])) soak_die("pthread_create");
    }
    for (int i = 0; i < wave; i++) {
      pthread_join(tid[i], NULL);
      free(jobs[i].handoff);
    }
    started += (uint64_t)wave;
  }
  pthread_attr_destroy(&attr);

  soak_obj_t planted = {0}, exact = {0}, atleast = {0};
  soak_put(&planted, "totals.alloc_count", (int64_t)(threads * (k + 1)));
  soak_put(&planted, "totals.free_count", (int64_t)(threads * (k + 1)));
  soak_put(&planted, "live.count", 0);
  soak_putf(&exact, (int64_t)(threads * k), "totals.size_hist.%d", SOAK_BUCKET_A);
  soak_putf(&exact, (int64_t)threads, "totals.size_hist.%d", SOAK_BUCKET_B);
  soak_put(&atleast, "threads.total", (int64_t)threads);
  soak_print(&planted, &exact, &atleast, NULL);
  return 0;
}
