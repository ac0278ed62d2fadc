/* debug_pprof.c - /debug/pprof/: the contract of Go's net/http/pprof, so
 * that Parca, Pyroscope and Grafana Alloy scrape valkmem as they scrape a
 * Go service, with no adapter.
 *
 *   /debug/pprof/heap, /debug/pprof/allocs   gzip profile.proto, as
 *       runtime/pprof's writeHeapProto writes it: sample types
 *       alloc_objects/count, alloc_space/bytes, inuse_objects/count,
 *       inuse_space/bytes; period space/bytes = the sampling mean;
 *       default_sample_type alloc_space on allocs, unset on heap; a numeric
 *       label `bytes` (block size) per sample; executable mappings with
 *       file names and GNU build ids; locations by address, with function
 *       and line when known.
 *   ?seconds=N   a delta over the next N seconds (serveDeltaProfile): the
 *       answer is deferred (the caller keeps serving others), then every
 *       value is end minus start, and samples that did not change go.
 *   ?debug=N>0   the legacy text form ("heap profile: ... @ heap/2*rate",
 *       raw counts that the reader scales).
 *   /debug/pprof/            an index page.
 *   anything else below it   404, one line saying valkmem cannot serve it.
 *
 * Scaling. Go's heap sampler counts down an exponential number of bytes
 * and picks the allocation that crosses zero; so does the recorder
 * (interpose/sample.c, vkm_req_due), on requested bytes, with a fresh
 * draw after every sample. An allocation of s bytes is then picked with
 * probability 1 - exp(-s/rate), and a bucket of one size is scaled by its
 * inverse exactly as scaleHeapSample does (truncating, like Go). Sizes are
 * the requested ones, because that is what the countdown spends; scaling
 * by usable sizes would be biased. In exact mode (VALKMEM_SAMPLE_BYTES=1)
 * every allocation is a sample, the period is 1 and nothing is scaled.
 *
 * Query strings are checked strictly: a scraper sends seconds= at most,
 * and anything malformed, unknown or out of range gets 400 and one line
 * saying why (Go silently ignores most of these; a silent wrong profile is
 * worse than an error here).
 */
#include "debug_pprof.h"
#include "objfile.h"
#include "pprof_enc.h"
#include "../interpose/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------- */

static void say(vkm_dbg_resp_t *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(vkm_dbg_resp_t *r, int status, const char *fmt, ...) {
  char line[400];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n > sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  r->status = status;
  r->ctype = "text/plain; charset=utf-8";
  r->body = vkm_malloc((size_t)n);
  r->len = r->body ? (size_t)n : 0;
  if (r->body) memcpy(r->body, line, (size_t)n);
  /* net/http/pprof marks its own errors so clients can tell them from a proxy's. */
  snprintf(r->headers, sizeof r->headers, "X-Go-Pprof: 1\r\n");
}

static uint64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rate(void) {
  return vkm_config.exact || vkm_config.sample_bytes <= 1 ? 1 : vkm_config.sample_bytes;
}

/* runtime/pprof's scaleHeapSample, to the letter. */
static void scale(int64_t count, int64_t size, int64_t out[2]) {
  if (count == 0 || size == 0) {
    out[0] = out[1] = 0;
    return;
  }
  int64_t r = (int64_t)rate();
  if (r <= 1) {
    out[0] = count;
    out[1] = size;
    return;
  }
  double avg = (double)size / (double)count;
  double sc = 1 / (1 - exp(-avg / (double)r));
  out[0] = (int64_t)((double)count * sc);
  out[1] = (int64_t)((double)size * sc);
}

/* ---------------------------------------------------------------------------
 * Rows: one per bucket, raw values (cumulative, or a delta)
 * ------------------------------------------------------------------------- */

typedef struct row_s {
  const vkm_hbucket_t *b;
  int64_t v[4]; /* raw alloc objects, alloc bytes, inuse objects, inuse bytes */
} row_t;

typedef struct base_s { /* a bucket's counts at the start of a delta */
  uint64_t allocs, alloc_bytes, frees, free_bytes;
} base_t;

struct vkm_dbg_pending_s {
  bool allocs;         /* /allocs (default sample type) */
  uint64_t gen;
  size_t n0;
  base_t *base;
  uint64_t t0_wall;
};

/* The rows with anything in them; base (n0 entries, may be NULL) is
 * subtracted. *out from vkm_malloc. */
static int collect(const base_t *base, size_t n0, row_t **out, size_t *nout) {
  size_t n;
  const vkm_hbucket_t *bk = vkm_heapprof_buckets(&n, NULL);
  row_t *rows = vkm_malloc((n ? n : 1) * sizeof *rows);
  if (!rows) return -ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const vkm_hbucket_t *b = &bk[i];
    base_t z = {0, 0, 0, 0};
    const base_t *o = base && i < n0 ? &base[i] : &z;
    row_t *r = &rows[k];
    r->b = b;
    r->v[0] = (int64_t)(b->allocs - o->allocs);
    r->v[1] = (int64_t)(b->alloc_bytes - o->alloc_bytes);
    r->v[2] = (int64_t)(b->allocs - b->frees) - (int64_t)(o->allocs - o->frees);
    r->v[3] = (int64_t)(b->alloc_bytes - b->free_bytes) - (int64_t)(o->alloc_bytes - o->free_bytes);
    if (r->v[0] || r->v[1] || r->v[2] || r->v[3]) k++;
  }
  *out = rows;
  *nout = k;
  return 0;
}

/* The block size of a bucket: its size, or the mean of a mixed one (Go:
 * AllocBytes / AllocObjects). 0 = none. */
static int64_t block_size(const vkm_hbucket_t *b) {
  if (b->size != VKM_HBUCKET_MIXED) return (int64_t)b->size;
  return b->allocs ? (int64_t)(b->alloc_bytes / b->allocs) : 0;
}

/* ---------------------------------------------------------------------------
 * Mappings: each module's executable segments (what /proc/PID/maps shows
 * as r-xp, which is what Go lists) and its build id, read from the file the
 * recorder says it loaded.
 * ------------------------------------------------------------------------- */

typedef struct map_s {
  uint64_t start, limit, offset;
  const char *path; /* into the module strings */
  char build_id[41 * 2];
  bool funcs_ok;    /* every location in it has a function */
  bool used;
} map_t;

#define MAX_MAPS 512

typedef struct maps_ctx_s {
  map_t *maps;
  size_t *n;
  const char *path;
} maps_ctx_t;

static void add_map(void *ctx, uint64_t start, uint64_t limit, uint64_t offset) {
  maps_ctx_t *x = ctx;
  if (*x->n >= MAX_MAPS) return;
  map_t *m = &x->maps[(*x->n)++];
  memset(m, 0, sizeof *m);
  m->start = start;
  m->limit = limit;
  m->offset = offset;
  m->path = x->path;
}

/* Appends the executable segments of the object file at path, loaded with
 * bias (objfile.h reads the file). A file that cannot be read still gets
 * one mapping over [lo, hi), so its addresses keep a file name. */
static void module_maps(const char *path, uint64_t bias, uint64_t lo, uint64_t hi, map_t *maps, size_t *n) {
  size_t first = *n;
  char bid[sizeof maps[0].build_id] = "";
  maps_ctx_t x = {maps, n, path};
  vkm_objfile_exec_segments(path, bias, bid, sizeof bid, add_map, &x);
  if (*n == first && *n < MAX_MAPS) add_map(&x, lo, hi, 0);
  for (size_t i = first; i < *n; i++) {
    memcpy(maps[i].build_id, bid, sizeof bid);
    maps[i].funcs_ok = true;
  }
}

typedef struct mods_s {
  vkm_seg_module_t ent[VKM_SEG_MODULES_MAX];
  char strings[VKM_SEG_MODULES_BYTES];
  map_t maps[MAX_MAPS];
  size_t nmaps;
} mods_t;

static void load_maps(mods_t *m) {
  size_t n = 0;
  m->nmaps = 0;
  if (!vkm_seg) return; /* no recorded process (valkmem view) */
  if (vkm_segread_modules(m->ent, VKM_SEG_MODULES_MAX, m->strings, sizeof m->strings - 1, &n) != 0) return;
  for (size_t i = 0; i < n; i++) {
    if (!m->ent[i].path_len) continue;
    char *p = m->strings + m->ent[i].path_off;
    p[m->ent[i].path_len] = 0; /* strings are NUL-separated; make sure */
    module_maps(p, m->ent[i].bias, m->ent[i].lo, m->ent[i].hi, m->maps, &m->nmaps);
  }
}

static size_t map_of(const mods_t *m, uint64_t addr) { /* 1-based id, 0 = none */
  for (size_t i = 0; i < m->nmaps; i++)
    if (addr >= m->maps[i].start && addr < m->maps[i].limit) return i + 1;
  return 0;
}

/* ---------------------------------------------------------------------------
 * profile.proto
 * ------------------------------------------------------------------------- */

enum { /* perftools.profiles field numbers */
  P_SAMPLE_TYPE = 1, P_SAMPLE = 2, P_MAPPING = 3, P_LOCATION = 4, P_FUNCTION = 5, P_STRING_TABLE = 6,
  P_TIME_NANOS = 9, P_DURATION_NANOS = 10, P_PERIOD_TYPE = 11, P_PERIOD = 12, P_DEFAULT_SAMPLE_TYPE = 14,
};

/* The profile's tables (pprof_enc.h) and the modules they map into. */
typedef struct pb_s {
  vkm_pptab_t t;
  mods_t *mods;
} pb_t;

static uint64_t str_idx(pb_t *c, const char *s) { return vkm_pp_str(&c->t, s); }
static uint64_t func_id(pb_t *c, const char *name, const char *file) { return vkm_pp_func(&c->t, name, file); }

/* A location per call address (return address - 1, inside the call, as
 * Go's CallersFrames reports it). */
static uint64_t loc_id(pb_t *c, uintptr_t ret, const vkm_sym_t *sym) {
  uint64_t addr = (uint64_t)ret - 1;
  char key[24];
  snprintf(key, sizeof key, "%llx", (unsigned long long)addr);
  int added;
  uint64_t id = vkm_intern(&c->t.locs, key, &added);
  if (!id) {
    c->t.err = -ENOMEM;
    return 0;
  }
  if (added) {
    size_t mid = map_of(c->mods, addr);
    if (mid) {
      c->mods->maps[mid - 1].used = true;
      if (!sym->function) c->mods->maps[mid - 1].funcs_ok = false;
    }
    vkm_pbuf_t *t = &c->t.tmp;
    vkm_pb_uint(t, 1, id);
    if (mid) vkm_pb_uint(t, 2, mid);
    vkm_pb_uint(t, 3, addr);
    if (sym->function) {
      vkm_pbuf_t line = {0};
      vkm_pb_uint(&line, 1, func_id(c, sym->function, sym->file));
      if (sym->file && sym->line) vkm_pb_uint(&line, 2, sym->line);
      vkm_pb_msg(t, 4, &line);
      vkm_pbuf_free(&line);
    }
    vkm_pb_msg(&c->t.locs_pb, P_LOCATION, t);
  }
  return id;
}

static void value_type(pb_t *c, vkm_pbuf_t *out, unsigned field, const char *type, const char *unit) {
  vkm_pbuf_t vt = {0};
  vkm_pb_uint(&vt, 1, str_idx(c, type));
  vkm_pb_uint(&vt, 2, str_idx(c, unit));
  vkm_pb_msg(out, field, &vt);
  vkm_pbuf_free(&vt);
}

/* int64 fields go on the wire as two's complement varints (a delta's
 * in-use values can be negative). */
static void put_i64(vkm_pbuf_t *b, int64_t v) { vkm_pb_varint(b, (uint64_t)v); }

static int write_proto(const row_t *rows, size_t n, bool allocs, uint64_t t_wall, uint64_t dur_ns,
                       unsigned char **out, size_t *out_len) {
  pb_t c;
  memset(&c, 0, sizeof c);
  c.mods = vkm_malloc(sizeof *c.mods);
  if (!c.mods) return -ENOMEM;
  load_maps(c.mods);
  vkm_pbuf_t head = {0}, samples = {0}, maps = {0}, prof = {0}, gz = {0};
  value_type(&c, &head, P_SAMPLE_TYPE, "alloc_objects", "count");
  value_type(&c, &head, P_SAMPLE_TYPE, "alloc_space", "bytes");
  value_type(&c, &head, P_SAMPLE_TYPE, "inuse_objects", "count");
  value_type(&c, &head, P_SAMPLE_TYPE, "inuse_space", "bytes");
  uint64_t bytes_key = str_idx(&c, "bytes");
  for (size_t i = 0; i < n; i++) {
    const vkm_sym_t *syms = NULL;
    const uintptr_t *pcs = NULL;
    unsigned nf = vkm_sites_frames(rows[i].b->site, &syms, &pcs);
    vkm_pbuf_t ids = {0}, vals = {0}, s = {0}, lab = {0};
    for (unsigned f = 0; f < nf; f++) vkm_pb_varint(&ids, loc_id(&c, pcs[f], &syms[f]));
    int64_t a[2], u[2];
    scale(rows[i].v[0], rows[i].v[1], a);
    scale(rows[i].v[2], rows[i].v[3], u);
    put_i64(&vals, a[0]);
    put_i64(&vals, a[1]);
    put_i64(&vals, u[0]);
    put_i64(&vals, u[1]);
    vkm_pb_bytes(&s, 1, ids.p, ids.n);
    vkm_pb_bytes(&s, 2, vals.p, vals.n);
    int64_t bs = block_size(rows[i].b);
    if (bs) {
      vkm_pb_uint(&lab, 1, bytes_key);
      vkm_pb_uint(&lab, 3, (uint64_t)bs);
      vkm_pb_msg(&s, 3, &lab);
    }
    if (ids.err || vals.err || s.err || lab.err) c.t.err = -ENOMEM;
    if (a[0] || a[1] || u[0] || u[1]) vkm_pb_bytes(&samples, P_SAMPLE, s.p, s.n);
    vkm_pbuf_free(&ids);
    vkm_pbuf_free(&vals);
    vkm_pbuf_free(&s);
    vkm_pbuf_free(&lab);
  }
  /* Mappings after the locations, which say whether each one's functions
   * are all known (then a consumer need not symbolize it again). */
  for (size_t i = 0; i < c.mods->nmaps; i++) {
    const map_t *m = &c.mods->maps[i];
    vkm_pbuf_t *t = &c.t.tmp;
    vkm_pb_uint(t, 1, i + 1);
    vkm_pb_uint(t, 2, m->start);
    vkm_pb_uint(t, 3, m->limit);
    vkm_pb_uint(t, 4, m->offset);
    vkm_pb_uint(t, 5, str_idx(&c, m->path));
    if (m->build_id[0]) vkm_pb_uint(t, 6, str_idx(&c, m->build_id));
    if (m->used && m->funcs_ok) {
      vkm_pb_uint(t, 7, 1); /* has_functions */
      vkm_pb_uint(t, 8, 1); /* has_filenames */
      vkm_pb_uint(t, 9, 1); /* has_line_numbers */
    }
    vkm_pb_msg(&maps, P_MAPPING, t);
  }
  value_type(&c, &head, P_PERIOD_TYPE, "space", "bytes");
  uint64_t dflt = allocs ? str_idx(&c, "alloc_space") : 0;

  vkm_pb_bytes(&prof, P_STRING_TABLE, "", 0); /* string 0 is "" */
  vkm_pbuf_put(&prof, head.p, head.n);
  vkm_pbuf_put(&prof, samples.p, samples.n);
  vkm_pbuf_put(&prof, maps.p, maps.n);
  vkm_pbuf_put(&prof, c.t.locs_pb.p, c.t.locs_pb.n);
  vkm_pbuf_put(&prof, c.t.funcs_pb.p, c.t.funcs_pb.n);
  vkm_pbuf_put(&prof, c.t.strtab.p, c.t.strtab.n);
  vkm_pb_uint(&prof, P_TIME_NANOS, t_wall);
  if (dur_ns) vkm_pb_uint(&prof, P_DURATION_NANOS, dur_ns);
  vkm_pb_uint(&prof, P_PERIOD, rate());
  if (dflt) vkm_pb_uint(&prof, P_DEFAULT_SAMPLE_TYPE, dflt);
  int err = vkm_pptab_err(&c.t);
  if (!err) err = head.err ? head.err : samples.err ? samples.err : maps.err ? maps.err : prof.err;
  if (!err) {
    vkm_gzip_stored(&gz, prof.p, prof.n);
    err = gz.err;
  }
  vkm_pptab_free(&c.t);
  vkm_pbuf_free(&head);
  vkm_pbuf_free(&samples);
  vkm_pbuf_free(&maps);
  vkm_pbuf_free(&prof);
  vkm_free(c.mods);
  if (err) {
    vkm_pbuf_free(&gz);
    return err;
  }
  *out = gz.p;
  *out_len = gz.n;
  return 0;
}

/* ---------------------------------------------------------------------------
 * The legacy text form (runtime/pprof writeHeapInternal, debug != 0)
 * ------------------------------------------------------------------------- */

static void tput(vkm_pbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tput(vkm_pbuf_t *b, const char *fmt, ...) {
  char tmp[1400];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) vkm_pbuf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static int by_inuse_bytes(const void *x, const void *y) {
  const row_t *a = x, *b = y;
  return a->v[3] > b->v[3] ? -1 : a->v[3] < b->v[3] ? 1 : 0;
}

static int write_text(row_t *rows, size_t n, char **out, size_t *out_len) {
  qsort(rows, n, sizeof *rows, by_inuse_bytes); /* Go sorts by in-use bytes */
  int64_t t[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < 4; k++) t[k] += rows[i].v[k];
  vkm_pbuf_t b = {0};
  /* Go prints 2 * MemProfileRate after "heap/": the reader halves it. */
  tput(&b, "heap profile: %lld: %lld [%lld: %lld] @ heap/%llu\n", (long long)t[2], (long long)t[3],
       (long long)t[0], (long long)t[1], (unsigned long long)(2 * rate()));
  for (size_t i = 0; i < n; i++) {
    const row_t *r = &rows[i];
    tput(&b, "%lld: %lld [%lld: %lld] @", (long long)r->v[2], (long long)r->v[3], (long long)r->v[0],
         (long long)r->v[1]);
    const vkm_sym_t *syms = NULL;
    const uintptr_t *pcs = NULL;
    unsigned nf = vkm_sites_frames(r->b->site, &syms, &pcs);
    for (unsigned f = 0; f < nf; f++) tput(&b, " %#llx", (unsigned long long)pcs[f]); /* return addresses */
    tput(&b, "\n");
    for (unsigned f = 0; f < nf; f++) {
      unsigned long long pc = (unsigned long long)pcs[f] - 1;
      if (!syms[f].function) tput(&b, "#\t%#llx\n", pc);
      else
        tput(&b, "#\t%#llx\t%s+%#llx\t%s:%u\n", pc, syms[f].function, (unsigned long long)syms[f].fn_offset,
             syms[f].file ? syms[f].file : "", syms[f].file ? syms[f].line : 0);
    }
    tput(&b, "\n");
  }
  /* Where Go appends runtime.MemStats: the exact counters, as comments. */
  cJSON *snap = vkm_snapshot_json();
  const cJSON *tot = cJSON_GetObjectItemCaseSensitive(snap, "totals");
  const cJSON *live = cJSON_GetObjectItemCaseSensitive(snap, "live");
  tput(&b, "\n# valkmem (exact counters; the records above are samples)\n");
  static const char *const keys[][2] = {{"totals", "alloc_count"}, {"totals", "free_count"},
                                        {"totals", "alloc_bytes"}, {"totals", "alloc_usable_bytes"},
                                        {"totals", "free_usable_bytes"}, {"live", "bytes"}, {"live", "count"}};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(keys[i][0][0] == 't' ? tot : live, keys[i][1]);
    if (cJSON_IsNumber(v)) tput(&b, "# %s.%s = %.0f\n", keys[i][0], keys[i][1], v->valuedouble);
  }
  tput(&b, "# sample_bytes = %llu\n", (unsigned long long)rate());
  cJSON_Delete(snap);
  if (b.err) {
    vkm_pbuf_free(&b);
    return -ENOMEM;
  }
  *out = (char *)b.p;
  *out_len = b.n;
  return 0;
}

/* ---------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------- */

/* A decimal number of at most 9 digits (no sign, no space): its value, or
 * -1. */
static long small_number(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 9) return -1;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* Every parameter's name must be one we take. */
static bool names_known(vkm_span_t q, char *bad, size_t cap) {
  static const char *const known[] = {"seconds", "debug", "gc", "pid", "token"};
  size_t i = 0;
  while (i < q.n) {
    size_t j = i;
    while (j < q.n && q.p[j] != '&') j++;
    size_t k = i;
    while (k < j && q.p[k] != '=') k++;
    if (k > i) { /* empty segments ("a=1&&b=2") are nothing */
      bool ok = false;
      for (size_t t = 0; t < sizeof known / sizeof known[0]; t++)
        if (strlen(known[t]) == k - i && memcmp(known[t], q.p + i, k - i) == 0) ok = true;
      if (!ok) {
        size_t len = k - i < cap - 1 ? k - i : cap - 1;
        for (size_t t = 0; t < len; t++) {
          char ch = q.p[i + t];
          bad[t] = ch >= 0x20 && ch < 0x7f ? ch : '?';
        }
        bad[len] = 0;
        return false;
      }
    }
    i = j + 1;
  }
  return true;
}

static void serve_index(vkm_span_t query, vkm_dbg_resp_t *r) {
  char pid[32] = "", q[48] = "", qa[48] = "";
  if (vkm_http_query_get(query, "pid", pid, sizeof pid) > 0 && small_number(pid) > 0) {
    snprintf(q, sizeof q, "?pid=%s", pid);
    snprintf(qa, sizeof qa, "&pid=%s", pid);
  }
  size_t n;
  vkm_heapprof_buckets(&n, NULL);
  vkm_pbuf_t b = {0};
  tput(&b, "<html>\n<head>\n<title>/debug/pprof/</title>\n</head>\n<body>\n/debug/pprof/\n<br>\n"
           "<p>valkmem serves the heap profiles of process %d, as Go's net/http/pprof does. "
           "Set debug=1 as a query parameter to export in legacy text format; seconds=N (1..%d) for a "
           "delta over the next N seconds.</p>\n<br>\nTypes of profiles available:\n<table>\n"
           "<thead><td>Count</td><td>Profile</td></thead>\n",
       vkm_target_pid(), VKM_DBG_MAX_SECONDS);
  tput(&b, "<tr><td>%zu</td><td><a href='allocs?debug=1%s'>allocs</a></td></tr>\n", n, qa);
  tput(&b, "<tr><td>%zu</td><td><a href='heap?debug=1%s'>heap</a></td></tr>\n", n, qa);
  tput(&b, "</table>\n<br>\n<p>\nProfile Descriptions:\n<ul>\n"
           "<li><div class=profile-name>allocs: </div> A sampling of all past memory allocations "
           "(<a href='allocs%s'>profile.proto</a>)</li>\n"
           "<li><div class=profile-name>heap: </div> A sampling of memory allocations of live objects "
           "(<a href='heap%s'>profile.proto</a>)</li>\n</ul>\n</p>\n"
           "<p>Not served (valkmem records memory, not CPU, goroutines or locks): profile, goroutine, "
           "mutex, block, threadcreate, trace, cmdline, symbol. Turn them off in the scraper.</p>\n"
           "</body>\n</html>\n",
       q, q);
  if (b.err) {
    vkm_pbuf_free(&b);
    say(r, 500, "out of memory");
    return;
  }
  r->status = 200;
  r->ctype = "text/html; charset=utf-8";
  r->body = (char *)b.p;
  r->len = b.n;
}

static void serve_profile(bool allocs, vkm_span_t query, vkm_dbg_resp_t *r) {
  char bad[40], sec[32], dbg[32], gc[32];
  if (vkm_view_doc()) { /* the buckets are a live process's; a saved report has per-site sums only */
    say(r, 404, "valkmem view serves a saved report, which has no Go heap profile: use /api/profile");
    return;
  }
  if (!names_known(query, bad, sizeof bad)) {
    say(r, 400, "unknown parameter \"%s\" (valkmem's /debug/pprof/%s takes seconds, debug, gc and pid)", bad,
        allocs ? "allocs" : "heap");
    return;
  }
  int sn = vkm_http_query_get(query, "seconds", sec, sizeof sec);
  int dn = vkm_http_query_get(query, "debug", dbg, sizeof dbg);
  int gn = vkm_http_query_get(query, "gc", gc, sizeof gc);
  long seconds = 0, debug = 0;
  if (sn != -1) {
    seconds = sn >= 0 ? small_number(sec) : -1;
    if (seconds <= 0) {
      say(r, 400, "invalid value for \"seconds\" - must be a positive integer");
      return;
    }
    if (seconds > VKM_DBG_MAX_SECONDS) {
      say(r, 400, "invalid value for \"seconds\" - at most %d (a delta profile holds a connection that long)",
          VKM_DBG_MAX_SECONDS);
      return;
    }
  }
  if (dn != -1 && dn != 0) { /* "debug=" is debug=0, as for Go */
    debug = dn > 0 ? small_number(dbg) : -1;
    if (debug < 0) {
      say(r, 400, "invalid value for \"debug\" - must be a non-negative integer");
      return;
    }
  }
  if (gn != -1 && gn != 0 && (gn < 0 || small_number(gc) < 0)) {
    say(r, 400, "invalid value for \"gc\" - must be a non-negative integer (valkmem has no GC to run)");
    return;
  }
  if (sn != -1 && dn != -1 && dn != 0) {
    say(r, 400, "seconds and debug params are incompatible");
    return;
  }
  if (seconds > 0) { /* the baseline now, the answer later */
    struct vkm_dbg_pending_s *p = vkm_calloc(1, sizeof *p);
    size_t n;
    const vkm_hbucket_t *bk = p ? vkm_heapprof_buckets(&n, &p->gen) : NULL;
    if (p && n) {
      p->base = vkm_malloc(n * sizeof *p->base);
      if (!p->base) {
        vkm_free(p);
        p = NULL;
      }
    }
    if (!p) {
      say(r, 500, "out of memory");
      return;
    }
    for (size_t i = 0; i < n; i++)
      p->base[i] = (base_t){bk[i].allocs, bk[i].alloc_bytes, bk[i].frees, bk[i].free_bytes};
    p->n0 = n;
    p->allocs = allocs;
    p->t0_wall = wall_ns();
    r->defer_ms = (unsigned)seconds * 1000u;
    r->pending = p;
    return;
  }
  row_t *rows;
  size_t n;
  int rc = collect(NULL, 0, &rows, &n);
  if (rc == 0 && debug > 0) {
    rc = write_text(rows, n, &r->body, &r->len);
    r->ctype = "text/plain; charset=utf-8";
  } else if (rc == 0) {
    rc = write_proto(rows, n, allocs, wall_ns(), 0, (unsigned char **)&r->body, &r->len);
    r->ctype = "application/octet-stream";
    snprintf(r->headers, sizeof r->headers, "Content-Disposition: attachment; filename=\"%s\"\r\n",
             allocs ? "allocs" : "heap");
  }
  if (rc == 0) vkm_free(rows);
  if (rc < 0) say(r, 500, "could not build the profile: %s", strerror(-rc));
  else r->status = 200;
}

void vkm_dbg_pprof_finish(struct vkm_dbg_pending_s *p, vkm_dbg_resp_t *r) {
  memset(r, 0, sizeof *r);
  uint64_t gen;
  size_t n;
  vkm_heapprof_buckets(&n, &gen);
  row_t *rows;
  size_t nr;
  /* A reset in between (a forked child's agent starting over) leaves no
   * baseline: everything is new. */
  int rc = collect(gen == p->gen ? p->base : NULL, gen == p->gen ? p->n0 : 0, &rows, &nr);
  uint64_t t1 = wall_ns();
  if (rc == 0) {
    rc = write_proto(rows, nr, p->allocs, t1, t1 > p->t0_wall ? t1 - p->t0_wall : 1, (unsigned char **)&r->body,
                     &r->len);
    vkm_free(rows);
  }
  if (rc < 0) {
    say(r, 500, "could not build the profile: %s", strerror(-rc));
  } else {
    r->status = 200;
    r->ctype = "application/octet-stream";
    snprintf(r->headers, sizeof r->headers, "Content-Disposition: attachment; filename=\"%s-delta\"\r\n",
             p->allocs ? "allocs" : "heap");
  }
  vkm_dbg_pprof_cancel(p);
}

void vkm_dbg_pprof_cancel(struct vkm_dbg_pending_s *p) {
  if (!p) return;
  vkm_free(p->base);
  vkm_free(p);
}

void vkm_dbg_pprof_serve(vkm_span_t path, vkm_span_t query, vkm_dbg_resp_t *r) {
  memset(r, 0, sizeof *r);
  static const char prefix[] = "/debug/pprof";
  vkm_span_t rest = {path.p + sizeof prefix - 1, path.n - (sizeof prefix - 1)};
  if (rest.n == 0) { /* as Go's ServeMux does: the subtree's root has a slash */
    char pid[32];
    r->status = 301;
    r->ctype = "text/plain; charset=utf-8";
    if (vkm_http_query_get(query, "pid", pid, sizeof pid) > 0 && small_number(pid) > 0)
      snprintf(r->headers, sizeof r->headers, "Location: pprof/?pid=%s\r\n", pid);
    else snprintf(r->headers, sizeof r->headers, "Location: pprof/\r\n");
    return;
  }
  if (vkm_span_eq(rest, "/", false)) serve_index(query, r);
  else if (vkm_span_eq(rest, "/heap", false)) serve_profile(false, query, r);
  else if (vkm_span_eq(rest, "/allocs", false)) serve_profile(true, query, r);
  else {
    char name[64];
    size_t len = rest.n - 1 < sizeof name - 1 ? rest.n - 1 : sizeof name - 1;
    for (size_t i = 0; i < len; i++) {
      char ch = rest.p[1 + i];
      name[i] = ch >= 0x20 && ch < 0x7f ? ch : '?';
    }
    name[len] = 0;
    say(r, 404, "valkmem cannot serve the %s profile: it records memory only (heap and allocs)", name);
  }
}
