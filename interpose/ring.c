/* ring.c - per-thread single-producer event rings, drained by the agent.
 *
 * A ring is a power-of-two byte buffer of variable-length records (an
 * vkm_event_t header plus payload, 8-byte aligned). The producer owns
 * `head`, the agent owns `tail`; each publishes with a release store. A
 * record that would straddle the end is preceded by a pad record (type 0)
 * that fills the rest of the buffer.
 *
 * Full ring: in sampled mode the event is dropped and counted (shown in the
 * viewer as dropped_events); in exact mode the producer waits for the agent,
 * for at most a few seconds (a producer blocked on the loader lock that the
 * agent needs for symbols would otherwise deadlock), then drops and counts.
 *
 * Threads that have no state (past their exit destructor) emit through one
 * shared ring under a spinlock: rare by construction.
 */
#include "hot.h"

#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct vkm_ring_s {
  uint64_t head;  /* producer: bytes written; atomic */
  uint64_t tail;  /* agent: bytes consumed; atomic */
  uint64_t mask;
  uint8_t *buf;
  int woke;       /* atomic: the producer asked for a drain since the last one */
};

/* TSan builds: the hot path is not instrumented, so TSan cannot see the
 * release/acquire on `head`; but it does intercept memcpy even from here
 * and would then report the agent's reads of a record as racing with its
 * copy. The payload is copied word by word instead (ring.c is compiled
 * with -fno-tree-loop-distribute-patterns so this stays a loop). The
 * thread may be inside TSan's own thread start-up, where calling
 * __tsan_release would crash, so no annotation is possible. */
static void copy_words(void *dst, const void *src, size_t len) {
#if VKM_TSAN
  uint64_t *d = dst;
  const uint64_t *s = src;
  for (size_t i = 0; i < len / 8; i++) d[i] = s[i];
  for (size_t i = len & ~(size_t)7; i < len; i++) ((uint8_t *)dst)[i] = ((const uint8_t *)src)[i];
#else
  memcpy(dst, src, len);
#endif
}

static int wake_fd = -1;
void vkm_rings_set_wake_fd(int fd) { __atomic_store_n(&wake_fd, fd, __ATOMIC_RELEASE); }

/* Past half full: one eventfd write per drain cycle (rare, off the fast path). */
static void maybe_wake(vkm_ring_t *r, uint64_t head) {
  if (head - __atomic_load_n(&r->tail, __ATOMIC_RELAXED) < (r->mask + 1) / 2) return;
  int fd = __atomic_load_n(&wake_fd, __ATOMIC_ACQUIRE);
  if (fd < 0 || __atomic_exchange_n(&r->woke, 1, __ATOMIC_ACQ_REL)) return;
  uint64_t one = 1;
  ssize_t w = write(fd, &one, sizeof one);
  (void)w;
}

static uint64_t dropped;          /* atomic */
static vkm_ring_t *orphan_ring;   /* for threads without a state */
static int orphan_lock;
static uint32_t ring_bytes = 64 * 1024;

uint64_t vkm_dropped_events(void) { return __atomic_load_n(&dropped, __ATOMIC_RELAXED); }

static vkm_ring_t *ring_new(size_t bytes) {
  vkm_ring_t *r = vkm_calloc(1, sizeof *r);
  uint8_t *buf = vkm_plat_map(bytes);
  if (!r || !buf) {
    vkm_free(r);
    if (buf) vkm_plat_unmap(buf, bytes);
    return NULL;
  }
  vkm_self_track((int64_t)bytes);
  r->buf = buf;
  r->mask = bytes - 1;
  return r;
}

#define REC_ALIGN(n) (((n) + 7u) & ~(size_t)7u)

/* Writes one record. Returns 1 when written, 0 when the ring is full. */
static int ring_put(vkm_ring_t *r, const vkm_event_t *ev, const void *extra, size_t extra_len) {
  size_t need = REC_ALIGN(sizeof(vkm_event_t) + extra_len);
  uint64_t head = r->head; /* ours */
  uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
  size_t size = r->mask + 1;
  size_t off = head & r->mask;
  size_t to_end = size - off;
  size_t pad = to_end < need ? to_end : 0;
  if (head + pad + need - tail > size) return 0;
  if (pad) {
    vkm_event_t *p = (vkm_event_t *)(r->buf + off);
    p->type = 0;
    p->extra_len = 0;
    head += pad;
    off = 0;
  }
  vkm_event_t *dst = (vkm_event_t *)(r->buf + off);
  *dst = *ev;
  dst->extra_len = (uint16_t)extra_len;
  if (extra_len) copy_words(dst + 1, extra, extra_len);
  __atomic_store_n(&r->head, head + need, __ATOMIC_RELEASE);
  maybe_wake(r, head + need);
  return 1;
}

static void wait_a_little(void) {
  struct timespec ts = {0, 50 * 1000};
  nanosleep(&ts, NULL);
}

void vkm_emit(vkm_event_t *ev, const void *extra, size_t extra_len) {
  if (!vkm_ready) return;
  if (extra_len > 60000) extra_len = 60000;
  vkm_guard_enter();
  vkm_tstate_t *ts = vkm_self_state();
  if (!ev->t_ns && ev->type != VKM_EV_ALLOC && ev->type != VKM_EV_FREE) ev->t_ns = vkm_now_ns();
  if (ts) {
    ev->thread = ts->index;
    ev->os_tid = ts->os_tid;
    if (!ts->ring) __atomic_store_n(&ts->ring, ring_new(vkm_config.exact ? ring_bytes * 16 : ring_bytes), __ATOMIC_RELEASE);
    if (!ts->ring) {
      __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
    } else if (!ring_put(ts->ring, ev, extra, extra_len)) {
      int ok = 0;
      if (vkm_config.exact) /* wait for the agent, up to ~5 s */
        for (int i = 0; i < 100000 && !ok; i++) {
          wait_a_little();
          ok = ring_put(ts->ring, ev, extra, extra_len);
        }
      if (!ok) __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
    }
  } else {
    ev->thread = UINT32_MAX;
    ev->os_tid = vkm_plat_tid();
    while (__atomic_exchange_n(&orphan_lock, 1, __ATOMIC_ACQUIRE)) sched_yield();
    if (!orphan_ring) __atomic_store_n(&orphan_ring, ring_new(ring_bytes), __ATOMIC_RELEASE);
    if (!orphan_ring || !ring_put(orphan_ring, ev, extra, extra_len)) __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&orphan_lock, 0, __ATOMIC_RELEASE);
  }
  vkm_guard_leave();
}

#if VKM_TSAN
/* TSan builds: the agent (instrumented) reads a copy of each record made
 * here, never the ring itself. Rings come from a raw mmap that TSan does
 * not see, and the producer's writes are uninstrumented, so the shadow of
 * ring memory may still hold accesses from whatever was mapped at that
 * address before - a thread stack that glibc freed, say - which TSan
 * reported as races with the agent's reads (exact mode with many short
 * threads). The copy is the agent's own: drains run on one thread at a
 * time (the agent, or the exit path after it was joined). */
static _Alignas(16) uint8_t drain_copy[sizeof(vkm_event_t) + 65536];
#endif

static size_t ring_drain(vkm_ring_t *r, vkm_event_fn fn, void *ud) {
  size_t n = 0;
  uint64_t tail = r->tail;
  uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
  while (tail < head) {
    const vkm_event_t *ev = (const vkm_event_t *)(r->buf + (tail & r->mask));
    if (ev->type == 0) { /* pad to the end of the buffer */
      tail += (r->mask + 1) - (tail & r->mask);
      continue;
    }
#if VKM_TSAN
    copy_words(drain_copy, ev, sizeof(vkm_event_t) + ev->extra_len);
    const vkm_event_t *cp = (const vkm_event_t *)drain_copy;
    fn(cp, cp + 1, ud);
#else
    fn(ev, ev + 1, ud);
#endif
    tail += REC_ALIGN(sizeof(vkm_event_t) + ev->extra_len);
    n++;
  }
  __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
  __atomic_store_n(&r->woke, 0, __ATOMIC_RELEASE);
  return n;
}

size_t vkm_rings_drain(vkm_event_fn fn, void *ud) {
  size_t n = 0;
  for (vkm_tstate_t *ts = vkm_registry_head(); ts; ts = ts->next) {
    int st = __atomic_load_n(&ts->status, __ATOMIC_ACQUIRE);
    vkm_ring_t *r = __atomic_load_n(&ts->ring, __ATOMIC_ACQUIRE);
    if (r) n += ring_drain(r, fn, ud);
    /* A dead thread's ring is empty now: the state may be reused. */
    if (st == VKM_TS_DEAD) {
      int expect = VKM_TS_DEAD;
      __atomic_compare_exchange_n(&ts->status, &expect, VKM_TS_FREE, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    }
  }
  vkm_ring_t *o = __atomic_load_n(&orphan_ring, __ATOMIC_ACQUIRE);
  if (o) n += ring_drain(o, fn, ud);
  return n;
}

/* In a forked child nothing from before the fork is replayed. */
void vkm_rings_fork_child(vkm_tstate_t *keep) {
  (void)keep;
  for (vkm_tstate_t *ts = vkm_registry_head(); ts; ts = ts->next)
    if (ts->ring) ts->ring->tail = ts->ring->head;
  if (orphan_ring) orphan_ring->tail = orphan_ring->head;
  orphan_lock = 0;
  dropped = 0;
}
