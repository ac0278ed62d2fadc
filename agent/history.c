/* history.c - bounded, downsampled history rings.
 *
 * Three rings, preallocated once (vkm_malloc) so history never grows:
 *
 *   ring 0: one point per tick        x  600   (1 min at 100 ms)
 *   ring 1: one point per 1 s bucket  x 3000   (50 min)
 *   ring 2: one point per 10 s bucket x 3600   (10 h)
 *
 * Every tick becomes one "tick point" (counters as deltas of the cumulative
 * totals, levels as they are now, peaks as the maximum within the tick).
 * Rings 1 and 2 each fold tick points into an open accumulator for their
 * current time bucket and close it when a tick lands in a later bucket.
 * Folding is the one place downsampling happens (point_fold): counters are
 * summed, peaks take the maximum, levels take the last value. Buckets are
 * keyed on monotonic time, not tick counts, so a late or configurable tick
 * (VALKMEM_TICK_MS) never stretches a "1 s" point; a bucket no tick landed in
 * simply has no point (charts draw by t_ms).
 *
 * Per-site history: next to every point each ring keeps the
 * VKM_SITE_HIST_TOP (20) sites with the most live bytes at the point's last
 * tick and their calibrated live bytes (sites.c), re-chosen every tick, so a
 * site that grows into the top shows from then on. Downsampling is the
 * level rule (the last tick's set). 160 bytes per point, 7200 points:
 * 1125 KiB, mapped at start like the points (zero pages until written).
 *
 * All calls on the worker's main thread.
 */
#include "agent.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Points: 96 bytes. Levels that are page-granular (RSS) are kept in KiB,
 * rates and percentages in float; byte and op counts stay 64-bit because a
 * 10 s sum of a malloc storm overflows 32 bits.
 * ------------------------------------------------------------------------- */
typedef struct hpoint_s {
  uint64_t seq;          /* seq of the last tick folded in */
  uint64_t t_ms;         /* unix ms of the last tick folded in */
  int64_t live;          /* level: live heap at the end of the interval */
  int64_t peak_live;     /* peak: max live heap within the interval */
  uint64_t alloc_bytes, free_bytes; /* counters: usable bytes in the interval */
  uint64_t alloc_ops, free_ops;     /* counters: calls in the interval */
  uint32_t rss_kib;      /* level */
  uint32_t peak_rss_kib; /* peak */
  uint32_t dt_ms;        /* counter: length of the interval */
  uint32_t gc_cycles;    /* counter */
  float gc_pause_ms;     /* counter */
  float frag_pct;        /* peak */
  float pressure_pct;    /* peak */
  uint32_t pad_;
} hpoint_t;

_Static_assert(sizeof(hpoint_t) == 96, "history point grew: recheck the memory budget");

/* The top sites at a point: idx UINT32_MAX = no site (fewer than 20). */
typedef struct spoint_s {
  uint32_t idx[VKM_SITE_HIST_TOP];
  float live[VKM_SITE_HIST_TOP]; /* calibrated live usable bytes (an estimate: float's 24 bits are plenty) */
} spoint_t;

_Static_assert(sizeof(spoint_t) == 160, "site history point grew: recheck the memory budget");

typedef struct ring_s {
  hpoint_t *pts;
  spoint_t *sp;            /* parallel to pts; NULL when the site history could not be mapped */
  spoint_t sacc;           /* the open bucket's sites */
  uint32_t cap, len, head; /* head: index of the next write */
  uint64_t step_ns;        /* 0 = one point per tick */
  hpoint_t acc;            /* open bucket (rings with step_ns) */
  uint64_t acc_bucket;
  int acc_open;
} ring_t;

enum { RING_TICK, RING_1S, RING_10S, RING_COUNT };

static const uint32_t ring_caps[RING_COUNT] = {600, 3000, 3600};
static const uint64_t ring_steps[RING_COUNT] = {0, 1000000000ull, 10000000000ull};

static ring_t rings[RING_COUNT];
static hpoint_t *storage;
static uint64_t storage_bytes;
static spoint_t *sstorage;
static uint64_t sstorage_bytes;

/* Previous cumulative readings, to turn totals into per-tick deltas. */
static struct {
  uint64_t alloc_usable, free_usable, alloc_count, free_count;
  int64_t peak_live;
  uint64_t peak_rss;
  uint64_t gc_cycles;
  double gc_pause_ms;
} prev;

/* The ranges /api/history serves: which ring, how many newest points. */
typedef struct range_s {
  const char *name;
  int ring;
  uint32_t points;
} range_t;

static const range_t ranges[] = {
    {"1m", RING_TICK, 600},
    {"5m", RING_1S, 300},
    {"1h", RING_10S, 360}, /* exactly one hour; the 1 s ring only spans 50 min */
    {"10h", RING_10S, 3600},
};

/* ---------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------- */

void vkm_history_init(void) {
  size_t total = 0;
  for (int r = 0; r < RING_COUNT; r++) total += ring_caps[r];
  /* Zero pages that cost nothing until a tick writes them, so a
   * short-lived process never touches most of its 675 KiB (a calloc
   * cleared them all at start-up). Called again in a forked child: the
   * same mapping, the parent's past dropped (the child's counters restart
   * too). */
  storage = vkm_own_table(storage, total * sizeof(hpoint_t));
  if (!storage) {
    vkm_say("error", "history: cannot map %zu points; history off", total);
    storage_bytes = 0;
    return;
  }
  storage_bytes = (uint64_t)total * sizeof(hpoint_t);
  sstorage = vkm_own_table(sstorage, total * sizeof(spoint_t));
  if (!sstorage) vkm_say("warn", "history: cannot map the per-site history; it stays empty");
  sstorage_bytes = sstorage ? (uint64_t)total * sizeof(spoint_t) : 0;
  hpoint_t *p = storage;
  spoint_t *sp = sstorage;
  for (int r = 0; r < RING_COUNT; r++) {
    memset(&rings[r], 0, sizeof rings[r]);
    rings[r].pts = p;
    rings[r].sp = sp;
    rings[r].cap = ring_caps[r];
    rings[r].step_ns = ring_steps[r];
    p += ring_caps[r];
    if (sp) sp += ring_caps[r];
  }
  memset(&prev, 0, sizeof prev);
}

uint64_t vkm_history_bytes(void) { return storage_bytes; }
uint64_t vkm_history_site_bytes(void) { return sstorage_bytes; }

/* ---------------------------------------------------------------------------
 * Push
 * ------------------------------------------------------------------------- */

static void ring_put(ring_t *r, const hpoint_t *p, const spoint_t *sp) {
  if (r->sp) r->sp[r->head] = *sp;
  r->pts[r->head] = *p;
  r->head = (r->head + 1) % r->cap;
  if (r->len < r->cap) r->len++;
}

/* Downsampling: fold tick point p (later in time) into accumulator a. */
static void point_fold(hpoint_t *a, const hpoint_t *p) {
  a->seq = p->seq;
  a->t_ms = p->t_ms;
  a->live = p->live;
  a->rss_kib = p->rss_kib;
  if (p->peak_live > a->peak_live) a->peak_live = p->peak_live;
  if (p->peak_rss_kib > a->peak_rss_kib) a->peak_rss_kib = p->peak_rss_kib;
  if (p->frag_pct > a->frag_pct) a->frag_pct = p->frag_pct;
  if (p->pressure_pct > a->pressure_pct) a->pressure_pct = p->pressure_pct;
  a->alloc_bytes += p->alloc_bytes;
  a->free_bytes += p->free_bytes;
  a->alloc_ops += p->alloc_ops;
  a->free_ops += p->free_ops;
  a->dt_ms += p->dt_ms;
  a->gc_cycles += p->gc_cycles;
  a->gc_pause_ms += p->gc_pause_ms;
}

/* A cumulative counter's growth; a total that went backwards restarted
 * (forked child), so everything it holds is new. */
static uint64_t delta_u64(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

static uint32_t kib32(uint64_t bytes) {
  uint64_t k = (bytes + 1023) / 1024;
  return k > UINT32_MAX ? UINT32_MAX : (uint32_t)k;
}

static float clamp_pct(double v) {
  if (!(v > 0)) return 0; /* also NaN */
  return v > 1e6 ? 1e6f : (float)v;
}

static void tick_point(hpoint_t *p, const vkm_tick_t *t, const vkm_os_t *os, const vkm_allocstats_t *a) {
  memset(p, 0, sizeof *p);
  p->seq = t->seq;
  p->t_ms = t->unix_ms;
  double dt_ms = t->dt_s * 1000.0;
  p->dt_ms = dt_ms > 0 ? (dt_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)llround(dt_ms)) : 0;

  p->alloc_bytes = delta_u64(t->c.alloc_usable, prev.alloc_usable);
  p->free_bytes = delta_u64(t->c.free_usable, prev.free_usable);
  p->alloc_ops = delta_u64(t->c.alloc_count, prev.alloc_count);
  p->free_ops = delta_u64(t->c.free_count, prev.free_count);
  prev.alloc_usable = t->c.alloc_usable;
  prev.free_usable = t->c.free_usable;
  prev.alloc_count = t->c.alloc_count;
  prev.free_count = t->c.free_count;

  /* The interval's maximum of a level is known only through the all-time
   * high-water: when it rose during this tick, the new high-water was
   * reached inside this tick; otherwise the level now is the best bound. */
  p->live = t->live_bytes;
  p->peak_live = t->live_bytes;
  if (t->peak_live_bytes > prev.peak_live) {
    if (t->peak_live_bytes > p->peak_live) p->peak_live = t->peak_live_bytes;
    prev.peak_live = t->peak_live_bytes;
  }

  uint64_t rss = os ? os->rss : t->rss_bytes;
  uint64_t hwm = os ? os->peak_rss : t->peak_rss_bytes;
  uint64_t peak_rss = rss;
  if (hwm > prev.peak_rss) {
    if (hwm > peak_rss) peak_rss = hwm;
    prev.peak_rss = hwm;
  }
  p->rss_kib = kib32(rss);
  p->peak_rss_kib = kib32(peak_rss);

  uint64_t cycles = t->gc_cycles;
  uint64_t dc = delta_u64(cycles, prev.gc_cycles);
  p->gc_cycles = dc > UINT32_MAX ? UINT32_MAX : (uint32_t)dc;
  prev.gc_cycles = cycles;
  double ms = t->gc_pause_ms_total;
  p->gc_pause_ms = (float)(ms >= prev.gc_pause_ms ? ms - prev.gc_pause_ms : ms);
  prev.gc_pause_ms = ms;

  p->frag_pct = (a && a->held) ? clamp_pct(a->frag_pct) : 0;
  p->pressure_pct = clamp_pct(t->pressure_pct);
}

void vkm_history_push(const vkm_tick_t *t, const vkm_os_t *os, const vkm_allocstats_t *a) {
  if (!storage || !t) return;
  hpoint_t p;
  tick_point(&p, t, os, a);
  spoint_t sp;
  int64_t live[VKM_SITE_HIST_TOP];
  unsigned n = vkm_sites_top_live(sp.idx, live, VKM_SITE_HIST_TOP);
  for (unsigned i = 0; i < VKM_SITE_HIST_TOP; i++) {
    if (i >= n) sp.idx[i] = UINT32_MAX;
    sp.live[i] = i < n ? (float)live[i] : 0;
  }
  ring_put(&rings[RING_TICK], &p, &sp);
  for (int i = RING_TICK + 1; i < RING_COUNT; i++) {
    ring_t *r = &rings[i];
    /* A tick covers (t - dt, t]: it belongs to bucket k when
     * (k-1)*step < t <= k*step. */
    uint64_t bucket = (t->t_ns + r->step_ns - 1) / r->step_ns;
    if (r->acc_open && bucket != r->acc_bucket) {
      ring_put(r, &r->acc, &r->sacc);
      r->acc_open = 0;
    }
    if (!r->acc_open) {
      r->acc = p;
      r->acc_bucket = bucket;
      r->acc_open = 1;
    } else {
      point_fold(&r->acc, &p);
    }
    r->sacc = sp; /* a level: the last tick's */
  }
}

/* ---------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------- */

/* Stored floats print their binary noise (0.28292933106...): show what was
 * measured, to a thousandth. */
static double milli(float v) { return round((double)v * 1000.0) / 1000.0; }

static cJSON *point_json(cJSON *arr, const hpoint_t *p, int partial) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  double dt_s = p->dt_ms / 1000.0;
  cJSON_AddNumberToObject(o, "seq", (double)p->seq);
  cJSON_AddNumberToObject(o, "t_ms", (double)p->t_ms);
  cJSON_AddNumberToObject(o, "live_bytes", (double)p->live);
  cJSON_AddNumberToObject(o, "peak_live_bytes", (double)p->peak_live);
  cJSON_AddNumberToObject(o, "rss", (double)p->rss_kib * 1024.0);
  cJSON_AddNumberToObject(o, "peak_rss", (double)p->peak_rss_kib * 1024.0);
  cJSON_AddNumberToObject(o, "alloc_bytes", (double)p->alloc_bytes);
  cJSON_AddNumberToObject(o, "free_bytes", (double)p->free_bytes);
  cJSON_AddNumberToObject(o, "alloc_ops", (double)p->alloc_ops);
  cJSON_AddNumberToObject(o, "free_ops", (double)p->free_ops);
  cJSON_AddNumberToObject(o, "alloc_bps", dt_s > 0 ? round((double)p->alloc_bytes / dt_s) : 0);
  cJSON_AddNumberToObject(o, "free_bps", dt_s > 0 ? round((double)p->free_bytes / dt_s) : 0);
  cJSON_AddNumberToObject(o, "gc_cycles", (double)p->gc_cycles);
  cJSON_AddNumberToObject(o, "gc_pause_ms", milli(p->gc_pause_ms));
  cJSON_AddNumberToObject(o, "frag_pct", milli(p->frag_pct));
  cJSON_AddNumberToObject(o, "pressure_pct", milli(p->pressure_pct));
  if (partial) cJSON_AddTrueToObject(o, "partial");
  cJSON_AddItemToArray(arr, o);
  return o;
}

/* Per-site history of a whole answer: "sites" lists each site that was in
 * some point's top (at most SITE_LIST of them), and each point gets
 * "site_live": [i, bytes, i, bytes, ...] with i an index into that list. */
#define SITE_LIST 256
static void sites_json(cJSON *obj, cJSON *po, const ring_t *r, uint32_t closed) {
  uint32_t list[SITE_LIST], nlist = 0;
  uint32_t hash[1024];
  memset(hash, 0xff, sizeof hash);
  cJSON *arr = cJSON_AddArrayToObject(obj, "sites");
  if (!arr) return;
  for (uint32_t k = 0; po && k <= closed; k++, po = po->next) {
    const spoint_t *sp = k < closed ? &r->sp[(r->head + r->cap - closed + k) % r->cap] : &r->sacc;
    cJSON *sl = cJSON_AddArrayToObject(po, "site_live");
    for (unsigned i = 0; sl && i < VKM_SITE_HIST_TOP && sp->idx[i] != UINT32_MAX; i++) {
      uint32_t idx = sp->idx[i], h = (idx * 2654435761u) & 1023;
      while (hash[h] != UINT32_MAX && list[hash[h]] != idx) h = (h + 1) & 1023;
      if (hash[h] == UINT32_MAX) {
        if (nlist == SITE_LIST) continue; /* past the list: the viewer's "other" */
        list[nlist] = idx;
        hash[h] = nlist++;
        cJSON *d = cJSON_CreateObject();
        vkm_sites_describe(idx, d);
        cJSON_AddItemToArray(arr, d);
      }
      cJSON_AddItemToArray(sl, cJSON_CreateNumber(hash[h]));
      cJSON_AddItemToArray(sl, cJSON_CreateNumber(round((double)sp->live[i])));
    }
  }
}

/* `valkmem view`: the history saved in the file (a report keeps 1m and 10h,
 * an export every range). A range the file lacks falls back to the finest
 * one it has, so the viewer always gets the saved view. */
static cJSON *view_history(const cJSON *doc, const char *range) {
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(doc, "history");
  if (!cJSON_IsObject(h)) return cJSON_CreateObject();
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(h, range);
  static const char *order[] = {"1m", "5m", "1h", "10h"};
  for (size_t i = 0; !r && i < 4; i++) r = cJSON_GetObjectItemCaseSensitive(h, order[i]);
  if (cJSON_IsObject(r)) return cJSON_Duplicate(r, 1);
  cJSON *obj = cJSON_CreateObject();
  cJSON_AddStringToObject(obj, "range", range);
  cJSON_AddItemToObject(obj, "points", cJSON_IsArray(r) ? cJSON_Duplicate(r, 1) : cJSON_CreateArray());
  return obj;
}

cJSON *vkm_history_json(const char *range, uint64_t since_seq) {
  const range_t *rg = NULL;
  for (size_t i = 0; range && i < sizeof ranges / sizeof ranges[0]; i++)
    if (strcmp(range, ranges[i].name) == 0) rg = &ranges[i];
  if (!rg) return NULL;
  const ring_t *r = &rings[rg->ring];
  uint32_t step_ms = r->step_ns ? (uint32_t)(r->step_ns / 1000000u)
                                : (vkm_config.tick_ms ? vkm_config.tick_ms : 100);
  cJSON *obj = cJSON_CreateObject();
  if (!obj) return NULL;
  cJSON_AddStringToObject(obj, "range", rg->name);
  cJSON_AddNumberToObject(obj, "step_ms", step_ms);
  cJSON *arr = cJSON_AddArrayToObject(obj, "points");
  if (!arr || !storage) return obj;

  /* The open bucket counts as the newest point of a coarse range, so a
   * short run and the newest 10 s still show; it is marked "partial". */
  uint32_t want = rg->points, closed = r->len;
  if (r->acc_open && want > 0) want--;
  if (closed > want) closed = want;
  for (uint32_t i = 0; i < closed; i++) {
    const hpoint_t *p = &r->pts[(r->head + r->cap - closed + i) % r->cap];
    if (p->seq > since_seq || since_seq == 0) point_json(arr, p, 0);
  }
  if (r->acc_open && (r->acc.seq > since_seq || since_seq == 0)) point_json(arr, &r->acc, 1);
  /* A whole range (since_seq 0) also carries the per-site history: the
   * points just emitted, in the same order (no allocation of our own). */
  if (since_seq == 0 && r->sp) sites_json(obj, arr->child, r, closed);
  return obj;
}

cJSON *vkm_history_from_doc(const cJSON *doc, const char *range) {
  for (size_t i = 0; range && i < sizeof ranges / sizeof ranges[0]; i++)
    if (strcmp(range, ranges[i].name) == 0) return view_history(doc, ranges[i].name);
  return NULL;
}
