/* diff.c - `valkmem diff OLD NEW`: every headline metric and every call
 * site (matched by its stack's function names) of two reports, with the
 * absolute and relative change. Informational: exit 0 unless a file is
 * unusable (2). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct dsite_s {
  const char *key;
  uint64_t old_live, new_live, old_alloc, new_alloc;
  bool in_old, in_new;
} dsite_t;

static int key_cmp(const void *a, const void *b) {
  return strcmp(((const dsite_t *)a)->key, ((const dsite_t *)b)->key);
}

static double mag(const dsite_t *d) {
  return fabs((double)d->new_alloc - (double)d->old_alloc) + fabs((double)d->new_live - (double)d->old_live);
}

static int mag_cmp(const void *a, const void *b) {
  double x = mag(a), y = mag(b);
  return x < y ? 1 : x > y ? -1 : key_cmp(a, b);
}

static void pct(char *buf, size_t len, uint64_t o, uint64_t n) {
  if (o == n) snprintf(buf, len, "0%%");
  else if (o == 0) snprintf(buf, len, "new");
  else snprintf(buf, len, "%+.1f%%", ((double)n - (double)o) * 100.0 / (double)o);
}

static void row(const char *name, bool is_size, uint64_t o, uint64_t n) {
  char a[48], b[48], d[48], p[32];
  int64_t delta = (int64_t)(n - o);
  if (is_size) {
    vkm_fmt_size(o, a, sizeof a);
    vkm_fmt_size(n, b, sizeof b);
    vkm_fmt_delta(delta, d, sizeof d);
  } else {
    snprintf(a, sizeof a, "%llu", (unsigned long long)o);
    snprintf(b, sizeof b, "%llu", (unsigned long long)n);
    snprintf(d, sizeof d, "%+lld", (long long)delta);
  }
  pct(p, sizeof p, o, n);
  printf("  %-22s %14s %14s %14s %9s\n", name, a, b, d, p);
}

int vkm_cmd_diff(int argc, char **argv) {
  const char *files[2] = {NULL, NULL};
  int nf = 0, top = 20;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: valkmem diff [--top N] OLD.json NEW.json\n\n"
             "Compares two reports: each headline metric, then the call sites whose\n"
             "allocated or live bytes changed most (sites matched by function names).\n");
      return 0;
    }
    if (strcmp(argv[i], "--top") == 0 && i + 1 < argc) {
      uint64_t n;
      const char *why;
      if (vkm_parse_count(argv[++i], &n, &why) < 0 || n > 100000) {
        vkm_cli_err("diff: --top: bad number \"%s\"", argv[i]);
        return VKM_EXIT_USAGE;
      }
      top = (int)n;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      vkm_cli_err("diff: unknown option \"%s\" (see valkmem diff --help)", argv[i]);
      return VKM_EXIT_USAGE;
    } else if (nf < 2) {
      files[nf++] = argv[i];
    } else {
      vkm_cli_err("diff: too many files: expected OLD and NEW");
      return VKM_EXIT_USAGE;
    }
  }
  if (nf != 2) {
    vkm_cli_err("diff: expected two reports: valkmem diff OLD.json NEW.json");
    return VKM_EXIT_USAGE;
  }
  vkm_report_t o, n;
  if (vkm_report_load("report", files[0], &o) < 0) return VKM_EXIT_USAGE;
  if (vkm_report_load("report", files[1], &n) < 0) {
    vkm_report_free(&o);
    return VKM_EXIT_USAGE;
  }
  printf("valkmem diff: %s -> %s\n", files[0], files[1]);
  printf("  %-22s %14s %14s %14s %9s\n", "metric", "old", "new", "change", "%");
  row("peak live heap", true, o.peak_live_bytes, n.peak_live_bytes);
  row("peak RSS", true, o.peak_rss_bytes, n.peak_rss_bytes);
  row("live at exit", true, o.live_bytes, n.live_bytes);
  row("live objects at exit", false, o.live_count, n.live_count);
  row("allocations", false, o.alloc_count, n.alloc_count);
  row("bytes allocated", true, o.alloc_bytes, n.alloc_bytes);
  row("frees", false, o.free_count, n.free_count);
  row("reallocs", false, o.realloc_count, n.realloc_count);
  row("failed allocations", false, o.failed_count, n.failed_count);
  if (o.sample_bytes != n.sample_bytes)
    printf("  note: sampled with %llu vs %llu bytes: per-site numbers are not directly comparable\n",
           (unsigned long long)o.sample_bytes, (unsigned long long)n.sample_bytes);

  /* Sites: merge both reports' sites by key. */
  size_t cap = o.nsites + n.nsites, m = 0;
  dsite_t *v = calloc(cap ? cap : 1, sizeof *v);
  if (!v) {
    vkm_report_free(&o);
    vkm_report_free(&n);
    return VKM_EXIT_USAGE;
  }
  for (size_t i = 0; i < o.nsites; i++)
    v[m++] = (dsite_t){.key = o.sites[i].key, .old_live = o.sites[i].live_bytes,
                       .old_alloc = o.sites[i].alloc_bytes, .in_old = true};
  for (size_t i = 0; i < n.nsites; i++)
    v[m++] = (dsite_t){.key = n.sites[i].key, .new_live = n.sites[i].live_bytes,
                       .new_alloc = n.sites[i].alloc_bytes, .in_new = true};
  qsort(v, m, sizeof *v, key_cmp);
  size_t u = 0;
  for (size_t i = 0; i < m; i++) {
    if (u && strcmp(v[u - 1].key, v[i].key) == 0) {
      v[u - 1].old_live += v[i].old_live;
      v[u - 1].new_live += v[i].new_live;
      v[u - 1].old_alloc += v[i].old_alloc;
      v[u - 1].new_alloc += v[i].new_alloc;
      v[u - 1].in_old |= v[i].in_old;
      v[u - 1].in_new |= v[i].in_new;
    } else {
      v[u++] = v[i];
    }
  }
  size_t common = 0, added = 0, gone = 0, changed = 0;
  for (size_t i = 0; i < u; i++) {
    if (v[i].in_old && v[i].in_new) common++;
    else if (v[i].in_new) added++;
    else gone++;
    if (mag(&v[i]) > 0) changed++;
  }
  if (o.have_sites || n.have_sites) {
    printf("\nsites: %zu in both, %zu new, %zu gone, %zu changed", common, added, gone, changed);
    qsort(v, u, sizeof *v, mag_cmp);
    size_t shown = 0;
    for (size_t i = 0; i < u && (int)shown < top; i++) {
      if (mag(&v[i]) == 0) break;
      if (!shown) printf("; largest changes:\n");
      char a[48], b[48], c[48], d[48], e[48], f[48], p1[32], p2[32];
      pct(p1, sizeof p1, v[i].old_alloc, v[i].new_alloc);
      pct(p2, sizeof p2, v[i].old_live, v[i].new_live);
      printf("  %s%s\n", v[i].key, !v[i].in_old ? "  [new]" : !v[i].in_new ? "  [gone]" : "");
      printf("      allocated %s -> %s (%s, %s)   live %s -> %s (%s, %s)\n",
             vkm_fmt_size(v[i].old_alloc, a, sizeof a), vkm_fmt_size(v[i].new_alloc, b, sizeof b),
             vkm_fmt_delta((int64_t)(v[i].new_alloc - v[i].old_alloc), c, sizeof c), p1,
             vkm_fmt_size(v[i].old_live, d, sizeof d), vkm_fmt_size(v[i].new_live, e, sizeof e),
             vkm_fmt_delta((int64_t)(v[i].new_live - v[i].old_live), f, sizeof f), p2);
      shown++;
    }
    if (!shown) printf("\n");
  }
  free(v);
  vkm_report_free(&o);
  vkm_report_free(&n);
  return 0;
}
