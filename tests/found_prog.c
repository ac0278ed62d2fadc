/* found_prog.c - workloads with a known allocation pattern, for the
 * foundation tests (tests/found_test.py runs them under the shim).
 *
 *   found_prog exact N     every wrapped function N times; writes the truth
 *                          (usable sizes as the real allocator reports them)
 *                          to $FOUND_TRUTH
 *   found_prog threads T K T short-lived threads, each K malloc/free pairs
 *   found_prog fork F      F forks; parent and children allocate; children exit(0)
 *   found_prog exec CMD    execs /bin/sh -c CMD after a few allocations
 *   found_prog exit CODE   allocates, then exits with CODE
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;
/* Many threads store here: atomically, so TSan builds see no race. */
#define SINK(x) __atomic_store_n(&sink, (void *)(x), __ATOMIC_RELAXED)
static volatile size_t huge = SIZE_MAX / 2;

static size_t us(void *p) { return malloc_usable_size(p); }

/* One iteration; returns the usable bytes it allocated/freed through au and fu. */
static void exact_iteration(uint64_t *au, uint64_t *fu, void **leaks, long i) {
  void *p = malloc(100); *au += us(p); *fu += us(p); free(p);
  p = malloc(0); *au += us(p); *fu += us(p); free(p);        /* class 0, by itself on the fast path (segment.h) */
  p = malloc(1); *au += us(p); *fu += us(p); free(p);        /* class 0 too */
  p = calloc(10, 20); *au += us(p); *fu += us(p); free(p);
  p = realloc(NULL, 50); *au += us(p);                       /* alloc */
  size_t u0 = us(p);
  p = realloc(p, 500); *fu += u0; *au += us(p);              /* grow */
  u0 = us(p);
  p = realloc(p, 20); *fu += u0; *au += us(p);               /* shrink */
  *fu += us(p);
  p = realloc(p, 0); /* frees, in glibc */
  if (p) abort();
  p = reallocarray(NULL, 4, 8); *au += us(p); *fu += us(p); free(p);
  if (posix_memalign(&p, 64, 300)) abort();
  *au += us(p); *fu += us(p); free(p);
  p = aligned_alloc(128, 256); *au += us(p); *fu += us(p); free(p);
  p = memalign(32, 77); *au += us(p); *fu += us(p); free(p);
  p = valloc(1000); *au += us(p); *fu += us(p); free(p);
  p = pvalloc(100); *au += us(p); *fu += us(p); free(p);
  /* failures: calloc overflow, reallocarray overflow, malloc over RLIMIT_AS,
   * realloc past PTRDIFF_MAX.
   * The sizes come through a volatile so the compiler cannot refuse them. */
  errno = 0;
  if (calloc(huge, 4) != NULL || errno != ENOMEM) abort();
  if (reallocarray(NULL, huge, 4) != NULL) abort();
  void *big = malloc((size_t)768 << 20);
  if (big != NULL) abort();
  p = malloc(40); /* a failed realloc leaves the block, and the counts, as they were */
  if (realloc(p, huge) != NULL) abort();
  *au += us(p); *fu += us(p); free(p);
  /* mapped memory */
  void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) abort();
  munmap(m, 8192);
  /* the planted leak */
  leaks[i] = malloc(1000);
  *au += us(leaks[i]);
}

static int run_exact(long n) {
  struct rlimit rl = {(rlim_t)512 << 20, (rlim_t)512 << 20};
  if (setrlimit(RLIMIT_AS, &rl)) { perror("setrlimit"); return 1; }
  void **leaks = calloc((size_t)n + 1, sizeof *leaks);
  uint64_t au = 0, fu = 0;
  size_t lu = us(leaks);
  for (long i = 0; i < n; i++) exact_iteration(&au, &fu, leaks, i);
  const char *truth = getenv("FOUND_TRUTH");
  if (truth) {
    FILE *f = fopen(truth, "w");
    fprintf(f, "{\"alloc_usable\": %llu, \"free_usable\": %llu, \"leaks_usable\": %zu}\n",
            (unsigned long long)au, (unsigned long long)fu, lu);
    fclose(f);
  }
  SINK(leaks);
  return 0;
}

static long per_thread_k;
static void *thread_body(void *arg) {
  (void)arg;
  for (long i = 0; i < per_thread_k; i++) {
    void *p = malloc(48 + (size_t)(i % 7) * 16);
    SINK(p);
    free(p);
  }
  return NULL;
}

static int run_threads(long t, long k) {
  per_thread_k = k;
  for (long i = 0; i < t; i += 50) { /* at most 50 at once */
    pthread_t th[50];
    long m = t - i < 50 ? t - i : 50;
    for (long j = 0; j < m; j++)
      if (pthread_create(&th[j], NULL, thread_body, NULL)) { perror("pthread_create"); return 1; }
    for (long j = 0; j < m; j++) pthread_join(th[j], NULL);
  }
  return 0;
}

static int run_fork(long f) {
  for (long i = 0; i < f; i++) {
    void *p = malloc(4096);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
      for (int j = 0; j < 10; j++) free(malloc(1000));
      SINK(malloc(333)); /* each child leaks one */
      exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "child %ld failed: status %d\n", i, st);
      return 1;
    }
    free(p);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "exact")) return run_exact(atol(argv[2]));
  if (argc >= 4 && !strcmp(argv[1], "threads")) return run_threads(atol(argv[2]), atol(argv[3]));
  if (argc >= 3 && !strcmp(argv[1], "fork")) return run_fork(atol(argv[2]));
  if (argc >= 3 && !strcmp(argv[1], "exec")) {
    for (int i = 0; i < 100; i++) free(malloc(100));
    execl("/bin/sh", "sh", "-c", argv[2], (char *)NULL);
    perror("execl");
    return 127;
  }
  if (argc >= 3 && !strcmp(argv[1], "exit")) {
    for (int i = 0; i < 100; i++) SINK(malloc(100));
    return atoi(argv[2]);
  }
  fprintf(stderr, "usage: found_prog exact N | threads T K | fork F | exec CMD | exit CODE\n");
  return 2;
}
