/* attr_threads.c - no lost frees, end to end in exact mode: producer threads
 * allocate, consumer threads free what they receive (so a free's event is
 * often drained before its alloc's, from another thread's ring), every 101st
 * object is kept to exit. The report's site must hold exactly the kept
 * bytes and objects, and have counted every allocation; all sites together
 * (VALKMEM_TOP_SITES=0) must hold exactly the process's live heap.
 *
 *   attr_threads LIB        the driver
 *   attr_threads child -    the workload
 */
#include "attr_common.h"

#include <pthread.h>
#include <stdint.h>

#define PRODUCERS 4
#define CONSUMERS 3
#define PER_PRODUCER 20000
#define KEEP_EVERY 101
#define QCAP 1024
#define ROUNDS 5

static void *queue[QCAP];
static unsigned qhead, qtail, producers_done;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
static void *kept[PRODUCERS][PER_PRODUCER / KEEP_EVERY + 1];

static size_t item_size(unsigned producer, unsigned i) { return 16 + (i * 7919u + producer * 104729u) % 2000u; }

__attribute__((noinline)) static void *produce_item(size_t n) {
  void *p = malloc(n);
  __asm__ volatile("" ::"r"(p));
  return p;
}

static void *producer(void *arg) {
  unsigned k = (unsigned)(uintptr_t)arg, nk = 0;
  for (unsigned i = 0; i < PER_PRODUCER; i++) {
    void *p = produce_item(item_size(k, i));
    if (i % KEEP_EVERY == 0) {
      kept[k][nk++] = p;
      continue;
    }
    pthread_mutex_lock(&qlock);
    while (qhead - qtail == QCAP) pthread_cond_wait(&qcond, &qlock);
    queue[qhead++ % QCAP] = p;
    pthread_cond_broadcast(&qcond);
    pthread_mutex_unlock(&qlock);
  }
  pthread_mutex_lock(&qlock);
  producers_done++;
  pthread_cond_broadcast(&qcond);
  pthread_mutex_unlock(&qlock);
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&qlock);
    while (qhead == qtail && producers_done < PRODUCERS) pthread_cond_wait(&qcond, &qlock);
    if (qhead == qtail) {
      pthread_mutex_unlock(&qlock);
      return NULL;
    }
    void *p = queue[qtail++ % QCAP];
    pthread_cond_broadcast(&qcond);
    pthread_mutex_unlock(&qlock);
    free(p);
  }
}

static int child(void) {
  pthread_t p[PRODUCERS], c[CONSUMERS];
  for (uintptr_t i = 0; i < CONSUMERS; i++) pthread_create(&c[i], NULL, consumer, NULL);
  for (uintptr_t i = 0; i < PRODUCERS; i++) pthread_create(&p[i], NULL, producer, (void *)i);
  for (int i = 0; i < PRODUCERS; i++) pthread_join(p[i], NULL);
  for (int i = 0; i < CONSUMERS; i++) pthread_join(c[i], NULL);
  return kept[0][0] ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "child") == 0) return child();
  if (argc != 2) {
    fprintf(stderr, "usage: %s LIBVALKMEM\n", argv[0]);
    return 2;
  }
  char path[256], env_report[300];
  attr_report_path(path, sizeof path, "threads");
  snprintf(env_report, sizeof env_report, "VALKMEM_REPORT=%s", path);
  const char *env[] = {env_report, "VALKMEM_SAMPLE_BYTES=1", "VALKMEM_TOP_SITES=0", NULL};
  /* Several rounds: a race between inserts into the recorder's address
   * table once lost a free here one run in ten. */
  for (int round = 0; round < ROUNDS; round++) {
    unlink(path);
    CHECK_EQ(attr_wait(attr_spawn("/proc/self/exe", argv[1], "child", "-", env)), 0);
    cJSON *rep = attr_load(path);
    CHECK(rep != NULL);
    if (rep) {
      double bytes = 0, live_bytes = 0, live_count = 0;
      for (unsigned k = 0; k < PRODUCERS; k++)
        for (unsigned i = 0; i < PER_PRODUCER; i++) {
          bytes += (double)item_size(k, i);
          if (i % KEEP_EVERY == 0) live_bytes += (double)item_size(k, i), live_count++;
        }
      int n = 0;
      double ab = attr_sum(rep, "produce_item", "alloc_bytes", &n);
      double ac = attr_sum(rep, "produce_item", "alloc_count", NULL);
      double lb = attr_sum(rep, "produce_item", "live_bytes", NULL);
      double lc = attr_sum(rep, "produce_item", "live_count", NULL);
      fprintf(stderr, "produce_item: %d site(s), alloc %.0f/%.0f, live %.0f/%.0f bytes in %.0f/%.0f objects\n", n, ab,
              bytes, lb, live_bytes, lc, live_count);
      CHECK_GE(n, 1);
      CHECK_EQ(ab, bytes);
      CHECK_EQ(ac, PRODUCERS * PER_PRODUCER);
      CHECK_EQ(lb, live_bytes);
      CHECK_EQ(lc, live_count);
      CHECK_EQ(cJSON_GetObjectItem(rep, "dropped_events")->valuedouble, 0);
      /* Freed objects are in the lifetime histogram, each exactly once. */
      double freed = 0;
      const cJSON *s, *v;
      cJSON_ArrayForEach(s, cJSON_GetObjectItem(rep, "sites")) {
        const char *leaf = attr_leaf(s);
        if (!leaf || strcmp(leaf, "produce_item") != 0) continue;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(s, "lifetimes")) freed += v->valuedouble;
      }
      CHECK_EQ(freed, PRODUCERS * PER_PRODUCER - live_count);
      /* Exact mode attributes every allocation of the process: the sites'
       * usable live bytes and objects add up to the exact live heap. */
      double all_usable = 0, all_count = 0;
      cJSON_ArrayForEach(s, cJSON_GetObjectItem(rep, "sites")) {
        all_usable += cJSON_GetObjectItem(s, "live_usable_bytes")->valuedouble;
        all_count += cJSON_GetObjectItem(s, "live_count")->valuedouble;
      }
      const cJSON *live = cJSON_GetObjectItem(rep, "live");
      CHECK_EQ(all_usable, cJSON_GetObjectItem(live, "bytes")->valuedouble);
      CHECK_EQ(all_count, cJSON_GetObjectItem(live, "count")->valuedouble);
      cJSON_Delete(rep);
    }
  }
  unlink(path);
  return check_done("attr_threads");
}
