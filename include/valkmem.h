/* valkmem.h - the public runtime API of valkmem.
 *
 * For language runtimes, engines and apps that manage memory themselves
 * (their own GC, slabs, arenas): report GC cycles, pools, frames, evals and
 * retained roots, and the valkmem agent turns them into GC-efficiency,
 * pause-histogram, frame-budget, per-eval and top-roots views (dashboard,
 * /api/snapshot, the exit report).
 *
 * Header-only use, no link dependency (weak-symbol mode, like heaptrack's
 * heaptrack_api.h): include this header and call the functions. A program
 * built this way and NOT linked against libvalkmem runs unchanged; every
 * call is a no-op (one load and one compare). Run it under the library and
 * the calls reach the agent:
 *
 *     LD_PRELOAD=libvalkmem.so ./app        (or: valkmem run -- ./app)
 *
 * Arguments are always evaluated exactly once, library or not.
 *
 * The program must refer to these symbols through its dynamic symbol table
 * for the preload to bind them: true for position-independent executables
 * (the default of gcc and clang on Debian, Ubuntu, Fedora) and for shared
 * libraries. A non-PIE executable (-no-pie) has its weak undefined
 * functions resolved to 0 by the linker, so its calls stay no-ops even
 * under the preload: build it as PIE, or define VALKMEM_LINKED and link
 * against libvalkmem directly (then the library must be present). C and C++
 * (C99 or later).
 *
 * Cost and threading: every call is thread-safe, lock-free and allocation-
 * free in the calling thread. Event calls (GC, frame, zone, eval, root,
 * mark) append one record to the calling thread's event ring; pool
 * alloc/free/reset only update counters in the pool handle (relaxed
 * atomics) and never touch a ring, so they are fine at millions per second.
 * When the ring is full (the agent is behind) an event is dropped and the
 * drop is counted and shown, never silent.
 *
 * Example:
 *
 *     #include <valkmem.h>
 *     valkmem_pool_t *objs = valkmem_pool_register("objects", VALKMEM_POOL_SLAB,
 *                                                  64 << 20, 48);
 *     valkmem_pool_alloc(objs, 48);               // when the runtime hands out a slot
 *     valkmem_gc_begin();
 *     ... mark and sweep; valkmem_pool_free(objs, 48) per swept slot ...
 *     valkmem_gc_end(heap_before, heap_after);
 *     valkmem_frame_mark();                        // once per frame
 */
#ifndef VALKMEM_H
#define VALKMEM_H

#include <stddef.h>
#include <stdint.h>

#define VALKMEM_VERSION_MAJOR 0
#define VALKMEM_VERSION_MINOR 1
#define VALKMEM_VERSION_PATCH 0
/* 0xMMmmpp: compare with >= to require a version at compile time. */
#define VALKMEM_VERSION \
  ((VALKMEM_VERSION_MAJOR << 16) | (VALKMEM_VERSION_MINOR << 8) | VALKMEM_VERSION_PATCH)
#define VALKMEM_VERSION_STRING "0.1.0"

/* Pool kinds, for valkmem_pool_register. */
#define VALKMEM_POOL_SLAB 1  /* fixed-size slots (object_size), freed one by one */
#define VALKMEM_POOL_ARENA 2 /* region freed all at once with valkmem_pool_reset */
#define VALKMEM_POOL_BUMP 3  /* bump pointer, reset wholesale, never freed piecewise */

/* Longest name kept for pools, zones, evals, roots and marks (longer names
 * are cut). */
#define VALKMEM_NAME_MAX 63

/* The frame budget the dashboard measures frames and GC pauses against. */
#define VALKMEM_FRAME_BUDGET_MS 16.6

/* Opaque pool handle. NULL is a valid handle everywhere (the no-library
 * case): calls on it do nothing. */
typedef struct valkmem_pool_s valkmem_pool_t;

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VALKMEM_BUILDING_LIBRARY)
#define VALKMEM_API_ __attribute__((visibility("default")))
#elif defined(VALKMEM_LINKED) || !defined(__GNUC__)
#define VALKMEM_API_
#else
#define VALKMEM_API_ __attribute__((weak))
#define VALKMEM_WEAK_ 1
#endif

/* ---------------------------------------------------------------------------
 * Library presence
 * ------------------------------------------------------------------------- */

/* VALKMEM_VERSION of the loaded library, or 0 when it is not loaded. */
VALKMEM_API_ int valkmem_version(void);

/* ---------------------------------------------------------------------------
 * GC cycles
 *
 * Bracket each collection (or each stop-the-world pause of it) with
 * valkmem_gc_begin / valkmem_gc_end on the same thread. The pause is the
 * time between the two (an end without a begin on its thread counts the
 * cycle but no pause). bytes_before and bytes_after are the managed heap
 * before and after the cycle (in the runtime's own accounting): efficiency =
 * (before - after) / before. Object ages in the dashboard count these
 * cycles once the first one is reported.
 * ------------------------------------------------------------------------- */
VALKMEM_API_ void valkmem_gc_begin(void);
VALKMEM_API_ void valkmem_gc_end(uint64_t bytes_before, uint64_t bytes_after);
/* A whole cycle whose pause the runtime timed itself (concurrent collectors,
 * or pauses measured in the runtime's own clock): pause_ns of stop-the-world
 * time, ending now. Use instead of begin/end, not in addition. */
VALKMEM_API_ void valkmem_gc_report(uint64_t bytes_before, uint64_t bytes_after, uint64_t pause_ns);

/* ---------------------------------------------------------------------------
 * Pools: slabs, arenas, bump allocators managed by the runtime.
 *
 * The handle holds the pool's counters; alloc/free/reset update them with
 * relaxed atomics (any thread may use any pool) and the agent reads them
 * every tick. Sizes are bytes. capacity 0 means unbounded (no overflow
 * detection). Handles live until the process ends: register long-lived
 * pools (up to 1024 per process; later registrations return NULL), not one
 * per request or per object.
 * ------------------------------------------------------------------------- */

/* Register a pool. kind: VALKMEM_POOL_*. object_size: slot size of a slab
 * pool (0 for arenas). Returns the handle, or NULL when the library is not
 * loaded or tracking is off. */
VALKMEM_API_ valkmem_pool_t *valkmem_pool_register(const char *name, int kind,
                                                   uint64_t capacity, uint64_t object_size);
/* bytes handed out from / given back to the pool. An alloc that takes used
 * past capacity counts as an overflow. */
VALKMEM_API_ void valkmem_pool_alloc(valkmem_pool_t *pool, uint64_t bytes);
VALKMEM_API_ void valkmem_pool_free(valkmem_pool_t *pool, uint64_t bytes);
/* Everything in the pool released at once (arena reset, e.g. per frame):
 * used drops to 0, the reset count grows. */
VALKMEM_API_ void valkmem_pool_reset(valkmem_pool_t *pool);
/* The runtime could not serve `bytes` from the pool and went elsewhere
 * (fallback to malloc, a new chunk, an error). Counted and shown as an
 * event on the timeline. */
VALKMEM_API_ void valkmem_pool_overflow(valkmem_pool_t *pool, uint64_t bytes);
/* Bytes the pool currently holds from its backing store (committed slabs or
 * chunks), used or not. Optional: with it, fragmentation = (held - used) /
 * held; without it, a slab pool's fragmentation is the slot waste
 * (live slots x object_size - used) / (live slots x object_size). */
VALKMEM_API_ void valkmem_pool_held(valkmem_pool_t *pool, uint64_t held_bytes);

/* ---------------------------------------------------------------------------
 * Frames and zones
 *
 * valkmem_frame_mark ends the calling thread's current frame and starts the
 * next (call it once per frame, e.g. after present). The agent measures
 * each frame's time, the allocations the thread made in it (malloc calls
 * and requested bytes, pool allocations and bytes), and the GC pause time
 * the thread reported inside it.
 * Zones are named sections of a frame ("logic", "render"); they nest, and
 * end in the reverse order of their begin on the same thread; a zone that
 * spans a frame mark counts in the frame where it ends. Names are copied.
 * Frames and zones are meant for tens to thousands of calls per second: a
 * flood beyond what the agent drains per tick is dropped (and counted).
 * ------------------------------------------------------------------------- */
VALKMEM_API_ void valkmem_frame_mark(void);
VALKMEM_API_ void valkmem_zone_begin(const char *name);
VALKMEM_API_ void valkmem_zone_end(void);

/* ---------------------------------------------------------------------------
 * Evals: one REPL input, one LSP request, one script run.
 *
 * Bracket it on one thread. The agent reports, per eval: allocated bytes
 * (the thread's malloc plus every pool's allocations), freed bytes, net =
 * allocated - freed, the heap after the last GC that ended inside the eval
 * ("retained"; run a GC before valkmem_eval_end for an exact figure),
 * duration, GC pause time inside it and the arena high water (sum of the
 * peaks of arena and bump pools during it). A warning is raised when net
 * stays above 0 across 5 consecutive evals that had a GC inside them (in a
 * collected runtime, an eval without one has not freed its garbage yet;
 * when no GC is ever reported, every eval counts). Evals nest.
 * ------------------------------------------------------------------------- */
VALKMEM_API_ void valkmem_eval_begin(const char *label);
VALKMEM_API_ void valkmem_eval_end(void);

/* ---------------------------------------------------------------------------
 * Retained roots and markers
 * ------------------------------------------------------------------------- */

/* What a root keeps alive (typically reported after marking): the bytes
 * and objects reachable from it. The newest report per name wins; the top
 * 10 by bytes are shown. Report the biggest roots, not every one. */
VALKMEM_API_ void valkmem_root_report(const char *name, uint64_t retained_bytes, uint64_t objects);
/* A named instant on the timeline, with an optional value. */
VALKMEM_API_ void valkmem_mark(const char *name, uint64_t value);

#ifdef VALKMEM_WEAK_
/* Weak mode: each call goes through an inline guard that checks the symbol
 * was bound. The macros keep the public names; the parenthesised name,
 * e.g. (valkmem_gc_begin), is the raw symbol (may be NULL). */
#define VALKMEM_CALL_(f, args) \
  do {                         \
    if (f) f args;             \
  } while (0)
static inline int valkmem__version(void) { return valkmem_version ? valkmem_version() : 0; }
static inline void valkmem__gc_begin(void) { VALKMEM_CALL_(valkmem_gc_begin, ()); }
static inline void valkmem__gc_end(uint64_t b, uint64_t a) { VALKMEM_CALL_(valkmem_gc_end, (b, a)); }
static inline void valkmem__gc_report(uint64_t b, uint64_t a, uint64_t p) {
  VALKMEM_CALL_(valkmem_gc_report, (b, a, p));
}
static inline valkmem_pool_t *valkmem__pool_register(const char *n, int k, uint64_t c, uint64_t o) {
  return valkmem_pool_register ? valkmem_pool_register(n, k, c, o) : (valkmem_pool_t *)0;
}
static inline void valkmem__pool_alloc(valkmem_pool_t *p, uint64_t n) {
  if (p) VALKMEM_CALL_(valkmem_pool_alloc, (p, n));
}
static inline void valkmem__pool_free(valkmem_pool_t *p, uint64_t n) {
  if (p) VALKMEM_CALL_(valkmem_pool_free, (p, n));
}
static inline void valkmem__pool_reset(valkmem_pool_t *p) {
  if (p) VALKMEM_CALL_(valkmem_pool_reset, (p));
}
static inline void valkmem__pool_overflow(valkmem_pool_t *p, uint64_t n) {
  if (p) VALKMEM_CALL_(valkmem_pool_overflow, (p, n));
}
static inline void valkmem__pool_held(valkmem_pool_t *p, uint64_t n) {
  if (p) VALKMEM_CALL_(valkmem_pool_held, (p, n));
}
static inline void valkmem__frame_mark(void) { VALKMEM_CALL_(valkmem_frame_mark, ()); }
static inline void valkmem__zone_begin(const char *n) { VALKMEM_CALL_(valkmem_zone_begin, (n)); }
static inline void valkmem__zone_end(void) { VALKMEM_CALL_(valkmem_zone_end, ()); }
static inline void valkmem__eval_begin(const char *l) { VALKMEM_CALL_(valkmem_eval_begin, (l)); }
static inline void valkmem__eval_end(void) { VALKMEM_CALL_(valkmem_eval_end, ()); }
static inline void valkmem__root_report(const char *n, uint64_t b, uint64_t o) {
  VALKMEM_CALL_(valkmem_root_report, (n, b, o));
}
static inline void valkmem__mark(const char *n, uint64_t v) { VALKMEM_CALL_(valkmem_mark, (n, v)); }

#define valkmem_version() valkmem__version()
#define valkmem_gc_begin() valkmem__gc_begin()
#define valkmem_gc_end(b, a) valkmem__gc_end((b), (a))
#define valkmem_gc_report(b, a, p) valkmem__gc_report((b), (a), (p))
#define valkmem_pool_register(n, k, c, o) valkmem__pool_register((n), (k), (c), (o))
#define valkmem_pool_alloc(p, n) valkmem__pool_alloc((p), (n))
#define valkmem_pool_free(p, n) valkmem__pool_free((p), (n))
#define valkmem_pool_reset(p) valkmem__pool_reset((p))
#define valkmem_pool_overflow(p, n) valkmem__pool_overflow((p), (n))
#define valkmem_pool_held(p, n) valkmem__pool_held((p), (n))
#define valkmem_frame_mark() valkmem__frame_mark()
#define valkmem_zone_begin(n) valkmem__zone_begin((n))
#define valkmem_zone_end() valkmem__zone_end()
#define valkmem_eval_begin(l) valkmem__eval_begin((l))
#define valkmem_eval_end() valkmem__eval_end()
#define valkmem_root_report(n, b, o) valkmem__root_report((n), (b), (o))
#define valkmem_mark(n, v) valkmem__mark((n), (v))
#endif /* VALKMEM_WEAK_ */

#ifdef __cplusplus
}
#endif
#endif /* VALKMEM_H */
