/* sites.c - call sites: stacks interned by hash, estimated allocated and
 * live bytes per site, object lifetimes by epoch, and leak suspects.
 *
 * Agent thread only (or the exit path after the agent stopped): plain,
 * unlocked state, memory from vkm_malloc.
 *
 * Weights. In exact mode (sample_bytes == 1, or sampling off) an event
 * stands for exactly its own size and one object. Otherwise the sampler
 * picks an allocation of `size` bytes with probability p = 1 - exp(-size /
 * mean), so it stands for size / p bytes and 1 / p objects (unbiased). The
 * size is the requested size (event field a): that is what the program
 * asked for and what the accuracy tests know as truth. Weights are kept in
 * integers (bytes, and objects in 1/65536 units) computed from the size
 * alone, so a free subtracts exactly what its alloc added.
 *
 * Epochs. Object age is counted in GC cycles once the runtime API reports
 * any (vkm_sites_tick's gc_cycles > 0); before that, in 1 s wall-clock
 * epochs. One second keeps "died in the first epoch" meaning "short-lived"
 * for request/frame style work, and gives a leak window of tens of points
 * within the 60 s detection target. Objects born before the switch keep
 * their age in the old unit plus GC cycles after it.
 *
 * Leak suspects. At every epoch boundary each site records its live bytes,
 * at three time scales (every boundary, every 8th, every 64th). A site is
 * flagged when, at any scale, over a window of its last W points (>= NMIN):
 *   - the least-squares slope of live bytes over time is positive and the
 *     growth it implies over the window is at least G_min (three sample
 *     means in sampled mode, so one or two lucky samples never flag);
 *   - the rise is consistent: Kendall's tau of live bytes against time is
 *     >= 0.6 (a bounded cache and churn fluctuate around a level: tau ~ 0);
 *   - the growth is made of old objects: live bytes of objects at least
 *     half the window old make up >= 25 % of the growth. A leak keeps
 *     everything it allocated, so objects from the first half of the window
 *     are all still there; a cache or a queue replaces its objects, so
 *     little survives half a window.
 * A flagged site stays flagged until its live bytes fall below half of
 * their peak since (it was a slow cache after all). Its growth rate is then
 * measured from the start of the flagging window to now, so it converges
 * as the leak runs on.
 */
#include "agent.h"
#include "symbols.h"
#include "debug_pprof.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* uthash on valkmem's own memory, and never fatal: out of memory in the
 * agent must not end the host program. A failed add leaves the item out of
 * the table and sets uthash_oom. */
static int uthash_oom;
#define uthash_malloc(sz) vkm_malloc(sz)
#define uthash_free(ptr, sz) vkm_free(ptr)
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (uthash_oom = 1)
#include <uthash.h>

#define OBJ_FP 65536       /* object counts are fixed point, 1/OBJ_FP units */
#define AGE_RING 24        /* live weight per birth epoch for ages 0..23; older summed */
#define HIST 32            /* boundaries kept per site and level for the leak window */
#define LEVELS 3           /* leak windows at 1, 8 and 64 epochs per point */
#define TIME_EPOCH_NS 1000000000ull
#define PENDING_TTL_TICKS 100 /* frees seen before their alloc wait this long (10 s at 100 ms) */
#define W_TIME 30
#define NMIN_TIME 20
#define W_GC 10
#define NMIN_GC 4
#define TAU_MIN 0.6
#define OLD_SHARE 0.25

/* ---------------------------------------------------------------------------
 * Sites
 * ------------------------------------------------------------------------- */

typedef struct site_s {
  uint64_t key;      /* hash of the raw frames: uthash key */
  UT_hash_handle hh; /* by key */
  uint64_t sid;      /* stable id: hash of (module, offset) of the shown frames; 0 until symbolised */
  UT_hash_handle hs; /* by sid */
  uint32_t idx;
  uint16_t nframes;
  uintptr_t *frames; /* raw return addresses, leaf first */

  int64_t alloc_bytes, alloc_usable, alloc_objs;  /* objs in OBJ_FP units */
  int64_t live_bytes, live_usable, live_objs;
  double alloc_var, live_var;                     /* variance of the byte estimates (bytes^2) */
  int64_t freed_objs[4];                          /* lifetime buckets, OBJ_FP units */
  int64_t age_bytes[AGE_RING], age_objs[AGE_RING]; /* indexed by birth epoch % AGE_RING */
  int64_t older_bytes, older_objs;                /* born AGE_RING or more epochs ago */

  int64_t h_live[LEVELS][HIST]; /* live bytes at level-L boundary b, at [L][b % HIST] */
  uint32_t h_first[LEVELS];     /* the first boundary of each level this site saw */

  bool leak;
  double leak_rate;
  double leak_since_t;
  uint32_t leak_epochs;
  uint32_t leak_since_epoch;
  int64_t leak_level;  /* peak live bytes since flagged */
  int64_t leak_anchor; /* live bytes at leak_since_t */

  uint16_t nshow; /* frames after trimming allocator frames */
  vkm_sym_t *show; /* NULL until symbolised */
  char id[17];
} site_t;

static site_t *sites_by_key, *sites_by_sid;
static site_t **site_arr;
static uint32_t nsites, capsites;

/* ---------------------------------------------------------------------------
 * Sample table: open addressing on the sample id, linear probing with
 * backward-shift deletion (no tombstones). Two instances: live samples, and
 * frees that arrived before their alloc (cross-thread drain order).
 * ------------------------------------------------------------------------- */

#define SLOT_EMPTY UINT32_MAX

typedef struct rec_s {
  uint64_t id;
  uint32_t site;  /* SLOT_EMPTY: free slot */
  uint32_t born;  /* epoch; for pending frees: the tick it arrived */
  uint64_t size;  /* requested */
  uint64_t usable;
} rec_t;

typedef struct table_s {
  rec_t *r;
  size_t cap, n;
} table_t;

static table_t live_tab, pending_tab;

static size_t id_hash(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return (size_t)x;
}

static rec_t *tab_find(table_t *t, uint64_t id) {
  if (!t->cap) return NULL;
  size_t m = t->cap - 1, i = id_hash(id) & m;
  while (t->r[i].site != SLOT_EMPTY) {
    if (t->r[i].id == id) return &t->r[i];
    i = (i + 1) & m;
  }
  return NULL;
}

static void tab_put_raw(table_t *t, const rec_t *rec) {
  size_t m = t->cap - 1, i = id_hash(rec->id) & m;
  while (t->r[i].site != SLOT_EMPTY) i = (i + 1) & m;
  t->r[i] = *rec;
  t->n++;
}

static int tab_put(table_t *t, const rec_t *rec) {
  if ((t->n + 1) * 4 > t->cap * 3) { /* load <= 3/4 */
    size_t nc = t->cap ? t->cap * 2 : 1024;
    rec_t *nr = vkm_malloc(nc * sizeof *nr), *old = t->r;
    if (!nr) return -1;
    memset(nr, 0xff, nc * sizeof *nr);
    size_t oc = t->cap;
    t->r = nr;
    t->cap = nc;
    t->n = 0;
    for (size_t i = 0; i < oc; i++)
      if (old[i].site != SLOT_EMPTY) tab_put_raw(t, &old[i]);
    vkm_free(old);
  }
  tab_put_raw(t, rec);
  return 0;
}

static void tab_del(table_t *t, rec_t *slot) {
  size_t m = t->cap - 1, i = (size_t)(slot - t->r), j = i;
  for (;;) {
    j = (j + 1) & m;
    if (t->r[j].site == SLOT_EMPTY) break;
    size_t k = id_hash(t->r[j].id) & m; /* home of the entry at j */
    /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
    if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
      t->r[i] = t->r[j];
      i = j;
    }
  }
  t->r[i].site = SLOT_EMPTY;
  t->n--;
}

/* ---------------------------------------------------------------------------
 * State: epochs and totals
 * ------------------------------------------------------------------------- */

static uint32_t epoch;          /* current epoch number */
static bool gc_mode;
static uint64_t last_gc;
static uint64_t epoch_start_ns; /* time epochs: start of the current one */
static uint64_t first_ns;       /* first tick: time origin for the leak window */
static bool ticked;
static uint64_t tick_no;
static double now_s;

static int64_t g_old_hist[HIST]; /* live objects aged 21+ at each boundary (OBJ_FP) */
/* Epoch boundaries, shared by every site. Level 0 takes a point at every
 * boundary, level 1 at every 8th, level 2 at every 64th: the same test over
 * 30 points then spans 30 s, 4 min and 32 min (in time epochs), so a leak
 * too slow to show against sampling noise in 30 s still shows in 32 min.
 * Level-L boundary b is at [L][b % HIST]. */
static const unsigned level_every[LEVELS] = {1, 8, 64};
static double lb_t[LEVELS][HIST];
static uint32_t lb_epoch[LEVELS][HIST];
static uint32_t lb_n[LEVELS];     /* points so far */
static uint32_t lb_floor[LEVELS]; /* first point in the current epoch unit (time, then gc) */
static uint64_t boundaries;       /* since start or the switch to gc epochs */

static bool exact_mode(void) { return vkm_config.exact || vkm_config.sample_bytes <= 1; }

/* The weights of one sample depend only on its size (the interval is fixed
 * at start-up), and programs sample the same few sizes again and again: a
 * small direct-mapped memo saves the expm1 and two llrounds, a large part
 * of the agent's cost per event. */
#define WEIGH_MEMO 256
static struct {
  uint64_t size; /* 0: empty (size 0 is answered before the memo) */
  int64_t bytes, objs;
  double var;
} weigh_memo[WEIGH_MEMO];

/* var: what the sample adds to the variance of its site's byte estimate,
 * w^2 (1 - p) with w = size / p (Horvitz-Thompson under Poisson sampling;
 * 0 in exact mode). */
static void weigh(uint64_t size, int64_t *bytes, int64_t *objs, double *var) {
  *var = 0;
  if (exact_mode()) {
    *bytes = (int64_t)size;
    *objs = OBJ_FP;
    return;
  }
  if (size == 0) { /* never picked by a byte sampler; count it as itself */
    *bytes = 0;
    *objs = OBJ_FP;
    return;
  }
  static uint64_t memo_interval; /* the memo's interval (unit tests change it) */
  if (memo_interval != vkm_config.sample_bytes) {
    memset(weigh_memo, 0, sizeof weigh_memo);
    memo_interval = vkm_config.sample_bytes;
  }
  unsigned slot = (unsigned)((size ^ (size >> 9)) % WEIGH_MEMO);
  if (weigh_memo[slot].size != size) {
    double p = -expm1(-(double)size / (double)vkm_config.sample_bytes);
    weigh_memo[slot].size = size;
    weigh_memo[slot].bytes = llround((double)size / p);
    weigh_memo[slot].objs = llround((double)OBJ_FP / p);
    double w = (double)size / p;
    weigh_memo[slot].var = w * w * (1.0 - p);
  }
  *bytes = weigh_memo[slot].bytes;
  *objs = weigh_memo[slot].objs;
  *var = weigh_memo[slot].var;
}

static int age_bucket(uint32_t age) { return age == 0 ? 0 : age <= 5 ? 1 : age <= 20 ? 2 : 3; }

/* ---------------------------------------------------------------------------
 * Interning
 * ------------------------------------------------------------------------- */

static uint64_t frames_hash(const uintptr_t *f, unsigned n) {
  uint64_t h = 0xcbf29ce484222325ull ^ n;
  for (unsigned i = 0; i < n; i++) {
    h ^= (uint64_t)f[i];
    h *= 0x100000001b3ull;
    h ^= h >> 29;
  }
  return h;
}

static site_t *site_intern(const uintptr_t *f, unsigned n) {
  uint64_t key = frames_hash(f, n);
  for (;;) { /* on a 64-bit collision between different stacks, probe the next key */
    site_t *s;
    HASH_FIND(hh, sites_by_key, &key, sizeof key, s);
    if (!s) break;
    if (s->nframes == n && memcmp(s->frames, f, n * sizeof *f) == 0) return s;
    key++;
  }
  if (nsites == capsites) {
    uint32_t nc = capsites ? capsites * 2 : 256;
    site_t **na = vkm_realloc(site_arr, nc * sizeof *na);
    if (!na) return NULL;
    site_arr = na;
    capsites = nc;
  }
  site_t *s = vkm_calloc(1, sizeof *s);
  if (!s) return NULL;
  s->frames = vkm_malloc((n ? n : 1) * sizeof *f);
  if (!s->frames) {
    vkm_free(s);
    return NULL;
  }
  memcpy(s->frames, f, n * sizeof *f);
  s->nframes = (uint16_t)n;
  s->key = key;
  for (unsigned l = 0; l < LEVELS; l++) s->h_first[l] = lb_n[l];
  uthash_oom = 0;
  HASH_ADD(hh, sites_by_key, key, sizeof s->key, s);
  if (uthash_oom) {
    vkm_free(s->frames);
    vkm_free(s);
    return NULL;
  }
  s->idx = nsites;
  site_arr[nsites++] = s;
  return s;
}

/* ---------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------- */

/* Usable bytes scale with the same weight as requested bytes. */
static int64_t usable_weight(const rec_t *r, int64_t b) {
  if (exact_mode() || !r->size) return (int64_t)r->usable;
  return (int64_t)((double)b * ((double)r->usable / (double)r->size));
}

/* Sums over every site, for calibration (see vkm_sites_json). */
static struct {
  int64_t alloc_bytes, alloc_usable, live_bytes, live_usable;
  double alloc_var, live_var;
} g_sum;

static void account_alloc(site_t *s, const rec_t *r, int64_t b, int64_t o, double v) {
  int64_t u = usable_weight(r, b);
  s->alloc_bytes += b;
  s->alloc_usable += u;
  s->alloc_objs += o;
  s->alloc_var += v;
  g_sum.alloc_bytes += b;
  g_sum.alloc_usable += u;
  g_sum.alloc_var += v;
}

static void live_add(site_t *s, const rec_t *r, int64_t sign, int64_t b, int64_t o, double v) {
  int64_t u = usable_weight(r, b);
  s->live_bytes += sign * b;
  s->live_usable += sign * u;
  s->live_objs += sign * o;
  s->live_var += (double)sign * v;
  g_sum.live_bytes += sign * b;
  g_sum.live_usable += sign * u;
  g_sum.live_var += (double)sign * v;
  uint32_t age = epoch - r->born;
  if (age >= AGE_RING) {
    s->older_bytes += sign * b;
    s->older_objs += sign * o;
  } else {
    s->age_bytes[r->born % AGE_RING] += sign * b;
    s->age_objs[r->born % AGE_RING] += sign * o;
  }
}

static void on_alloc(const vkm_event_t *ev, const void *extra) {
  unsigned n = ev->nframes;
  if (vkm_config.max_frames && n > vkm_config.max_frames) n = vkm_config.max_frames;
  if ((size_t)n * sizeof(uintptr_t) > ev->extra_len) n = ev->extra_len / sizeof(uintptr_t);
  uintptr_t fr[256];
  if (n > 256) n = 256;
  if (n) memcpy(fr, extra, n * sizeof *fr); /* extra is only 8-byte aligned by contract */
  site_t *s = site_intern(fr, n);
  if (!s) return;
  rec_t r = {.id = ev->id, .site = s->idx, .born = epoch, .size = ev->a, .usable = ev->b};
  int64_t b, o;
  double v;
  weigh(r.size, &b, &o, &v);
  account_alloc(s, &r, b, o, v);
  vkm_heapprof_alloc(s->idx, r.size);
  rec_t *p = tab_find(&pending_tab, ev->id);
  if (p) { /* its free was drained first (another thread's ring): born and died now */
    tab_del(&pending_tab, p);
    s->freed_objs[0] += o;
    vkm_heapprof_free(s->idx, r.size);
    return;
  }
  live_add(s, &r, +1, b, o, v);
  if (tab_put(&live_tab, &r) != 0) { /* out of memory: cannot track its free */
    live_add(s, &r, -1, b, o, v);
    vkm_heapprof_free(s->idx, r.size);
  }
}

static void on_free(const vkm_event_t *ev) {
  rec_t *r = tab_find(&live_tab, ev->id);
  if (!r) {
    rec_t pr = {.id = ev->id, .site = 0, .born = (uint32_t)tick_no};
    tab_put(&pending_tab, &pr);
    return;
  }
  site_t *s = site_arr[r->site];
  int64_t b, o;
  double v;
  weigh(r->size, &b, &o, &v);
  s->freed_objs[age_bucket(epoch - r->born)] += o;
  live_add(s, r, -1, b, o, v);
  vkm_heapprof_free(r->site, r->size);
  tab_del(&live_tab, r);
}

void vkm_sites_on_event(const vkm_event_t *ev, const void *extra) {
  if (ev->type == VKM_EV_ALLOC) on_alloc(ev, extra);
  else if (ev->type == VKM_EV_FREE) on_free(ev);
}

/* ---------------------------------------------------------------------------
 * Trends
 * ------------------------------------------------------------------------- */

typedef struct trend_s {
  double slope; /* per second */
  double growth; /* slope x time span */
  double tau;    /* Kendall's tau-a against time */
  double span_s;
} trend_t;

/* Over the last n points of a ring of HIST values (newest at (total-1)%HIST). */
static trend_t trend(const int64_t *v, const double *t, uint32_t total, unsigned n) {
  trend_t tr = {0, 0, 0, 0};
  double x[HIST], y[HIST];
  for (unsigned i = 0; i < n; i++) {
    unsigned k = (total - n + i) % HIST;
    x[i] = t[k];
    y[i] = (double)v[k];
  }
  double mx = 0, my = 0;
  for (unsigned i = 0; i < n; i++) mx += x[i], my += y[i];
  mx /= n;
  my /= n;
  double sxy = 0, sxx = 0;
  for (unsigned i = 0; i < n; i++) sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx);
  if (sxx <= 0) return tr;
  tr.slope = sxy / sxx;
  tr.span_s = x[n - 1] - x[0];
  tr.growth = tr.slope * tr.span_s;
  long s = 0;
  for (unsigned i = 0; i < n; i++)
    for (unsigned j = i + 1; j < n; j++) s += (y[j] > y[i]) - (y[j] < y[i]);
  tr.tau = (double)s / ((double)n * (n - 1) / 2);
  return tr;
}

/* Live bytes of the site's objects at least `age` epochs old. */
static int64_t old_bytes(const site_t *s, uint32_t age) {
  int64_t sum = s->older_bytes;
  for (uint32_t a = age; a < AGE_RING && a <= epoch; a++) sum += s->age_bytes[(epoch - a) % AGE_RING];
  return sum;
}

/* The leak test on one level's window, after its newest point was
 * recorded. Flags the site and returns true when it passes. */
static bool leak_test(site_t *s, unsigned l) {
  unsigned w = gc_mode ? W_GC : W_TIME, nmin = gc_mode ? NMIN_GC : NMIN_TIME;
  uint32_t since = s->h_first[l] > lb_floor[l] ? s->h_first[l] : lb_floor[l];
  unsigned n = lb_n[l] - since < w ? lb_n[l] - since : w;
  if (n < nmin || s->live_bytes <= 0) return false;
  unsigned first = (lb_n[l] - n) % HIST;
  double gmin = exact_mode() ? 16384.0 : 3.0 * (double)vkm_config.sample_bytes;
  if ((double)(s->live_bytes - s->h_live[l][first]) < gmin / 2) return false; /* cheap pre-check */
  trend_t tr = trend(s->h_live[l], lb_t[l], lb_n[l], n);
  if (tr.slope <= 0 || tr.growth < gmin || tr.tau < TAU_MIN) return false;
  uint32_t span = epoch - lb_epoch[l][first];
  /* An age of k epochs means older than k - 1 whole epochs: ask one more. */
  uint32_t half = (span + 1) / 2 + 1;
  if ((double)old_bytes(s, half) < OLD_SHARE * tr.growth) return false;
  s->leak = true;
  s->leak_rate = tr.slope;
  s->leak_since_t = lb_t[l][first];
  s->leak_since_epoch = lb_epoch[l][first];
  s->leak_anchor = s->h_live[l][first];
  s->leak_epochs = span;
  s->leak_level = s->live_bytes;
  return true;
}

/* Leak analysis of one site at a boundary; `levels` has bit l set when
 * level l took a point. */
static void site_boundary(site_t *s, unsigned levels) {
  if (s->leak) {
    if (s->live_bytes > s->leak_level) s->leak_level = s->live_bytes;
    if (s->live_bytes * 2 >= s->leak_level) {
      /* The rate over everything seen since the window that flagged it: its
       * error shrinks as the leak runs, where a fixed window's would not. */
      if (now_s > s->leak_since_t + 1e-9 && s->live_bytes > s->leak_anchor)
        s->leak_rate = (double)(s->live_bytes - s->leak_anchor) / (now_s - s->leak_since_t);
      s->leak_epochs = epoch - s->leak_since_epoch;
      return;
    }
    s->leak = false; /* half of its peak was given back: a slow cache after all */
  }
  for (unsigned l = 0; l < LEVELS; l++)
    if ((levels >> l & 1) && leak_test(s, l)) return;
}

/* Moves the birth-epoch slot that is about to be reused into `older`. */
static void site_roll(site_t *s) {
  unsigned k = (epoch + 1) % AGE_RING;
  s->older_bytes += s->age_bytes[k];
  s->older_objs += s->age_objs[k];
  s->age_bytes[k] = s->age_objs[k] = 0;
}

static void global_boundary(void) {
  int64_t old = 0;
  for (uint32_t i = 0; i < nsites; i++) {
    site_t *s = site_arr[i];
    old += s->older_objs;
    for (uint32_t a = 21; a < AGE_RING && a <= epoch; a++) old += s->age_objs[(epoch - a) % AGE_RING];
  }
  g_old_hist[lb_n[0] % HIST] = old;
}

static void advance(unsigned steps) {
  for (unsigned i = 0; i < steps && i < AGE_RING; i++) {
    for (uint32_t j = 0; j < nsites; j++) site_roll(site_arr[j]);
    epoch++;
  }
  if (steps > AGE_RING) epoch += steps - AGE_RING;
  unsigned levels = 0;
  for (unsigned l = 0; l < LEVELS; l++) {
    if (boundaries % level_every[l]) continue;
    levels |= 1u << l;
    unsigned k = lb_n[l] % HIST;
    lb_t[l][k] = now_s;
    lb_epoch[l][k] = epoch;
    for (uint32_t j = 0; j < nsites; j++) site_arr[j]->h_live[l][k] = site_arr[j]->live_bytes;
  }
  global_boundary();
  for (unsigned l = 0; l < LEVELS; l++) lb_n[l] += levels >> l & 1;
  boundaries++;
  for (uint32_t j = 0; j < nsites; j++) site_boundary(site_arr[j], levels);
}

static void purge_pending(void) {
  if (!pending_tab.n) return;
  for (size_t i = 0; i < pending_tab.cap;) {
    rec_t *r = &pending_tab.r[i];
    if (r->site != SLOT_EMPTY && tick_no - r->born > PENDING_TTL_TICKS) tab_del(&pending_tab, r);
    else i++; /* after a delete, slot i holds a shifted entry: look again */
  }
}

/* The exact totals of the newest tick, for calibration. */
static struct {
  bool known;
  int64_t live_usable;   /* live.bytes */
  uint64_t alloc_bytes;  /* totals.alloc_bytes (requested) */
} g_exact;

void vkm_sites_tick(const vkm_tick_t *t) {
  if (t) {
    g_exact.known = true;
    g_exact.live_usable = t->live_bytes;
    g_exact.alloc_bytes = t->c.alloc_bytes;
  }
  uint64_t gc_cycles = t ? t->gc_cycles : 0;
  uint64_t now = t ? t->t_ns : vkm_now_ns();
  if (!ticked) {
    ticked = true;
    first_ns = epoch_start_ns = now;
  }
  tick_no++;
  now_s = (double)(now - first_ns) / 1e9;
  unsigned steps = 0;
  if (gc_cycles > 0) {
    if (!gc_mode) {
      gc_mode = true;
      steps = 1;
      for (unsigned l = 0; l < LEVELS; l++) lb_floor[l] = lb_n[l]; /* new unit: windows restart here */
      boundaries = 0;
    } else if (gc_cycles > last_gc) {
      steps = (unsigned)(gc_cycles - last_gc > 1000 ? 1000 : gc_cycles - last_gc);
    }
    last_gc = gc_cycles;
  } else {
    while (now - epoch_start_ns >= TIME_EPOCH_NS && steps < 1000) {
      epoch_start_ns += TIME_EPOCH_NS;
      steps++;
    }
    if (now - epoch_start_ns >= TIME_EPOCH_NS) epoch_start_ns = now; /* long stall: resync */
  }
  if (steps) advance(steps);
  purge_pending();
}

void vkm_sites_init(void) {
  HASH_CLEAR(hh, sites_by_key);
  HASH_CLEAR(hs, sites_by_sid);
  for (uint32_t i = 0; i < nsites; i++) {
    vkm_free(site_arr[i]->frames);
    vkm_free(site_arr[i]->show);
    vkm_free(site_arr[i]);
  }
  vkm_free(site_arr);
  site_arr = NULL;
  nsites = capsites = 0;
  vkm_free(live_tab.r);
  vkm_free(pending_tab.r);
  memset(&live_tab, 0, sizeof live_tab);
  memset(&pending_tab, 0, sizeof pending_tab);
  vkm_heapprof_reset(); /* its buckets name sites by index */
  epoch = 0;
  gc_mode = false;
  last_gc = 0;
  ticked = false;
  tick_no = 0;
  now_s = 0;
  memset(lb_n, 0, sizeof lb_n);
  memset(lb_floor, 0, sizeof lb_floor);
  boundaries = 0;
  memset(&g_sum, 0, sizeof g_sum);
  memset(&g_exact, 0, sizeof g_exact);
}

/* ---------------------------------------------------------------------------
 * Symbolisation of a site (lazy: only sites that are reported)
 * ------------------------------------------------------------------------- */

static void site_symbolise(site_t *s) {
  if (s->show) return;
  unsigned n = s->nframes;
  vkm_sym_t *v = vkm_malloc((n ? n : 1) * sizeof *v);
  if (!v) return;
  unsigned first = 0;
  for (unsigned i = 0; i < n; i++) {
    /* Return addresses: look up the call instruction, one byte before. */
    vkm_sym_lookup(s->frames[i] - 1, &v[i]);
  }
  while (first < n && v[first].alloc_frame) first++;
  if (first == n) first = 0; /* nothing but allocator frames: show them all */
  memmove(v, v + first, (n - first) * sizeof *v);
  s->nshow = (uint16_t)(n - first);
  s->show = v;
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned i = 0; i < s->nshow; i++) {
    for (const char *c = v[i].module; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    uint64_t off = v[i].module[0] == '?' ? s->frames[first + i] : v[i].offset;
    for (int b = 0; b < 64; b += 8) h = (h ^ ((off >> b) & 0xff)) * 0x100000001b3ull;
  }
  if (!h) h = 1;
  for (;;) { /* two stacks that differ only in trimmed frames must not share an id */
    site_t *o;
    HASH_FIND(hs, sites_by_sid, &h, sizeof h, o);
    if (!o) break;
    h = h * 0x9e3779b97f4a7c15ull + s->key;
  }
  s->sid = h;
  HASH_ADD(hs, sites_by_sid, sid, sizeof s->sid, s); /* out of memory: only the collision check weakens */
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) s->id[i] = hex[(h >> (60 - 4 * i)) & 15];
  s->id[16] = 0;
}

unsigned vkm_sites_frames(uint32_t idx, const vkm_sym_t **syms, const uintptr_t **pcs) {
  if (idx >= nsites) return 0;
  site_t *s = site_arr[idx];
  site_symbolise(s);
  if (!s->show) return 0;
  *syms = s->show;
  *pcs = s->frames + (s->nframes - s->nshow); /* the trimmed frames were the first ones */
  return s->nshow;
}

static const char *frame_function(const vkm_sym_t *f, char *buf, size_t len) {
  if (f->function) return f->function;
  /* Unknown: name it by module and offset, which is what a symbolizer needs. */
  int n = 0;
  const char *m = f->module;
  while (m[n] && (size_t)n + 20 < len) buf[n] = m[n], n++;
  buf[n++] = '+';
  buf[n++] = '0';
  buf[n++] = 'x';
  char tmp[17];
  int k = 0;
  uint64_t off = f->offset;
  do tmp[k++] = "0123456789abcdef"[off & 15], off >>= 4;
  while (off && k < 16);
  while (k) buf[n++] = tmp[--k];
  buf[n] = 0;
  return buf;
}

static const char *site_function(site_t *s, char *buf, size_t len) {
  site_symbolise(s);
  if (!s->show || !s->nshow) return "[unknown]";
  return frame_function(&s->show[0], buf, len);
}

/* ---------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------- */

static double objs_num(int64_t fp) { return (double)llround((double)fp / OBJ_FP); }

/* ---------------------------------------------------------------------------
 * Calibration: a ratio estimator. The counters know two totals exactly:
 * the live heap (usable bytes) and the bytes requested since start. The
 * sites' estimates add up to those only on average; scaling every site by
 * exact total / sum of the estimates makes them add up exactly, and also
 * lowers the variance of a large site's estimate (the part of the noise it
 * shares with the sum cancels). Live estimates are scaled by the ratio of
 * usable bytes (that is the total the counters know), allocated ones by the
 * ratio of requested bytes.
 *
 * A site's calibrated estimate r X (r = T / Y, Y the sum of every site's
 * estimate, X part of it) has, to first order, the standard error
 *   r sqrt((1 - s)^2 V_X + s^2 (V_Y - V_X)),   s = X / Y,
 * with V the Horvitz-Thompson variances the samples add (weigh()).
 *
 * Calibration is skipped (ratio 1, "applied": false) in exact mode (the
 * estimates are the truth), before the first tick, and when the sum and the
 * total disagree by more than sampling and the drain-to-count skew can
 * explain (3 standard errors + 2 %): e.g. a forked
 * child, whose counters start from its parent's while its sites start
 * empty. Raw figures stay in the JSON (*_raw).
 * ------------------------------------------------------------------------- */
typedef struct cal_s {
  bool applied;
  double ratio;   /* exact total / raw sum (1 when not applied) */
  double total;   /* the exact total */
  double est;     /* the raw sum in the total's unit */
  double se;      /* its standard error */
  double req;     /* the raw sum in requested bytes (the unit of the variances) */
  double var;     /* the sum of the sites' variances */
} cal_t;

static cal_t calibration(bool live) {
  cal_t c = {false, 1.0, 0, 0, 0, 0, 0};
  c.est = live ? (double)g_sum.live_usable : (double)g_sum.alloc_bytes;
  c.req = live ? (double)g_sum.live_bytes : (double)g_sum.alloc_bytes;
  c.var = live ? g_sum.live_var : g_sum.alloc_var;
  if (!(c.var > 0)) c.var = 0;
  c.total = live ? (double)g_exact.live_usable : (double)g_exact.alloc_bytes;
  c.se = sqrt(c.var) * (c.req > 0 ? c.est / c.req : 1.0);
  if (exact_mode() || !g_exact.known || c.est <= 0 || c.total <= 0) return c;
  /* Scaling moves every site by the same factor, so a gap that sampling
   * does not explain (a few large blocks drawn unluckily, events not yet
   * drained) would be spread over sites that were right: the demo's leak
   * site, estimated 7.5 MiB raw (7.5 MiB true), showed 10.1 MiB after a
   * 3.8 standard-error gap was scaled away. Past 3 standard errors the raw
   * figures stand. */
  double slack = 3.0 * c.se + 0.02 * c.total;
  if (fabs(c.est - c.total) > slack) return c;
  c.applied = true;
  c.ratio = c.total / c.est;
  return c;
}

/* Standard error of a site's (calibrated) estimate: x its raw estimate in
 * requested bytes, vx its variance. */
static double site_se(double x, double vx, const cal_t *c) {
  if (!(vx > 0)) vx = 0;
  if (!c->applied || c->req <= 0) return sqrt(vx);
  double sh = x / c->req, vz = c->var - vx;
  if (vz < 0) vz = 0;
  return c->ratio * sqrt((1 - sh) * (1 - sh) * vx + sh * sh * vz);
}

static double scaled(int64_t v, double ratio) { return v > 0 ? (double)llround((double)v * ratio) : 0; }

static void calibration_json(cJSON *obj, const cal_t *cl, const cal_t *ca) {
  cJSON *c = cJSON_AddObjectToObject(obj, "calibration");
  const cal_t *k[2] = {cl, ca};
  const char *names[2] = {"live", "alloc"};
  for (int i = 0; i < 2; i++) {
    cJSON *o = cJSON_AddObjectToObject(c, names[i]);
    cJSON_AddBoolToObject(o, "applied", k[i]->applied);
    cJSON_AddNumberToObject(o, "ratio", round(k[i]->ratio * 1e6) / 1e6);
    cJSON_AddNumberToObject(o, "exact", k[i]->total);
    cJSON_AddNumberToObject(o, "estimate", k[i]->est);
    cJSON_AddNumberToObject(o, "estimate_se", round(k[i]->se));
  }
}

static cJSON *site_json(site_t *s, const cal_t *cl, const cal_t *ca) {
  site_symbolise(s);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", s->show ? s->id : "0");
  cJSON *fr = cJSON_AddArrayToObject(o, "frames");
  char buf[300];
  for (unsigned i = 0; s->show && i < s->nshow; i++) {
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "function", frame_function(&s->show[i], buf, sizeof buf));
    cJSON_AddStringToObject(f, "module", s->show[i].module);
    cJSON_AddNumberToObject(f, "offset", (double)s->show[i].offset);
    if (s->show[i].file) {
      cJSON_AddStringToObject(f, "file", s->show[i].file);
      cJSON_AddNumberToObject(f, "line", s->show[i].line);
    }
    cJSON_AddItemToArray(fr, f);
  }
  cJSON_AddNumberToObject(o, "alloc_bytes", scaled(s->alloc_bytes, ca->ratio));
  cJSON_AddNumberToObject(o, "alloc_count", objs_num(s->alloc_objs));
  cJSON_AddNumberToObject(o, "live_bytes", scaled(s->live_bytes, cl->ratio));
  cJSON_AddNumberToObject(o, "live_count", objs_num(s->live_objs > 0 ? s->live_objs : 0));
  cJSON_AddNumberToObject(o, "alloc_usable_bytes", scaled(s->alloc_usable, ca->ratio));
  cJSON_AddNumberToObject(o, "live_usable_bytes", scaled(s->live_usable, cl->ratio));
  cJSON_AddNumberToObject(o, "alloc_bytes_raw", (double)s->alloc_bytes);
  cJSON_AddNumberToObject(o, "live_bytes_raw", (double)(s->live_bytes > 0 ? s->live_bytes : 0));
  cJSON_AddNumberToObject(o, "alloc_err_bytes", round(site_se((double)s->alloc_bytes, s->alloc_var, ca)));
  cJSON_AddNumberToObject(o, "live_err_bytes", round(site_se((double)(s->live_bytes > 0 ? s->live_bytes : 0), s->live_var, cl)));
  if (s->leak) cJSON_AddTrueToObject(o, "leak");
  cJSON *lt = cJSON_AddArrayToObject(o, "lifetimes");
  for (int i = 0; i < 4; i++) cJSON_AddItemToArray(lt, cJSON_CreateNumber(objs_num(s->freed_objs[i])));
  return o;
}

static int by_live(const void *a, const void *b) {
  const site_t *x = *(site_t *const *)a, *y = *(site_t *const *)b;
  if (x->live_bytes != y->live_bytes) return x->live_bytes > y->live_bytes ? -1 : 1;
  if (x->alloc_bytes != y->alloc_bytes) return x->alloc_bytes > y->alloc_bytes ? -1 : 1;
  return x->key < y->key ? -1 : x->key > y->key;
}

static int by_alloc(const void *a, const void *b) {
  const site_t *x = *(site_t *const *)a, *y = *(site_t *const *)b;
  if (x->alloc_bytes != y->alloc_bytes) return x->alloc_bytes > y->alloc_bytes ? -1 : 1;
  if (x->live_bytes != y->live_bytes) return x->live_bytes > y->live_bytes ? -1 : 1;
  return x->key < y->key ? -1 : x->key > y->key;
}

static int by_count(const void *a, const void *b) {
  const site_t *x = *(site_t *const *)a, *y = *(site_t *const *)b;
  if (x->alloc_objs != y->alloc_objs) return x->alloc_objs > y->alloc_objs ? -1 : 1;
  return by_alloc(a, b);
}

static void lifetimes_json(cJSON *obj) {
  cJSON *l = cJSON_AddObjectToObject(obj, "lifetimes");
  cJSON_AddStringToObject(l, "epoch", gc_mode ? "gc" : "time");
  const char *labels[4] = {"first", "1-5", "6-20", "21+"};
  cJSON_AddItemToObject(l, "labels", cJSON_CreateStringArray(labels, 4));
  int64_t freed[4] = {0}, live[4] = {0};
  for (uint32_t i = 0; i < nsites; i++) {
    site_t *s = site_arr[i];
    for (int b = 0; b < 4; b++) freed[b] += s->freed_objs[b];
    live[3] += s->older_objs;
    for (uint32_t a = 0; a < AGE_RING && a <= epoch; a++) live[age_bucket(a)] += s->age_objs[(epoch - a) % AGE_RING];
  }
  cJSON *fa = cJSON_AddArrayToObject(l, "freed"), *la = cJSON_AddArrayToObject(l, "live");
  for (int b = 0; b < 4; b++) {
    cJSON_AddItemToArray(fa, cJSON_CreateNumber(objs_num(freed[b])));
    cJSON_AddItemToArray(la, cJSON_CreateNumber(objs_num(live[b] > 0 ? live[b] : 0)));
  }
  /* The oldest bucket keeps growing: the same trend test as a leak, on the
   * count of live objects aged 21+ epochs. */
  bool growing = false;
  unsigned w = gc_mode ? W_GC : W_TIME, nmin = gc_mode ? NMIN_GC : NMIN_TIME;
  unsigned n = lb_n[0] - lb_floor[0] < w ? lb_n[0] - lb_floor[0] : w;
  if (n >= nmin) {
    trend_t tr = trend(g_old_hist, lb_t[0], lb_n[0], n);
    growing = tr.slope > 0 && tr.tau >= TAU_MIN;
  }
  cJSON_AddBoolToObject(l, "oldest_growing", growing);
}

/* The first n sites under cmp, in order, into out: a bounded insertion
 * sort, so a snapshot with 100k sites costs one comparison for most of them
 * instead of a full sort. top == 0: every site, sorted. */
static unsigned select_top(site_t **out, unsigned n, int (*cmp)(const void *, const void *)) {
  if (n == 0 || n >= nsites) {
    if (nsites == 0) return 0; /* site_arr may still be NULL */
    memcpy(out, site_arr, nsites * sizeof *out);
    qsort(out, nsites, sizeof *out, cmp);
    return nsites;
  }
  unsigned k = 0;
  for (uint32_t i = 0; i < nsites; i++) {
    site_t *s = site_arr[i];
    if (k == n && cmp(&s, &out[k - 1]) >= 0) continue;
    unsigned j = k < n ? k++ : n - 1;
    while (j > 0 && cmp(&s, &out[j - 1]) < 0) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = s;
  }
  return k;
}

void vkm_sites_json(cJSON *obj, unsigned top) {
  site_t **bl = vkm_malloc((nsites ? nsites : 1) * sizeof *bl);
  site_t **ba = vkm_malloc((nsites ? nsites : 1) * sizeof *ba);
  uint8_t *emitted = vkm_calloc(nsites ? nsites : 1, 1); /* by site index: "sites" lists each once */
  if (!bl || !ba || !emitted) {
    vkm_free(bl);
    vkm_free(ba);
    vkm_free(emitted);
    return;
  }
  /* VALKMEM_LIVE_SITES (what `valkmem gate` asks for without a baseline):
   * every site that holds memory, whatever `top` says, and the top sites
   * by count as well as by bytes allocated; all sites otherwise cost a
   * compiler's report megabytes of JSON to write and read. */
  bool all_live = vkm_config.live_sites && top;
  unsigned nl = select_top(bl, all_live ? 0 : top, by_live), na = select_top(ba, top, by_alloc);
  if (top) /* a live ranking lists sites that hold something */
    while (nl && bl[nl - 1]->live_bytes <= 0) nl--;
  cal_t cl = calibration(true), ca = calibration(false);
  cJSON *sites = cJSON_AddArrayToObject(obj, "sites");
  cJSON *sl = cJSON_AddArrayToObject(obj, "sites_by_live");
  cJSON *sa = cJSON_AddArrayToObject(obj, "sites_by_alloc");
  for (unsigned i = 0; i < nl; i++) {
    site_symbolise(bl[i]);
    cJSON_AddItemToArray(sl, cJSON_CreateString(bl[i]->id));
    if (!emitted[bl[i]->idx]) {
      emitted[bl[i]->idx] = 1;
      cJSON_AddItemToArray(sites, site_json(bl[i], &cl, &ca));
    }
  }
  for (unsigned i = 0; i < na; i++) {
    site_symbolise(ba[i]);
    cJSON_AddItemToArray(sa, cJSON_CreateString(ba[i]->id));
    if (!emitted[ba[i]->idx]) {
      emitted[ba[i]->idx] = 1;
      cJSON_AddItemToArray(sites, site_json(ba[i], &cl, &ca));
    }
  }
  if (all_live) { /* by count: into "sites" only (reusing ba) */
    unsigned nc = select_top(ba, top, by_count);
    for (unsigned i = 0; i < nc; i++)
      if (!emitted[ba[i]->idx]) {
        emitted[ba[i]->idx] = 1;
        site_symbolise(ba[i]);
        cJSON_AddItemToArray(sites, site_json(ba[i], &cl, &ca));
      }
  }
  vkm_free(emitted);

  /* Leaks, biggest first (reusing bl). */
  unsigned nk = 0;
  for (uint32_t i = 0; i < nsites; i++)
    if (site_arr[i]->leak) bl[nk++] = site_arr[i];
  qsort(bl, nk, sizeof *bl, by_live);
  cJSON *leaks = cJSON_AddArrayToObject(obj, "leaks");
  char buf[300];
  for (unsigned i = 0; i < nk; i++) {
    site_t *s = bl[i];
    cJSON *l = cJSON_CreateObject();
    site_symbolise(s);
    cJSON_AddStringToObject(l, "site", s->id);
    cJSON_AddStringToObject(l, "function", site_function(s, buf, sizeof buf));
    cJSON_AddStringToObject(l, "module", s->show && s->nshow ? s->show[0].module : "?");
    cJSON_AddNumberToObject(l, "live_bytes", scaled(s->live_bytes, cl.ratio));
    cJSON_AddNumberToObject(l, "live_count", objs_num(s->live_objs > 0 ? s->live_objs : 0));
    cJSON_AddNumberToObject(l, "growth_bytes_per_s", round(s->leak_rate * cl.ratio));
    cJSON_AddNumberToObject(l, "epochs", s->leak_epochs);
    cJSON_AddNumberToObject(l, "since_s", round((now_s - s->leak_since_t) * 10) / 10);
    cJSON_AddItemToArray(leaks, l);
  }
  vkm_free(bl);
  vkm_free(ba);
  lifetimes_json(obj);
  calibration_json(obj, &cl, &ca);
}

/* ---------------------------------------------------------------------------
 * Stacks for the flame graph: GET /api/stacks
 *
 * The sites with the most live bytes and the most allocated bytes (up to
 * STACKS_TOP of each, bounded so the answer stays a few MB at most), their
 * frames interned into one table: a frame shared by many stacks (main, the
 * event loop) is sent once.
 * ------------------------------------------------------------------------- */
#define STACKS_TOP 5000

typedef struct fkey_s {
  const char *module;
  uint64_t offset;
  const vkm_sym_t *sym;
} fkey_t;

static uint64_t fkey_hash(const char *module, uint64_t off) {
  return (uint64_t)id_hash((uint64_t)(uintptr_t)module * 0x9e3779b97f4a7c15ull ^ off);
}

cJSON *vkm_stacks_json(void) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "schema", "valkmem.stacks/1");
  cJSON_AddNumberToObject(o, "sample_bytes", (double)vkm_config.sample_bytes);
  unsigned top = STACKS_TOP;
  site_t **bl = vkm_malloc((nsites ? nsites : 1) * sizeof *bl);
  site_t **ba = vkm_malloc((nsites ? nsites : 1) * sizeof *ba);
  uint8_t *emitted = vkm_calloc(nsites ? nsites : 1, 1);
  site_t **pick = vkm_malloc((nsites ? 2 * (size_t)nsites : 1) * sizeof *pick);
  if (!bl || !ba || !emitted || !pick) {
    vkm_free(bl);
    vkm_free(ba);
    vkm_free(emitted);
    vkm_free(pick);
    return o;
  }
  /* A full sort: the bounded insertion sort of select_top costs up to
   * nsites x top comparisons, too many for a top this large. */
  unsigned nl = select_top(bl, 0, by_live), na = select_top(ba, 0, by_alloc), np = 0;
  if (nl > top) nl = top;
  if (na > top) na = top;
  while (nl && bl[nl - 1]->live_bytes <= 0) nl--;
  for (unsigned i = 0; i < nl; i++)
    if (!emitted[bl[i]->idx]) emitted[bl[i]->idx] = 1, pick[np++] = bl[i];
  for (unsigned i = 0; i < na; i++)
    if (!emitted[ba[i]->idx] && ba[i]->alloc_bytes > 0) emitted[ba[i]->idx] = 1, pick[np++] = ba[i];
  vkm_free(bl);
  vkm_free(ba);
  vkm_free(emitted);

  size_t nf = 0;
  for (unsigned i = 0; i < np; i++) {
    site_symbolise(pick[i]);
    nf += pick[i]->show ? pick[i]->nshow : 0;
  }
  size_t cap = 16;
  while (cap < 2 * nf + 2) cap *= 2;
  uint32_t *slot = vkm_malloc(cap * sizeof *slot);
  fkey_t *keys = vkm_malloc((nf ? nf : 1) * sizeof *keys);
  if (!slot || !keys) {
    vkm_free(slot);
    vkm_free(keys);
    vkm_free(pick);
    return o;
  }
  memset(slot, 0xff, cap * sizeof *slot);
  uint32_t nk = 0;

  cal_t cl = calibration(true), ca = calibration(false);
  calibration_json(o, &cl, &ca);
  cJSON *frames = cJSON_AddArrayToObject(o, "frames");
  cJSON *stacks = cJSON_AddArrayToObject(o, "stacks");
  char buf[300];
  for (unsigned i = 0; i < np; i++) {
    site_t *s = pick[i];
    cJSON *st = cJSON_CreateArray();
    cJSON_AddItemToArray(st, cJSON_CreateString(s->show ? s->id : "0"));
    cJSON *fi = cJSON_CreateArray();
    for (unsigned k = 0; s->show && k < s->nshow; k++) {
      const vkm_sym_t *v = &s->show[k];
      size_t h = fkey_hash(v->module, v->offset) & (cap - 1);
      while (slot[h] != UINT32_MAX && !(keys[slot[h]].module == v->module && keys[slot[h]].offset == v->offset))
        h = (h + 1) & (cap - 1);
      if (slot[h] == UINT32_MAX) {
        keys[nk] = (fkey_t){v->module, v->offset, v};
        slot[h] = nk++;
        cJSON *f = cJSON_CreateArray();
        cJSON_AddItemToArray(f, cJSON_CreateString(frame_function(v, buf, sizeof buf)));
        cJSON_AddItemToArray(f, cJSON_CreateString(v->module));
        cJSON_AddItemToArray(f, cJSON_CreateNumber((double)v->offset));
        if (v->file) {
          cJSON_AddItemToArray(f, cJSON_CreateString(v->file));
          cJSON_AddItemToArray(f, cJSON_CreateNumber(v->line));
        }
        cJSON_AddItemToArray(frames, f);
      }
      cJSON_AddItemToArray(fi, cJSON_CreateNumber(slot[h]));
    }
    cJSON_AddItemToArray(st, fi);
    cJSON_AddItemToArray(st, cJSON_CreateNumber(scaled(s->live_bytes, cl.ratio)));
    cJSON_AddItemToArray(st, cJSON_CreateNumber(objs_num(s->live_objs > 0 ? s->live_objs : 0)));
    cJSON_AddItemToArray(st, cJSON_CreateNumber(scaled(s->alloc_bytes, ca.ratio)));
    cJSON_AddItemToArray(st, cJSON_CreateNumber(objs_num(s->alloc_objs)));
    cJSON_AddItemToArray(st, cJSON_CreateNumber(round(site_se((double)(s->live_bytes > 0 ? s->live_bytes : 0), s->live_var, &cl))));
    cJSON_AddItemToArray(st, cJSON_CreateNumber(round(site_se((double)s->alloc_bytes, s->alloc_var, &ca))));
    cJSON_AddItemToArray(st, cJSON_CreateNumber(s->leak ? 1 : 0));
    cJSON_AddItemToArray(stacks, st);
  }
  vkm_free(slot);
  vkm_free(keys);
  vkm_free(pick);
  return o;
}

/* ---------------------------------------------------------------------------
 * For the per-site history (history.c)
 * ------------------------------------------------------------------------- */

unsigned vkm_sites_top_live(uint32_t *idx, int64_t *live, unsigned n) {
  site_t *out[VKM_SITE_HIST_TOP];
  if (n > VKM_SITE_HIST_TOP) n = VKM_SITE_HIST_TOP;
  if (!nsites || !n) return 0;
  unsigned k;
  if (nsites <= n) {
    memcpy(out, site_arr, nsites * sizeof *out);
    qsort(out, nsites, sizeof *out, by_live);
    k = nsites;
  } else {
    k = select_top(out, n, by_live);
  }
  while (k && out[k - 1]->live_bytes <= 0) k--;
  cal_t cl = calibration(true);
  for (unsigned i = 0; i < k; i++) {
    idx[i] = out[i]->idx;
    live[i] = (int64_t)scaled(out[i]->live_usable, cl.ratio);
  }
  return k;
}

void vkm_sites_describe(uint32_t idx, cJSON *o) {
  if (idx >= nsites) return;
  site_t *s = site_arr[idx];
  site_symbolise(s);
  char buf[300];
  cJSON_AddStringToObject(o, "id", s->show ? s->id : "0");
  cJSON_AddStringToObject(o, "function", site_function(s, buf, sizeof buf));
  if (s->show && s->nshow) {
    cJSON_AddStringToObject(o, "module", s->show[0].module);
    if (s->show[0].file) {
      cJSON_AddStringToObject(o, "file", s->show[0].file);
      cJSON_AddNumberToObject(o, "line", s->show[0].line);
    }
    /* Two sites of one function (called from two places) are told apart
     * by their caller. */
    if (s->nshow > 1) cJSON_AddStringToObject(o, "caller", frame_function(&s->show[1], buf, sizeof buf));
  }
  cJSON_AddBoolToObject(o, "leak", s->leak);
}
