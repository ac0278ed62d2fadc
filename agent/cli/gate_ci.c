/* gate_ci.c - what the gate tells CI systems: JUnit XML, GitHub workflow
 * annotations and step summary, and github-action-benchmark JSON. */
#include "gate_text.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------------------
 * JUnit XML: one testcase per check; a crash is an <error> testcase.
 * ------------------------------------------------------------------------- */
/* A tree: one testcase per process ("proc_leaky (pid 1234)"); a failed
 * one carries every failed check in its <failure>; a crash that held its
 * limits is an <error>; processes not checked are <skipped/>. */
static char *junit_tree(const vkm_gate_run_t *run, const vkm_gate_opts_t *o, double duration_s) {
  vkm_buf_t b = {0}, cmd = {0};
  size_t failures = 0, errors = 0, skipped = 0;
  for (size_t i = 0; i < run->nprocs; i++) {
    const vkm_gate_proc_t *p = &run->procs[i];
    if (p->state == VKM_PROC_CHECKED && p->failed) failures++;
    else if (p->state == VKM_PROC_CHECKED && vkm_gate_proc_crashed(p)) errors++;
    else if (p->state == VKM_PROC_BAD_REPORT) errors++;
    else if (p->state != VKM_PROC_CHECKED) skipped++;
  }
  vkm_gate_command_line(&cmd, run->argv);
  vkm_buf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  vkm_buf_printf(&b, "<testsuites name=\"valkmem gate\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" time=\"%.3f\">\n",
                 run->nprocs, failures, errors, duration_s);
  vkm_buf_printf(&b, "  <testsuite name=\"valkmem gate\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" time=\"%.3f\">\n",
                 run->nprocs, failures, errors, skipped, duration_s);
  vkm_buf_printf(&b, "    <properties>\n      <property name=\"command\" value=\"");
  vkm_xml_escape(&b, cmd.p ? cmd.p : "");
  vkm_buf_printf(&b, "\"/>\n      <property name=\"exit_code\" value=\"%d\"/>\n    </properties>\n",
                 run->child.exit_code);
  for (size_t i = 0; i < run->nprocs; i++) {
    const vkm_gate_proc_t *p = &run->procs[i];
    vkm_buf_t t = {0}, m = {0}, txt = {0};
    vkm_gate_proc_title(&t, p);
    vkm_buf_printf(&b, "    <testcase name=\"");
    vkm_xml_escape(&b, t.p);
    vkm_buf_printf(&b, "\" classname=\"valkmem.gate\" time=\"0\">\n");
    if (p->state == VKM_PROC_CHECKED && p->failed) {
      size_t k = 0;
      for (size_t c = 0; c < p->res.n; c++) {
        const vkm_check_t *ch = &p->res.checks[c];
        if (ch->ok) continue;
        if (k++) vkm_buf_printf(&m, "; ");
        vkm_gate_check_line(&m, ch);
        vkm_gate_check_line(&txt, ch);
        vkm_buf_printf(&txt, "\n%s", ch->detail);
      }
      if (vkm_gate_proc_crashed(p)) {
        vkm_buf_printf(&txt, "the process ");
        vkm_gate_proc_outcome(&txt, p);
        vkm_buf_printf(&txt, "\n");
      }
      vkm_buf_printf(&b, "      <failure type=\"limits\" message=\"");
      vkm_xml_escape(&b, m.p);
      vkm_buf_printf(&b, "\">");
      vkm_xml_escape(&b, txt.p);
      vkm_buf_printf(&b, "</failure>\n");
    } else if (p->state == VKM_PROC_CHECKED && vkm_gate_proc_crashed(p)) {
      vkm_gate_proc_outcome(&m, p);
      vkm_buf_printf(&b, "      <error type=\"crash\" message=\"");
      vkm_xml_escape(&b, m.p);
      vkm_buf_printf(&b, "\">");
      vkm_xml_escape(&b, "the limits held; they were checked against its report up to the crash");
      vkm_buf_printf(&b, "</error>\n");
    } else if (p->state == VKM_PROC_BAD_REPORT) {
      vkm_gate_proc_reason(&m, p, o);
      vkm_buf_printf(&b, "      <error type=\"report\" message=\"");
      vkm_xml_escape(&b, m.p);
      vkm_buf_printf(&b, "\"/>\n");
    } else if (p->state != VKM_PROC_CHECKED) {
      vkm_gate_proc_reason(&m, p, o);
      vkm_buf_printf(&b, "      <skipped message=\"");
      vkm_xml_escape(&b, m.p);
      vkm_buf_printf(&b, "\"/>\n");
    }
    if (p->state == VKM_PROC_CHECKED) {
      vkm_buf_t out = {0};
      vkm_buf_printf(&out, "%s %d %s: ", p->is_root ? "command" : "process", p->pid, p->program);
      vkm_gate_proc_outcome(&out, p);
      vkm_buf_printf(&out, "\n");
      for (size_t c = 0; c < p->res.n; c++) {
        vkm_buf_printf(&out, "%s ", p->res.checks[c].ok ? "ok  " : "FAIL");
        vkm_gate_check_line(&out, &p->res.checks[c]);
        vkm_buf_printf(&out, "\n");
      }
      vkm_buf_printf(&b, "      <system-out>");
      vkm_xml_escape(&b, out.p);
      vkm_buf_printf(&b, "</system-out>\n");
      vkm_buf_free(&out);
    }
    vkm_buf_printf(&b, "    </testcase>\n");
    vkm_buf_free(&t);
    vkm_buf_free(&m);
    vkm_buf_free(&txt);
  }
  vkm_buf_printf(&b, "  </testsuite>\n</testsuites>\n");
  vkm_buf_free(&cmd);
  return b.p;
}

char *vkm_gate_junit(const vkm_gate_result_t *res, const vkm_gate_run_t *run, double duration_s) {
  if (vkm_gate_multi(run)) return junit_tree(run, NULL, duration_s);
  vkm_buf_t b = {0};
  size_t tests = res->n + (run->crashed ? 1 : 0);
  size_t errors = run->crashed ? 1 : 0;
  vkm_buf_t cmd = {0};
  vkm_gate_command_line(&cmd, run->argv);
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
    vkm_gate_command_outcome(&m, run);
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
    vkm_gate_check_line(&m, c);
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

/* A tree: each failed check of each process, titled with the process. */
static void annotations_tree(vkm_buf_t *b, const vkm_gate_run_t *run, const char *workspace) {
  for (size_t i = 0; i < run->nprocs; i++) {
    const vkm_gate_proc_t *p = &run->procs[i];
    vkm_buf_t t = {0}, m = {0};
    if (p->state == VKM_PROC_BAD_REPORT) {
      vkm_buf_printf(&t, "valkmem gate: ");
      vkm_gate_proc_title(&t, p);
      vkm_buf_printf(&m, "process %d %s: ", p->pid, p->program);
      vkm_gate_proc_reason(&m, p, NULL);
      annotation(b, t.p, NULL, 0, m.p, workspace);
    } else if (p->state == VKM_PROC_CHECKED && vkm_gate_proc_crashed(p) && !p->is_root) {
      vkm_buf_printf(&t, "valkmem gate: ");
      vkm_gate_proc_title(&t, p);
      vkm_buf_printf(&t, " crashed");
      vkm_buf_printf(&m, "process %d %s ", p->pid, p->program);
      vkm_gate_proc_outcome(&m, p);
      annotation(b, t.p, NULL, 0, m.p, workspace);
    }
    vkm_buf_free(&t);
    vkm_buf_free(&m);
    if (p->state != VKM_PROC_CHECKED) continue;
    for (size_t k = 0; k < p->res.n; k++) {
      const vkm_check_t *c = &p->res.checks[k];
      if (c->ok) continue;
      vkm_buf_t tt = {0}, mm = {0};
      vkm_buf_printf(&mm, "process %d %s: ", p->pid, p->program);
      vkm_gate_check_line(&mm, c);
      if (c->detail[0]) vkm_buf_printf(&mm, "\n%s", c->detail);
      vkm_buf_printf(&tt, "valkmem gate: ");
      vkm_gate_proc_title(&tt, p);
      vkm_buf_printf(&tt, ": %s", c->name);
      annotation(b, tt.p, c->file, c->line, mm.p, workspace);
      vkm_buf_free(&mm);
      vkm_buf_free(&tt);
    }
  }
}

char *vkm_gate_annotations(const vkm_gate_result_t *res, const vkm_gate_run_t *run, const char *workspace) {
  vkm_buf_t b = {0};
  vkm_buf_put(&b, "", 0);
  if (run->crashed) {
    vkm_buf_t m = {0}, cmd = {0};
    vkm_gate_command_line(&cmd, run->argv);
    vkm_buf_printf(&m, "%s ", cmd.p ? cmd.p : "");
    vkm_gate_command_outcome(&m, run);
    vkm_buf_printf(&m, "; limits were checked against the last report checkpoint");
    annotation(&b, "valkmem gate: command crashed", NULL, 0, m.p, workspace);
    vkm_buf_free(&m);
    vkm_buf_free(&cmd);
  }
  if (vkm_gate_multi(run)) {
    annotations_tree(&b, run, workspace);
    return b.p;
  }
  for (size_t i = 0; i < res->n; i++) {
    const vkm_check_t *c = &res->checks[i];
    if (c->ok) continue;
    vkm_buf_t m = {0}, t = {0};
    vkm_gate_check_line(&m, c);
    if (c->detail[0]) vkm_buf_printf(&m, "\n%s", c->detail);
    vkm_buf_printf(&t, "valkmem gate: %s", c->name);
    annotation(&b, t.p, c->file, c->line, m.p, workspace);
    vkm_buf_free(&m);
    vkm_buf_free(&t);
  }
  return b.p;
}

static void md_code(vkm_buf_t *b, const char *s) {
  for (const char *p = s; *p; p++) vkm_buf_put(b, *p == '`' ? "'" : p, 1);
}

/* A tree: a row per check per process, then the processes not checked and
 * the failed checks' call sites. */
static void summary_tree(vkm_buf_t *b, const vkm_gate_run_t *run) {
  vkm_buf_printf(b, "\n\n");
  vkm_buf_t v = {0};
  vkm_gate_verdict_line(&v, run);
  md_code(b, v.p);
  vkm_buf_free(&v);
  vkm_buf_printf(b, "\n| Process | Check | Measured | Limit | Baseline | Result |\n|---|---|---:|---:|---:|---|\n");
  for (size_t i = 0; i < run->nprocs; i++) {
    const vkm_gate_proc_t *p = &run->procs[i];
    vkm_buf_t t = {0};
    vkm_gate_proc_title(&t, p);
    if (p->state != VKM_PROC_CHECKED) {
      vkm_buf_t r = {0};
      vkm_gate_proc_reason(&r, p, NULL);
      vkm_buf_printf(b, "| ");
      vkm_md_escape(b, t.p);
      vkm_buf_printf(b, " | | | | | %s: ", p->state == VKM_PROC_BAD_REPORT ? "**FAIL**" : "not checked");
      vkm_md_escape(b, r.p ? r.p : "");
      vkm_buf_printf(b, " |\n");
      vkm_buf_free(&r);
    }
    for (size_t k = 0; p->state == VKM_PROC_CHECKED && k < p->res.n; k++) {
      const vkm_check_t *c = &p->res.checks[k];
      char m[64], l[64], o[64];
      vkm_buf_printf(b, "| ");
      vkm_md_escape(b, t.p);
      vkm_buf_printf(b, " | ");
      vkm_md_escape(b, c->name);
      vkm_buf_printf(b, " | %s | %s | %s | %s |\n", vkm_gate_fmt_val(c->is_size, c->measured, m, sizeof m),
                     vkm_gate_fmt_val(c->is_size, c->limit, l, sizeof l),
                     c->is_baseline ? vkm_gate_fmt_val(c->is_size, c->baseline, o, sizeof o) : "",
                     c->ok ? "pass" : "**FAIL**");
    }
    if (p->state == VKM_PROC_CHECKED && !p->res.n) {
      vkm_buf_printf(b, "| ");
      vkm_md_escape(b, t.p);
      vkm_buf_printf(b, " | (no limits) | | | | pass |\n");
    }
    vkm_buf_free(&t);
  }
  for (size_t i = 0; i < run->nprocs; i++) {
    const vkm_gate_proc_t *p = &run->procs[i];
    for (size_t k = 0; p->state == VKM_PROC_CHECKED && k < p->res.n; k++) {
      const vkm_check_t *c = &p->res.checks[k];
      if (c->ok || !c->detail[0]) continue;
      vkm_buf_t t = {0};
      vkm_gate_proc_title(&t, p);
      vkm_buf_printf(b, "\n<details><summary>");
      vkm_md_escape(b, t.p);
      vkm_buf_printf(b, " ");
      vkm_md_escape(b, c->name);
      vkm_buf_printf(b, ": offending call sites</summary>\n\n```text\n");
      md_code(b, c->detail);
      vkm_buf_printf(b, "```\n\n</details>\n");
      vkm_buf_free(&t);
    }
  }
}

char *vkm_gate_step_summary(const vkm_gate_result_t *res, const vkm_gate_run_t *run,
                            const vkm_supp_list_t *supp) {
  vkm_buf_t b = {0}, cmd = {0};
  vkm_gate_command_line(&cmd, run->argv);
  bool fail = vkm_gate_multi(run) ? run->nfailed || !run->nchecked : res->failures != 0;
  vkm_buf_printf(&b, "### valkmem gate: %s\n\n", fail ? "FAIL" : "pass");
  vkm_buf_printf(&b, "Command: `");
  for (const char *p = cmd.p ? cmd.p : ""; *p; p++) vkm_buf_put(&b, *p == '`' ? "'" : p, 1);
  vkm_buf_printf(&b, "` ");
  vkm_gate_command_outcome(&b, run);
  if (vkm_gate_multi(run)) {
    summary_tree(&b, run);
  } else {
  vkm_buf_printf(&b, "\n\n| Check | Measured | Limit | Baseline | Result |\n|---|---:|---:|---:|---|\n");
  for (size_t i = 0; i < res->n; i++) {
    const vkm_check_t *c = &res->checks[i];
    char m[64], l[64], o[64];
    vkm_buf_printf(&b, "| ");
    vkm_md_escape(&b, c->name);
    vkm_buf_printf(&b, " | %s | %s | %s | %s |\n", vkm_gate_fmt_val(c->is_size, c->measured, m, sizeof m),
                   vkm_gate_fmt_val(c->is_size, c->limit, l, sizeof l),
                   c->is_baseline ? vkm_gate_fmt_val(c->is_size, c->baseline, o, sizeof o) : "",
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
static void bench_entries(cJSON *a, const char *prefix, const vkm_report_t *r, const vkm_gate_result_t *res) {
  static const char *names[] = {"peak live heap", "peak RSS", "leak at exit", "allocations", "bytes allocated"};
  const char *units[] = {"bytes", "bytes", "bytes", "count", "bytes"};
  uint64_t vals[] = {r->peak_live_bytes, r->peak_rss_bytes, res->leak_bytes, r->alloc_count, r->alloc_bytes};
  for (size_t i = 0; i < 5; i++) {
    cJSON *o = cJSON_CreateObject();
    char name[300];
    snprintf(name, sizeof name, "%s%s", prefix, names[i]);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "unit", units[i]);
    cJSON_AddNumberToObject(o, "value", (double)vals[i]);
    cJSON_AddItemToArray(a, o);
  }
}

char *vkm_gate_benchmark_json_run(const vkm_report_t *r, const vkm_gate_result_t *res, const vkm_gate_run_t *run) {
  cJSON *a = cJSON_CreateArray();
  if (vkm_gate_multi(run)) {
    /* Names stay stable from run to run: program names, not pids; the
     * k-th process of a name (by start) is "NAME #k". */
    for (size_t i = 0; i < run->nprocs; i++) {
      const vkm_gate_proc_t *p = &run->procs[i];
      if (p->state != VKM_PROC_CHECKED) continue;
      size_t nth = 1;
      for (size_t j = 0; j < i; j++)
        if (run->procs[j].state == VKM_PROC_CHECKED && strcmp(run->procs[j].program, p->program) == 0) nth++;
      char prefix[200];
      if (nth > 1) snprintf(prefix, sizeof prefix, "%s #%zu: ", p->program, nth);
      else snprintf(prefix, sizeof prefix, "%s: ", p->program);
      bench_entries(a, prefix, &p->rep, &p->res);
    }
  } else {
    bench_entries(a, "", r, res);
  }
  char *s = cJSON_Print(a);
  cJSON_Delete(a);
  return s;
}

char *vkm_gate_benchmark_json(const vkm_report_t *r, const vkm_gate_result_t *res) {
  return vkm_gate_benchmark_json_run(r, res, NULL);
}
