/* api.c - the exported runtime API (include/valkmem.h): GC cycles, pools,
 * frames, zones, evals, roots, markers.
 *
 * Runs on application threads, so it follows the hot-path rules: no locks,
 * no allocation through the app's heap, no stdio. Event calls build one
 * vkm_event_t on the stack and hand it to vkm_emit (the calling thread's
 * ring). Pool alloc/free/reset never emit: they update counters in the pool
 * handle, which the agent reads every tick, so a runtime can call them for
 * every object.
 *
 * Event payloads (vkm_event_t fields; "name" = NUL-terminated extra):
 *   GC_BEGIN       id = cycle number (process-wide, from 1)
 *   GC_END         id = cycle number (0 for valkmem_gc_report), a = bytes
 *                  before, b = bytes after, c = pause ns (measured on the
 *                  calling thread from its GC_BEGIN, or given by
 *                  valkmem_gc_report; VKM_PAUSE_UNKNOWN when neither)
 *   POOL_REGISTER  id = pool id, a = capacity, b = object size, c = kind; name
 *   POOL_OVERFLOW  id = pool id, a = bytes that did not fit, b = used then
 *   POOL_RESET     not emitted: resets are counted in the handle
 *   FRAME          id = frame number on this thread; extra = vkm_api_snap_t
 *                  (the frame uses the thread's own counters in it)
 *   ZONE_BEGIN     id = nesting depth before the begin; name
 *   ZONE_END       id = nesting depth after the end
 *   EVAL_BEGIN     id = eval number (process-wide); extra = vkm_api_snap_t
 *                  followed by the label (NUL-terminated); an eval uses the
 *                  thread's malloc counters and the process-wide pool totals
 *                  (a GC thread may sweep what the eval's thread allocated)
 *   EVAL_END       id = eval number of the matching begin (0 if unknown);
 *                  extra = vkm_api_snap_t
 *   ROOT           a = retained bytes, b = objects; name
 *   MARK           a = value; name
 *
 * The pool handle and vkm_api_snap_t are in pool.h; handles live in the
 * segment, listed newest first from its pools_off.
 */
#include <string.h>

#include "hot.h"
#include "vkm.h"
#include "pool.h"

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

static uint64_t api_gc_seq;      /* cycles begun, process-wide */
static uint64_t api_eval_seq;    /* evals begun, process-wide */
static uint32_t api_pool_seq;    /* pool ids */

#define API_EVAL_DEPTH 16
/* Per-thread API state. Plain TLS written only by its thread. */
static __thread uint64_t api_gc_begin_ns;
static __thread uint64_t api_frame_seq;
static __thread uint32_t api_zone_depth;
static __thread uint32_t api_eval_depth;
static __thread uint64_t api_eval_ids[API_EVAL_DEPTH];
/* Pool allocations made by this thread (for its frames). */
static __thread uint64_t api_pool_count, api_pool_bytes;

static valkmem_pool_t *api_pools_head(void) {
  return vkm_seg ? vkm_seg_at(__atomic_load_n(&vkm_seg->pools_off, __ATOMIC_ACQUIRE)) : NULL;
}

static size_t api_name_len(const char *name) {
  if (!name) return 0;
  size_t n = 0;
  while (n < VALKMEM_NAME_MAX && name[n]) n++;
  return n;
}

/* Emits an event whose extra is a name cut to VALKMEM_NAME_MAX. */
static void api_emit_named(vkm_event_t *ev, const char *name) {
  char buf[VALKMEM_NAME_MAX + 1];
  size_t n = api_name_len(name);
  if (n) memcpy(buf, name, n);
  buf[n] = 0;
  vkm_emit(ev, buf, n + 1);
}

/* The calling thread's state, attaching the thread if this API call is the
 * first thing it does under valkmem: its events must go to its own ring
 * (not the shared orphan ring), or they would lose their per-thread order
 * against its later ones. */
static vkm_tstate_t *api_self(void) {
  vkm_tstate_t *ts = vkm_self_state();
  if (vkm_unlikely(!ts) && vkm_ready && !vkm_tls.guard && !vkm_tls.exiting) ts = vkm_thread_attach();
  return ts;
}

static void api_event_init(vkm_event_t *ev, uint16_t type) {
  memset(ev, 0, sizeof *ev);
  ev->type = type;
  (void)api_self();
}

/* The calling thread's malloc counters and the pool totals. Reads its own
 * thread's counters (written only by this thread: plain order suffices) and
 * every pool's counters with relaxed loads. */
static void api_snap(vkm_api_snap_t *s, int with_arena_peak) {
  memset(s, 0, sizeof *s);
  vkm_tstate_t *ts = api_self();
  if (ts) {
    vkm_counters_t c;
    vkm_tstate_counters(ts, &c);
    s->alloc_count = vkm_state_alloc_count(ts);
    s->alloc_bytes = c.alloc_bytes;
    s->alloc_usable = c.alloc_usable;
    s->free_usable = c.free_usable;
  }
  s->thread_pool_count = api_pool_count;
  s->thread_pool_bytes = api_pool_bytes;
  for (valkmem_pool_t *p = api_pools_head(); p; p = vkm_seg_at(p->next_off)) {
    s->pool_alloc_count += VKM_LOAD(&p->alloc_count);
    s->pool_alloc_bytes += VKM_LOAD(&p->alloc_bytes);
    s->pool_free_bytes += VKM_LOAD(&p->free_bytes);
    if (with_arena_peak && p->kind != VALKMEM_POOL_SLAB) s->arena_peak += VKM_LOAD(&p->window_peak);
  }
}

static void api_max(uint64_t *slot, uint64_t v) {
  uint64_t cur = VKM_LOAD(slot);
  while (v > cur && !__atomic_compare_exchange_n(slot, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}


/* ---------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------- */

int valkmem_version(void) { return VALKMEM_VERSION; }

/* ---------------------------------------------------------------------------
 * GC cycles
 * ------------------------------------------------------------------------- */

void valkmem_gc_begin(void) {
  vkm_event_t ev;
  api_event_init(&ev, VKM_EV_GC_BEGIN);
  ev.id = __atomic_add_fetch(&api_gc_seq, 1, __ATOMIC_RELAXED);
  ev.t_ns = vkm_now_ns();
  api_gc_begin_ns = ev.t_ns;
  vkm_emit(&ev, NULL, 0);
}

void valkmem_gc_end(uint64_t bytes_before, uint64_t bytes_after) {
  vkm_event_t ev;
  api_event_init(&ev, VKM_EV_GC_END);
  ev.t_ns = vkm_now_ns();
  ev.id = VKM_LOAD(&api_gc_seq);
  ev.a = bytes_before;
  ev.b = bytes_after;
  /* A begin on this thread gives the pause; without one it is unknown. */
  ev.c = api_gc_begin_ns && ev.t_ns >= api_gc_begin_ns ? ev.t_ns - api_gc_begin_ns : VKM_PAUSE_UNKNOWN;
  api_gc_begin_ns = 0;
  vkm_emit(&ev, NULL, 0);
}

void valkmem_gc_report(uint64_t bytes_before, uint64_t bytes_after, uint64_t pause_ns) {
  vkm_event_t ev;
  api_event_init(&ev, VKM_EV_GC_END);
  ev.t_ns = vkm_now_ns();
  ev.a = bytes_before;
  ev.b = bytes_after;
  ev.c = pause_ns;
  vkm_emit(&ev, NULL, 0);
}

/* ---------------------------------------------------------------------------
 * Pools
 * ------------------------------------------------------------------------- */

valkmem_pool_t *valkmem_pool_register(const char *name, int kind, uint64_t capacity, uint64_t object_size) {
  if (!vkm_config.enabled || !vkm_seg) return NULL;
  /* Handles are never freed and every frame mark and eval walks the
   * registry: a runtime that registers a pool per request would grow both
   * without bound. Past the cap, pools are not tracked (said once). */
  static int api_pool_full;
  if (VKM_LOAD(&api_pool_seq) >= VKM_POOLS_MAX) {
    if (!__atomic_exchange_n(&api_pool_full, 1, __ATOMIC_RELAXED))
      vkm_seg_note("valkmem_pool_register: more than %d pools registered; \"%s\" and later ones are not tracked",
                   VKM_POOLS_MAX, name ? name : "");
    return NULL;
  }
  /* Registration is rare; the handle is in the segment (zero pages), never
   * the app's heap. */
  uint64_t off = vkm_seg_alloc(sizeof(valkmem_pool_t), 64);
  if (!off) return NULL;
  valkmem_pool_t *p = vkm_seg_at(off);
  p->magic = VKM_POOL_MAGIC;
  p->id = __atomic_add_fetch(&api_pool_seq, 1, __ATOMIC_RELAXED);
  p->kind = kind >= VALKMEM_POOL_SLAB && kind <= VALKMEM_POOL_BUMP ? kind : VALKMEM_POOL_ARENA;
  p->capacity = capacity;
  p->object_size = object_size;
  size_t n = api_name_len(name);
  if (n) memcpy(p->name, name, n);
  else memcpy(p->name, "pool", 5);
  uint64_t head = __atomic_load_n(&vkm_seg->pools_off, __ATOMIC_RELAXED);
  do {
    p->next_off = head;
  } while (!__atomic_compare_exchange_n(&vkm_seg->pools_off, &head, off, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));

  vkm_event_t ev;
  api_event_init(&ev, VKM_EV_POOL_REGISTER);
  ev.id = p->id;
  ev.a = capacity;
  ev.b = object_size;
  ev.c = (uint64_t)p->kind;
  api_emit_named(&ev, p->name);
  return p;
}

void valkmem_pool_alloc(valkmem_pool_t *pool, uint64_t bytes) {
  if (vkm_unlikely(!pool)) return;
  api_pool_count++;
  api_pool_bytes += bytes;
  __atomic_add_fetch(&pool->alloc_count, 1, __ATOMIC_RELAXED);
  uint64_t a = __atomic_add_fetch(&pool->alloc_bytes, bytes, __ATOMIC_RELAXED);
  uint64_t f = VKM_LOAD(&pool->free_bytes);
  uint64_t u = a > f ? a - f : 0; /* used after this alloc; a racing free may not show yet */
  /* Plain loads first: the CAS runs only when a peak is actually new. */
  if (u > VKM_LOAD(&pool->high_water)) api_max(&pool->high_water, u);
  if (u > VKM_LOAD(&pool->window_peak)) api_max(&pool->window_peak, u);
  if (pool->capacity && u > pool->capacity) __atomic_add_fetch(&pool->overflow_count, 1, __ATOMIC_RELAXED);
}

void valkmem_pool_free(valkmem_pool_t *pool, uint64_t bytes) {
  if (vkm_unlikely(!pool)) return;
  __atomic_add_fetch(&pool->free_count, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&pool->free_bytes, bytes, __ATOMIC_RELAXED);
}

void valkmem_pool_reset(valkmem_pool_t *pool) {
  if (vkm_unlikely(!pool)) return;
  /* Everything still in the arena counts as freed, so allocated - freed
   * stays equal to used for every kind. (An alloc racing with the reset of
   * the same arena may or may not be released by it; so it is in the
   * runtime too.) */
  uint64_t used = vkm_pool_used(pool);
  if (used) __atomic_add_fetch(&pool->free_bytes, used, __ATOMIC_RELAXED);
  __atomic_add_fetch(&pool->reset_count, 1, __ATOMIC_RELAXED);
}

void valkmem_pool_overflow(valkmem_pool_t *pool, uint64_t bytes) {
  if (vkm_unlikely(!pool)) return;
  __atomic_add_fetch(&pool->overflow_count, 1, __ATOMIC_RELAXED);
  vkm_event_t ev;
  api_event_init(&ev, VKM_EV_POOL_OVERFLOW);
  ev.id = pool->id;
  ev.a = bytes;
  ev.b = vkm_pool_used(pool);
  vkm_emit(&ev, NULL, 0);
}

void valkmem_pool_held(valkmem_pool_t *pool, uint64_t held_bytes) {
  if (vkm_unlikely(!pool)) return;
  VKM_STORE(&pool->held, held_bytes);
}

/* ---------------------------------------------------------------------------
 * Frames and zones
 * ------------------------------------------------------------------------- */

void valkmem_frame_mark(void) {
  vkm_event_t ev;
  vkm_api_snap_t s;
  api_event_init(&ev, VKM_EV_FRAME);
  api_snap(&s, 0);
  ev.id = ++api_frame_seq;
  vkm_emit(&ev, &s, sizeof s);
}

void valkmem_zone_begin(const char *name) {
  vkm_event_t ev;
  api_event_init(&ev, VKM_EV_ZONE_BEGIN);
  ev.id = api_zone_depth++;
  api_emit_named(&ev, name);
}

void valkmem_zone_end(void) {
  if (api_zone_depth == 0) return; /* unbalanced: nothing to end */
  vkm_event_t ev;
  api_event_init(&ev, VKM_EV_ZONE_END);
  ev.id = --api_zone_depth;
  vkm_emit(&ev, NULL, 0);
}

/* ---------------------------------------------------------------------------
 * Evals
 * ------------------------------------------------------------------------- */

void valkmem_eval_begin(const char *label) {
  struct {
    vkm_api_snap_t s;
    char label[VALKMEM_NAME_MAX + 1];
  } pl;
  vkm_event_t ev;
  api_event_init(&ev, VKM_EV_EVAL_BEGIN);
  ev.id = __atomic_add_fetch(&api_eval_seq, 1, __ATOMIC_RELAXED);
  if (api_eval_depth < API_EVAL_DEPTH) api_eval_ids[api_eval_depth] = ev.id;
  api_eval_depth++;
  /* Open a new arena-peak window: each arena/bump pool's peak restarts at
   * its current use. Nested or concurrent evals share the window, so an
   * outer eval sees the peak since the innermost begin. */
  for (valkmem_pool_t *p = api_pools_head(); p; p = vkm_seg_at(p->next_off)) {
    if (p->kind == VALKMEM_POOL_SLAB) continue;
    VKM_STORE(&p->window_peak, vkm_pool_used(p));
  }
  api_snap(&pl.s, 0);
  size_t n = api_name_len(label);
  if (n) memcpy(pl.label, label, n);
  pl.label[n] = 0;
  vkm_emit(&ev, &pl, sizeof pl.s + n + 1);
}

void valkmem_eval_end(void) {
  if (api_eval_depth == 0) return;
  api_eval_depth--;
  vkm_event_t ev;
  vkm_api_snap_t s;
  api_event_init(&ev, VKM_EV_EVAL_END);
  ev.id = api_eval_depth < API_EVAL_DEPTH ? api_eval_ids[api_eval_depth] : 0;
  api_snap(&s, 1);
  vkm_emit(&ev, &s, sizeof s);
}

/* ---------------------------------------------------------------------------
 * Roots and markers
 * ------------------------------------------------------------------------- */

void valkmem_root_report(const char *name, uint64_t retained_bytes, uint64_t objects) {
  vkm_event_t ev;
  api_event_init(&ev, VKM_EV_ROOT);
  ev.a = retained_bytes;
  ev.b = objects;
  api_emit_named(&ev, name);
}

void valkmem_mark(const char *name, uint64_t value) {
  vkm_event_t ev;
  api_event_init(&ev, VKM_EV_MARK);
  ev.a = value;
  api_emit_named(&ev, name);
}
