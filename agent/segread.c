/* segread.c - the agent's reader of one process's segment (interpose/
 * segment.h): totals, rings, pools, modules, configuration, argv, and how
 * the process ended. A worker maps one segment (vkm_segread_attach) and the
 * rest of the agent asks these functions, never the segment directly.
 *
 * The recorder keeps writing while we read. Counters are read with relaxed
 * loads; a sum is made consistent with thread exit by the recorder's
 * retire sequence count; the module list by its own sequence count.
 */
#include "agent.h"
#include "proc.h"
#include "runtime.h"
#include "symbols.h"
#include "../interpose/segment.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

vkm_seg_hdr_t *vkm_seg;
vkm_config_t vkm_config;
static char *argv_store[130];
static int argc_store;
static int report_owner;

int vkm_segread_check(const vkm_seg_hdr_t *h, uint64_t size, char *why, size_t cap) {
  if ((size && size < sizeof(uint64_t) * 2) || h->magic != VKM_SEG_MAGIC) {
    snprintf(why, cap, "not a valkmem segment");
    return -1;
  }
  if (h->version != VKM_SEG_VERSION || h->hdr_size != sizeof(vkm_seg_hdr_t)) {
    snprintf(why, cap, "recorder speaks segment version %u, this agent version %u: use the libvalkmem and valkmem of one build",
             h->version, VKM_SEG_VERSION);
    return -1;
  }
  if (!vkm_seg_size_ok(h->size) || (size && h->size != size)) {
    snprintf(why, cap, "segment of %llu bytes, its header says %llu", (unsigned long long)size,
             (unsigned long long)h->size);
    return -1;
  }
  return 0;
}

int vkm_segread_attach(int fd, int owner, char *why, size_t cap) {
  /* Its size from its header (segment.h: smaller under RLIMIT_AS), checked
   * against the file's before the whole is mapped. */
  vkm_seg_hdr_t peek;
  struct stat st;
  if (pread(fd, &peek, sizeof peek, 0) != (ssize_t)sizeof peek || fstat(fd, &st) != 0) {
    snprintf(why, cap, "cannot read the segment: %s", strerror(errno));
    return -1;
  }
  if (vkm_segread_check(&peek, (uint64_t)st.st_size, why, cap) != 0) return -1;
  void *p = mmap(NULL, peek.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    snprintf(why, cap, "mmap of the segment: %s", strerror(errno));
    return -1;
  }
  if (vkm_segread_check(p, peek.size, why, cap) != 0) {
    munmap(p, peek.size);
    return -1;
  }
  vkm_seg = p;
  vkm_config = vkm_seg->config;
  report_owner = owner;
  /* argv: NUL-separated in the segment, ours to point into. */
  argc_store = 0;
  const char *a = vkm_seg->argv, *end = vkm_seg->argv + sizeof vkm_seg->argv;
  for (uint32_t i = 0; i < vkm_seg->argc && argc_store < 128 && a < end && *a; i++) {
    argv_store[argc_store++] = (char *)a;
    a += strnlen(a, (size_t)(end - a)) + 1;
  }
  argv_store[argc_store] = NULL;
  return 0;
}

int vkm_argv(char ***argv_out) {
  *argv_out = argv_store;
  return argc_store;
}
bool vkm_is_report_owner(void) { return report_owner; }
uint64_t vkm_start_ns(void) { return vkm_seg ? vkm_seg->start_ns : 0; }
uint64_t vkm_started_at_unix_ms(void) { return vkm_seg ? vkm_seg->start_unix_ms : 0; }
const char *vkm_platform(void) { return vkm_seg ? vkm_seg->platform : "linux"; }
/* The pid in the agent's own pid namespace (SO_PEERCRED), which differs
 * from the one the recorder sees inside a sandbox's namespace. */
static int target_pid;
void vkm_segread_set_pid(int pid) { target_pid = pid; }
int vkm_target_pid(void) { return target_pid ? target_pid : vkm_seg ? vkm_seg->pid : 0; }

/* ---------------------------------------------------------------------------
 * Counters
 * ------------------------------------------------------------------------- */
/* The second read of a sequence count, after the data it guards: an
 * acquire fence orders the data reads before it. TSan does not model
 * fences; a sequentially consistent load is what it understands (and is
 * as correct on x86-64 and arm64). */
static uint64_t seq_reread(const uint64_t *seq) {
#if defined(__SANITIZE_THREAD__)
  return __atomic_load_n(seq, __ATOMIC_SEQ_CST);
#else
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  return __atomic_load_n(seq, __ATOMIC_RELAXED);
#endif
}
#define NCOUNTERS (sizeof(vkm_counters_t) / sizeof(uint64_t))

static void counters_add(vkm_counters_t *dst, const vkm_counters_t *src) {
  uint64_t *d = (uint64_t *)dst;
  const uint64_t *s = (const uint64_t *)src;
  for (size_t i = 0; i < NCOUNTERS; i++) d[i] += VKM_LOAD(&s[i]);
}

static void state_add(vkm_counters_t *dst, const vkm_tstate_t *ts) {
  vkm_counters_t c;
  vkm_tstate_counters(ts, &c); /* the countdowns folded in (segment.h) */
  counters_add(dst, &c);
}

static vkm_tstate_t *state_next(const vkm_tstate_t *ts) { return vkm_seg_at(VKM_LOAD(&ts->next_off)); }
static vkm_tstate_t *registry_head(void) { return vkm_seg_at(__atomic_load_n(&vkm_seg->registry_off, __ATOMIC_ACQUIRE)); }

static void sum_states(vkm_counters_t *out) {
  memset(out, 0, sizeof *out);
  counters_add(out, &vkm_seg->retired);
  uint32_t n = 0;
  for (vkm_tstate_t *ts = registry_head(); ts; ts = state_next(ts), n++)
    if (__atomic_load_n(&ts->status, __ATOMIC_ACQUIRE) == VKM_TS_LIVE) state_add(out, ts);
  /* The registry lists each state once: as many as were ever made. */
  VKM_ASSERT(n <= VKM_SEG_THREADS_MAX);
}

/* alloc_count is not kept on the hot path: it is the sum of size_hist. */
static void derive(vkm_counters_t *c) {
  uint64_t n = 0;
  for (int i = 0; i < VKM_HIST_BUCKETS; i++) n += c->size_hist[i];
  c->alloc_count = n;
}

/* Optimistic: retry a sum that overlapped a thread's fold. The recorder's
 * fold lock is not ours to take (a process that dies holding it would stop
 * us for ever), so after many tries the last sum stands: at worst one
 * exiting thread's counts are off for one tick. A dead process folds
 * nothing, so its sums are exact. */
#if VKM_ASSERTS
void vkm_assert_fail(const char *what, const char *file, int line) {
  vkm_say("error", "invariant broken: %s (%s:%d)", what, file, line);
  abort();
}
#endif

void vkm_counters_sum(vkm_counters_t *out) {
  for (int tries = 0; tries < 1000; tries++) {
    uint64_t s1 = __atomic_load_n(&vkm_seg->retire_seq, __ATOMIC_ACQUIRE);
    if (s1 & 1) {
      sched_yield();
      continue;
    }
    sum_states(out);
    if (seq_reread(&vkm_seg->retire_seq) == s1) break;
  }
  derive(out);
}

int64_t vkm_live_peak(void) { return __atomic_load_n(&vkm_seg->live_peak, __ATOMIC_RELAXED); }
/* Sampled mode: each thread checks the peak after a quantum of frees
 * (vkm.h). Exact mode checks at every free: exact with one thread; with
 * more, the others' counters are read while they run, and the bound
 * stays one quantum for each of them. */
uint64_t vkm_live_peak_error_bound(void) {
  uint64_t t = vkm_threads_max();
  if (vkm_config.exact) t = t > 1 ? t - 1 : 0;
  return t * VKM_LIVE_QUANTUM;
}
uint32_t vkm_threads_live(void) { return __atomic_load_n(&vkm_seg->threads_live, __ATOMIC_RELAXED); }
uint32_t vkm_threads_max(void) { return __atomic_load_n(&vkm_seg->threads_max, __ATOMIC_RELAXED); }
uint64_t vkm_threads_total(void) { return __atomic_load_n(&vkm_seg->threads_total, __ATOMIC_RELAXED); }
uint64_t vkm_dropped_events(void) { return __atomic_load_n(&vkm_seg->dropped, __ATOMIC_RELAXED); }
uint64_t vkm_sampled_live(void) { return __atomic_load_n(&vkm_seg->sampled_live, __ATOMIC_RELAXED); }
/* What valkmem costs the host: its own mappings (the sampler's table) and
 * the segment pages that the host has touched (fstat of the memfd would
 * tell the same; the agent counts the arena's use). */
uint64_t vkm_self_bytes(void) {
  return __atomic_load_n(&vkm_seg->self_bytes, __ATOMIC_RELAXED) + __atomic_load_n(&vkm_seg->bump, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------------------
 * Rings
 * ------------------------------------------------------------------------- */
/* A copy of each record: the producer may be in another process that the
 * kernel just killed, but a record below `head` is complete (release). */
static _Alignas(16) uint8_t rec_copy[sizeof(vkm_event_t) + 65536];

static size_t ring_drain(vkm_seg_ring_t *r, vkm_event_fn fn, void *ud, int *busy) {
  size_t n = 0;
  uint64_t tail = r->tail;
  uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
  uint64_t size = r->mask + 1;
  const uint8_t *buf = vkm_seg_at(r->buf_off);
  /* A dead or broken producer must not take the agent down: a ring that
   * breaks its invariants is left alone in release builds, and stops a
   * debug build where it is caught. */
  VKM_ASSERT(buf && (size & (size - 1)) == 0 && tail <= head && head - tail <= size);
  if (!buf || size < 64 || r->buf_off + size > vkm_seg->size || head - tail > size) return 0; /* not a ring we trust */
  if (head - tail >= size / 4) *busy = 1;
  while (tail < head) {
    const vkm_event_t *ev = (const vkm_event_t *)(buf + (tail & r->mask));
    if (ev->type == 0) { /* pad to the end of the buffer */
      tail += size - (tail & r->mask);
      continue;
    }
    size_t len = VKM_REC_ALIGN(sizeof(vkm_event_t) + ev->extra_len);
    if (len > size - (tail & r->mask) || len > sizeof rec_copy) break; /* damaged: stop here */
    memcpy(rec_copy, ev, sizeof(vkm_event_t) + ev->extra_len);
    const vkm_event_t *cp = (const vkm_event_t *)rec_copy;
    fn(cp, cp + 1, ud);
    tail += len;
    n++;
  }
  __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
  if (r->woke) __atomic_store_n(&r->woke, 0, __ATOMIC_RELEASE);
  return n;
}

static int rings_busy;
int vkm_rings_busy(void) {
  return rings_busy || __atomic_load_n(&vkm_seg->producers_waiting, __ATOMIC_RELAXED) != 0;
}

size_t vkm_rings_drain(vkm_event_fn fn, void *ud) {
  size_t n = 0;
  int busy = 0;
  for (vkm_tstate_t *ts = registry_head(); ts; ts = state_next(ts)) {
    int st = __atomic_load_n(&ts->status, __ATOMIC_ACQUIRE);
    vkm_seg_ring_t *r = vkm_seg_at(__atomic_load_n(&ts->ring_off, __ATOMIC_ACQUIRE));
    if (r) n += ring_drain(r, fn, ud, &busy);
    /* A dead thread's ring is empty now: the state may be reused. */
    if (st == VKM_TS_DEAD) {
      int expect = VKM_TS_DEAD;
      __atomic_compare_exchange_n(&ts->status, &expect, VKM_TS_FREE, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    }
  }
  vkm_seg_ring_t *o = vkm_seg_at(__atomic_load_n(&vkm_seg->orphan_ring_off, __ATOMIC_ACQUIRE));
  if (o) n += ring_drain(o, fn, ud, &busy);
  rings_busy = busy;
  return n;
}

/* ---------------------------------------------------------------------------
 * Pools
 * ------------------------------------------------------------------------- */
valkmem_pool_t *vkm_api_pools(void) { return vkm_seg ? vkm_seg_at(__atomic_load_n(&vkm_seg->pools_off, __ATOMIC_ACQUIRE)) : NULL; }
valkmem_pool_t *vkm_api_pool_next(const valkmem_pool_t *p) { return vkm_seg_at(p->next_off); }

/* ---------------------------------------------------------------------------
 * Modules: a consistent copy of the recorder's list.
 * ------------------------------------------------------------------------- */
int vkm_segread_modules(vkm_seg_module_t *out, size_t max, char *strings, size_t str_cap, size_t *count) {
  const vkm_seg_modules_t *m = vkm_seg_at(vkm_seg->modules_off);
  for (int tries = 0; tries < 100; tries++) {
    uint64_t s1 = __atomic_load_n(&m->seq, __ATOMIC_ACQUIRE);
    if (s1 & 1) {
      sched_yield();
      continue;
    }
    size_t n = m->count < max ? m->count : max;
    size_t used = m->strings_used < str_cap ? m->strings_used : str_cap;
    const vkm_seg_module_t *ent = (const vkm_seg_module_t *)(m + 1);
    memcpy(out, ent, n * sizeof *out);
    memcpy(strings, (const char *)(ent + VKM_SEG_MODULES_MAX), used);
    if (seq_reread(&m->seq) != s1) continue;
    for (size_t i = 0; i < n; i++)
      if (out[i].path_off + out[i].path_len >= used) out[i].path_len = 0;
    *count = n;
    return 0;
  }
  return -1;
}

/* ---------------------------------------------------------------------------
 * Modules of the recorded process: its published list (segread.c), then
 * what the platform sees beside it (proc.h: /proc/PID/maps on Linux, for
 * objects the loader opened for itself and code mapped by hand).
 * ------------------------------------------------------------------------- */

static void segment_source(vkm_module_add_fn add) {
  static vkm_seg_module_t ent[VKM_SEG_MODULES_MAX];
  static char strings[VKM_SEG_MODULES_BYTES];
  size_t n = 0;
  if (vkm_segread_modules(ent, VKM_SEG_MODULES_MAX, strings, sizeof strings, &n) == 0)
    for (size_t i = 0; i < n; i++)
      if (ent[i].path_len) add(strings + ent[i].path_off, ent[i].bias, ent[i].lo, ent[i].hi);
  vkm_proc_extra_modules(vkm_target_pid(), add);
}

void vkm_symbols_use_segment(void) { vkm_symbols_set_source(segment_source); }
