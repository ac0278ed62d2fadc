/* gate_eval.c - the gate's verdicts: limits and baseline comparison over a
 * loaded report. Pure computation (no I/O), so units and fuzzers drive it
 * directly.
 *
 * Baseline tolerance: a metric fails when it grew by more than PCT percent
 * of its baseline value AND by more than ABS (an absolute floor that keeps
 * tiny metrics from failing on noise): new > old + max(old * PCT / 100, ABS).
 * Sites are matched across reports by their stack's function names, and
 * sites with the same functions are summed (offsets change with every
 * build, function names do not). */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const vkm_limit_info_t vkm_limit_info[VKM_LIM_COUNT] = {
    [VKM_LIM_PEAK] = {"--max-peak", "max_peak", "peak live heap", true},
    [VKM_LIM_RSS] = {"--max-rss", "max_rss", "peak RSS", true},
    [VKM_LIM_LEAK] = {"--max-leak", "max_leak", "live heap at exit (leak, after suppressions)", true},
    [VKM_LIM_LEAK_PER_SITE] = {"--max-leak-per-site", "max_leak_per_site", "leak of one call site", true},
    [VKM_LIM_ALLOCS] = {"--max-allocs", "max_allocs", "allocation count", false},
    [VKM_LIM_ALLOC_BYTES] = {"--max-alloc-bytes", "max_alloc_bytes", "bytes allocated (requested)", true},
};

static vkm_check_t *add_check(vkm_gate_result_t *res) {
  if (res->n == res->cap) {
    size_t cap = res->cap ? res->cap * 2 : 16;
    vkm_check_t *v = realloc(res->checks, cap * sizeof *v);
    if (!v) {
      vkm_cli_err("out of memory");
      exit(VKM_EXIT_USAGE);
    }
    res->checks = v;
    res->cap = cap;
  }
  vkm_check_t *c = &res->checks[res->n++];
  memset(c, 0, sizeof *c);
  return c;
}

static void finish(vkm_gate_result_t *res, vkm_check_t *c) {
  c->ok = c->measured <= c->limit;
  if (!c->ok) res->failures++;
}

uint64_t vkm_gate_leak(vkm_supp_list_t *supp, vkm_report_t *r, bool count) {
  uint64_t leak = 0;
  for (size_t i = 0; i < r->nsites; i++) {
    vkm_site_t *s = &r->sites[i];
    s->suppressed_by = s->live_bytes ? vkm_supp_find(supp, s->json) : -1;
    if (s->suppressed_by >= 0) {
      if (count) {
        supp->v[s->suppressed_by].sites++;
        supp->v[s->suppressed_by].bytes += s->live_bytes;
      }
    } else {
      leak += s->live_bytes;
    }
  }
  if (!r->have_sites) leak = r->live_bytes;
  return leak;
}

/* ---------------------------------------------------------------------------
 * Offending sites, with stacks
 * ------------------------------------------------------------------------- */
typedef enum { BY_LIVE, BY_ALLOC_BYTES, BY_ALLOC_COUNT } rank_t;

static uint64_t site_val(const vkm_site_t *s, rank_t by) {
  return by == BY_LIVE ? s->live_bytes : by == BY_ALLOC_BYTES ? s->alloc_bytes : s->alloc_count;
}

static void append(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *dst, size_t cap, const char *fmt, ...) {
  size_t n = strlen(dst);
  if (n + 1 >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst + n, cap - n, fmt, ap);
  va_end(ap);
}

/* The first frame with a source file: where an annotation should point. */
static void locate(vkm_check_t *c, const vkm_site_t *s) {
  const cJSON *frames = cJSON_GetObjectItemCaseSensitive(s->json, "frames"), *f;
  cJSON_ArrayForEach(f, frames) {
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(f, "file");
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(f, "line");
    if (cJSON_IsString(file) && file->valuestring[0]) {
      snprintf(c->file, sizeof c->file, "%s", file->valuestring);
      c->line = cJSON_IsNumber(line) ? line->valueint : 0; /* cJSON clamps valueint */
      return;
    }
  }
}

static void describe_site(vkm_check_t *c, int rank, const vkm_site_t *s, rank_t by) {
  char a[32], b[32];
  if (by == BY_LIVE)
    append(c->detail, sizeof c->detail, "      %d. %s live in %llu object(s) at exit\n", rank,
           vkm_fmt_size(s->live_bytes, a, sizeof a), (unsigned long long)s->live_count);
  else if (by == BY_ALLOC_BYTES)
    append(c->detail, sizeof c->detail, "      %d. %s allocated in %llu call(s)\n", rank,
           vkm_fmt_size(s->alloc_bytes, a, sizeof a), (unsigned long long)s->alloc_count);
  else
    append(c->detail, sizeof c->detail, "      %d. %llu allocation(s), %s\n", rank,
           (unsigned long long)s->alloc_count, vkm_fmt_size(s->alloc_bytes, b, sizeof b));
  const cJSON *frames = cJSON_GetObjectItemCaseSensitive(s->json, "frames"), *f;
  int i = 0;
  cJSON_ArrayForEach(f, frames) {
    char fr[512];
    if (i == 8) {
      append(c->detail, sizeof c->detail, "           ...\n");
      break;
    }
    append(c->detail, sizeof c->detail, "           #%d %s\n", i, vkm_frame_str(f, fr, sizeof fr));
    i++;
  }
  if (!i) append(c->detail, sizeof c->detail, "           (no stack)\n");
}

/* Lists the top `max` unsuppressed sites by `by` whose value exceeds
 * `over` (pass 0 for "any"). */
static void top_sites(vkm_check_t *c, const vkm_report_t *r, rank_t by, uint64_t over, int max,
                      bool skip_suppressed) {
  if (!r->have_sites || !r->nsites) {
    if (!r->have_sites) append(c->detail, sizeof c->detail, "      (the report has no call sites)\n");
    return;
  }
  bool *used = calloc(r->nsites, 1);
  if (!used) return;
  for (int k = 0; k < max; k++) {
    const vkm_site_t *best = NULL;
    size_t bi = 0;
    for (size_t i = 0; i < r->nsites; i++) {
      const vkm_site_t *s = &r->sites[i];
      if (used[i] || (skip_suppressed && s->suppressed_by >= 0)) continue;
      if (site_val(s, by) <= over) continue;
      if (!best || site_val(s, by) > site_val(best, by)) {
        best = s;
        bi = i;
      }
    }
    if (!best) break;
    used[bi] = true;
    if (k == 0) locate(c, best);
    describe_site(c, k + 1, best, by);
  }
  free(used);
}

/* ---------------------------------------------------------------------------
 * Sites aggregated by stack functions, for the baseline
 * ------------------------------------------------------------------------- */
typedef struct agg_s {
  const char *key;
  const vkm_site_t *first;
  uint64_t live, alloc;
} agg_t;

static int agg_cmp(const void *a, const void *b) {
  return strcmp(((const agg_t *)a)->key, ((const agg_t *)b)->key);
}

static agg_t *aggregate(const vkm_report_t *r, size_t *n_out) {
  agg_t *v = calloc(r->nsites ? r->nsites : 1, sizeof *v);
  size_t n = 0;
  if (!v) {
    *n_out = 0;
    return NULL;
  }
  for (size_t i = 0; i < r->nsites; i++) {
    const vkm_site_t *s = &r->sites[i];
    v[i].key = s->key;
    v[i].first = s;
    v[i].live = s->suppressed_by >= 0 ? 0 : s->live_bytes;
    v[i].alloc = s->alloc_bytes;
  }
  qsort(v, r->nsites, sizeof *v, agg_cmp);
  for (size_t i = 0; i < r->nsites; i++) {
    if (n && strcmp(v[n - 1].key, v[i].key) == 0) {
      v[n - 1].live += v[i].live;
      v[n - 1].alloc += v[i].alloc;
    } else {
      v[n++] = v[i];
    }
  }
  *n_out = n;
  return v;
}

static uint64_t allowed(const vkm_gate_opts_t *o, uint64_t old) {
  double pct = o->have_tolerance ? o->tol_pct : 10.0;
  uint64_t abs_ = o->have_tolerance ? o->tol_abs : 0;
  double g = (double)old * pct / 100.0;
  uint64_t gi = g >= 1.8e19 ? UINT64_MAX : (uint64_t)g;
  uint64_t a = gi > abs_ ? gi : abs_;
  return old > UINT64_MAX - a ? UINT64_MAX : old + a;
}

static void baseline_site_check(const vkm_gate_opts_t *o, vkm_gate_result_t *res, const agg_t *nv, size_t nn,
                                const agg_t *ov, size_t on, bool live) {
  vkm_check_t *c = add_check(res);
  snprintf(c->name, sizeof c->name, "baseline:site-%s", live ? "live" : "alloc");
  snprintf(c->what, sizeof c->what, "%s of each call site against the baseline",
           live ? "live bytes at exit" : "bytes allocated");
  c->is_size = true;
  c->is_baseline = true;
  c->ok = true;
  /* Worst offender = largest excess over its allowance. */
  uint64_t worst_excess = 0;
  int listed = 0;
  size_t j = 0;
  for (size_t i = 0; i < nn; i++) {
    while (j < on && strcmp(ov[j].key, nv[i].key) < 0) j++;
    uint64_t old = (j < on && strcmp(ov[j].key, nv[i].key) == 0) ? (live ? ov[j].live : ov[j].alloc) : 0;
    uint64_t now = live ? nv[i].live : nv[i].alloc;
    uint64_t lim = allowed(o, old);
    if (now <= lim) continue;
    uint64_t excess = now - lim;
    if (c->ok || excess > worst_excess) {
      worst_excess = excess;
      c->measured = now;
      c->limit = lim;
      c->baseline = old;
      locate(c, nv[i].first);
    }
    c->ok = false;
    if (listed < 5) {
      char a[32], b[32], d[32];
      append(c->detail, sizeof c->detail, "      %s: %s -> %s (%s)\n", nv[i].key, vkm_fmt_size(old, a, sizeof a),
             vkm_fmt_size(now, b, sizeof b), vkm_fmt_delta((int64_t)(now - old), d, sizeof d));
    }
    listed++;
  }
  if (listed > 5) append(c->detail, sizeof c->detail, "      ... and %d more site(s)\n", listed - 5);
  if (!c->ok) res->failures++;
}

/* ---------------------------------------------------------------------------
 * Evaluation
 * ------------------------------------------------------------------------- */
void vkm_gate_evaluate(const vkm_gate_opts_t *o, vkm_supp_list_t *supp, vkm_report_t *r,
                       vkm_report_t *baseline, vkm_gate_result_t *res) {
  memset(res, 0, sizeof *res);
  res->leak_bytes = vkm_gate_leak(supp, r, true);
  /* This report's own: the suppression counters add up over a tree. */
  for (size_t i = 0; i < r->nsites; i++)
    if (r->sites[i].suppressed_by >= 0) res->suppressed_bytes += r->sites[i].live_bytes;
  uint64_t measured[VKM_LIM_COUNT] = {
      [VKM_LIM_PEAK] = r->peak_live_bytes,  [VKM_LIM_RSS] = r->peak_rss_bytes,
      [VKM_LIM_LEAK] = res->leak_bytes,     [VKM_LIM_LEAK_PER_SITE] = 0,
      [VKM_LIM_ALLOCS] = r->alloc_count,    [VKM_LIM_ALLOC_BYTES] = r->alloc_bytes,
  };
  for (size_t i = 0; i < r->nsites; i++)
    if (r->sites[i].suppressed_by < 0 && r->sites[i].live_bytes > measured[VKM_LIM_LEAK_PER_SITE])
      measured[VKM_LIM_LEAK_PER_SITE] = r->sites[i].live_bytes;
  if (!r->have_sites) measured[VKM_LIM_LEAK_PER_SITE] = r->live_bytes;

  for (int id = 0; id < VKM_LIM_COUNT; id++) {
    if (!o->set[id]) continue;
    vkm_check_t *c = add_check(res);
    snprintf(c->name, sizeof c->name, "%s", vkm_limit_info[id].flag + 2);
    snprintf(c->what, sizeof c->what, "%s", vkm_limit_info[id].what);
    c->is_size = vkm_limit_info[id].is_size;
    c->measured = measured[id];
    c->limit = o->limit[id];
    finish(res, c);
    if (id == VKM_LIM_RSS && c->measured == 0) /* no process has 0 resident bytes */
      snprintf(c->detail, sizeof c->detail, "      peak RSS was not measured: the process ended (a signal, _exit) "
               "before the agent's first sample, so this check holds for want of a number\n");
    if (c->ok) continue;
    switch (id) {
    case VKM_LIM_PEAK:
      if (r->peak_live_error_bytes) {
        char e[32];
        append(c->detail, sizeof c->detail, "      (the peak is exact to within %s)\n",
               vkm_fmt_size(r->peak_live_error_bytes, e, sizeof e));
      }
      append(c->detail, sizeof c->detail, "      top call sites by bytes allocated:\n");
      top_sites(c, r, BY_ALLOC_BYTES, 0, 3, false);
      break;
    case VKM_LIM_RSS:
      if (r->self_bytes) {
        char sb[32];
        append(c->detail, sizeof c->detail,
               "      (peak RSS includes the resident part of valkmem's own memory: %s committed in this run)\n",
               vkm_fmt_size(r->self_bytes, sb, sizeof sb));
      }
      append(c->detail, sizeof c->detail, "      top call sites by live bytes at exit:\n");
      top_sites(c, r, BY_LIVE, 0, 3, false);
      break;
    case VKM_LIM_LEAK:
      top_sites(c, r, BY_LIVE, 0, 5, true);
      break;
    case VKM_LIM_LEAK_PER_SITE:
      top_sites(c, r, BY_LIVE, o->limit[id], 5, true);
      break;
    case VKM_LIM_ALLOCS:
      top_sites(c, r, BY_ALLOC_COUNT, 0, 3, false);
      break;
    case VKM_LIM_ALLOC_BYTES:
      top_sites(c, r, BY_ALLOC_BYTES, 0, 3, false);
      break;
    }
  }

  if (!baseline) return;
  uint64_t base_leak = vkm_gate_leak(supp, baseline, false);
  static const struct {
    const char *name, *what;
    int lim;
    bool is_size;
  } bm[] = {
      {"baseline:peak", "peak live heap against the baseline", VKM_LIM_PEAK, true},
      {"baseline:rss", "peak RSS against the baseline", VKM_LIM_RSS, true},
      {"baseline:leak", "leak at exit against the baseline", VKM_LIM_LEAK, true},
      {"baseline:allocs", "allocation count against the baseline", VKM_LIM_ALLOCS, false},
      {"baseline:alloc-bytes", "bytes allocated against the baseline", VKM_LIM_ALLOC_BYTES, true},
  };
  uint64_t old[VKM_LIM_COUNT] = {
      [VKM_LIM_PEAK] = baseline->peak_live_bytes, [VKM_LIM_RSS] = baseline->peak_rss_bytes,
      [VKM_LIM_LEAK] = base_leak,                 [VKM_LIM_ALLOCS] = baseline->alloc_count,
      [VKM_LIM_ALLOC_BYTES] = baseline->alloc_bytes,
  };
  for (size_t k = 0; k < sizeof bm / sizeof bm[0]; k++) {
    /* A peak RSS of 0 was never measured (the process ended before the
     * agent's first sample): nothing to grow from. */
    if (bm[k].lim == VKM_LIM_RSS && old[VKM_LIM_RSS] == 0) continue;
    vkm_check_t *c = add_check(res);
    snprintf(c->name, sizeof c->name, "%s", bm[k].name);
    snprintf(c->what, sizeof c->what, "%s", bm[k].what);
    c->is_size = bm[k].is_size;
    c->is_baseline = true;
    c->baseline = old[bm[k].lim];
    c->measured = measured[bm[k].lim];
    c->limit = allowed(o, c->baseline);
    finish(res, c);
    if (!c->ok && bm[k].lim == VKM_LIM_LEAK) top_sites(c, r, BY_LIVE, 0, 3, true);
  }
  if (r->have_sites && baseline->have_sites) {
    size_t nn, on;
    agg_t *nv = aggregate(r, &nn), *ov = aggregate(baseline, &on);
    if (nv && ov) {
      baseline_site_check(o, res, nv, nn, ov, on, true);
      baseline_site_check(o, res, nv, nn, ov, on, false);
    }
    free(nv);
    free(ov);
  }
}

void vkm_gate_result_free(vkm_gate_result_t *res) {
  free(res->checks);
  memset(res, 0, sizeof *res);
}
