/* demo.h - valkmem-demo, a small interpreter-like runtime built only on the
 * public header (valkmem.h): what its files share.
 *
 *   vm.c     the managed heap: slab pools of objects, a mark-sweep GC with
 *            named root sets, scratch arenas; every step reported through
 *            the runtime API
 *   modes.c  the workloads: game, server, desktop, repl, lsp, embedded
 *   demo.c   options, the paced main loop, I/O threads, the planted leak
 */
#ifndef VKM_DEMO_H
#define VKM_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "valkmem.h"

/* ---------------------------------------------------------------------------
 * Deterministic PRNG (xorshift64*), one per thread
 * ------------------------------------------------------------------------- */
typedef struct rng_s {
  uint64_t s;
} rng_t;
static inline uint64_t rng_next(rng_t *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 0x2545F4914F6CDD1Dull;
}
/* Uniform in [0, n). */
static inline uint64_t rng_below(rng_t *r, uint64_t n) { return n ? rng_next(r) % n : 0; }
/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi) { return lo + rng_below(r, hi - lo + 1); }

/* ---------------------------------------------------------------------------
 * The managed heap (vm.c). Single-threaded: only the main thread touches it.
 * ------------------------------------------------------------------------- */
#define VM_REFS 4
enum { CLS_SMALL = 0, CLS_BIG = 1, VM_CLASSES = 2 };

typedef struct obj_s obj_t;
struct obj_s {
  uint8_t live, mark, cls, tag;
  uint32_t nref;
  obj_t *ref[VM_REFS];
  uint64_t val;
  /* CLS_BIG objects have VM_BIG_PAYLOAD more bytes here */
};
#define VM_SMALL_SIZE sizeof(obj_t)        /* 48 */
#define VM_BIG_SIZE 256
#define VM_BIG_PAYLOAD (VM_BIG_SIZE - sizeof(obj_t))

typedef struct vm_config_s {
  uint64_t heap_initial;  /* bytes of slabs committed at start, per class */
  uint64_t heap_max;      /* capacity per class */
  uint64_t gc_budget;     /* collect after this many bytes allocated */
  int pause_profile;      /* PAUSE_*: extra stop-the-world wait drawn per cycle */
} vm_config_t;
enum { PAUSE_NONE, PAUSE_GAME, PAUSE_SERVER, PAUSE_DESKTOP, PAUSE_INTERACTIVE };

void vm_init(const vm_config_t *cfg, uint64_t seed);
void vm_shutdown(void);
/* A new object, or NULL when the heap is full (the overflow is reported;
 * the next safepoint collects). Never collects itself. Fields are zeroed. */
obj_t *vm_alloc(int cls);
/* Register `n` root slots under `name` (kept by pointer; reported per GC). */
void vm_root_add(const char *name, obj_t **slots, size_t n);
/* Collect when the allocation budget is spent. Call between units of work. */
void vm_safepoint(void);
void vm_gc(void);
uint64_t vm_gc_count(void);
uint64_t vm_used(void);

/* A list of n fresh objects chained through ref[0], or NULL. */
obj_t *vm_list(size_t n, int cls);

/* ---------------------------------------------------------------------------
 * Scratch arenas and bump pools (vm.c). Reset wholesale; a request that
 * does not fit goes to malloc and is reported as an overflow.
 * ------------------------------------------------------------------------- */
typedef struct arena_s {
  char *buf;
  size_t cap, used;
  void **spill;           /* overflow blocks, freed at reset */
  size_t nspill, capspill;
  valkmem_pool_t *pool;
} arena_t;
void arena_init(arena_t *a, const char *name, int kind, size_t cap);
void *arena_alloc(arena_t *a, size_t n);
void arena_reset(arena_t *a);
void arena_destroy(arena_t *a);

/* ---------------------------------------------------------------------------
 * Workloads (modes.c)
 * ------------------------------------------------------------------------- */
enum {
  MODE_GAME = 1 << 0,
  MODE_SERVER = 1 << 1,
  MODE_DESKTOP = 1 << 2,
  MODE_REPL = 1 << 3,
  MODE_LSP = 1 << 4,
  MODE_EMBEDDED = 1 << 5,
  MODE_ALL = 0x3f,
};

typedef struct demo_s {
  int modes;              /* MODE_* bits */
  int leak;               /* --leak */
  uint64_t leak_bps;      /* planted leak rate */
  uint64_t leak_max;      /* the leak stops growing here (runs forever cheaply) */
  uint64_t seed;
  double now_s;           /* seconds since start, updated each tick */
  double dt_s;            /* this tick */
  uint64_t tick;
  int frames_owner;       /* which mode marks frames on the main thread */
} demo_t;

void modes_init(demo_t *d);
void modes_tick(demo_t *d);
void modes_shutdown(demo_t *d);

/* The planted leak (demo.c): a global cache that only grows. */
void leaky_cache_put(uint64_t key, size_t bytes);
size_t leaky_cache_bytes(void);

#endif
