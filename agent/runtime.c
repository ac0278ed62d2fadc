/* runtime.c - aggregation of the runtime API (include/valkmem.h) on the
 * agent's worker: GC cycles and pauses, pools, frames and zones, evals,
 * retained roots, markers. Produces the "gc", "pools", "frames", "evals",
 * "roots" and "marks" sections of snapshots and reports (SCHEMA.md) and the
 * short per-tick fields of history and SSE.
 *
 * Input: events drained from the per-thread rings (payloads in runtime.h),
 * in per-thread order, and the pool registry (interpose/api.c), whose
 * counters are read once per tick and when JSON is built. All state here is
 * plain and unlocked: it is touched only by the agent thread (or by the
 * exiting thread once the agent has stopped). Everything is bounded: fixed
 * rings of recent cycles, frames and evals, fixed tables of threads, zone
 * names and roots.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "runtime.h"

#define RT_GC_RECENT 64       /* cycles kept for "gc.recent" and the correlation */
#define RT_PAUSE_WINDOW 1024  /* pauses kept for p95 */
#define RT_FRAMES_RECENT 120  /* two seconds at 60 fps */
#define RT_FRAME_ZONES 8      /* zones kept per recent frame */
#define RT_EVALS_RECENT 64
#define RT_EVAL_WARN_RUN 5    /* consecutive judged evals with net > 0 before the warning */
#define RT_THREADS 256        /* threads using frames/zones/evals/GC at once */
#define RT_ZONES 64           /* distinct zone names; the last one collects the rest */
#define RT_ZONE_DEPTH 16
#define RT_EVAL_DEPTH 16
#define RT_ROOT_SLOTS 1024    /* open addressing, filled to at most 3/4 */
#define RT_ROOTS_TOP 10
#define RT_MARKS 32
#define RT_NAME (VALKMEM_NAME_MAX + 1)

#define MS_NS 1000000ull
/* Frame-budget buckets: <1, 1-5, 5-10, 10-16.6, >=16.6 ms. */
static const uint64_t rt_edges_ns[4] = {1 * MS_NS, 5 * MS_NS, 10 * MS_NS, 16600000ull};
#define RT_BUDGET_NS 16600000ull
#define RT_OVER_NS (10 * MS_NS) /* a pause "exceeds 10 ms" when strictly longer */

static int rt_bucket(uint64_t ns) {
  int b = 0;
  while (b < 4 && ns >= rt_edges_ns[b]) b++;
  return b;
}

static void rt_copy_name(char *dst, const void *extra) {
  const char *s = extra ? (const char *)extra : "";
  size_t n = strnlen(s, VALKMEM_NAME_MAX);
  memcpy(dst, s, n);
  dst[n] = 0;
}

static uint64_t rt_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

/* ---------------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------------- */

typedef struct rt_gc_rec_s {
  uint64_t t_ns, before, after, pause_ns;
  int pause_known;
  double efficiency, alloc_bps, pool_bps;
} rt_gc_rec_t;

static struct {
  uint64_t cycles;
  uint64_t paused;           /* cycles whose pause is known */
  uint64_t pause_total_ns, pause_max_ns, hist[5], over10;
  double eff_sum, eff_last;
  uint64_t reclaimed_total, last_after;
  uint64_t pauses[RT_PAUSE_WINDOW];
  rt_gc_rec_t recent[RT_GC_RECENT];
} rt_gc;

typedef struct rt_zone_open_s {
  uint32_t zone;
  uint64_t t_ns;
} rt_zone_open_t;

typedef struct rt_eval_open_s {
  uint64_t id, t_ns, gc_ns, gc_cycles;
  vkm_api_snap_t s;
  char label[RT_NAME];
} rt_eval_open_t;

/* What the agent remembers about one producing thread. */
typedef struct rt_thread_s {
  uint32_t thread, os_tid;
  uint64_t gc_ns, gc_cycles, gc_last_after; /* GC reported by this thread */
  int have_frame;
  uint64_t frame_t_ns, frame_gc_ns;
  vkm_api_snap_t frame_snap;
  uint64_t zone_ns[RT_ZONES];               /* per zone, in the current frame */
  rt_zone_open_t zstack[RT_ZONE_DEPTH];
  unsigned zdepth;                          /* may exceed RT_ZONE_DEPTH: extra levels are not timed */
  rt_eval_open_t estack[RT_EVAL_DEPTH];
  unsigned edepth;
} rt_thread_t;

static rt_thread_t *rt_threads[RT_THREADS];

typedef struct rt_frame_rec_s {
  uint64_t t_ns, ns, alloc_count, alloc_bytes, pool_count, pool_bytes, gc_ns;
  uint32_t thread, nz;
  struct {
    uint32_t zone;
    uint64_t ns;
  } z[RT_FRAME_ZONES];
} rt_frame_rec_t;

static struct {
  uint64_t count, total_ns, max_ns, over_budget, hist[5];
  uint64_t alloc_count, alloc_bytes, pool_bytes, gc_ns; /* totals over measured frames */
  uint64_t last_ns;
  rt_frame_rec_t recent[RT_FRAMES_RECENT];
} rt_fr;

static struct {
  char name[RT_NAME];
  uint64_t total_ns, max_ns, frames;
} rt_zones[RT_ZONES];
static unsigned rt_nzones;

typedef struct rt_eval_rec_s {
  char label[RT_NAME];
  uint64_t id, t_ns, ns, allocated, freed, gc_ns, arena_hw, retained;
  int64_t net;
  int has_retained, judged;
  uint32_t thread;
} rt_eval_rec_t;

static struct {
  uint64_t count, net_run, allocated;
  int64_t net;
  rt_eval_rec_t recent[RT_EVALS_RECENT];
} rt_ev;

typedef struct rt_root_s {
  char name[RT_NAME];
  uint64_t bytes, objects, t_ns, gc_cycle;
  int used;
} rt_root_t;
static rt_root_t *rt_roots; /* RT_ROOT_SLOTS, allocated at init */
static unsigned rt_nroots;

static struct {
  char name[RT_NAME];
  uint64_t value, t_ns;
  uint32_t thread;
} rt_marks[RT_MARKS];
static uint64_t rt_nmarks;

/* Per pool, what the last tick read (for rates). Indexed by pool id. */
typedef struct rt_pool_prev_s {
  uint64_t alloc_bytes;
  double alloc_bps;
} rt_pool_prev_t;
static rt_pool_prev_t *rt_pool_prev;
static uint32_t rt_pool_prev_cap;

static double rt_alloc_bps, rt_pool_bps; /* last tick's rates, for "alloc rate around pauses" */
static uint64_t rt_pool_bytes_prev;

/* ---------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------- */

static int rt_used; /* an event reached the tables since vkm_runtime_init */

void vkm_runtime_init(void) {
  for (unsigned i = 0; i < RT_THREADS; i++) {
    vkm_free(rt_threads[i]);
    rt_threads[i] = NULL;
  }
  vkm_free(rt_pool_prev);
  /* A worker starts with these untouched (zero, shared with agentd): 45 KiB
   * of memset would copy every page of them, in every worker. */
  if (rt_used) {
    memset(&rt_gc, 0, sizeof rt_gc);
    memset(&rt_fr, 0, sizeof rt_fr);
    memset(&rt_ev, 0, sizeof rt_ev);
    memset(rt_zones, 0, sizeof rt_zones);
    memset(rt_marks, 0, sizeof rt_marks);
  }
  rt_used = 0;
  rt_nzones = 0;
  rt_nroots = 0;
  rt_nmarks = 0;
  rt_pool_prev = NULL;
  rt_pool_prev_cap = 0;
  rt_alloc_bps = rt_pool_bps = 0;
  rt_pool_bytes_prev = 0;
  rt_roots = vkm_own_table(rt_roots, RT_ROOT_SLOTS * sizeof *rt_roots);
}

uint64_t vkm_runtime_gc_cycles(void) { return rt_gc.cycles; }
double vkm_runtime_gc_pause_ms_total(void) { return (double)rt_gc.pause_total_ns / 1e6; }

/* The agent-side record of thread `ev->thread`, created on first use and
 * reset when the registry slot was reused by another OS thread. NULL only
 * when the table is full or memory is out (the event is then ignored). */
static rt_thread_t *rt_thread(const vkm_event_t *ev) {
  unsigned h = ev->thread % RT_THREADS;
  for (unsigned i = 0; i < RT_THREADS; i++) {
    unsigned k = (h + i) % RT_THREADS;
    rt_thread_t *t = rt_threads[k];
    if (!t) {
      t = vkm_calloc(1, sizeof *t);
      if (!t) return NULL;
      t->thread = ev->thread;
      t->os_tid = ev->os_tid;
      rt_threads[k] = t;
      return t;
    }
    if (t->thread == ev->thread) {
      if (t->os_tid != ev->os_tid) {
        memset(t, 0, sizeof *t);
        t->thread = ev->thread;
        t->os_tid = ev->os_tid;
      }
      return t;
    }
  }
  return NULL;
}

/* ---------------------------------------------------------------------------
 * GC
 * ------------------------------------------------------------------------- */

static void rt_on_gc_end(const vkm_event_t *ev, rt_thread_t *th) {
  uint64_t before = ev->a, after = ev->b, pause = ev->c;
  int known = pause != VKM_PAUSE_UNKNOWN;
  if (!known) pause = 0;
  double eff = before ? (double)rt_sub(before, after) / (double)before : 0.0;
  uint64_t i = rt_gc.cycles++;
  rt_gc.eff_last = eff;
  rt_gc.eff_sum += eff;
  rt_gc.reclaimed_total += rt_sub(before, after);
  rt_gc.last_after = after;
  if (known) { /* a cycle ended without its begin on this thread has no pause */
    rt_gc.pause_total_ns += pause;
    if (pause > rt_gc.pause_max_ns) rt_gc.pause_max_ns = pause;
    rt_gc.hist[rt_bucket(pause)]++;
    if (pause > RT_OVER_NS) rt_gc.over10++;
    rt_gc.pauses[rt_gc.paused++ % RT_PAUSE_WINDOW] = pause;
  }
  rt_gc_rec_t *r = &rt_gc.recent[i % RT_GC_RECENT];
  r->t_ns = ev->t_ns;
  r->before = before;
  r->after = after;
  r->pause_ns = pause;
  r->pause_known = known;
  r->efficiency = eff;
  r->alloc_bps = rt_alloc_bps;
  r->pool_bps = rt_pool_bps;
  if (th) {
    th->gc_ns += pause;
    th->gc_cycles++;
    th->gc_last_after = after;
  }
}

/* ---------------------------------------------------------------------------
 * Frames and zones
 * ------------------------------------------------------------------------- */

static uint32_t rt_zone_id(const char *name) {
  for (unsigned i = 0; i < rt_nzones; i++)
    if (strcmp(rt_zones[i].name, name) == 0) return i;
  if (rt_nzones < RT_ZONES - 1) {
    strcpy(rt_zones[rt_nzones].name, name);
    return rt_nzones++;
  }
  if (rt_nzones == RT_ZONES - 1) {
    strcpy(rt_zones[rt_nzones].name, "(other)");
    rt_nzones++;
  }
  return RT_ZONES - 1;
}

static void rt_on_zone_begin(const vkm_event_t *ev, const void *extra, rt_thread_t *th) {
  char name[RT_NAME];
  rt_copy_name(name, extra);
  if (th->zdepth < RT_ZONE_DEPTH) {
    th->zstack[th->zdepth].zone = rt_zone_id(name);
    th->zstack[th->zdepth].t_ns = ev->t_ns;
  }
  th->zdepth++;
}

static void rt_on_zone_end(const vkm_event_t *ev, rt_thread_t *th) {
  if (th->zdepth == 0) return;
  th->zdepth--;
  if (th->zdepth >= RT_ZONE_DEPTH) return;
  rt_zone_open_t *z = &th->zstack[th->zdepth];
  th->zone_ns[z->zone] += rt_sub(ev->t_ns, z->t_ns);
}

static void rt_on_frame(const vkm_event_t *ev, const void *extra, rt_thread_t *th) {
  vkm_api_snap_t s;
  memset(&s, 0, sizeof s);
  if (extra && ev->extra_len >= sizeof s) memcpy(&s, extra, sizeof s);
  if (th->have_frame) {
    rt_frame_rec_t *f = &rt_fr.recent[rt_fr.count % RT_FRAMES_RECENT];
    memset(f, 0, sizeof *f);
    f->t_ns = ev->t_ns;
    f->ns = rt_sub(ev->t_ns, th->frame_t_ns);
    f->alloc_count = rt_sub(s.alloc_count, th->frame_snap.alloc_count);
    f->alloc_bytes = rt_sub(s.alloc_bytes, th->frame_snap.alloc_bytes);
    f->pool_count = rt_sub(s.thread_pool_count, th->frame_snap.thread_pool_count);
    f->pool_bytes = rt_sub(s.thread_pool_bytes, th->frame_snap.thread_pool_bytes);
    f->gc_ns = rt_sub(th->gc_ns, th->frame_gc_ns);
    f->thread = th->os_tid;
    for (unsigned z = 0; z < RT_ZONES; z++) {
      uint64_t ns = th->zone_ns[z];
      if (!ns) continue;
      if (ns > rt_zones[z].max_ns) rt_zones[z].max_ns = ns;
      rt_zones[z].total_ns += ns;
      rt_zones[z].frames++;
      /* keep the biggest RT_FRAME_ZONES zones of this frame */
      unsigned slot = f->nz;
      if (slot == RT_FRAME_ZONES) {
        slot = 0;
        for (unsigned k = 1; k < RT_FRAME_ZONES; k++)
          if (f->z[k].ns < f->z[slot].ns) slot = k;
        if (f->z[slot].ns >= ns) continue;
      } else {
        f->nz++;
      }
      f->z[slot].zone = z;
      f->z[slot].ns = ns;
    }
    rt_fr.count++;
    rt_fr.total_ns += f->ns;
    if (f->ns > rt_fr.max_ns) rt_fr.max_ns = f->ns;
    if (f->ns > RT_BUDGET_NS) rt_fr.over_budget++;
    rt_fr.hist[rt_bucket(f->ns)]++;
    rt_fr.alloc_count += f->alloc_count;
    rt_fr.alloc_bytes += f->alloc_bytes;
    rt_fr.pool_bytes += f->pool_bytes;
    rt_fr.gc_ns += f->gc_ns;
    rt_fr.last_ns = f->ns;
  }
  memset(th->zone_ns, 0, sizeof th->zone_ns);
  th->have_frame = 1;
  th->frame_t_ns = ev->t_ns;
  th->frame_gc_ns = th->gc_ns;
  th->frame_snap = s;
}

/* ---------------------------------------------------------------------------
 * Evals
 * ------------------------------------------------------------------------- */

static void rt_on_eval_begin(const vkm_event_t *ev, const void *extra, rt_thread_t *th) {
  unsigned d = th->edepth++;
  if (d >= RT_EVAL_DEPTH) return;
  rt_eval_open_t *e = &th->estack[d];
  memset(e, 0, sizeof *e);
  e->id = ev->id;
  e->t_ns = ev->t_ns;
  e->gc_ns = th->gc_ns;
  e->gc_cycles = th->gc_cycles;
  if (extra && ev->extra_len >= sizeof e->s) {
    memcpy(&e->s, extra, sizeof e->s);
    if (ev->extra_len > sizeof e->s) rt_copy_name(e->label, (const char *)extra + sizeof e->s);
  }
}

static void rt_on_eval_end(const vkm_event_t *ev, const void *extra, rt_thread_t *th) {
  if (th->edepth == 0) return; /* its begin was dropped */
  unsigned d = --th->edepth;
  if (d >= RT_EVAL_DEPTH) return;
  rt_eval_open_t *e = &th->estack[d];
  vkm_api_snap_t s;
  memset(&s, 0, sizeof s);
  if (extra && ev->extra_len >= sizeof s) memcpy(&s, extra, sizeof s);
  rt_eval_rec_t *r = &rt_ev.recent[rt_ev.count % RT_EVALS_RECENT];
  memset(r, 0, sizeof *r);
  memcpy(r->label, e->label, sizeof r->label);
  r->id = e->id;
  r->t_ns = ev->t_ns;
  r->ns = rt_sub(ev->t_ns, e->t_ns);
  r->allocated = rt_sub(s.alloc_usable, e->s.alloc_usable) + rt_sub(s.pool_alloc_bytes, e->s.pool_alloc_bytes);
  r->freed = rt_sub(s.free_usable, e->s.free_usable) + rt_sub(s.pool_free_bytes, e->s.pool_free_bytes);
  r->net = (int64_t)r->allocated - (int64_t)r->freed;
  r->gc_ns = rt_sub(th->gc_ns, e->gc_ns);
  r->arena_hw = s.arena_peak;
  r->has_retained = th->gc_cycles > e->gc_cycles;
  r->retained = r->has_retained ? th->gc_last_after : 0;
  r->thread = th->os_tid;
  rt_ev.count++;
  rt_ev.allocated += r->allocated;
  rt_ev.net += r->net;
  /* Which evals judge the trend: in a collected runtime an eval's garbage
   * is freed by a later GC, so only evals with a GC inside them show what
   * they kept; evals without one leave the run as it is. A runtime that
   * reports no GC at all frees eagerly: every eval counts. */
  r->judged = r->has_retained || rt_gc.cycles == 0;
  if (r->judged) rt_ev.net_run = r->net > 0 ? rt_ev.net_run + 1 : 0;
}

/* ---------------------------------------------------------------------------
 * Roots and marks
 * ------------------------------------------------------------------------- */

static uint32_t rt_hash(const char *s) {
  uint32_t h = 2166136261u;
  while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
  return h;
}

static void rt_on_root(const vkm_event_t *ev, const void *extra) {
  if (!rt_roots) return;
  char name[RT_NAME];
  rt_copy_name(name, extra);
  uint32_t h = rt_hash(name);
  for (unsigned i = 0; i < RT_ROOT_SLOTS; i++) {
    rt_root_t *r = &rt_roots[(h + i) % RT_ROOT_SLOTS];
    if (r->used && strcmp(r->name, name) != 0) continue;
    if (!r->used) {
      if (rt_nroots >= RT_ROOT_SLOTS * 3 / 4) return; /* full: newest names are ignored */
      r->used = 1;
      strcpy(r->name, name);
      rt_nroots++;
    }
    r->bytes = ev->a;
    r->objects = ev->b;
    r->t_ns = ev->t_ns;
    r->gc_cycle = rt_gc.cycles;
    return;
  }
}

static void rt_add_mark(const char *name, uint64_t value, const vkm_event_t *ev) {
  size_t i = rt_nmarks++ % RT_MARKS;
  size_t n = strnlen(name, VALKMEM_NAME_MAX);
  memcpy(rt_marks[i].name, name, n);
  rt_marks[i].name[n] = 0;
  rt_marks[i].value = value;
  rt_marks[i].t_ns = ev->t_ns;
  rt_marks[i].thread = ev->os_tid;
}

static void rt_on_overflow(const vkm_event_t *ev) {
  const char *pname = "?";
  for (valkmem_pool_t *p = vkm_api_pools(); p; p = vkm_api_pool_next(p))
    if (p->id == ev->id) pname = p->name;
  char name[RT_NAME + 16];
  snprintf(name, sizeof name, "overflow %s", pname);
  name[VALKMEM_NAME_MAX] = 0; /* cut like every other name */
  rt_add_mark(name, ev->a, ev);
}

/* ---------------------------------------------------------------------------
 * Event entry point
 * ------------------------------------------------------------------------- */

void vkm_runtime_on_event(const vkm_event_t *ev, const void *extra) {
  rt_thread_t *th;
  rt_used = 1;
  switch (ev->type) {
  case VKM_EV_GC_BEGIN:
    break; /* the pause is measured at the producer and carried by GC_END */
  case VKM_EV_GC_END:
    rt_on_gc_end(ev, rt_thread(ev));
    break;
  case VKM_EV_POOL_REGISTER:
  case VKM_EV_POOL_RESET:
    break; /* pools are read from the registry */
  case VKM_EV_POOL_OVERFLOW:
    rt_on_overflow(ev);
    break;
  case VKM_EV_FRAME:
    if ((th = rt_thread(ev))) rt_on_frame(ev, extra, th);
    break;
  case VKM_EV_ZONE_BEGIN:
    if ((th = rt_thread(ev))) rt_on_zone_begin(ev, extra, th);
    break;
  case VKM_EV_ZONE_END:
    if ((th = rt_thread(ev))) rt_on_zone_end(ev, th);
    break;
  case VKM_EV_EVAL_BEGIN:
    if ((th = rt_thread(ev))) rt_on_eval_begin(ev, extra, th);
    break;
  case VKM_EV_EVAL_END:
    if ((th = rt_thread(ev))) rt_on_eval_end(ev, extra, th);
    break;
  case VKM_EV_ROOT:
    rt_on_root(ev, extra);
    break;
  case VKM_EV_MARK: {
    char name[RT_NAME];
    rt_copy_name(name, extra);
    rt_add_mark(name, ev->a, ev);
    break;
  }
  default:
    break;
  }
}

/* ---------------------------------------------------------------------------
 * Tick: pool rates, the allocation rates that GC records carry
 * ------------------------------------------------------------------------- */

static rt_pool_prev_t *rt_prev(uint32_t id) {
  if (id >= rt_pool_prev_cap) {
    uint32_t cap = rt_pool_prev_cap ? rt_pool_prev_cap : 16;
    while (cap <= id) cap *= 2;
    rt_pool_prev_t *n = vkm_realloc(rt_pool_prev, cap * sizeof *n);
    if (!n) return NULL;
    memset(n + rt_pool_prev_cap, 0, (cap - rt_pool_prev_cap) * sizeof *n);
    rt_pool_prev = n;
    rt_pool_prev_cap = cap;
  }
  return &rt_pool_prev[id];
}

void vkm_runtime_tick(const vkm_tick_t *t) {
  double dt = t && t->dt_s > 0 ? t->dt_s : 0;
  rt_alloc_bps = t ? t->alloc_bps : 0;
  uint64_t total = 0;
  for (valkmem_pool_t *p = vkm_api_pools(); p; p = vkm_api_pool_next(p)) {
    uint64_t ab = VKM_LOAD(&p->alloc_bytes);
    total += ab;
    rt_pool_prev_t *pp = rt_prev(p->id);
    if (!pp) continue;
    if (dt > 0) pp->alloc_bps = (double)rt_sub(ab, pp->alloc_bytes) / dt;
    pp->alloc_bytes = ab;
  }
  if (dt > 0) rt_pool_bps = (double)rt_sub(total, rt_pool_bytes_prev) / dt;
  rt_pool_bytes_prev = total;
}

/* ---------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------- */

static void rt_num(cJSON *o, const char *k, double v) { cJSON_AddNumberToObject(o, k, v); }
static double rt_ms(uint64_t ns) { return (double)ns / 1e6; }
static double rt_unix_ms(uint64_t t_ns) {
  return (double)vkm_started_at_unix_ms() + ((double)t_ns - (double)vkm_start_ns()) / 1e6;
}
static double rt_round(double v, double scale) { return round(v * scale) / scale; }

static cJSON *rt_hist_json(const uint64_t h[5]) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < 5; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)h[i]));
  return a;
}

static int rt_cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Pearson correlation of the allocation rate before each recent pause with
 * the pause's length: near 1 means pauses grow with allocation pressure. */
static double rt_alloc_pause_corr(unsigned n) {
  if (n < 3) return 0;
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  unsigned k = 0;
  for (unsigned i = 0; i < n; i++) {
    const rt_gc_rec_t *r = &rt_gc.recent[i];
    if (!r->pause_known) continue;
    double x = r->alloc_bps + r->pool_bps, y = (double)r->pause_ns;
    sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
    k++;
  }
  if (k < 3) return 0;
  n = k;
  double cov = sxy - sx * sy / n, vx = sxx - sx * sx / n, vy = syy - sy * sy / n;
  if (vx <= 0 || vy <= 0) return 0;
  return cov / sqrt(vx * vy);
}

static cJSON *rt_gc_json(void) {
  if (!rt_gc.cycles) return cJSON_CreateNull();
  cJSON *g = cJSON_CreateObject();
  rt_num(g, "cycles", (double)rt_gc.cycles);
  rt_num(g, "efficiency_last", rt_round(rt_gc.eff_last, 1e6));
  rt_num(g, "efficiency_avg", rt_round(rt_gc.eff_sum / (double)rt_gc.cycles, 1e6));
  rt_num(g, "reclaimed_bytes", (double)rt_gc.reclaimed_total);
  rt_num(g, "heap_after", (double)rt_gc.last_after);

  cJSON *p = cJSON_AddObjectToObject(g, "pause");
  unsigned n = rt_gc.paused < RT_PAUSE_WINDOW ? (unsigned)rt_gc.paused : RT_PAUSE_WINDOW;
  double np = rt_gc.paused ? (double)rt_gc.paused : 1.0;
  uint64_t sorted[RT_PAUSE_WINDOW];
  memcpy(sorted, rt_gc.pauses, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, rt_cmp_u64);
  /* nearest rank: the smallest pause with at least 95 % of the window at or below it */
  unsigned rank = (unsigned)ceil(0.95 * n);
  uint64_t p95 = n ? sorted[rank ? rank - 1 : 0] : 0;
  double over = 100.0 * (double)rt_gc.over10 / np;
  rt_num(p, "count", (double)rt_gc.paused);
  rt_num(p, "total_ms", rt_ms(rt_gc.pause_total_ns));
  rt_num(p, "max_ms", rt_ms(rt_gc.pause_max_ns));
  rt_num(p, "avg_ms", rt_ms(rt_gc.pause_total_ns) / np);
  rt_num(p, "p95_ms", rt_ms(p95));
  cJSON_AddItemToObject(p, "hist", rt_hist_json(rt_gc.hist));
  rt_num(p, "over10_count", (double)rt_gc.over10);
  rt_num(p, "over10_pct", rt_round(over, 1e3));
  cJSON_AddBoolToObject(p, "warn", over > 10.0);

  unsigned m = rt_gc.cycles < RT_GC_RECENT ? (unsigned)rt_gc.cycles : RT_GC_RECENT;
  rt_num(g, "alloc_pause_corr", rt_round(rt_alloc_pause_corr(m), 1e3));
  cJSON *rec = cJSON_AddArrayToObject(g, "recent");
  for (uint64_t i = rt_gc.cycles - m; i < rt_gc.cycles; i++) {
    const rt_gc_rec_t *r = &rt_gc.recent[i % RT_GC_RECENT];
    cJSON *o = cJSON_CreateObject();
    rt_num(o, "cycle", (double)(i + 1));
    rt_num(o, "t_ms", round(rt_unix_ms(r->t_ns)));
    rt_num(o, "before", (double)r->before);
    rt_num(o, "after", (double)r->after);
    if (r->pause_known) rt_num(o, "pause_ms", rt_ms(r->pause_ns));
    else cJSON_AddNullToObject(o, "pause_ms");
    rt_num(o, "efficiency", rt_round(r->efficiency, 1e6));
    rt_num(o, "alloc_bps", round(r->alloc_bps));
    rt_num(o, "pool_alloc_bps", round(r->pool_bps));
    cJSON_AddItemToArray(rec, o);
  }
  return g;
}

static const char *rt_kind_name(int kind) {
  switch (kind) {
  case VALKMEM_POOL_SLAB: return "slab";
  case VALKMEM_POOL_BUMP: return "bump";
  default: return "arena";
  }
}

static cJSON *rt_pool_json(valkmem_pool_t *p) {
  cJSON *o = cJSON_CreateObject();
  uint64_t used = vkm_pool_used(p);
  uint64_t ac = VKM_LOAD(&p->alloc_count), fc = VKM_LOAD(&p->free_count);
  uint64_t held = VKM_LOAD(&p->held);
  uint64_t hw = VKM_LOAD(&p->high_water);
  double frag = 0;
  if (held) {
    frag = held > used ? 100.0 * (double)(held - used) / (double)held : 0;
  } else if (p->kind == VALKMEM_POOL_SLAB && p->object_size && ac > fc) {
    uint64_t slots = (ac - fc) * p->object_size;
    frag = slots > used ? 100.0 * (double)(slots - used) / (double)slots : 0;
  }
  rt_num(o, "id", p->id);
  cJSON_AddStringToObject(o, "name", p->name);
  cJSON_AddStringToObject(o, "kind", rt_kind_name(p->kind));
  rt_num(o, "capacity", (double)p->capacity);
  rt_num(o, "object_size", (double)p->object_size);
  rt_num(o, "used", (double)used);
  rt_num(o, "held", (double)held);
  rt_num(o, "high_water", (double)(hw > used ? hw : used));
  rt_num(o, "alloc_count", (double)ac);
  rt_num(o, "free_count", (double)fc);
  rt_num(o, "alloc_bytes", (double)VKM_LOAD(&p->alloc_bytes));
  rt_num(o, "free_bytes", (double)VKM_LOAD(&p->free_bytes));
  rt_num(o, "overflow_count", (double)VKM_LOAD(&p->overflow_count));
  rt_num(o, "reset_count", (double)VKM_LOAD(&p->reset_count));
  rt_num(o, "frag_pct", rt_round(frag, 1e3));
  rt_num(o, "used_pct", p->capacity ? rt_round(100.0 * (double)used / (double)p->capacity, 1e3) : 0);
  rt_num(o, "alloc_bps", p->id < rt_pool_prev_cap ? round(rt_pool_prev[p->id].alloc_bps) : 0);
  return o;
}

static cJSON *rt_pools_json(void) {
  cJSON *a = cJSON_CreateArray();
  /* The registry is newest first; list pools in registration order. */
  unsigned n = 0;
  for (valkmem_pool_t *p = vkm_api_pools(); p; p = vkm_api_pool_next(p)) n++;
  if (!n) return a;
  valkmem_pool_t **v = vkm_malloc(n * sizeof *v);
  if (!v) return a;
  unsigned i = n;
  for (valkmem_pool_t *p = vkm_api_pools(); p && i; p = vkm_api_pool_next(p)) v[--i] = p;
  for (i = 0; i < n; i++) cJSON_AddItemToArray(a, rt_pool_json(v[i]));
  vkm_free(v);
  return a;
}

static cJSON *rt_frames_json(void) {
  if (!rt_fr.count) return cJSON_CreateNull();
  cJSON *f = cJSON_CreateObject();
  double n = (double)rt_fr.count;
  rt_num(f, "count", n);
  rt_num(f, "budget_ms", VALKMEM_FRAME_BUDGET_MS);
  rt_num(f, "avg_ms", rt_ms(rt_fr.total_ns) / n);
  rt_num(f, "max_ms", rt_ms(rt_fr.max_ns));
  rt_num(f, "last_ms", rt_ms(rt_fr.last_ns));
  rt_num(f, "over_budget", (double)rt_fr.over_budget);
  cJSON_AddItemToObject(f, "hist", rt_hist_json(rt_fr.hist));
  rt_num(f, "alloc_count", (double)rt_fr.alloc_count);
  rt_num(f, "alloc_bytes", (double)rt_fr.alloc_bytes);
  rt_num(f, "pool_bytes", (double)rt_fr.pool_bytes);
  rt_num(f, "gc_ms", rt_ms(rt_fr.gc_ns));
  rt_num(f, "alloc_count_avg", rt_round((double)rt_fr.alloc_count / n, 1e3));
  rt_num(f, "alloc_bytes_avg", rt_round((double)rt_fr.alloc_bytes / n, 1e3));
  cJSON *zones = cJSON_AddArrayToObject(f, "zones");
  for (unsigned z = 0; z < rt_nzones; z++) {
    if (!rt_zones[z].frames) continue;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", rt_zones[z].name);
    rt_num(o, "frames", (double)rt_zones[z].frames);
    rt_num(o, "avg_ms", rt_ms(rt_zones[z].total_ns) / (double)rt_zones[z].frames);
    rt_num(o, "max_ms", rt_ms(rt_zones[z].max_ns));
    cJSON_AddItemToArray(zones, o);
  }
  cJSON *rec = cJSON_AddArrayToObject(f, "recent");
  uint64_t m = rt_fr.count < RT_FRAMES_RECENT ? rt_fr.count : RT_FRAMES_RECENT;
  for (uint64_t i = rt_fr.count - m; i < rt_fr.count; i++) {
    const rt_frame_rec_t *r = &rt_fr.recent[i % RT_FRAMES_RECENT];
    cJSON *o = cJSON_CreateObject();
    rt_num(o, "t_ms", round(rt_unix_ms(r->t_ns)));
    rt_num(o, "ms", rt_ms(r->ns));
    rt_num(o, "alloc_count", (double)r->alloc_count);
    rt_num(o, "alloc_bytes", (double)r->alloc_bytes);
    rt_num(o, "pool_count", (double)r->pool_count);
    rt_num(o, "pool_bytes", (double)r->pool_bytes);
    rt_num(o, "gc_ms", rt_ms(r->gc_ns));
    rt_num(o, "thread", r->thread);
    cJSON *zo = cJSON_AddObjectToObject(o, "zones");
    for (unsigned k = 0; k < r->nz; k++) rt_num(zo, rt_zones[r->z[k].zone].name, rt_ms(r->z[k].ns));
    cJSON_AddItemToArray(rec, o);
  }
  return f;
}

static cJSON *rt_evals_json(void) {
  if (!rt_ev.count) return cJSON_CreateNull();
  cJSON *e = cJSON_CreateObject();
  rt_num(e, "count", (double)rt_ev.count);
  rt_num(e, "allocated", (double)rt_ev.allocated);
  rt_num(e, "net", (double)rt_ev.net);
  rt_num(e, "net_positive_run", (double)rt_ev.net_run);
  rt_num(e, "warn_after", RT_EVAL_WARN_RUN);
  cJSON_AddBoolToObject(e, "warn", rt_ev.net_run >= RT_EVAL_WARN_RUN);
  cJSON *rec = cJSON_AddArrayToObject(e, "recent");
  uint64_t m = rt_ev.count < RT_EVALS_RECENT ? rt_ev.count : RT_EVALS_RECENT;
  for (uint64_t i = rt_ev.count - m; i < rt_ev.count; i++) {
    const rt_eval_rec_t *r = &rt_ev.recent[i % RT_EVALS_RECENT];
    cJSON *o = cJSON_CreateObject();
    rt_num(o, "id", (double)r->id);
    cJSON_AddStringToObject(o, "label", r->label);
    rt_num(o, "t_ms", round(rt_unix_ms(r->t_ns)));
    rt_num(o, "allocated", (double)r->allocated);
    rt_num(o, "freed", (double)r->freed);
    if (r->has_retained) rt_num(o, "retained", (double)r->retained);
    else cJSON_AddNullToObject(o, "retained");
    rt_num(o, "net", (double)r->net);
    rt_num(o, "duration_ms", rt_ms(r->ns));
    rt_num(o, "gc_ms", rt_ms(r->gc_ns));
    rt_num(o, "arena_high_water", (double)r->arena_hw);
    cJSON_AddBoolToObject(o, "judged", r->judged);
    rt_num(o, "thread", r->thread);
    cJSON_AddItemToArray(rec, o);
  }
  return e;
}

static cJSON *rt_roots_json(void) {
  cJSON *a = cJSON_CreateArray();
  if (!rt_roots) return a;
  /* selection of the top RT_ROOTS_TOP by bytes (ties: name order) */
  const rt_root_t *top[RT_ROOTS_TOP];
  unsigned n = 0;
  for (unsigned i = 0; i < RT_ROOT_SLOTS; i++) {
    const rt_root_t *r = &rt_roots[i];
    if (!r->used) continue;
    unsigned k = n < RT_ROOTS_TOP ? n++ : RT_ROOTS_TOP;
    while (k > 0 && (top[k - 1]->bytes < r->bytes ||
                     (top[k - 1]->bytes == r->bytes && strcmp(top[k - 1]->name, r->name) > 0))) {
      if (k < RT_ROOTS_TOP) top[k] = top[k - 1];
      k--;
    }
    if (k < RT_ROOTS_TOP) top[k] = r;
  }
  for (unsigned i = 0; i < n; i++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", top[i]->name);
    rt_num(o, "retained_bytes", (double)top[i]->bytes);
    rt_num(o, "objects", (double)top[i]->objects);
    rt_num(o, "gc_cycle", (double)top[i]->gc_cycle);
    rt_num(o, "t_ms", round(rt_unix_ms(top[i]->t_ns)));
    cJSON_AddItemToArray(a, o);
  }
  return a;
}

static cJSON *rt_marks_json(void) {
  cJSON *a = cJSON_CreateArray();
  uint64_t m = rt_nmarks < RT_MARKS ? rt_nmarks : RT_MARKS;
  for (uint64_t i = rt_nmarks - m; i < rt_nmarks; i++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", rt_marks[i % RT_MARKS].name);
    rt_num(o, "value", (double)rt_marks[i % RT_MARKS].value);
    rt_num(o, "t_ms", round(rt_unix_ms(rt_marks[i % RT_MARKS].t_ns)));
    rt_num(o, "thread", rt_marks[i % RT_MARKS].thread);
    cJSON_AddItemToArray(a, o);
  }
  return a;
}

void vkm_runtime_json(cJSON *obj) {
  cJSON_AddItemToObject(obj, "gc", rt_gc_json());
  cJSON_AddItemToObject(obj, "pools", rt_pools_json());
  cJSON_AddItemToObject(obj, "frames", rt_frames_json());
  cJSON_AddItemToObject(obj, "evals", rt_evals_json());
  cJSON_AddItemToObject(obj, "roots", rt_roots_json());
  cJSON_AddItemToObject(obj, "marks", rt_marks_json());
}

void vkm_runtime_tick_json(cJSON *obj) {
  uint64_t used = 0;
  for (valkmem_pool_t *p = vkm_api_pools(); p; p = vkm_api_pool_next(p)) {
    used += vkm_pool_used(p);
  }
  /* top-level keys of the SSE event: none may collide with a snapshot key */
  rt_num(obj, "gc_cycles", (double)rt_gc.cycles);
  rt_num(obj, "gc_pause_ms", rt_ms(rt_gc.pause_total_ns));
  rt_num(obj, "frame_count", (double)rt_fr.count);
  rt_num(obj, "frame_ms", rt_ms(rt_fr.last_ns));
  rt_num(obj, "eval_count", (double)rt_ev.count);
  rt_num(obj, "pool_used", (double)used);
}
