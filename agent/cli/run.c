/* run.c - `valkmem run`: a command under the shim, its exit code passed
 * through, and a one-screen summary of its report on stderr. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char run_usage[] =
    "usage: valkmem run [--report FILE] [--sample-bytes N] [--exact] [--no-http] -- CMD [ARGS...]\n"
    "\n"
    "Runs CMD with libvalkmem.so preloaded, passes its exit status through\n"
    "(killed by signal N: 128+N; by SIGINT or SIGQUIT, valkmem dies of it too,\n"
    "so that a shell loop stops at Ctrl-C) and prints a summary of its memory\n"
    "use on stderr when it ends.\n"
    "\n"
    "  --report FILE      keep the JSON report in FILE (default: a temp file, removed)\n"
    "  --sample-bytes N   mean bytes between sampled allocations (VALKMEM_SAMPLE_BYTES;\n"
    "                     default 512 KiB; sizes like 64KiB accepted)\n"
    "  --exact            attribute every allocation (VALKMEM_SAMPLE_BYTES=1)\n"
    "  --no-http          no live dashboard (VALKMEM_HTTP=0)\n"
    "  --quiet            no summary\n"
    "\n"
    "The library is found next to valkmem, in ../lib*/, in the install libdir,\n"
    "or at $VALKMEM_LIB.\n";

/* Takes "--opt VALUE" or "--opt=VALUE"; returns the value or NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != 0) return NULL;
  if (*i + 1 >= argc) return "";
  return argv[++*i];
}

/* "0 B", "1 B", "64-127 B", "4-8 KiB": log2 class b holds [2^(b-1), 2^b). */
static const char *pow2(unsigned k, char *buf, size_t len) {
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  snprintf(buf, len, "%llu %s", 1ull << (k % 10), u[k / 10 < 7 ? k / 10 : 6]);
  return buf;
}

/* Bucket b of totals.size_hist holds requested sizes in [2^b, 2^(b+1));
 * sizes 0 and 1 share bucket 0. */
static const char *bucket_label(int b, char *buf, size_t len) {
  char l[32], h[32];
  if (b == 0) snprintf(buf, len, "0-1 B");
  else if (b <= 9) snprintf(buf, len, "%llu-%llu B", 1ull << b, (1ull << (b + 1)) - 1);
  else snprintf(buf, len, "%s-%s", pow2((unsigned)b, l, sizeof l), pow2((unsigned)b + 1, h, sizeof h));
  return buf;
}

/* A JSON number as bytes: negative, NaN or out of range reads as 0. */
static uint64_t json_u64(const cJSON *v) {
  if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || v->valuedouble >= 18446744073709551616.0) return 0;
  return (uint64_t)v->valuedouble;
}

void vkm_print_summary(FILE *f, const vkm_report_t *r) {
  char a[48], b[48], c[48];
  fprintf(f, "valkmem summary%s%s:\n", r->state && strcmp(r->state, "exited") != 0 ? " (checkpoint, state " : "",
          r->state && strcmp(r->state, "exited") != 0 ? r->state : "");
  if (r->state && strcmp(r->state, "exited") != 0) fprintf(f, "  (the report is a checkpoint, not the final state)\n");
  fprintf(f, "  allocations    %llu (%s requested)   frees %llu   reallocs %llu   failed %llu\n",
          (unsigned long long)r->alloc_count, vkm_fmt_size(r->alloc_bytes, a, sizeof a),
          (unsigned long long)r->free_count, (unsigned long long)r->realloc_count,
          (unsigned long long)r->failed_count);
  fprintf(f, "  peak live heap %s", vkm_fmt_size(r->peak_live_bytes, a, sizeof a));
  if (r->peak_live_error_bytes) fprintf(f, " (exact to within %s)", vkm_fmt_size(r->peak_live_error_bytes, b, sizeof b));
  fprintf(f, "\n  live at exit   %s in %llu object(s)\n", vkm_fmt_size(r->live_bytes, a, sizeof a),
          (unsigned long long)r->live_count);
  fprintf(f, "  peak RSS       %s\n", r->peak_rss_bytes ? vkm_fmt_size(r->peak_rss_bytes, a, sizeof a)
                                                        : "not measured (the process ended before the first reading)");
  if (r->duration_s > 0) fprintf(f, "  duration       %.2f s\n", r->duration_s);

  /* Top size classes by allocation count. */
  const cJSON *totals = cJSON_GetObjectItemCaseSensitive(r->root, "totals");
  const cJSON *hist = cJSON_GetObjectItemCaseSensitive(totals, "size_hist");
  if (cJSON_IsArray(hist) && r->alloc_count) {
    double v[64] = {0};
    int n = 0;
    const cJSON *e;
    double sum = 0;
    cJSON_ArrayForEach(e, hist) {
      if (n >= 64) break;
      v[n] = cJSON_IsNumber(e) && e->valuedouble > 0 ? e->valuedouble : 0;
      sum += v[n++];
    }
    if (sum > 0) {
      fprintf(f, "  size classes  ");
      for (int k = 0; k < 5; k++) {
        int best = -1;
        for (int i = 0; i < n; i++)
          if (v[i] > 0 && (best < 0 || v[i] > v[best])) best = i;
        if (best < 0) break;
        fprintf(f, " %s: %.0f%%", bucket_label(best, c, sizeof c), 100.0 * v[best] / sum);
        v[best] = 0;
      }
      fprintf(f, "\n");
    }
  }

  /* Top sites by live bytes (or by allocated bytes when nothing is live). */
  if (r->have_sites && r->nsites) {
    bool by_live = false;
    for (size_t i = 0; i < r->nsites; i++)
      if (r->sites[i].live_bytes) by_live = true;
    fprintf(f, "  top call sites by %s%s:\n", by_live ? "live bytes at exit" : "bytes allocated",
            r->sample_bytes > 1 ? " (estimates)" : "");
    bool used[8192] = {0};
    size_t lim = r->nsites < 8192 ? r->nsites : 8192;
    for (int k = 0; k < 5; k++) {
      int best = -1;
      for (size_t i = 0; i < lim; i++) {
        uint64_t vi = by_live ? r->sites[i].live_bytes : r->sites[i].alloc_bytes;
        uint64_t vb = best < 0 ? 0 : by_live ? r->sites[best].live_bytes : r->sites[best].alloc_bytes;
        if (!used[i] && vi && (best < 0 || vi > vb)) best = (int)i;
      }
      if (best < 0) break;
      used[best] = true;
      const vkm_site_t *s = &r->sites[best];
      const cJSON *frames = cJSON_GetObjectItemCaseSensitive(s->json, "frames");
      /* The innermost frame in full, then two callers by name: an
       * allocation wrapper (xmalloc) alone says little. */
      char fr[300] = "(no stack)";
      if (cJSON_GetArraySize(frames) > 0) vkm_frame_str(cJSON_GetArrayItem(frames, 0), fr, sizeof fr);
      fprintf(f, "    %10s live %10s allocated  %s", vkm_fmt_size(s->live_bytes, a, sizeof a),
              vkm_fmt_size(s->alloc_bytes, b, sizeof b), fr);
      for (int k2 = 1; k2 < 3 && k2 < cJSON_GetArraySize(frames); k2++) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(frames, k2), "function");
        fprintf(f, " <- %s", cJSON_IsString(fn) ? fn->valuestring : "?");
      }
      fputc('\n', f);
    }
  }
  const cJSON *leaks = cJSON_GetObjectItemCaseSensitive(r->root, "leaks");
  if (cJSON_IsArray(leaks) && cJSON_GetArraySize(leaks) > 0) {
    fprintf(f, "  leak suspects:\n");
    const cJSON *l;
    int k = 0;
    cJSON_ArrayForEach(l, leaks) {
      if (k++ == 5) break;
      const cJSON *fn = cJSON_GetObjectItemCaseSensitive(l, "function");
      const cJSON *lb = cJSON_GetObjectItemCaseSensitive(l, "live_bytes");
      const cJSON *g = cJSON_GetObjectItemCaseSensitive(l, "growth_bytes_per_s");
      fprintf(f, "    %s: %s live, growing %s/s\n", cJSON_IsString(fn) ? fn->valuestring : "?",
              vkm_fmt_size(json_u64(lb), a, sizeof a), vkm_fmt_size(json_u64(g), b, sizeof b));
    }
  }
  if (r->dropped_events)
    fprintf(f, "  note: %llu sampling events dropped\n", (unsigned long long)r->dropped_events);
}

/* The file the agent writes for the started process: --report with %p
 * as its pid and %% as '%' (agent.c, expand_path). */
static void report_of(const char *pattern, int pid, char *out, size_t cap) {
  size_t n = 0;
  for (const char *s = pattern; *s && n + 1 < cap; s++) {
    if (s[0] == '%' && s[1] == 'p') n += (size_t)snprintf(out + n, cap - n, "%d", pid), s++;
    else if (s[0] == '%' && s[1] == '%') out[n++] = '%', s++;
    else out[n++] = *s;
  }
  out[n < cap ? n : cap - 1] = 0;
}

int vkm_cmd_run(int argc, char **argv) {
  const char *report = NULL;
  char sample[32] = "";
  bool no_http = false, quiet = false;
  int i = 1;
  for (; i < argc; i++) {
    const char *v;
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(run_usage, stdout);
      return 0;
    }
    if ((v = opt_value(argc, argv, &i, "--report"))) {
      if (!*v) {
        vkm_cli_err("run: --report needs a file name");
        return VKM_EXIT_USAGE;
      }
      report = v;
    } else if ((v = opt_value(argc, argv, &i, "--sample-bytes"))) {
      uint64_t n;
      const char *why;
      if (vkm_parse_size(v, &n, &why) < 0) {
        vkm_cli_err("run: --sample-bytes: bad size \"%s\": %s", v, why);
        return VKM_EXIT_USAGE;
      }
      snprintf(sample, sizeof sample, "%llu", (unsigned long long)n);
    } else if (strcmp(argv[i], "--exact") == 0) {
      snprintf(sample, sizeof sample, "1");
    } else if (strcmp(argv[i], "--no-http") == 0) {
      no_http = true;
    } else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
      quiet = true;
    } else if (argv[i][0] == '-') {
      vkm_cli_err("run: unknown option \"%s\" (see valkmem run --help)", argv[i]);
      return VKM_EXIT_USAGE;
    } else {
      break;
    }
  }
  if (i >= argc) {
    vkm_cli_err("run: no command given: valkmem run [options] -- CMD [ARGS...]");
    return VKM_EXIT_USAGE;
  }
  char lib[PATH_MAX];
  if (vkm_find_library(lib, sizeof lib) < 0) return VKM_EXIT_USAGE;
  char tmp[PATH_MAX] = "";
  if (!report) {
    if (vkm_temp_report(tmp, sizeof tmp) < 0) return VKM_EXIT_USAGE;
    report = tmp;
  } else {
    if (vkm_cli_check_writable("report", report) < 0) return VKM_EXIT_USAGE;
    unlink(report); /* an old report must not pass for this run's */
  }
  char env_report[PATH_MAX + 32], env_sample[64];
  snprintf(env_report, sizeof env_report, "VALKMEM_REPORT=%s", report);
  snprintf(env_sample, sizeof env_sample, "VALKMEM_SAMPLE_BYTES=%s", sample);
  const char *env[8];
  int ne = 0;
  env[ne++] = env_report;
  if (sample[0]) env[ne++] = env_sample;
  if (no_http) env[ne++] = "VALKMEM_HTTP=0";
  env[ne] = NULL;
  vkm_child_t child;
  vkm_launch_orphan_ms = 500; /* a daemon the command started runs on; the summary is the command's */
  int rc = vkm_run_child(lib, argv + i, env, &child);
  if (rc < 0) {
    vkm_cli_err("run: cannot start %s: %s", argv[i], strerror(-rc));
    if (tmp[0]) unlink(tmp);
    return VKM_EXIT_USAGE;
  }
  if (child.exec_errno) {
    vkm_cli_err("run: cannot run %s: %s", argv[i], strerror(child.exec_errno));
    if (tmp[0]) unlink(tmp);
    return child.exit_code;
  }
  if (!quiet) {
    fflush(stdout);
    if (child.signal)
      fprintf(stderr, "valkmem: %s was killed by %s (signal %d)\n", argv[i], vkm_signal_name(child.signal),
              child.signal);
    else
      fprintf(stderr, "valkmem: %s exited with %d\n", argv[i], child.exit_code);
    char *text = NULL;
    size_t len = 0;
    char root_report[PATH_MAX];
    report_of(report, child.pid, root_report, sizeof root_report);
    report = root_report;
    if (vkm_cli_slurp(report, &text, &len) < 0 || len == 0) {
      vkm_cli_warn("run: no report was written to %s (was the program statically linked, or "
                   "VALKMEM_DISABLE set?)", report);
    } else {
      char err[256];
      cJSON *root = vkm_cli_json_parse(text, len, err, sizeof err);
      vkm_report_t r;
      if (!root) {
        vkm_cli_warn("run: the report %s is unreadable: %s", report, err);
      } else if (vkm_report_from_json(root, &r, err, sizeof err) < 0) {
        vkm_cli_warn("run: the report %s is malformed: %s", report, err);
        vkm_report_free(&r);
      } else {
        vkm_print_summary(stderr, &r);
        if (!tmp[0]) fprintf(stderr, "  report: %s\n", report);
        vkm_report_free(&r);
      }
    }
    free(text);
  }
  if (tmp[0]) unlink(tmp);
  return vkm_exit_like_child(&child, child.exit_code);
}
