/* soak_rlimit.c - allocation failure under RLIMIT_AS.
 *
 * usage: soak_rlimit N
 * Caps the address space at what the process uses now + 192 MiB, then:
 * N requests of 512 MiB (each fails: one failed_count each); a failing
 * calloc, posix_memalign and realloc (the old block survives); then fills
 * the remaining space with 1 MiB blocks until malloc says no (one more
 * failure), frees them all and shows that allocation works again, while a
 * second thread keeps allocating small blocks throughout. A third thread
 * makes its first allocation only while the address space is full, so
 * valkmem cannot get memory for its per-thread state then: its calls must
 * still be counted. The program must survive all of it; every count is
 * planted.
 */
#include "soak.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

#define MiB (1024ull * 1024)

static atomic_int stop;
static uint64_t side_allocs, side_failed;

static void *side(void *arg) {
  (void)arg;
  uint64_t n = 0;
  while (!atomic_load(&stop) || n < 1000) {
    char *p = malloc(16 + n % 200);
    if (!p) { /* small requests may fail too while the address space is full */
      side_failed++;
      continue;
    }
    p[0] = 1;
    free(p);
    n++;
  }
  side_allocs = n;
  return NULL;
}

/* Starts allocating only once the main thread has filled the address
 * space (full == 1) and reports back (full == 2) before anything is freed. */
static atomic_int full;
static uint64_t late_allocs, late_frees, late_failed;

static void *late(void *arg) {
  (void)arg;
  while (atomic_load(&full) == 0) sched_yield();
  for (int i = 0; i < 200; i++) {
    char *p = malloc(24 + i);
    if (!p) {
      late_failed++;
      continue;
    }
    late_allocs++;
    p[0] = 1;
    free(p);
    late_frees++;
  }
  atomic_store(&full, 2);
  return NULL;
}

static uint64_t vm_size(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  uint64_t kb = 0;
  if (!f) soak_die("open /proc/self/status");
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %" SCNu64, &kb) == 1) break;
  fclose(f);
  return kb * 1024;
}

int main(int argc, char **argv) {
  uint64_t n = soak_arg(argc, argv, 1, 10);
  uint64_t allocs = 0, frees = 0, failed = 0;

  pthread_t t, tl;
  if (pthread_create(&t, NULL, side, NULL)) soak_die("pthread_create");
  if (pthread_create(&tl, NULL, late, NULL)) soak_die("pthread_create");
  uint64_t cap = vm_size() + 192 * MiB;
  struct rlimit rl = {cap, cap};
  if (setrlimit(RLIMIT_AS, &rl)) soak_die("setrlimit");

  for (uint64_t i = 0; i < n; i++) {
    void *p = malloc(512 * MiB);
    if (p) soak_die("512 MiB malloc succeeded under a 192 MiB headroom");
    failed++;
  }
  if (calloc(64 * MiB, 16)) soak_die("1 GiB calloc succeeded");
  failed++;
  void *q;
  if (posix_memalign(&q, 4096, 1024 * MiB) != ENOMEM) soak_die("posix_memalign succeeded");
  failed++;
  char *keep = malloc(1000);
  if (!keep) soak_die("malloc(1000) failed with headroom left");
  allocs++;
  keep[999] = 9;
  if (realloc(keep, 1024 * MiB)) soak_die("1 GiB realloc succeeded");
  failed++;
  if (keep[999] != 9) soak_die("failed realloc damaged the block");

  /* Fill to the limit with 1 MiB blocks (mmap'd by glibc) until refused. */
  enum { MAXB = 4096 };
  static void *blocks[MAXB];
  int nb = 0;
  for (;;) {
    if (nb == MAXB) soak_die("the limit did not bite");
    void *p = malloc(MiB);
    if (!p) {
      failed++;
      break;
    }
    allocs++;
    ((char *)p)[0] = 1;
    blocks[nb++] = p;
  }
  atomic_store(&full, 1); /* the late thread's first allocations, now */
  while (atomic_load(&full) != 2) sched_yield();
  for (int i = 0; i < nb; i++) {
    free(blocks[i]);
    frees++;
  }
  /* Everything works again once there is room. */
  for (int i = 0; i < 64; i++) {
    void *p = malloc(MiB);
    if (!p) soak_die("no recovery after freeing");
    allocs++;
    free(p);
    frees++;
  }
  free(keep);
  frees++;
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  pthread_join(tl, NULL);

  soak_obj_t planted = {0}, atleast = {0};
  uint64_t all_failed = failed + side_failed + late_failed;
  soak_put(&planted, "totals.failed_count", (int64_t)all_failed);
  soak_put(&atleast, "totals.failed_count", (int64_t)all_failed);
  soak_put(&planted, "totals.size_hist.20", (int64_t)(nb + 64)); /* [1 MiB, 2 MiB) */
  soak_put(&planted, "live.count", 0);
  soak_put(&atleast, "totals.alloc_count", (int64_t)(allocs + side_allocs + late_allocs));
  soak_put(&atleast, "totals.free_count", (int64_t)(frees + side_allocs + late_frees));
  soak_print(&planted, NULL, &atleast, NULL);
  return 0;
}
