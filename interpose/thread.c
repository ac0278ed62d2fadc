/* thread.c - per-thread state: registry, attach, exit, live heap, fork.
 *
 * States live in the shared segment, allocated once and never freed, so the
 * agent can read any of them at any time without a lock. A thread attaches
 * on its first tracked call; at exit a pthread-key destructor folds its
 * counters into `retired` and marks the state DEAD; the agent drains its
 * ring and marks it FREE for the next new thread to reuse.
 *
 * Summing (agent/segread.c) is consistent with thread exit through a
 * sequence count: a dying thread bumps `retire_seq` to odd, moves its
 * counters, bumps it to even; the agent retries a sum that overlapped a
 * fold. Dying threads serialise on a spinlock among themselves - thread
 * exit is not the hot path.
 */
#include "hot.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

/* macOS reaches the block through a pthread key instead (hot.h). */
#ifndef __APPLE__
__thread vkm_tls_t vkm_tls __attribute__((tls_model("initial-exec")));
#endif

/* The process-wide fields live in the segment header. */
#define H (vkm_seg)
#define retired (H->retired)
#define retire_lock (H->retire_lock)
#define retire_seq (H->retire_seq)
#define live_peak (H->live_peak)
#define threads_live (H->threads_live)
#define threads_max (H->threads_max)
#define threads_total (H->threads_total)
#define registry_count (H->registry_count)

static pthread_key_t exit_key;
static int key_made;  /* atomic: 0 none, 1 being made, 2 made */

static void spin_lock(int *l) {
  while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
    while (__atomic_load_n(l, __ATOMIC_RELAXED)) sched_yield();
}
static void spin_unlock(int *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

void vkm_guard_enter(void) {
  vkm_tls.guard++;
  vkm_tls.ts = vkm_tls.other = NULL;
}
/* The fast paths get the state back: glibc's (ts) or the other
 * allocators' (other); the mode is fixed before any thread attaches. */
void vkm_guard_leave(void) {
  if (--vkm_tls.guard) return;
  if (vkm_fast_path) vkm_tls.ts = vkm_tls.state;
  else vkm_tls.other = vkm_tls.state;
}
#define self_state vkm_self_state

uint64_t vkm_state_alloc_count(const vkm_tstate_t *ts) {
  uint64_t n = 0;
  for (int i = 0; i < VKM_HIST_BUCKETS; i++) n += VKM_LOAD(&ts->c.size_hist[i]);
  n += VKM_LOAD(&ts->hist_zero);
  return n;
}

vkm_tstate_t *vkm_registry_head(void) { return vkm_seg_at(__atomic_load_n(&H->registry_off, __ATOMIC_ACQUIRE)); }
static vkm_tstate_t *registry_next(const vkm_tstate_t *ts) { return vkm_seg_at(ts->next_off); }

/* ---------------------------------------------------------------------------
 * The live heap's peak (vkm.h): checked on the way down.
 * ------------------------------------------------------------------------- */
static void peak_raise(int64_t now) {
  int64_t peak = __atomic_load_n(&live_peak, __ATOMIC_RELAXED);
  while (now > peak && !__atomic_compare_exchange_n(&live_peak, &peak, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

/* A live thread's share of the live heap: its allocated usable bytes read
 * before its freed ones, so that a thread allocating and freeing meanwhile
 * can only make the share low. */
static int64_t state_live(const vkm_tstate_t *ts) {
  for (int tries = 0;; tries++) {
    uint64_t s1 = __atomic_load_n(&ts->arm_seq, __ATOMIC_ACQUIRE);
    uint64_t a = VKM_LOAD(&ts->c.alloc_usable);
    uint64_t f = VKM_LOAD(&ts->c.free_usable);
    int64_t fa = VKM_LOAD(&ts->free_armed), fl = VKM_LOAD(&ts->free_left);
    uint64_t s2 = __atomic_load_n(&ts->arm_seq, __ATOMIC_SEQ_CST);
    if ((s1 == s2 && !(s1 & 1)) || tries >= 100) return (int64_t)(a - f - (uint64_t)(fa - fl));
  }
}

/* The live heap now, summed over the retired total and every live
 * thread; 0 when a thread's exit overlapped every try (then this check
 * is skipped: the next one comes a quantum later). */
static int live_now(int64_t *out) {
  for (int tries = 0; tries < 8; tries++) {
    uint64_t s1 = __atomic_load_n(&retire_seq, __ATOMIC_ACQUIRE);
    if (s1 & 1) {
      sched_yield();
      continue;
    }
    int64_t live = (int64_t)(VKM_LOAD(&retired.alloc_usable) - VKM_LOAD(&retired.free_usable));
    for (vkm_tstate_t *ts = vkm_registry_head(); ts; ts = registry_next(ts))
      if (__atomic_load_n(&ts->status, __ATOMIC_ACQUIRE) == VKM_TS_LIVE) live += state_live(ts);
    if (__atomic_load_n(&retire_seq, __ATOMIC_SEQ_CST) == s1) {
      *out = live;
      return 1;
    }
  }
  return 0;
}

void vkm_peak_check(vkm_tstate_t *ts, size_t u) {
  if (vkm_unlikely(vkm_is_copy())) { /* a raw copy of the process (hot.h) */
    vkm_stop_copy();
    return;
  }
  VKM_ASSERT(ts->free_armed == vkm_peak_quantum()); /* armed at attach and by every check */
  vkm_free_rearm(ts);
  /* The free that made the check due is counted already; the heap was
   * larger by its u bytes just before it. */
  int64_t now;
  if (live_now(&now)) peak_raise(now + (int64_t)u);
}

/* ---------------------------------------------------------------------------
 * Counter folding and summing
 * ------------------------------------------------------------------------- */
#define NCOUNTERS (sizeof(vkm_counters_t) / sizeof(uint64_t))

static void counters_add(vkm_counters_t *dst, const vkm_counters_t *src) {
  uint64_t *d = (uint64_t *)dst;
  const uint64_t *s = (const uint64_t *)src;
  for (size_t i = 0; i < NCOUNTERS; i++) VKM_STORE(&d[i], VKM_LOAD(&d[i]) + VKM_LOAD(&s[i]));
}

static void counters_zero(vkm_counters_t *c) {
  uint64_t *d = (uint64_t *)c;
  for (size_t i = 0; i < NCOUNTERS; i++) VKM_STORE(&d[i], 0);
}

/* Moves a state's counters into the retired total and leaves it empty,
 * its countdowns consumed (armed == left): the next thread to take it
 * re-arms them from nothing. */
static void retire_counters(vkm_tstate_t *ts) {
  vkm_counters_t c;
  vkm_tstate_counters(ts, &c);
  counters_add(&retired, &c);
  vkm_arm_begin(ts);
  counters_zero(&ts->c);
  VKM_STORE(&ts->hist_zero, 0);
  VKM_STORE(&ts->req_armed, ts->req_left);
  VKM_STORE(&ts->free_armed, ts->free_left);
  vkm_arm_end(ts);
}

/* Called with retire_lock held. */
static void fold_locked(vkm_tstate_t *ts) {
  __atomic_add_fetch(&retire_seq, 1, __ATOMIC_ACQ_REL);
  retire_counters(ts);
  __atomic_store_n(&ts->status, VKM_TS_DEAD, __ATOMIC_RELEASE);
  __atomic_add_fetch(&retire_seq, 1, __ATOMIC_ACQ_REL);
}

/* After the exit destructor a thread can still allocate and free (later TLS
 * destructors, libc's own clean-up). Those calls go straight into the
 * retired total with the fold lock held: rare and exact. */
void vkm_count_orphan(int kind, size_t req, size_t usable) {
  int64_t now;
  if (kind == 1 && live_now(&now)) peak_raise(now); /* before the heap shrinks */
  spin_lock(&retire_lock);
  __atomic_add_fetch(&retire_seq, 1, __ATOMIC_ACQ_REL);
  switch (kind) {
  case 0:
    VKM_BUMP(&retired.alloc_bytes, req);
    VKM_BUMP(&retired.alloc_usable, usable);
    VKM_BUMP(&retired.size_hist[vkm_size_class(req)], 1);
    break;
  case 1:
    VKM_BUMP(&retired.free_count, 1);
    VKM_BUMP(&retired.free_usable, usable);
    break;
  default:
    VKM_BUMP(&retired.failed_count, 1);
  }
  __atomic_add_fetch(&retire_seq, 1, __ATOMIC_ACQ_REL);
  spin_unlock(&retire_lock);
}

/* ---------------------------------------------------------------------------
 * Attach and exit
 * ------------------------------------------------------------------------- */
static void thread_exit(void *arg) {
  vkm_tstate_t *ts = arg;
  if (!ts || self_state() != ts) return;
  vkm_guard_enter();
  if (vkm_free_unchecked(ts)) { /* its last frees may follow a peak */
    int64_t now;
    if (live_now(&now)) peak_raise(now);
    vkm_free_rearm(ts);
  }
  spin_lock(&retire_lock);
  fold_locked(ts);
  spin_unlock(&retire_lock);
  vkm_tls.state = NULL; /* stays detached after the guard */
  vkm_tls.exiting = 1;
  __atomic_sub_fetch(&threads_live, 1, __ATOMIC_RELAXED);
  vkm_guard_leave();
}

/* Without pthread_once: sanitizer runtimes intercept it, and a thread can
 * attach from inside their own thread start-up. */
static void make_key(void) {
  int expect = 0;
  if (__atomic_compare_exchange_n(&key_made, &expect, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    pthread_key_create(&exit_key, thread_exit);
    __atomic_store_n(&key_made, 2, __ATOMIC_RELEASE);
    return;
  }
  while (__atomic_load_n(&key_made, __ATOMIC_ACQUIRE) != 2) sched_yield();
}

static vkm_tstate_t *state_acquire(void) {
  for (vkm_tstate_t *ts = vkm_registry_head(); ts; ts = registry_next(ts)) {
    int expect = VKM_TS_FREE;
    if (__atomic_load_n(&ts->status, __ATOMIC_RELAXED) == VKM_TS_FREE &&
        __atomic_compare_exchange_n(&ts->status, &expect, VKM_TS_LIVE, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
      return ts;
  }
  if (__atomic_load_n(&registry_count, __ATOMIC_RELAXED) >= VKM_SEG_THREADS_MAX) return NULL;
  uint64_t off = vkm_seg_alloc(sizeof(vkm_tstate_t), _Alignof(vkm_tstate_t));
  if (!off) return NULL;
  vkm_tstate_t *ts = vkm_seg_at(off); /* zero pages */
  ts->index = __atomic_fetch_add(&registry_count, 1, __ATOMIC_RELAXED);
  ts->status = VKM_TS_LIVE;
  uint64_t head = __atomic_load_n(&H->registry_off, __ATOMIC_RELAXED);
  do ts->next_off = head;
  while (!__atomic_compare_exchange_n(&H->registry_off, &head, off, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
  return ts;
}

vkm_tstate_t *vkm_thread_attach(void) {
  if (vkm_tls.exiting || !vkm_config.enabled || !vkm_seg) return NULL;
  if (vkm_unlikely(vkm_is_copy())) {
    vkm_stop_copy();
    return NULL;
  }
  vkm_guard_enter();
  if (__atomic_load_n(&key_made, __ATOMIC_ACQUIRE) != 2) make_key();
  vkm_tstate_t *ts = state_acquire();
  if (ts) {
    ts->os_tid = vkm_plat_tid();
    vkm_free_rearm(ts); /* a reused state's countdowns were left consumed */
    if (!ts->rng) ts->rng = ((uint64_t)ts->os_tid * 0x9E3779B97F4A7C15ull) ^ vkm_now_ns() ^ (uintptr_t)ts;
    vkm_sample_reset_interval(ts);
    pthread_setspecific(exit_key, ts);
    uint32_t n = __atomic_add_fetch(&threads_live, 1, __ATOMIC_RELAXED);
    uint32_t m = __atomic_load_n(&threads_max, __ATOMIC_RELAXED);
    while (n > m && !__atomic_compare_exchange_n(&threads_max, &m, n, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    if (!vkm_tls.stateless) __atomic_add_fetch(&threads_total, 1, __ATOMIC_RELAXED); /* not twice */
    vkm_tls.state = ts; /* the fast path's too when the guard is left */
    vkm_tls.stateless = 0;
  } else {
    /* Counted without a state (every state in use: the agent has not yet
     * handed back those of threads that ended); retried on each call. The
     * thread is one of the process's all the same. */
    if (!vkm_tls.stateless) __atomic_add_fetch(&threads_total, 1, __ATOMIC_RELAXED);
    vkm_tls.stateless = 1;
  }
  vkm_guard_leave();
  return ts;
}

/* ---------------------------------------------------------------------------
 * fork: the child keeps the forking thread's state and the totals (its
 * heap is a copy of the parent's, so are its counts); every other thread is
 * gone, so their states are folded and recycled.
 * ------------------------------------------------------------------------- */
void vkm_thread_fork_prepare(void) { spin_lock(&retire_lock); }
void vkm_thread_fork_parent(void) { spin_unlock(&retire_lock); }

void vkm_thread_fork_child(void) {
  vkm_tstate_t *self = self_state();
  retire_seq = 0;
  uint32_t live = 0;
  for (vkm_tstate_t *ts = vkm_registry_head(); ts; ts = registry_next(ts)) {
    if (ts == self) {
      live++;
      continue;
    }
    if (ts->status == VKM_TS_LIVE) retire_counters(ts);
    ts->status = VKM_TS_FREE;
  }
  threads_live = live;
  threads_max = live ? live : 1;
  spin_unlock(&retire_lock);
  if (self) self->os_tid = vkm_plat_tid();
  vkm_rings_fork_child();
}
