/* live_preload.c - the live readers end to end, under LD_PRELOAD.
 *
 *   live_preload LIB [ALLOC]  runs itself as "--app" with LD_PRELOAD=LIB
 *                          (or LIB:ALLOC, a jemalloc or tcmalloc behind the
 *                          shim) and VALKMEM_REPORT, then checks the report.
 *   live_preload --app     the workload: a planted brk heap with every other
 *                          block freed (fragmentation), 16 MiB of touched
 *                          anonymous mmap, two threads with touched stacks;
 *                          reports 7 GC cycles of 2.5 ms through the
 *                          runtime API, holds it all for 1.5 s (a status read, so the
 *                          smaps breakdown is refreshed) and exits.
 *
 * Checks: smaps breakdown sums to within 5 % of RSS and each kind holds what
 * was planted; allocator is glibc with free_held ~ the freed bytes (an
 * upper bound from outside: thread stacks are anonymous memory too) and
 * fragmentation over the warning line; history point counts match the tick
 * count and its sums match the report's exact totals and GC figures. */
#include "check.h"

#include <cjson/cJSON.h>
#include <valkmem.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define KB 1024.0
#define MB (1024.0 * 1024.0)
#define NSMALL 4096
#define NFRAG 20000
#define FRAG_BLOCK 1000
#define ANON_BYTES (16u << 20)
#define NTHREADS 2
#define STACK_TOUCH (512 * 1024)
#define NGC 7
#define GC_PAUSE_NS 2500000ull /* 2.5 ms */

static pthread_barrier_t ready;

static void *thread_main(void *arg) {
  volatile char buf[STACK_TOUCH];
  for (size_t i = 0; i < sizeof buf; i += 512) buf[i] = (char)i;
  pthread_barrier_wait(&ready);
  for (;;) pause(); /* alive until the process exits */
  return (void *)(uintptr_t)buf[1];
}

static int app(void) {
  static char *small[NSMALL];
  for (int i = 0; i < NSMALL; i++) {
    small[i] = malloc(1024);
    memset(small[i], 1, 1024);
  }
  static char *frag[NFRAG];
  for (int i = 0; i < NFRAG; i++) {
    frag[i] = malloc(FRAG_BLOCK);
    memset(frag[i], 2, FRAG_BLOCK);
  }
  char *fence = malloc(64);
  size_t freed = 0;
  for (int i = 0; i < NFRAG; i += 2) {
    freed += malloc_usable_size(frag[i]) + sizeof(size_t);
    free(frag[i]);
  }
  char *anon = mmap(NULL, ANON_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (anon == MAP_FAILED) return 3;
  for (size_t i = 0; i < ANON_BYTES; i += 4096) anon[i] = 1;
  pthread_barrier_init(&ready, NULL, NTHREADS + 1);
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, thread_main, NULL);
  pthread_barrier_wait(&ready);
  /* GC cycles through the runtime API, with pauses of known length, spread
   * over a few ticks so they land in different points. */
  for (int i = 0; i < NGC; i++) {
    if (valkmem_gc_report) valkmem_gc_report(1000000, 400000, GC_PAUSE_NS);
    usleep(30 * 1000);
  }
  /* the checker needs the freed total; stdout is ours */
  printf("%zu\n", freed);
  fflush(stdout);
  usleep(1500 * 1000);
  (void)fence;
  return 0;
}

static const cJSON *obj(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k); }
static double num(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}
/* "history": {"1m": [...]} or {"1m": {"range", "step_ms", "points": [...]}} */
static const cJSON *hist_points(const cJSON *rep, const char *range) {
  const cJSON *h = obj(obj(rep, "history"), range);
  return cJSON_IsArray(h) ? h : obj(h, "points");
}
static double sum(const cJSON *arr, const char *k) {
  double s = 0;
  const cJSON *p;
  cJSON_ArrayForEach(p, arr) s += num(p, k);
  return s;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--app") == 0) return app();
  if (argc < 2) {
    fprintf(stderr, "usage: live_preload LIBVALKMEM [OTHER_MALLOC_SO]\n");
    return 2;
  }
  /* With another allocator behind the shim, glibc's statistics say nothing
   * about the app's heap: the source must be "none", and the heap is no
   * longer brk-based. */
  const char *other = argc > 2 ? argv[2] : NULL;
  char preload[4096];
  snprintf(preload, sizeof preload, "%s%s%s", argv[1], other ? ":" : "", other ? other : "");
  char report[] = "/tmp/live_preload_XXXXXX";
  int rfd = mkstemp(report);
  CHECK(rfd >= 0);
  close(rfd);
  int pfd[2];
  CHECK_EQ(pipe(pfd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pfd[1], 1);
    close(pfd[0]);
    setenv("LD_PRELOAD", preload, 1);
    setenv("VALKMEM_REPORT", report, 1);
    setenv("VALKMEM_HTTP", "0", 1);
    setenv("VALKMEM_QUIET", "1", 1);
    unsetenv("VALKMEM_ALLOCATOR");
    execl("/proc/self/exe", argv[0], "--app", (char *)NULL);
    _exit(127);
  }
  close(pfd[1]);
  char line[64] = {0};
  ssize_t n = read(pfd[0], line, sizeof line - 1);
  close(pfd[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK_GT(n, 0);
  double freed = n > 0 ? strtod(line, NULL) : 0;

  char *text = check_slurp(report, NULL);
  unlink(report);
  cJSON *rep = text ? cJSON_Parse(text) : NULL;
  free(text);
  CHECK(rep != NULL);
  if (!rep) return check_done("live_preload");

  /* OS: the breakdown sums to RSS, each kind holds what we planted. */
  const cJSON *os = obj(rep, "os");
  const cJSON *sm = obj(os, "smaps");
  CHECK(cJSON_IsObject(sm));
  double rss = num(os, "rss");
  double total = num(sm, "heap") + num(sm, "anon") + num(sm, "file") + num(sm, "stack") + num(sm, "other");
  fprintf(stderr, "rss %.0f KiB; smaps heap %.0f anon %.0f file %.0f stack %.0f other %.0f = %.0f KiB\n",
          rss / KB, num(sm, "heap") / KB, num(sm, "anon") / KB, num(sm, "file") / KB, num(sm, "stack") / KB,
          num(sm, "other") / KB, total / KB);
  CHECK_NEAR(total, rss, 0.05 * rss);
  if (!other) {
    CHECK_GE(num(sm, "heap"), NSMALL * 1024.0 + NFRAG * (double)FRAG_BLOCK);
    CHECK_GE(num(sm, "anon"), (double)ANON_BYTES);
  } else {
    CHECK_GE(num(sm, "heap") + num(sm, "anon"), NSMALL * 1024.0 + NFRAG / 2 * (double)FRAG_BLOCK + ANON_BYTES);
  }
  CHECK_GE(num(sm, "stack"), NTHREADS * (double)STACK_TOUCH);
  CHECK_GT(num(sm, "file"), 0);
  CHECK_GE(num(os, "peak_rss"), rss);
  CHECK_GE(num(os, "threads"), 1 + NTHREADS);

  /* Allocator: glibc, the holes we punched are free_held. */
  const cJSON *al = obj(rep, "allocator");
  fprintf(stderr, "allocator: %s held %.0f in_use %.0f free_held %.0f frag %.1f%% (freed %.0f)\n",
          cJSON_GetStringValue(obj(al, "source")), num(al, "held"), num(al, "in_use"), num(al, "free_held"),
          num(al, "frag_pct"), freed);
  if (!other) {
    CHECK_STREQ(cJSON_GetStringValue(obj(al, "source")), "glibc");
    /* Seen from outside the process (agent/allocstats.c): the heap's and
     * anonymous memory's Rss less the live heap and the program's own
     * mmaps. Thread stacks (2 x 512 KiB touched here) and valkmem's own
     * tables in the host are anonymous too: an upper bound. */
    CHECK_GE(num(al, "free_held"), 0.97 * freed);
    CHECK_LE(num(al, "free_held"), freed + NTHREADS * (double)STACK_TOUCH + 1 * MB);
    CHECK_GE(num(al, "frag_pct"), 25.0);
    CHECK(cJSON_IsTrue(obj(al, "frag_warn")));
  } else {
    CHECK_STREQ(cJSON_GetStringValue(obj(al, "source")), "none");
    CHECK_EQ(num(al, "held"), 0);
    CHECK_EQ(num(al, "frag_pct"), 0);
    CHECK(cJSON_IsFalse(obj(al, "frag_warn")));
  }

  /* History: one point per tick, exact sums. */
  double seq = num(rep, "seq");
  const cJSON *m1 = hist_points(rep, "1m"), *h10 = hist_points(rep, "10h");
  CHECK(cJSON_IsArray(m1));
  CHECK(cJSON_IsArray(h10));
  CHECK_GE(seq, 10);
  CHECK_EQ(cJSON_GetArraySize(m1), seq < 600 ? seq : 600);
  CHECK_EQ(num(cJSON_GetArrayItem(m1, cJSON_GetArraySize(m1) - 1), "seq"), seq);
  CHECK_GE(cJSON_GetArraySize(h10), 1);
  const cJSON *tot = obj(rep, "totals");
  CHECK_EQ(sum(h10, "alloc_bytes"), num(tot, "alloc_usable_bytes"));
  CHECK_EQ(sum(h10, "free_bytes"), num(tot, "free_usable_bytes"));
  CHECK_EQ(sum(h10, "alloc_ops"), num(tot, "alloc_count"));
  CHECK_EQ(sum(h10, "free_ops"), num(tot, "free_count"));
  double peak = 0;
  const cJSON *p;
  cJSON_ArrayForEach(p, h10) if (num(p, "peak_live_bytes") > peak) peak = num(p, "peak_live_bytes");
  CHECK_GE(peak, NSMALL * 1024.0 + NFRAG / 2 * (double)FRAG_BLOCK);
  CHECK(other ? sum(h10, "frag_pct") == 0 : sum(h10, "frag_pct") >= 25.0);
  /* GC: the runtime API's cycles and pauses, summed over the interval */
  CHECK_EQ(sum(h10, "gc_cycles"), NGC);
  CHECK_EQ(sum(m1, "gc_cycles"), NGC);
  CHECK_NEAR(sum(h10, "gc_pause_ms"), NGC * GC_PAUSE_NS / 1e6, 1e-3);
  CHECK_NEAR(sum(m1, "gc_pause_ms"), NGC * GC_PAUSE_NS / 1e6, 1e-3);
  CHECK_EQ(num(obj(rep, "gc"), "cycles"), NGC);
  cJSON_Delete(rep);
  return check_done("live_preload");
}
