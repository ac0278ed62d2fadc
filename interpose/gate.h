/* gate.h - the fork gate: work that fork() must not copy half-done.
 *
 * fork() copies the process with the forking thread alone, so a lock that
 * another thread held at that instant stays held in the child for ever,
 * and a table it was updating stays half-updated. Code that must never be
 * caught like that - a sampler inside the unwinder (libgcc's, which may
 * lock), the agent thread (symbolising, growing its tables) - runs inside
 * a gate; a fork closes the gate, waits until nobody is inside, and opens
 * it again when the copy is made.
 *
 * Dekker-style on sequentially consistent atomics, so that passing an open
 * gate costs two atomics and no lock: a thread entering raises `inside`,
 * then reads `closed`; a fork closing raises `closed`, then reads
 * `inside`. At least one sees the other: the fork waits for the thread to
 * leave, or the thread steps back out and sleeps (futex) until the gate
 * opens. `closed` is a count: two threads may fork at once.
 *
 * Two gates (sample.c, agent.c), closed in that order: in exact mode a
 * sampler may be waiting for the agent to drain its ring, so the agent must
 * still run until the samplers are out.
 */
#ifndef VKM_GATE_H
#define VKM_GATE_H

#include "platform.h"
#include "vkm.h"

#include <sched.h>
#include <time.h>

typedef struct vkm_gate_s {
  int closed; /* forks in progress */
  int inside; /* threads inside */
} vkm_gate_t;

static inline void vkm_gate_enter(vkm_gate_t *g) {
  for (;;) {
    __atomic_add_fetch(&g->inside, 1, __ATOMIC_SEQ_CST);
    int closed = __atomic_load_n(&g->closed, __ATOMIC_SEQ_CST);
    if (!closed) return;
    __atomic_sub_fetch(&g->inside, 1, __ATOMIC_SEQ_CST);
    vkm_plat_wait(&g->closed, closed, 100); /* returns at once if it moved */
  }
}

static inline void vkm_gate_leave(vkm_gate_t *g) { __atomic_sub_fetch(&g->inside, 1, __ATOMIC_SEQ_CST); }

/* Closes the gate and waits until nobody is inside: at most max_ms when
 * max_ms > 0 (then it gives up and lets the fork go on), else for ever. */
static inline void vkm_gate_close(vkm_gate_t *g, unsigned max_ms) {
  __atomic_add_fetch(&g->closed, 1, __ATOMIC_SEQ_CST);
  uint64_t give_up = 0;
  for (unsigned i = 0; __atomic_load_n(&g->inside, __ATOMIC_SEQ_CST) > 0; i++) {
    if (i < 64) {
      sched_yield();
      continue;
    }
    if (max_ms) {
      uint64_t now = vkm_now_ns();
      if (!give_up) give_up = now + (uint64_t)max_ms * 1000000ull;
      else if (now >= give_up) return;
    }
    struct timespec ts = {0, 20 * 1000};
    nanosleep(&ts, NULL);
  }
}

/* One wake per fork, only when the last fork in progress is done. */
static inline void vkm_gate_open(vkm_gate_t *g) {
  if (__atomic_sub_fetch(&g->closed, 1, __ATOMIC_SEQ_CST) == 0) vkm_plat_wake(&g->closed);
}

/* In the child: only the forking thread exists, and it is not inside. */
static inline void vkm_gate_reset(vkm_gate_t *g) { g->closed = g->inside = 0; }

#endif
