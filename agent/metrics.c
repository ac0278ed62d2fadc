/* metrics.c - Prometheus text format 0.0.4 from a snapshot document.
 *
 * Names follow the Prometheus conventions promtool lints for: base units
 * (bytes, seconds, ratios 0..1), `_total` on counters and only on counters,
 * HELP and TYPE before every family. Byte counters use usable bytes, the
 * same measure as the free counter, so alloc - free = live heap holds on a
 * dashboard too.
 */
#include "metrics.h"
#include "../interpose/vkm.h"

#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf_s {
  char *p;
  size_t n, cap;
  int err;
} buf_t;

static void put(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf_t *b, const char *fmt, ...) {
  if (b->err) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) { b->err = -EINVAL; return; }
    if (b->p && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap <= b->n + (size_t)k) cap *= 2;
    char *np = vkm_realloc(b->p, cap);
    if (!np) { b->err = -ENOMEM; return; }
    b->p = np;
    b->cap = cap;
  }
}

/* A sample value as Prometheus parses it (Go's ParseFloat). Integers print
 * exactly, without an exponent, while doubles can hold them exactly. */
static void put_value(buf_t *b, double v) {
  if (isnan(v)) put(b, "NaN");
  else if (isinf(v)) put(b, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 9007199254740992.0) put(b, "%.0f", v);
  else {
    /* The shortest of %.15g..%.17g that reads back as the same double:
     * 0.030298, not 0.030297999999999999. */
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(tmp, sizeof tmp, "%.*g", prec, v);
      if (strtod(tmp, NULL) == v) break;
    }
    put(b, "%s", tmp);
  }
}

/* Follows a dotted path ("os.rss") through nested objects. */
static const cJSON *at(const cJSON *o, const char *path) {
  char key[64];
  while (o && *path) {
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    if (n >= sizeof key) return NULL;
    memcpy(key, path, n);
    key[n] = 0;
    o = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    path += n + (dot ? 1 : 0);
  }
  return o;
}

static int num(const cJSON *snap, const char *path, double *v) {
  const cJSON *x = at(snap, path);
  if (cJSON_IsNumber(x)) { *v = x->valuedouble; return 1; }
  if (cJSON_IsBool(x)) { *v = cJSON_IsTrue(x) ? 1 : 0; return 1; }
  return 0;
}

static void family(buf_t *b, const char *name, const char *type, const char *help, double v) {
  put(b, "# HELP %s %s\n# TYPE %s %s\n%s ", name, help, name, type, name);
  put_value(b, v);
  put(b, "\n");
}

/* One family from one snapshot field, divided into base units (a division
 * is correctly rounded where multiplying by 1e-3 is not: ms 123 -> 0.123);
 * left out when absent. */
static void field(buf_t *b, const cJSON *snap, const char *path, double div, const char *name,
                  const char *type, const char *help) {
  double v;
  if (num(snap, path, &v)) family(b, name, type, help, v / div);
}

/* ---------------------------------------------------------------------------
 * Families
 * ------------------------------------------------------------------------- */

static void process_families(buf_t *b, const cJSON *s, const vkm_metrics_extra_t *x) {
  if (x && x->cpu_seconds >= 0)
    family(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", x->cpu_seconds);
  if (x && x->open_fds >= 0) family(b, "process_open_fds", "gauge", "Number of open file descriptors.", x->open_fds);
  if (x && x->max_fds >= 0) family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.", x->max_fds);
  field(b, s, "os.rss", 1, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  field(b, s, "os.vms", 1, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  field(b, s, "started_at", 1000, "process_start_time_seconds", "gauge",
        "Start time of the process since unix epoch in seconds.");
  field(b, s, "os.peak_rss", 1, "valkmem_peak_resident_memory_bytes", "gauge",
        "Peak resident memory size in bytes (VmHWM).");
  field(b, s, "os.swap", 1, "valkmem_swap_bytes", "gauge", "Swapped-out memory of the process in bytes.");
  field(b, s, "os.minor_faults", 1, "valkmem_minor_page_faults_total", "counter", "Minor page faults of the process.");
  field(b, s, "os.major_faults", 1, "valkmem_major_page_faults_total", "counter", "Major page faults of the process.");
  field(b, s, "threads.live", 1, "valkmem_threads", "gauge", "Application threads currently alive.");
}

static void heap_families(buf_t *b, const cJSON *s) {
  field(b, s, "totals.alloc_usable_bytes", 1, "valkmem_alloc_bytes_total", "counter",
        "Usable bytes handed out by the allocator (exact).");
  field(b, s, "totals.alloc_bytes", 1, "valkmem_alloc_requested_bytes_total", "counter",
        "Bytes requested by the application (exact).");
  field(b, s, "totals.free_usable_bytes", 1, "valkmem_free_bytes_total", "counter",
        "Usable bytes given back to the allocator (exact).");
  field(b, s, "totals.alloc_count", 1, "valkmem_allocations_total", "counter", "Successful allocations (exact).");
  field(b, s, "totals.free_count", 1, "valkmem_frees_total", "counter", "Frees of non-NULL pointers (exact).");
  field(b, s, "totals.realloc_count", 1, "valkmem_reallocs_total", "counter", "Successful realloc calls (exact).");
  field(b, s, "totals.failed_count", 1, "valkmem_failed_allocations_total", "counter",
        "Allocation calls that returned NULL.");
  field(b, s, "totals.mmap_bytes", 1, "valkmem_mmap_bytes_total", "counter", "Bytes mapped with mmap/mremap growth.");
  field(b, s, "totals.munmap_bytes", 1, "valkmem_munmap_bytes_total", "counter",
        "Bytes unmapped with munmap/mremap shrink.");
  field(b, s, "live.bytes", 1, "valkmem_live_heap_bytes", "gauge", "Live heap: usable bytes allocated and not freed.");
  field(b, s, "live.count", 1, "valkmem_live_allocations", "gauge", "Allocations not yet freed.");
  field(b, s, "peak.live_bytes", 1, "valkmem_peak_live_heap_bytes", "gauge", "High-water mark of the live heap.");
  field(b, s, "rates.pressure_pct", 100, "valkmem_alloc_pressure_ratio", "gauge",
        "How far allocation outruns reclaim over 5 s (0 = reclaim keeps up).");
  field(b, s, "allocator.held", 1, "valkmem_allocator_held_bytes", "gauge", "Bytes the allocator holds from the OS.");
  field(b, s, "allocator.free_held", 1, "valkmem_allocator_free_held_bytes", "gauge",
        "Bytes the allocator holds but has not handed out.");
  field(b, s, "allocator.frag_pct", 100, "valkmem_allocator_fragmentation_ratio", "gauge",
        "Allocator fragmentation: free-but-held / held.");
  field(b, s, "dropped_events", 1, "valkmem_dropped_events_total", "counter",
        "Sampled events dropped because a ring was full.");
  field(b, s, "self_bytes", 1, "valkmem_self_bytes", "gauge", "Memory valkmem itself holds (not in the app's heap).");

  const cJSON *leaks = at(s, "leaks");
  if (cJSON_IsArray(leaks)) {
    double n = 0, bytes = 0, v;
    for (const cJSON *l = leaks->child; l; l = l->next) {
      n++;
      if (num(l, "live_bytes", &v)) bytes += v;
    }
    family(b, "valkmem_leak_suspects", "gauge", "Call sites currently suspected of leaking.", n);
    family(b, "valkmem_leak_suspect_bytes", "gauge", "Live bytes of the suspected sites (estimate).", bytes);
  }
}

/* Pools summed, not labelled: pool names are the application's and
 * unbounded in number. */
static void pool_families(buf_t *b, const cJSON *s) {
  const cJSON *pools = at(s, "pools");
  if (!cJSON_IsArray(pools) || !pools->child) return;
  double used = 0, cap = 0, over = 0, v;
  for (const cJSON *p = pools->child; p; p = p->next) {
    if (num(p, "used", &v)) used += v;
    if (num(p, "capacity", &v)) cap += v;
    if (num(p, "overflow_count", &v)) over += v;
  }
  family(b, "valkmem_pool_used_bytes", "gauge", "Bytes in use across registered pools.", used);
  family(b, "valkmem_pool_capacity_bytes", "gauge", "Capacity of all registered pools.", cap);
  family(b, "valkmem_pool_overflows_total", "counter", "Pool allocations that overflowed their capacity.", over);
}

/* The pause histogram's buckets are the frame-budget ones of SCHEMA.md:
 * <1, 1-5, 5-10, 10-16.6, >=16.6 ms; Prometheus wants them cumulative. */
static void gc_families(buf_t *b, const cJSON *s) {
  const cJSON *gc = at(s, "gc");
  if (!cJSON_IsObject(gc)) return;
  field(b, gc, "cycles", 1, "valkmem_gc_cycles_total", "counter", "GC cycles the runtime reported.");
  field(b, gc, "efficiency_avg", 1, "valkmem_gc_efficiency_ratio", "gauge", "Average GC efficiency: reclaimed / before.");
  const cJSON *hist = at(gc, "pause.hist");
  double count = 0, total_ms = 0;
  if (!cJSON_IsArray(hist) || cJSON_GetArraySize(hist) != 5) return;
  static const char *const le[5] = {"0.001", "0.005", "0.01", "0.0166", "+Inf"};
  put(b, "# HELP valkmem_gc_pause_seconds GC pause durations the runtime reported.\n");
  put(b, "# TYPE valkmem_gc_pause_seconds histogram\n");
  double cum = 0;
  int i = 0;
  for (const cJSON *h = hist->child; h && i < 5; h = h->next, i++) {
    if (cJSON_IsNumber(h)) cum += h->valuedouble;
    put(b, "valkmem_gc_pause_seconds_bucket{le=\"%s\"} ", le[i]);
    put_value(b, cum);
    put(b, "\n");
  }
  /* _count must equal the +Inf bucket; the snapshot's count should too. */
  if (!num(gc, "pause.count", &count) || count != cum) count = cum;
  num(gc, "pause.total_ms", &total_ms);
  put(b, "valkmem_gc_pause_seconds_sum ");
  put_value(b, total_ms / 1000.0);
  put(b, "\nvalkmem_gc_pause_seconds_count ");
  put_value(b, count);
  put(b, "\n");
}

/* Label values escape backslash, double quote and newline (exposition
 * format 0.0.4). */
static void put_label(buf_t *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"') put(b, "\\%c", *s);
    else if (*s == '\n') put(b, "\\n");
    else put(b, "%c", *s);
  }
}

/* One family, one series per process: the served one first. Counters are
 * the same measures as the label-free families above (usable bytes). */
static void tree_families(buf_t *b, const cJSON *s, const vkm_metrics_proc_t *procs, size_t n) {
  static const struct {
    const char *name, *type, *help, *path;
    size_t off; /* in vkm_metrics_proc_t */
  } fam[] = {
      {"valkmem_process_live_heap_bytes", "gauge", "Live heap of each process of the tree (usable bytes).",
       "live.bytes", offsetof(vkm_metrics_proc_t, live_bytes)},
      {"valkmem_process_resident_memory_bytes", "gauge", "Resident memory of each process of the tree.", "os.rss",
       offsetof(vkm_metrics_proc_t, rss_bytes)},
      {"valkmem_process_allocations_total", "counter", "Successful allocations of each process of the tree (exact).",
       "totals.alloc_count", offsetof(vkm_metrics_proc_t, alloc_count)},
      {"valkmem_process_frees_total", "counter", "Frees of each process of the tree (exact).", "totals.free_count",
       offsetof(vkm_metrics_proc_t, free_count)},
      {"valkmem_process_alloc_bytes_total", "counter", "Usable bytes allocated by each process of the tree (exact).",
       "totals.alloc_usable_bytes", offsetof(vkm_metrics_proc_t, alloc_bytes)},
      {"valkmem_process_free_bytes_total", "counter", "Usable bytes freed by each process of the tree (exact).",
       "totals.free_usable_bytes", offsetof(vkm_metrics_proc_t, free_bytes)},
  };
  double self_pid;
  if (!num(s, "pid", &self_pid)) return;
  const cJSON *prog = at(s, "program");
  const char *self_prog = cJSON_IsString(prog) && prog->valuestring ? prog->valuestring : "";
  for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
    double v;
    if (!num(s, fam[f].path, &v)) continue;
    put(b, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name, fam[f].type);
    put(b, "%s{pid=\"%.0f\",program=\"", fam[f].name, self_pid);
    put_label(b, self_prog);
    put(b, "\"} ");
    put_value(b, v);
    put(b, "\n");
    for (size_t i = 0; i < n; i++) {
      if (procs[i].pid == (int)self_pid) continue;
      put(b, "%s{pid=\"%d\",program=\"", fam[f].name, procs[i].pid);
      put_label(b, procs[i].program ? procs[i].program : "");
      put(b, "\"} ");
      put_value(b, *(const double *)((const char *)&procs[i] + fam[f].off));
      put(b, "\n");
    }
  }
}

int vkm_metrics_render(const cJSON *snap, const vkm_metrics_extra_t *extra, char **out, size_t *out_len) {
  return vkm_metrics_render_tree(snap, extra, NULL, (size_t)-1, out, out_len);
}

int vkm_metrics_render_tree(const cJSON *snap, const vkm_metrics_extra_t *extra, const vkm_metrics_proc_t *procs,
                            size_t n, char **out, size_t *out_len) {
  buf_t b = {0};
  put(&b, "%s", "");
  process_families(&b, snap, extra);
  heap_families(&b, snap);
  pool_families(&b, snap);
  gc_families(&b, snap);
  if (n != (size_t)-1) tree_families(&b, snap, procs, n); /* (size_t)-1: no tree */
  if (b.err) {
    vkm_free(b.p);
    *out = NULL;
    *out_len = 0;
    return b.err;
  }
  *out = b.p;
  *out_len = b.n;
  return 0;
}
