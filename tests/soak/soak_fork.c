/* soak_fork.c - a fork storm from a multi-threaded parent.
 *
 * usage: soak_fork N [K]
 * The parent forks N children (at most 8 alive at once) while a second
 * thread churns malloc/free, so forks land in the middle of the shim's hot
 * path. Before each fork the parent allocates a marker-A block and frees it
 * after; each child frees its inherited copy, allocates and frees K marker-B
 * blocks, and exits: even children with exit() (destructors run), odd ones
 * with _exit() (the shim's _exit hook writes the report): both report.
 * Parent, exact: size_hist A == N and size_hist B == 0 (children's work is
 * never counted in the parent). Planted: alloc/free counts, live count.
 * Children (when VALKMEM_REPORT holds %p): every child report that says
 * "exited" shows size_hist B == K.
 */
#include "soak.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define INFLIGHT 8

static atomic_int stop;
static uint64_t churn_allocs;

static void *churn(void *arg) {
  (void)arg;
  uint64_t n = 0;
  void *keep[8] = {0};
  while (!atomic_load(&stop)) {
    unsigned i = (unsigned)(n & 7);
    free(keep[i]);
    keep[i] = malloc(16 + (n * 37) % 900);
    if (!keep[i]) soak_die("malloc");
    n++;
  }
  for (int i = 0; i < 8; i++) free(keep[i]);
  churn_allocs = n;
  return NULL;
}

static void child(uint64_t idx, uint64_t k, void *inherited) {
  free(inherited);
  for (uint64_t i = 0; i < k; i++) {
    char *p = malloc(SOAK_MARK_B);
    if (!p) _exit(3);
    p[i % SOAK_MARK_B] = 1;
    free(p);
  }
  if (idx % 2 == 0) exit(0);
  _exit(0);
}

static int reap(int *alive) {
  int status;
  pid_t pid = wait(&status);
  if (pid < 0) soak_die("wait");
  (*alive)--;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "soak_fork: child %d ended with status 0x%x\n", (int)pid, status);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  uint64_t n = soak_arg(argc, argv, 1, 1000);
  uint64_t k = soak_arg(argc, argv, 2, 20);
  pthread_t t;
  if (pthread_create(&t, NULL, churn, NULL)) soak_die("pthread_create");
  int alive = 0, bad = 0;
  fflush(stdout);
  for (uint64_t i = 0; i < n; i++) {
    if (alive == INFLIGHT) bad += reap(&alive);
    char *a = malloc(SOAK_MARK_A);
    if (!a) soak_die("malloc");
    a[0] = 1;
    pid_t pid = fork();
    if (pid < 0) soak_die("fork");
    if (pid == 0) child(i, k, a);
    alive++;
    free(a);
  }
  while (alive) bad += reap(&alive);
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  if (bad) {
    fprintf(stderr, "soak_fork: %d children failed\n", bad);
    return 1;
  }

  soak_obj_t planted = {0}, exact = {0}, kids = {0};
  soak_put(&planted, "totals.alloc_count", (int64_t)(n + churn_allocs));
  soak_put(&planted, "totals.free_count", (int64_t)(n + churn_allocs));
  soak_put(&planted, "live.count", 0);
  soak_putf(&exact, (int64_t)n, "totals.size_hist.%d", SOAK_BUCKET_A);
  soak_putf(&exact, 0, "totals.size_hist.%d", SOAK_BUCKET_B);
  soak_putf(&kids, (int64_t)k, "totals.size_hist.%d", SOAK_BUCKET_B);
  char children[9000];
  snprintf(children, sizeof children, "{\"max\": %" PRIu64 ", \"exact\": {%s}}", n, kids.buf);
  soak_print(&planted, &exact, NULL, children);
  return 0;
}
