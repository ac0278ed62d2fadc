/* flame_prog.c - a program with planted call sites of known sizes, for the
 * dashboard's flame graph, heap-by-site and pin tests (tests/browser/flame.js)
 * and the calibration bench (bench/calib.py).
 *
 *   main -> run_server -> handle_requests -> cache_fill  -> flat_a_alloc   24 MiB held (flat)
 *   main -> run_server -> handle_requests -> index_build -> flat_b_alloc   12 MiB held (flat)
 *   main -> run_server -> background      -> small_d_alloc                  4 MiB held (flat)
 *   main -> run_server -> leak_grow       -> grow_alloc                    +RATE per second (growing)
 *   main -> run_server -> handle_requests -> churn_alloc                   CHURN per second, freed at once
 *
 * Blocks are 16 KiB and never touched (no RSS for them). The growing site
 * grows while "growing" is on: from the start, until SIGUSR1 toggles it, or
 * until it holds GROW_CAP. Every 100 ms the program writes the truth to
 * STATE_FILE (argv[1]) as JSON, atomically: bytes held per planted site and
 * whether it grows. It runs until SIGTERM/SIGINT, or argv[2] seconds.
 *
 *   flame_prog STATE_FILE [SECONDS] [RATE_KIB_PER_S]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 16384
#define MIB (1024 * 1024)
#define GROW_CAP (160 * MIB)
#define CHURN_PER_S (8 * MIB)

static volatile sig_atomic_t stop, toggles;

static void on_term(int sig) { (void)sig, stop = 1; }
static void on_usr1(int sig) { (void)sig, toggles++; }

#define SITE(name)                                                                                             \
  __attribute__((noinline)) static void *name(size_t n) {                                                      \
    void *p = malloc(n);                                                                                       \
    __asm__ volatile("" ::"r"(p) : "memory");                                                                  \
    return p;                                                                                                  \
  }
SITE(flat_a_alloc)
SITE(flat_b_alloc)
SITE(small_d_alloc)
SITE(grow_alloc)
SITE(churn_alloc)

typedef struct held_s {
  void **v;
  size_t n, cap;
} held_t;

static held_t h_a, h_b, h_d, h_g;

static void keep(held_t *h, void *p) {
  if (!p) return;
  if (h->n == h->cap) {
    h->cap = h->cap ? 2 * h->cap : 1024;
    h->v = realloc(h->v, h->cap * sizeof *h->v);
    if (!h->v) abort();
  }
  h->v[h->n++] = p;
}

/* Paced: a pause every 1 MiB keeps the sample events well inside what the
 * agent drains from the thread's ring every 100 ms (no dropped events: a
 * dropped event would bias the site it belonged to). */
static void pace(size_t i) {
  if (i % (MIB / BLOCK) == MIB / BLOCK - 1) usleep(15000);
}
__attribute__((noinline)) static void cache_fill(void) {
  for (size_t i = 0; i < 24 * MIB / BLOCK; i++) keep(&h_a, flat_a_alloc(BLOCK)), pace(i);
}
__attribute__((noinline)) static void index_build(void) {
  for (size_t i = 0; i < 12 * MIB / BLOCK; i++) keep(&h_b, flat_b_alloc(BLOCK)), pace(i);
}
__attribute__((noinline)) static void background(void) {
  for (size_t i = 0; i < 4 * MIB / BLOCK; i++) keep(&h_d, small_d_alloc(BLOCK)), pace(i);
}
__attribute__((noinline)) static void leak_grow(size_t bytes) {
  for (size_t i = 0; i < bytes / BLOCK && h_g.n * BLOCK < GROW_CAP; i++) keep(&h_g, grow_alloc(BLOCK));
}
__attribute__((noinline)) static size_t handle_requests(int first, size_t churn) {
  if (first) {
    cache_fill();
    index_build();
  }
  size_t done = 0;
  for (; done < churn; done += 4096) {
    void *p = churn_alloc(4096);
    __asm__ volatile("" ::"r"(p) : "memory");
    free(p);
  }
  return done;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_state(const char *path, int growing, double t, size_t churned) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  fprintf(f,
          "{\"t\": %.3f, \"growing\": %s, \"block\": %d, \"churned\": %zu,\n"
          " \"live\": {\"flat_a_alloc\": %zu, \"flat_b_alloc\": %zu, \"small_d_alloc\": %zu, \"grow_alloc\": %zu}}\n",
          t, growing ? "true" : "false", BLOCK, churned, h_a.n * BLOCK, h_b.n * BLOCK, h_d.n * BLOCK, h_g.n * BLOCK);
  fclose(f);
  rename(tmp, path);
}

__attribute__((noinline)) static void run_server(const char *state, double seconds, size_t rate) {
  double t0 = now_s(), last = t0;
  int first = 1, growing = 1, seen = 0;
  size_t churned = 0;
  background();
  while (!stop && (seconds <= 0 || now_s() - t0 < seconds)) {
    double t = now_s(), dt = t - last;
    last = t;
    if (toggles != seen) {
      growing ^= (toggles - seen) & 1;
      seen = toggles;
    }
    churned += handle_requests(first, (size_t)(CHURN_PER_S * (first ? 0.1 : dt)));
    first = 0;
    if (growing) leak_grow((size_t)(rate * dt));
    write_state(state, growing && h_g.n * BLOCK < GROW_CAP, t - t0, churned);
    usleep(100000);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: flame_prog STATE_FILE [SECONDS] [RATE_KIB_PER_S]\n");
    return 2;
  }
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGUSR1, on_usr1);
  double seconds = argc > 2 ? atof(argv[2]) : 0;
  size_t rate = (size_t)(argc > 3 ? atof(argv[3]) : 2048) * 1024;
  run_server(argv[1], seconds, rate);
  return 0;
}
