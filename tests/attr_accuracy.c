/* attr_accuracy.c - end to end: three call sites allocate 60/30/10 % of the
 * bytes (mostly freed soon, every 50th object kept to exit) under
 * LD_PRELOAD. The report must name the three functions and estimate each
 * site's bytes within +-10 % at the default 512 KiB rate; in exact mode
 * (VALKMEM_SAMPLE_BYTES=1) every figure equals the truth.
 *
 * Sizing: Poisson byte sampling gives a site's estimate a relative standard
 * error of about 1/sqrt(site bytes / mean). For +-10 % to be 4 standard
 * errors the smallest site (10 %) needs 1600 samples = 800 MiB, so the
 * sampled run allocates 8 GiB in total (~300k allocations of 24 B .. 98 KiB,
 * never touched, on 4 threads, paced: a few seconds). The exact SE of each estimate
 * is computed from the plan and checked too (|error| <= 4 SE): a biased
 * estimator fails that even when it stays inside 10 %.
 *
 *   attr_accuracy LIB sampled|exact     the driver (ctest runs this)
 *   attr_accuracy child SCALE_DIVISOR   the workload (run by the driver)
 */
#include "attr_common.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define NSITES 3
#define TOTAL_BYTES (8ull << 30)
#define KEEP_EVERY 50
#define RING 16

static const size_t sizes[] = {24, 200, 1000, 4096, 16384, 40000, 65536, 100000};

__attribute__((noinline)) static void *site_alpha(size_t n) { void *p = malloc(n); __asm__ volatile("" ::"r"(p)); return p; }
__attribute__((noinline)) static void *site_beta(size_t n) { void *p = malloc(n); __asm__ volatile("" ::"r"(p)); return p; }
__attribute__((noinline)) static void *site_gamma(size_t n) { void *p = malloc(n); __asm__ volatile("" ::"r"(p)); return p; }

static const char *const names[NSITES] = {"site_alpha", "site_beta", "site_gamma"};

typedef struct truth_s {
  double alloc_bytes, alloc_count, live_bytes, live_count;
  double var_alloc, var_live; /* variance of the sampled estimates at mean 512 KiB */
} truth_t;

/* The plan of one thread: step i goes to site 0 for i%10 < 6, site 1 for
 * 6..8, site 2 for 9; sizes from an LCG seeded per thread. Runs it for real
 * (do_alloc) or only adds up the truth. Running threads pause 20 ms every
 * 32 MiB: the agent drains each thread's 64 KiB event ring every 100 ms,
 * and this keeps the sample rate well inside that (no dropped events). */
static void plan(uint64_t total, uint64_t seed, int do_alloc, truth_t *t) {
  uint64_t rng = 12345 + seed * 7919, done = 0, paced = 0;
  void *ring[NSITES][RING] = {{0}};
  unsigned head[NSITES] = {0};
  uint64_t nth[NSITES] = {0};
  const double mean = 524288;
  for (uint64_t i = 0; done < total; i++) {
    if (do_alloc && done - paced >= (32u << 20)) {
      paced = done;
      usleep(20000);
    }
    int s = i % 10 < 6 ? 0 : i % 10 < 9 ? 1 : 2;
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    size_t n = sizes[(rng >> 33) % (sizeof sizes / sizeof sizes[0])];
    done += n;
    double p = -expm1(-(double)n / mean), v = (double)n * n * (1 - p) / p;
    t[s].alloc_bytes += (double)n;
    t[s].alloc_count += 1;
    t[s].var_alloc += v;
    bool keep = ++nth[s] % KEEP_EVERY == 0;
    if (keep) {
      t[s].live_bytes += (double)n;
      t[s].live_count += 1;
      t[s].var_live += v;
    }
    if (!do_alloc) continue;
    void *q = s == 0 ? site_alpha(n) : s == 1 ? site_beta(n) : site_gamma(n);
    if (keep) continue; /* held until exit */
    void **slot = &ring[s][head[s]++ % RING];
    free(*slot); /* the object RING allocations ago at this site dies */
    *slot = q;
  }
  for (int s = 0; s < NSITES; s++)
    for (int k = 0; k < RING; k++) free(ring[s][k]);
}

#define NTHREADS 4
static uint64_t child_total;

static void *child_thread(void *arg) {
  truth_t t[NSITES];
  memset(t, 0, sizeof t);
  plan(child_total / NTHREADS, (uint64_t)(uintptr_t)arg, 1, t);
  return NULL;
}

static int child(uint64_t divisor) {
  child_total = TOTAL_BYTES / divisor;
  pthread_t th[NTHREADS];
  for (uintptr_t k = 0; k < NTHREADS; k++) pthread_create(&th[k], NULL, child_thread, (void *)k);
  for (int k = 0; k < NTHREADS; k++) pthread_join(th[k], NULL);
  return 0;
}

static void truth_of(uint64_t total, truth_t *t) {
  memset(t, 0, NSITES * sizeof *t);
  for (uint64_t k = 0; k < NTHREADS; k++) plan(total / NTHREADS, k, 0, t);
}

static void check_run(const char *self, const char *lib, bool exact) {
  char path[256], env_report[300];
  attr_report_path(path, sizeof path, exact ? "acc_exact" : "acc_sampled");
  snprintf(env_report, sizeof env_report, "VALKMEM_REPORT=%s", path);
  const char *env[] = {env_report, exact ? "VALKMEM_SAMPLE_BYTES=1" : "VALKMEM_SAMPLE_BYTES=524288", NULL};
  uint64_t divisor = exact ? 16 : 1;
  char arg[32];
  snprintf(arg, sizeof arg, "%llu", (unsigned long long)divisor);
  unlink(path);
  CHECK_EQ(attr_wait(attr_spawn(self, lib, "child", arg, env)), 0);
  cJSON *rep = attr_load(path);
  CHECK(rep != NULL);
  if (!rep) return;
  truth_t t[NSITES];
  truth_of(TOTAL_BYTES / divisor, t);
  CHECK_EQ(cJSON_GetObjectItem(rep, "sample_bytes")->valuedouble, exact ? 1 : 524288);
  CHECK_EQ(cJSON_GetObjectItem(rep, "dropped_events")->valuedouble, 0);
  for (int s = 0; s < NSITES; s++) {
    int n = 0;
    double ab = attr_sum(rep, names[s], "alloc_bytes", &n), ac = attr_sum(rep, names[s], "alloc_count", NULL);
    double lb = attr_sum(rep, names[s], "live_bytes", NULL), lc = attr_sum(rep, names[s], "live_count", NULL);
    fprintf(stderr, "%s %-10s sites %d alloc %.0f (truth %.0f, %+.2f %%, z %+.2f) live %.0f (truth %.0f, z %+.2f)\n",
            exact ? "exact  " : "sampled", names[s], n, ab, t[s].alloc_bytes,
            100 * (ab - t[s].alloc_bytes) / t[s].alloc_bytes, (ab - t[s].alloc_bytes) / sqrt(t[s].var_alloc), lb,
            t[s].live_bytes, (lb - t[s].live_bytes) / sqrt(t[s].var_live));
    CHECK_GE(n, 1); /* the function is named */
    if (exact) {
      CHECK_EQ(ab, t[s].alloc_bytes);
      CHECK_EQ(ac, t[s].alloc_count);
      CHECK_EQ(lb, t[s].live_bytes);
      CHECK_EQ(lc, t[s].live_count);
    } else {
      CHECK_NEAR(ab, t[s].alloc_bytes, 0.10 * t[s].alloc_bytes);
      CHECK_NEAR(ab, t[s].alloc_bytes, 4 * sqrt(t[s].var_alloc));
      CHECK_NEAR(lb, t[s].live_bytes, 4 * sqrt(t[s].var_live));
    }
  }
  cJSON_Delete(rep);
  unlink(path);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "child") == 0) return child(strtoull(argv[2], NULL, 10));
  if (argc != 3) {
    fprintf(stderr, "usage: %s LIBVALKMEM sampled|exact\n", argv[0]);
    return 2;
  }
  check_run("/proc/self/exe", argv[1], strcmp(argv[2], "exact") == 0);
  return check_done(strcmp(argv[2], "exact") == 0 ? "attr_accuracy exact" : "attr_accuracy sampled");
}
