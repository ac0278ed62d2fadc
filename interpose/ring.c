/* ring.c - the producer side of the per-thread event rings in the segment
 * (layout in segment.h; the agent's drain is agent/segread.c).
 *
 * The producer owns `head`, the agent owns `tail`; each publishes with a
 * release store.
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

typedef vkm_seg_ring_t vkm_ring_t;

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

/* Past half full: ask for an early drain. The agent's worker sleeps on
 * wake_seq (a futex in the shared segment): one wake a drain cycle, off
 * the fast path, and no descriptor of ours in the program's table. */
static void wake_agent(vkm_ring_t *r) {
  if (__atomic_load_n(&r->woke, __ATOMIC_RELAXED) || __atomic_exchange_n(&r->woke, 1, __ATOMIC_ACQ_REL)) return;
  __atomic_add_fetch(&vkm_seg->wake_seq, 1, __ATOMIC_RELEASE);
  vkm_plat_wake_shared(&vkm_seg->wake_seq);
}

static void maybe_wake(vkm_ring_t *r, uint64_t head) {
  if (head - __atomic_load_n(&r->tail, __ATOMIC_RELAXED) >= (r->mask + 1) / 2) wake_agent(r);
}

#define dropped (vkm_seg->dropped)     /* atomic */
#define orphan_lock (vkm_seg->orphan_lock)
static uint32_t ring_bytes = 64 * 1024;

/* A ring header and its buffer, both in the segment; the offset of the
 * header, or 0 when the segment is full. */
static uint64_t ring_new(size_t bytes) {
  uint64_t off = vkm_seg_alloc(sizeof(vkm_ring_t), 64);
  uint64_t buf = off ? vkm_seg_alloc_ring(bytes) : 0;
  if (!buf) return 0;
  vkm_ring_t *r = vkm_seg_at(off);
  r->buf_off = buf;
  r->mask = bytes - 1;
  return off;
}

#define REC_ALIGN VKM_REC_ALIGN

/* Writes one record. Returns 1 when written, 0 when the ring is full. */
static int ring_put(vkm_ring_t *r, const vkm_event_t *ev, const void *extra, size_t extra_len) {
  size_t need = REC_ALIGN(sizeof(vkm_event_t) + extra_len);
  uint8_t *buf = vkm_seg_at(r->buf_off);
  uint64_t head = r->head; /* ours */
  uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
  size_t size = r->mask + 1;
  size_t off = head & r->mask;
  size_t to_end = size - off;
  size_t pad = to_end < need ? to_end : 0;
  /* The producer never passes the consumer, and the consumer never passes
   * what was published. */
  VKM_ASSERT(tail <= head && head - tail <= size);
  VKM_ASSERT(need <= size);
  if (head + pad + need - tail > size) return 0;
  if (pad) {
    vkm_event_t *p = (vkm_event_t *)(buf + off);
    p->type = 0;
    p->extra_len = 0;
    head += pad;
    off = 0;
  }
  vkm_event_t *dst = (vkm_event_t *)(buf + off);
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

/* The shared ring, made at start-up so that it exists when the ring area
 * is used up: threads past their exit destructor, and threads that could
 * get no ring of their own, emit through it under a spinlock. */
void vkm_rings_init(void) {
  if (!vkm_seg->orphan_ring_off) vkm_seg->orphan_ring_off = ring_new(vkm_config.exact ? ring_bytes * 16 : ring_bytes * 4);
}

/* A wait went unanswered: the agent is gone (killed, crashed). Waiting
 * 5 s for each later event would hang the program for good, so a full
 * ring whose wake-up the agent never took (it clears `woke` when it
 * drains) drops at once until the agent is seen draining again. */
static int agent_silent;

/* Writes one record; in exact mode waits for the agent while the ring is
 * full (up to 5 s: an agent that is gone must not hang the program). */
static void put_or_wait(vkm_ring_t *r, const vkm_event_t *ev, const void *extra, size_t extra_len) {
  if (ring_put(r, ev, extra, extra_len)) return;
  int ok = 0;
  if (vkm_config.exact && vkm_config.agent && __atomic_load_n(&agent_silent, __ATOMIC_RELAXED)) {
    if (__atomic_load_n(&r->woke, __ATOMIC_ACQUIRE)) {
      __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
      return;
    }
    __atomic_store_n(&agent_silent, 0, __ATOMIC_RELAXED);
  }
  /* "!": the worker stopped while we live on (the gate's agent is done). */
  if (vkm_config.exact && vkm_config.agent && __atomic_load_n(&vkm_seg->agent_sock[0], __ATOMIC_ACQUIRE) != '!') {
    __atomic_add_fetch(&vkm_seg->producers_waiting, 1, __ATOMIC_RELAXED);
    wake_agent(r);
    /* 5 s by the clock: counted in sleeps of 50 us, it was 10-13 s, each
     * sleep taking the timer's slack on top. */
    uint64_t deadline = vkm_now_ns() + 5000000000ull;
    while (!ok && vkm_now_ns() < deadline) {
      wait_a_little();
      ok = ring_put(r, ev, extra, extra_len);
    }
    __atomic_sub_fetch(&vkm_seg->producers_waiting, 1, __ATOMIC_RELAXED);
    if (!ok) __atomic_store_n(&agent_silent, 1, __ATOMIC_RELAXED);
  }
  if (!ok) __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
}

void vkm_emit(vkm_event_t *ev, const void *extra, size_t extra_len) {
  if (!vkm_ready || !vkm_seg) return;
  if (vkm_unlikely(vkm_is_copy())) { /* the rings are the parent's */
    vkm_stop_copy();
    return;
  }
  if (extra_len > 60000) extra_len = 60000;
  vkm_guard_enter();
  vkm_tstate_t *ts = vkm_self_state();
  if (!ev->t_ns && ev->type != VKM_EV_ALLOC && ev->type != VKM_EV_FREE) ev->t_ns = vkm_now_ns();
  vkm_ring_t *r = NULL;
  if (ts) {
    ev->thread = ts->index;
    ev->os_tid = ts->os_tid;
    if (!ts->ring_off) __atomic_store_n(&ts->ring_off, ring_new(vkm_config.exact ? ring_bytes * 4 : ring_bytes), __ATOMIC_RELEASE);
    r = vkm_seg_at(ts->ring_off);
  } else {
    ev->thread = UINT32_MAX;
    ev->os_tid = vkm_plat_tid();
  }
  if (r) {
    put_or_wait(r, ev, extra, extra_len);
  } else {
    while (__atomic_exchange_n(&orphan_lock, 1, __ATOMIC_ACQUIRE)) sched_yield();
    r = vkm_seg_at(vkm_seg->orphan_ring_off);
    if (r) put_or_wait(r, ev, extra, extra_len);
    else __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&orphan_lock, 0, __ATOMIC_RELEASE);
  }
  vkm_guard_leave();
}

/* In a forked child nothing from before the fork is replayed: its segment
 * is a copy without the ring buffers (seg.c), so every ring starts empty. */
void vkm_rings_fork_child(void) {
  for (vkm_tstate_t *ts = vkm_registry_head(); ts; ts = vkm_seg_at(ts->next_off)) {
    vkm_ring_t *r = vkm_seg_at(ts->ring_off);
    if (r) r->head = r->tail = 0, r->woke = 0;
  }
  vkm_ring_t *o = vkm_seg_at(vkm_seg->orphan_ring_off);
  if (o) o->head = o->tail = 0, o->woke = 0;
  orphan_lock = 0;
}
