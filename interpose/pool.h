/* pool.h - what interpose/api.c (the exported valkmem_* runtime API) and
 * the agent's aggregation of it (agent/runtime.c) share: the pool handle
 * with its counters, which lives in the shared segment, and the binary
 * payloads that some runtime events carry. Nothing here is public.
 *
 * The event payloads are documented where they are produced, at the top
 * of interpose/api.c.
 */
#ifndef VKM_POOL_H
#define VKM_POOL_H

#include <stdint.h>
#include "../include/valkmem.h"

#define VKM_POOL_MAGIC 0x6c6f6f706d6b7676ull /* "vvkmpool" */
#define VKM_POOLS_MAX 1024                   /* registrations tracked per process */
#define VKM_PAUSE_UNKNOWN UINT64_MAX         /* GC_END c: no begin on that thread */

/* The pool handle (valkmem_pool_t). Allocated in the shared segment by
 * valkmem_pool_register and never freed: the agent may read it at any time.
 *
 * Memory ordering: the descriptive fields (id .. name) are written before
 * the handle is published on the registry with a release CAS; the agent
 * walks the registry from an acquire load of its head, so it always sees
 * them complete. `next` is immutable once published. The counters are
 * written by any application thread with relaxed atomic RMWs and read by
 * the agent with relaxed loads: each counter is exact at the moment it is
 * read, but two counters read one after the other may be a few operations
 * apart, which the dashboard tolerates.
 *
 * `used` is not a counter of its own (two RMWs fewer per alloc/free pair):
 * it is alloc_bytes - free_bytes, and a reset adds what was in use to
 * free_bytes. Read free_bytes first: alloc_bytes only grows, so a racing
 * alloc can only make the difference larger, never negative. */
struct valkmem_pool_s {
  uint64_t magic;
  uint32_t id;
  int kind;                 /* VALKMEM_POOL_* */
  uint64_t capacity;        /* 0 = unbounded */
  uint64_t object_size;
  char name[VALKMEM_NAME_MAX + 1];
  uint64_t next_off;        /* registry list (segment offset); immutable once published */
  char pad0_[64];                  /* keeps the counters off the read-mostly line */
  uint64_t high_water;             /* max of used, CAS-max on the allocating thread */
  uint64_t window_peak;            /* max of used since the last eval began (arena high water) */
  uint64_t alloc_count, free_count;
  uint64_t alloc_bytes, free_bytes;
  uint64_t overflow_count, reset_count;
  uint64_t held;                   /* last valkmem_pool_held, 0 = never reported */
  char pad1_[64];                  /* and off the next handle's */
};

/* Bytes in use now (see above). Any thread. */
static inline uint64_t vkm_pool_used(const valkmem_pool_t *p) {
  uint64_t f = __atomic_load_n(&p->free_bytes, __ATOMIC_RELAXED);
  uint64_t a = __atomic_load_n(&p->alloc_bytes, __ATOMIC_RELAXED);
  return a > f ? a - f : 0;
}


/* What a FRAME or EVAL event carries: the calling thread's malloc counters
 * and the process-wide pool totals at that instant (cumulative). */
typedef struct vkm_api_snap_s {
  uint64_t alloc_count;   /* the thread's malloc-family allocations */
  uint64_t alloc_bytes;   /* the thread's requested bytes */
  uint64_t alloc_usable;  /* the thread's usable bytes allocated */
  uint64_t free_usable;   /* the thread's usable bytes freed */
  uint64_t pool_alloc_count, pool_alloc_bytes, pool_free_bytes; /* all pools, every thread */
  uint64_t thread_pool_count, thread_pool_bytes; /* pool allocations made by this thread */
  uint64_t arena_peak;    /* EVAL_END: sum over arena/bump pools of the peak used since the eval began */
} vkm_api_snap_t;

#endif
