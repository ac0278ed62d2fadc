/* gate_out.c - what the gate tells people and machines: the human summary
 * (stderr), the JSON report's "gate" section, JUnit XML, GitHub workflow
 * annotations and step summary, and github-action-benchmark JSON. */
#include "cli.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *fmt_val(bool is_size, uint64_t v, char *buf, size_t len) {
  if (!is_size) {
    snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
  }
  char h[32];
  vkm_fmt_size(v, h, sizeof h);
  if (v < 1024) snprintf(buf, len, "%s", h);
  else snprintf(buf, len, "%s (%llu B)", h, (unsigned long long)v);
  return buf;
}

static void command_line(vkm_buf_t *b, char *const *argv) {
  for (size_t i = 0; argv && argv[i]; i++) {
    if (i) vkm_buf_put(b, " ", 1);
    const char *a = argv[i];
    bool plain = a[0] != 0;
    for (const char *p = a; *p; p++)
      if (!(*p == '/' || *p == '.' || *p == '-' || *p == '_' || *p == '=' || *p == ',' || *p == ':' ||
            (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        plain = false;
    if (plain) {
      vkm_buf_printf(b, "%s", a);
    } else {
      vkm_buf_put(b, "'", 1);
      for (const char *p = a; *p; p++) {
        if (*p == '\'') vkm_buf_put(b, "'\\''", 4);
        else vkm_buf_put(b, p, 1);
      }
      vkm_buf_put(b, "'", 1);
    }
  }
}

static void command_outcome(vkm_buf_t *b, const vkm_gate_run_t *run) {
  if (run->child.signal)
    vkm_buf_printf(b, "crashed: killed by %s (signal %d)", vkm_signal_name(run->child.signal), run->child.signal);
  else
    vkm_buf_printf(b, "exited with %d", run->child.exit_code);
}

/* One line: "max-leak: live heap at exit ... 1.00 MiB > limit 0 B". */
static void check_line(vkm_buf_t *b, const vkm_check_t *c) {
  char m[64], l[64], o[64];
  if (c->is_baseline)
    vkm_buf_printf(b, "%s: %s %s %s allowed %s (baseline %s)", c->name, c->what,
                   fmt_val(c->is_size, c->measured, m, sizeof m), c->ok ? "<=" : ">",
                   fmt_val(c->is_size, c->limit, l, sizeof l), fmt_val(c->is_size, c->baseline, o, sizeof o));
  else
    vkm_buf_printf(b, "%s: %s %s %s limit %s", c->name, c->what, fmt_val(c->is_size, c->measured, m, sizeof m),
                   c->ok ? "<=" : ">", fmt_val(c->is_size, c->limit, l, sizeof l));
}

/* ---------------------------------------------------------------------------
 * Human summary
 * ------------------------------------------------------------------------- */
void vkm_gate_print_human(FILE *f, const vkm_gate_opts_t *o, const vkm_supp_list_t *supp,
                          const vkm_report_t *r, const vkm_gate_result_t *res,
                          const vkm_gate_run_t *run) {
  vkm_buf_t b = {0};
  if (res->failures)
    vkm_buf_printf(&b, "valkmem gate: FAIL: %zu of %zu check(s) failed\n", res->failures, res->n);
  else if (res->n)
    vkm_buf_printf(&b, "valkmem gate: PASS: all %zu check(s) hold\n", res->n);
  else
    vkm_buf_printf(&b, "valkmem gate: no limits set (measured only)\n");
  vkm_buf_printf(&b, "  command: ");
  command_line(&b, run->argv);
  vkm_buf_printf(&b, " -> ");
  command_outcome(&b, run);
  vkm_buf_printf(&b, "\n");
  if (run->crashed)
    vkm_buf_printf(&b, "  the command crashed: these numbers are from the last report checkpoint%s\n",
                   r->state && strcmp(r->state, "exited") == 0 ? " (written at exit)" : " before the crash");
  char a[64], c2[64];
  char d[64], e[64];
  vkm_buf_printf(&b, "  measured: peak live heap %s, peak RSS %s, %llu allocations of %s, %s %s\n",
                 vkm_fmt_size(r->peak_live_bytes, a, sizeof a), vkm_fmt_size(r->peak_rss_bytes, c2, sizeof c2),
                 (unsigned long long)r->alloc_count, vkm_fmt_size(r->alloc_bytes, d, sizeof d),
                 run->crashed ? "live at the checkpoint" : "leak at exit", vkm_fmt_size(res->leak_bytes, e, sizeof e));
  for (size_t i = 0; i < res->n; i++) {
    const vkm_check_t *c = &res->checks[i];
    vkm_buf_printf(&b, "  %s ", c->ok ? "ok  " : "FAIL");
    check_line(&b, c);
    vkm_buf_printf(&b, "\n");
    if (!c->ok && c->detail[0]) vkm_buf_printf(&b, "%s", c->detail);
  }
  size_t ndef = 0, matched = 0;
  for (size_t i = 0; i < supp->n; i++) {
    if (strcmp(supp->v[i].source, "default") == 0) ndef++;
    if (supp->v[i].sites) matched++;
  }
  if (ndef)
    vkm_buf_printf(&b, "  default suppressions: %zu patterns for libc/ld.so/libstdc++ start-up allocations "
                       "(valkmem gate --help lists them; --no-default-suppressions turns them off)\n", ndef);
  else if (o->no_default_supp)
    vkm_buf_printf(&b, "  default suppressions: off\n");
  if (matched) {
    vkm_buf_printf(&b, "  suppressed %s at exit:\n", vkm_fmt_size(res->suppressed_bytes, a, sizeof a));
    for (size_t i = 0; i < supp->n; i++) {
      if (!supp->v[i].sites) continue;
      vkm_buf_printf(&b, "    %s%s (%s): %llu site(s), %s\n", supp->v[i].system_only ? "" : "leak:",
                   supp->v[i].pattern, supp->v[i].source,
                     (unsigned long long)supp->v[i].sites, vkm_fmt_size(supp->v[i].bytes, a, sizeof a));
    }
  }
  if (r->sample_bytes > 1)
    vkm_buf_printf(&b, "  note: sampled mode (mean %llu B): per-site numbers are estimates\n",
                   (unsigned long long)r->sample_bytes);
  if (r->dropped_events)
    vkm_buf_printf(&b, "  note: %llu sampling events were dropped\n", (unsigned long long)r->dropped_events);
  fflush(stdout);
  fputs(b.p, f);
  fflush(f);
  vkm_buf_free(&b);
}

/* ---------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------- */
void vkm_gate_json(cJSON *root, const vkm_gate_opts_t *o, const vkm_supp_list_t *supp,
                   const vkm_gate_result_t *res, const vkm_gate_run_t *run, int exit_code) {
  cJSON_DeleteItemFromObjectCaseSensitive(root, "gate");
  cJSON *g = cJSON_AddObjectToObject(root, "gate");
  cJSON_AddStringToObject(g, "result", res->failures ? "fail" : "pass");
  cJSON_AddNumberToObject(g, "exit_code", exit_code);
  cJSON_AddNumberToObject(g, "failures", (double)res->failures);
  cJSON *cmd = cJSON_AddObjectToObject(g, "command");
  cJSON *av = cJSON_AddArrayToObject(cmd, "argv");
  for (size_t i = 0; run->argv && run->argv[i]; i++) cJSON_AddItemToArray(av, cJSON_CreateString(run->argv[i]));
  cJSON_AddNumberToObject(cmd, "exit_code", run->child.exit_code);
  if (run->child.signal) {
    cJSON_AddNumberToObject(cmd, "signal", run->child.signal);
    cJSON_AddStringToObject(cmd, "signal_name", vkm_signal_name(run->child.signal));
  }
  cJSON_AddBoolToObject(cmd, "crashed", run->crashed);
  cJSON_AddNumberToObject(g, "unchecked_processes", (double)run->others);
  cJSON_AddNumberToObject(g, "leak_bytes", (double)res->leak_bytes);
  cJSON_AddNumberToObject(g, "suppressed_bytes", (double)res->suppressed_bytes);
  cJSON_AddBoolToObject(g, "exact", !o->sampled);
  cJSON *checks = cJSON_AddArrayToObject(g, "checks");
  for (size_t i = 0; i < res->n; i++) {
    const vkm_check_t *c = &res->checks[i];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", c->name);
    cJSON_AddStringToObject(j, "what", c->what);
    cJSON_AddBoolToObject(j, "ok", c->ok);
    cJSON_AddStringToObject(j, "unit", c->is_size ? "bytes" : "count");
    cJSON_AddNumberToObject(j, "measured", (double)c->measured);
    cJSON_AddNumberToObject(j, "limit", (double)c->limit);
    if (c->is_baseline) cJSON_AddNumberToObject(j, "baseline", (double)c->baseline);
    if (c->detail[0]) cJSON_AddStringToObject(j, "detail", c->detail);
    if (c->file[0]) {
      cJSON_AddStringToObject(j, "file", c->file);
      if (c->line > 0) cJSON_AddNumberToObject(j, "line", c->line);
    }
    cJSON_AddItemToArray(checks, j);
  }
  cJSON_AddBoolToObject(g, "default_suppressions", !o->no_default_supp);
  cJSON *sj = cJSON_AddArrayToObject(g, "suppressions");
  for (size_t i = 0; i < supp->n; i++) {
    cJSON *j = cJSON_CreateObject();
    char pat[1100];
    snprintf(pat, sizeof pat, "%s%s", supp->v[i].system_only ? "" : "leak:", supp->v[i].pattern);
    cJSON_AddStringToObject(j, "pattern", pat);
    cJSON_AddStringToObject(j, "source", supp->v[i].source);
    cJSON_AddNumberToObject(j, "matched_sites", (double)supp->v[i].sites);
    cJSON_AddNumberToObject(j, "bytes", (double)supp->v[i].bytes);
    cJSON_AddItemToArray(sj, j);
  }
  if (o->baseline) {
    cJSON_AddStringToObject(g, "baseline", o->baseline);
    cJSON *t = cJSON_AddObjectToObject(g, "tolerance");
    cJSON_AddNumberToObject(t, "percent", o->have_tolerance ? o->tol_pct : 10.0);
    cJSON_AddNumberToObject(t, "absolute", o->have_tolerance ? (double)o->tol_abs : 0);
  }
}

/* ---------------------------------------------------------------------------
 * JUnit XML: one testcase per check; a crash is an <error> testcase.
 * ------------------------------------------------------------------------- */
char *vkm_gate_junit(const vkm_gate_result_t *res, const vkm_gate_run_t *run, double duration_s) {
  vkm_buf_t b = {0};
  size_t tests = res->n + (run->crashed ? 1 : 0);
  size_t errors = run->crashed ? 1 : 0;
  vkm_buf_t cmd = {0};
  command_line(&cmd, run->argv);
  vkm_buf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  vkm_buf_printf(&b, "<testsuites name=\"valkmem gate\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" time=\"%.3f\">\n",
                 tests, res->failures, errors, duration_s);
  vkm_buf_printf(&b, "  <testsuite name=\"valkmem gate\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"0\" time=\"%.3f\">\n",
                 tests, res->failures, errors, duration_s);
  vkm_buf_printf(&b, "    <properties>\n      <property name=\"command\" value=\"");
  vkm_xml_escape(&b, cmd.p ? cmd.p : "");
  vkm_buf_printf(&b, "\"/>\n      <property name=\"exit_code\" value=\"%d\"/>\n    </properties>\n",
                 run->child.exit_code);
  if (run->crashed) {
    vkm_buf_t m = {0};
    command_outcome(&m, run);
    vkm_buf_printf(&b, "    <testcase name=\"command\" classname=\"valkmem.gate\" time=\"%.3f\">\n      <error type=\"crash\" message=\"",
                   duration_s);
    vkm_xml_escape(&b, m.p);
    vkm_buf_printf(&b, "\">");
    vkm_xml_escape(&b, "the limits were checked against the last report checkpoint before the crash");
    vkm_buf_printf(&b, "</error>\n    </testcase>\n");
    vkm_buf_free(&m);
  }
  for (size_t i = 0; i < res->n; i++) {
    const vkm_check_t *c = &res->checks[i];
    vkm_buf_printf(&b, "    <testcase name=\"");
    vkm_xml_escape(&b, c->name);
    vkm_buf_printf(&b, "\" classname=\"valkmem.gate\" time=\"0\"");
    if (c->ok) {
      vkm_buf_printf(&b, "/>\n");
      continue;
    }
    vkm_buf_t m = {0};
    check_line(&m, c);
    vkm_buf_printf(&b, ">\n      <failure type=\"");
    vkm_xml_escape(&b, c->name);
    vkm_buf_printf(&b, "\" message=\"");
    vkm_xml_escape(&b, m.p);
    vkm_buf_printf(&b, "\">");
    vkm_xml_escape(&b, m.p);
    if (c->detail[0]) {
      vkm_buf_put(&b, "\n", 1);
      vkm_xml_escape(&b, c->detail);
    }
    vkm_buf_printf(&b, "</failure>\n    </testcase>\n");
    vkm_buf_free(&m);
  }
  vkm_buf_printf(&b, "  </testsuite>\n</testsuites>\n");
  vkm_buf_free(&cmd);
  return b.p;
}

/* ---------------------------------------------------------------------------
 * GitHub Actions
 * ------------------------------------------------------------------------- */
/* Looks for a file whose path ends in /rel below dir (depth and entry
 * bounded; hidden directories skipped). Counts matches up to 2 and keeps
 * the first, relative to the root. */
static void find_below(const char *root, const char *sub, const char *rel, int depth, int *budget, int *found,
                       char *out, size_t len) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s%s%s", root, sub[0] ? "/" : "", sub);
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while (*found < 2 && --*budget > 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char child[4096];
    snprintf(child, sizeof child, "%s%s%s", sub, sub[0] ? "/" : "", e->d_name);
    char full[8192];
    snprintf(full, sizeof full, "%s/%s", root, child);
    struct stat st;
    if (lstat(full, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (depth > 0) find_below(root, child, rel, depth - 1, budget, found, out, len);
      continue;
    }
    size_t cl = strlen(child), rl = strlen(rel);
    if (cl >= rl && strcmp(child + cl - rl, rel) == 0 && (cl == rl || child[cl - rl - 1] == '/')) {
      if (!(*found)++) snprintf(out, len, "%s", child);
    }
  }
  closedir(d);
}

/* A stack's source file as a path relative to the workspace, which is what
 * GitHub needs to attach an annotation to a line: absolute paths inside
 * the workspace are cut; a bare or relative name (DWARF often records one)
 * is looked up below the workspace and used when exactly one file
 * matches. */
static bool workspace_path(const char *file, const char *workspace, char *out, size_t len) {
  size_t wl = workspace ? strlen(workspace) : 0;
  while (wl > 1 && workspace[wl - 1] == '/') wl--;
  if (file[0] == '/') {
    if (!wl || strncmp(file, workspace, wl) != 0 || file[wl] != '/') return false;
    snprintf(out, len, "%s", file + wl + 1);
    return true;
  }
  if (!wl) {
    snprintf(out, len, "%s", file);
    return true;
  }
  const char *rel = file;
  while (strncmp(rel, "./", 2) == 0) rel += 2;
  char direct[8192];
  struct stat st;
  snprintf(direct, sizeof direct, "%.*s/%s", (int)wl, workspace, rel);
  if (stat(direct, &st) == 0) {
    snprintf(out, len, "%s", rel);
    return true;
  }
  if (strstr(rel, "../")) return false;
  char root[4096];
  snprintf(root, sizeof root, "%.*s", (int)wl, workspace);
  int budget = 50000, found = 0;
  find_below(root, "", rel, 12, &budget, &found, out, len);
  return found == 1;
}

static void annotation(vkm_buf_t *b, const char *title, const char *file, int line, const char *msg,
                       const char *workspace) {
  vkm_buf_printf(b, "::error ");
  char relbuf[4096];
  if (file && file[0] && workspace_path(file, workspace, relbuf, sizeof relbuf)) {
    vkm_buf_printf(b, "file=");
    vkm_gh_escape_property(b, relbuf);
    if (line > 0) vkm_buf_printf(b, ",line=%d", line);
    vkm_buf_printf(b, ",");
  }
  vkm_buf_printf(b, "title=");
  vkm_gh_escape_property(b, title);
  vkm_buf_printf(b, "::");
  vkm_gh_escape_data(b, msg);
  vkm_buf_printf(b, "\n");
}

char *vkm_gate_annotations(const vkm_gate_result_t *res, const vkm_gate_run_t *run, const char *workspace) {
  vkm_buf_t b = {0};
  vkm_buf_put(&b, "", 0);
  if (run->crashed) {
    vkm_buf_t m = {0}, cmd = {0};
    command_line(&cmd, run->argv);
    vkm_buf_printf(&m, "%s ", cmd.p ? cmd.p : "");
    command_outcome(&m, run);
    vkm_buf_printf(&m, "; limits were checked against the last report checkpoint");
    annotation(&b, "valkmem gate: command crashed", NULL, 0, m.p, workspace);
    vkm_buf_free(&m);
    vkm_buf_free(&cmd);
  }
  for (size_t i = 0; i < res->n; i++) {
    const vkm_check_t *c = &res->checks[i];
    if (c->ok) continue;
    vkm_buf_t m = {0}, t = {0};
    check_line(&m, c);
    if (c->detail[0]) vkm_buf_printf(&m, "\n%s", c->detail);
    vkm_buf_printf(&t, "valkmem gate: %s", c->name);
    annotation(&b, t.p, c->file, c->line, m.p, workspace);
    vkm_buf_free(&m);
    vkm_buf_free(&t);
  }
  return b.p;
}

char *vkm_gate_step_summary(const vkm_gate_result_t *res, const vkm_gate_run_t *run,
                            const vkm_supp_list_t *supp) {
  vkm_buf_t b = {0}, cmd = {0};
  command_line(&cmd, run->argv);
  vkm_buf_printf(&b, "### valkmem gate: %s\n\n", res->failures ? "FAIL" : "pass");
  vkm_buf_printf(&b, "Command: `");
  for (const char *p = cmd.p ? cmd.p : ""; *p; p++) vkm_buf_put(&b, *p == '`' ? "'" : p, 1);
  vkm_buf_printf(&b, "` ");
  command_outcome(&b, run);
  vkm_buf_printf(&b, "\n\n| Check | Measured | Limit | Baseline | Result |\n|---|---:|---:|---:|---|\n");
  for (size_t i = 0; i < res->n; i++) {
    const vkm_check_t *c = &res->checks[i];
    char m[64], l[64], o[64];
    vkm_buf_printf(&b, "| ");
    vkm_md_escape(&b, c->name);
    vkm_buf_printf(&b, " | %s | %s | %s | %s |\n", fmt_val(c->is_size, c->measured, m, sizeof m),
                   fmt_val(c->is_size, c->limit, l, sizeof l),
                   c->is_baseline ? fmt_val(c->is_size, c->baseline, o, sizeof o) : "",
                   c->ok ? "pass" : "**FAIL**");
  }
  for (size_t i = 0; i < res->n; i++) {
    const vkm_check_t *c = &res->checks[i];
    if (c->ok || !c->detail[0]) continue;
    vkm_buf_printf(&b, "\n<details><summary>");
    vkm_md_escape(&b, c->name);
    vkm_buf_printf(&b, ": offending call sites</summary>\n\n```text\n");
    for (const char *p = c->detail; *p; p++) vkm_buf_put(&b, *p == '`' ? "'" : p, 1);
    vkm_buf_printf(&b, "```\n\n</details>\n");
  }
  bool any = false;
  for (size_t i = 0; i < supp->n; i++) {
    if (!supp->v[i].sites) continue;
    if (!any) vkm_buf_printf(&b, "\n| Suppression | Source | Sites | Bytes |\n|---|---|---:|---:|\n");
    any = true;
    vkm_buf_printf(&b, "| %s", supp->v[i].system_only ? "" : "leak:");
    vkm_md_escape(&b, supp->v[i].pattern);
    vkm_buf_printf(&b, " | ");
    vkm_md_escape(&b, supp->v[i].source);
    vkm_buf_printf(&b, " | %llu | %llu |\n", (unsigned long long)supp->v[i].sites,
                   (unsigned long long)supp->v[i].bytes);
  }
  vkm_buf_printf(&b, "\n");
  vkm_buf_free(&cmd);
  return b.p;
}

/* github-action-benchmark, tool "customSmallerIsBetter":
 * [{"name": ..., "unit": ..., "value": ...}, ...]. */
char *vkm_gate_benchmark_json(const vkm_report_t *r, const vkm_gate_result_t *res) {
  cJSON *a = cJSON_CreateArray();
  static const char *names[] = {"peak live heap", "peak RSS", "leak at exit", "allocations", "bytes allocated"};
  const char *units[] = {"bytes", "bytes", "bytes", "count", "bytes"};
  uint64_t vals[] = {r->peak_live_bytes, r->peak_rss_bytes, res->leak_bytes, r->alloc_count, r->alloc_bytes};
  for (size_t i = 0; i < 5; i++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", names[i]);
    cJSON_AddStringToObject(o, "unit", units[i]);
    cJSON_AddNumberToObject(o, "value", (double)vals[i]);
    cJSON_AddItemToArray(a, o);
  }
  char *s = cJSON_Print(a);
  cJSON_Delete(a);
  return s;
}
