/* allocstats.c - what the application's allocator holds, uses and wastes.
 *
 * Sources, decided once:
 *   "mimalloc"  VALKMEM_ALLOCATOR=mimalloc (the hot path forwards the app's
 *               allocations to mimalloc): held = mimalloc's committed bytes
 *               (mi_process_info), in_use = the app's live usable bytes
 *               (exact, from this tick's counters). Release builds of
 *               mimalloc keep no in-use statistic of their own, and commit
 *               whole 32 MiB segments on Linux, so held is coarse for small
 *               heaps and includes valkmem's own mimalloc memory.
 *   platform    glibc mallinfo2 (os_linux.c) or malloc zones (os_darwin.c),
 *               when the next malloc is the platform's own.
 *   "none"      anything else (jemalloc or tcmalloc preloaded): their
 *               numbers are not ours to guess.
 *
 * fragmentation = free_held / held * 100; warning at 25 %.
 *
 * Sampled at most once a second, and never more than 0.1 % of the time:
 * mallinfo2 walks every free chunk of an arena with that arena's lock held,
 * so application threads wait for it. Measured here: 1 ms with 10^4 free
 * chunks, 270 ms with 10^6, 2.5 s with 5x10^6. After a call that took T,
 * the next waits max(1 s, 1000 T). Between samples the last values are
 * handed out. Agent thread only.
 */
#include "agent.h"
#include "os_alloc.h"

#include <errno.h>
#include <mimalloc.h>
#include <string.h>
#include <time.h>

#define SAMPLE_EVERY_NS 1000000000ull
#define SAMPLE_DUTY 1000 /* wait 1000x the last call's cost */
#define FRAG_WARN_PCT 25.0

enum { SRC_UNKNOWN, SRC_MIMALLOC, SRC_NATIVE, SRC_NONE };

static int source;
static vkm_allocstats_t last;
static uint64_t last_ns, gap_ns = SAMPLE_EVERY_NS;
static int sampled;

/* The call's cost in this thread's CPU time: the walk under the arena lock,
 * not time spent descheduled on a busy machine. */
static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void decide_source(void) {
  if (strcmp(vkm_config.allocator, "mimalloc") == 0) source = SRC_MIMALLOC;
  else if (vkm_os_native_malloc()) source = SRC_NATIVE;
  else source = SRC_NONE;
}

static void sample_mimalloc(vkm_allocstats_t *a) {
  size_t elapsed, user, sys, rss, peak_rss, commit, peak_commit, faults;
  mi_process_info(&elapsed, &user, &sys, &rss, &peak_rss, &commit, &peak_commit, &faults);
  const vkm_tick_t *t = vkm_tick_current();
  uint64_t live = (t && t->live_bytes > 0) ? (uint64_t)t->live_bytes : 0;
  a->source = "mimalloc";
  a->held = commit;
  a->in_use = live < a->held ? live : a->held;
  a->free_held = a->held - a->in_use;
}

static void sample_now(vkm_allocstats_t *a) {
  memset(a, 0, sizeof *a);
  a->source = "none";
  if (source == SRC_UNKNOWN) decide_source();
  if (source == SRC_MIMALLOC) sample_mimalloc(a);
  else if (source == SRC_NATIVE && vkm_os_native_allocstats(a) != 0) {
    memset(a, 0, sizeof *a);
    a->source = "none";
  }
  if (a->held) {
    a->frag_pct = (double)a->free_held * 100.0 / (double)a->held;
    a->frag_warn = a->frag_pct >= FRAG_WARN_PCT;
  }
}

void vkm_allocstats_sample(vkm_allocstats_t *a, uint64_t now_ns) {
  if (!sampled || now_ns - last_ns >= gap_ns) {
    uint64_t t0 = cpu_ns();
    sample_now(&last);
    uint64_t cost = cpu_ns() - t0;
    gap_ns = cost * SAMPLE_DUTY > SAMPLE_EVERY_NS ? cost * SAMPLE_DUTY : SAMPLE_EVERY_NS;
    last_ns = now_ns;
    sampled = 1;
  }
  *a = last;
}

void vkm_allocstats_json(const vkm_allocstats_t *a, cJSON *obj) {
  cJSON *o = cJSON_AddObjectToObject(obj, "allocator");
  if (!o) return;
  cJSON_AddStringToObject(o, "source", a->source ? a->source : "none");
  cJSON_AddNumberToObject(o, "held", (double)a->held);
  cJSON_AddNumberToObject(o, "in_use", (double)a->in_use);
  cJSON_AddNumberToObject(o, "free_held", (double)a->free_held);
  cJSON_AddNumberToObject(o, "frag_pct", a->frag_pct);
  cJSON_AddBoolToObject(o, "frag_warn", a->frag_warn != 0);
}
