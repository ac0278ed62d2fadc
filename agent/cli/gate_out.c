/* gate_out.c - what the gate tells people: the human summary (stderr) and
 * the JSON report's "gate" section. The CI formats are gate_ci.c; the
 * phrasing they share, gate_text.c. */
#include "gate_text.h"

#include <stdlib.h>
#include <string.h>

/* "measured: peak live heap ..., leak at exit ..." */
static void measured_line(vkm_buf_t *b, const char *indent, const vkm_report_t *r, const vkm_gate_result_t *res,
                          bool crashed) {
  char a[64], c2[64], d[64], e[64];
  /* 0 is never a peak RSS: the process ended before its first reading. */
  vkm_buf_printf(b, "%smeasured: peak live heap %s, peak RSS %s, %llu allocations of %s, %s %s\n", indent,
                 vkm_fmt_size(r->peak_live_bytes, a, sizeof a),
                 r->peak_rss_bytes ? vkm_fmt_size(r->peak_rss_bytes, c2, sizeof c2) : "not measured",
                 (unsigned long long)r->alloc_count, vkm_fmt_size(r->alloc_bytes, d, sizeof d),
                 crashed ? "live at the end" : "leak at exit", vkm_fmt_size(res->leak_bytes, e, sizeof e));
}

/* ---------------------------------------------------------------------------
 * Human summary
 * ------------------------------------------------------------------------- */
/* Appends text with each line prefixed (details are indented for the
 * single-process form; a tree's sections are two columns deeper). */
static void put_indented(vkm_buf_t *b, const char *prefix, const char *text) {
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);
    vkm_buf_printf(b, "%s", prefix);
    vkm_buf_put(b, p, n);
    p += n;
  }
}

static void print_checks(vkm_buf_t *b, const char *indent, const vkm_gate_result_t *res, const char *detail_prefix) {
  for (size_t i = 0; i < res->n; i++) {
    const vkm_check_t *c = &res->checks[i];
    vkm_buf_printf(b, "%s%s ", indent, c->ok ? "ok  " : "FAIL");
    vkm_gate_check_line(b, c);
    vkm_buf_printf(b, "\n");
    if (c->detail[0]) put_indented(b, detail_prefix, c->detail); /* an ok check's: what it rests on */
  }
}

static void print_tree(vkm_buf_t *b, const vkm_gate_opts_t *o, const vkm_gate_run_t *run) {
  vkm_gate_verdict_line(b, run);
  vkm_buf_printf(b, "  command: ");
  vkm_gate_command_line(b, run->argv);
  vkm_buf_printf(b, " -> ");
  vkm_gate_command_outcome(b, run);
  vkm_buf_printf(b, "\n");
  for (size_t i = 0; i < run->nprocs; i++) {
    const vkm_gate_proc_t *p = &run->procs[i];
    vkm_buf_printf(b, "  process %d %s: %s (", p->pid, p->program, vkm_gate_proc_verdict(p));
    if (p->state == VKM_PROC_CHECKED) {
      vkm_gate_proc_outcome(b, p);
    } else if (p->state == VKM_PROC_BAD_REPORT) {
      vkm_gate_proc_reason(b, p, o);
    } else {
      vkm_gate_proc_reason(b, p, o);
      if (p->rep.root) {
        vkm_buf_printf(b, "; ");
        vkm_gate_proc_outcome(b, p);
      }
    }
    vkm_buf_printf(b, ")\n");
    if (p->state != VKM_PROC_CHECKED) continue;
    if (vkm_gate_proc_crashed(p))
      vkm_buf_printf(b, "    it crashed: %s\n", p->rep.state && strcmp(p->rep.state, "exited") == 0
                                                    ? "its report covers it up to the signal"
                                                    : "these numbers are from its last report checkpoint");
    else if (!p->end_kind[0])
      vkm_buf_printf(b, "    its report is a checkpoint: the process had not ended when the gate read it\n");
    if (o && o->baseline) vkm_buf_printf(b, "    baseline: %s\n", p->baseline_from);
    measured_line(b, "    ", &p->rep, &p->res, vkm_gate_proc_crashed(p));
    print_checks(b, "    ", &p->res, "  ");
  }
}

void vkm_gate_print_human(FILE *f, const vkm_gate_opts_t *o, const vkm_supp_list_t *supp,
                          const vkm_report_t *r, const vkm_gate_result_t *res,
                          const vkm_gate_run_t *run) {
  vkm_buf_t b = {0};
  bool multi = vkm_gate_multi(run);
  char a[64];
  if (multi) {
    print_tree(&b, o, run);
  } else {
    if (res->failures)
      vkm_buf_printf(&b, "valkmem gate: FAIL: %zu of %zu check(s) failed\n", res->failures, res->n);
    else if (res->n)
      vkm_buf_printf(&b, "valkmem gate: PASS: all %zu check(s) hold\n", res->n);
    else
      vkm_buf_printf(&b, "valkmem gate: no limits set (measured only)\n");
    vkm_buf_printf(&b, "  command: ");
    vkm_gate_command_line(&b, run->argv);
    vkm_buf_printf(&b, " -> ");
    vkm_gate_command_outcome(&b, run);
    vkm_buf_printf(&b, "\n");
    /* The command became another program (setpriv, env, a wrapper script
     * that execs): say whose numbers these are. */
    if (run->nprocs == 1 && run->argv && run->argv[0] && run->procs[0].program[0] &&
        strcmp(run->procs[0].program, vkm_cli_base_name(run->argv[0])) != 0)
      vkm_buf_printf(&b, "  checked: %s (pid %d), what the command exec'd\n", run->procs[0].program, run->procs[0].pid);
    if (run->crashed) {
      const cJSON *end = cJSON_GetObjectItemCaseSensitive(r->root, "end");
      const char *how = vkm_signal_is_crash(run->child.signal) ? "crashed" : "was killed";
      if (end)
        vkm_buf_printf(&b, "  the command %s: its report covers it up to the signal\n", how);
      else
        vkm_buf_printf(&b, "  the command %s: these numbers are from the last report checkpoint%s\n", how,
                       r->state && strcmp(r->state, "exited") == 0 ? " (written at exit)" : " before the signal");
    }
    measured_line(&b, "  ", r, res, run->crashed);
    print_checks(&b, "  ", res, "");
  }
  size_t ndef = 0, matched = 0;
  uint64_t suppressed = 0;
  for (size_t i = 0; i < supp->n; i++) {
    if (strcmp(supp->v[i].source, "default") == 0) ndef++;
    if (supp->v[i].sites) matched++;
    suppressed += supp->v[i].bytes;
  }
  if (ndef)
    vkm_buf_printf(&b, "  default suppressions: %zu patterns for libc/ld.so/libstdc++ start-up allocations "
                       "(valkmem gate --help lists them; --no-default-suppressions turns them off)\n", ndef);
  else if (o->no_default_supp)
    vkm_buf_printf(&b, "  default suppressions: off\n");
  if (matched) {
    vkm_buf_printf(&b, "  suppressed %s at exit%s:\n", vkm_fmt_size(multi ? suppressed : res->suppressed_bytes, a, sizeof a),
                   multi ? " (all processes checked)" : "");
    for (size_t i = 0; i < supp->n; i++) {
      if (!supp->v[i].sites) continue;
      vkm_buf_printf(&b, "    %s%s (%s): %llu site(s), %s\n", supp->v[i].system_only ? "" : "leak:",
                   supp->v[i].pattern, supp->v[i].source,
                     (unsigned long long)supp->v[i].sites, vkm_fmt_size(supp->v[i].bytes, a, sizeof a));
    }
  }
  uint64_t sample = r ? r->sample_bytes : 0, dropped = r ? r->dropped_events : 0;
  if (multi) {
    dropped = 0;
    for (size_t i = 0; i < run->nprocs; i++)
      if (run->procs[i].state == VKM_PROC_CHECKED) {
        dropped += run->procs[i].rep.dropped_events;
        if (run->procs[i].rep.sample_bytes > sample) sample = run->procs[i].rep.sample_bytes;
      }
  }
  if (sample > 1)
    vkm_buf_printf(&b, "  note: sampled mode (mean %llu B): per-site numbers are estimates\n",
                   (unsigned long long)sample);
  if (dropped)
    vkm_buf_printf(&b, "  note: %llu sampling events were dropped\n", (unsigned long long)dropped);
  if (multi && run->nprocs > 1) vkm_gate_verdict_line(&b, run); /* again, last: where a CI log is read */
  fflush(stdout);
  fputs(b.p, f);
  fflush(f);
  vkm_buf_free(&b);
}

/* ---------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------- */
static cJSON *check_json(const vkm_check_t *c, const vkm_gate_proc_t *p) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", c->name);
  if (p) {
    cJSON_AddNumberToObject(j, "pid", p->pid);
    cJSON_AddStringToObject(j, "program", p->program);
  }
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
  return j;
}

/* gate.processes[i]: who, how it ended, its verdict and checks, and its
 * report (the document's own process says "document": true instead), so
 * that a later gate can use this file as a per-process baseline. */
static cJSON *proc_json(const vkm_gate_proc_t *p, const vkm_gate_opts_t *o, const vkm_gate_run_t *run) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "pid", p->pid);
  cJSON_AddNumberToObject(j, "ppid", p->ppid);
  cJSON_AddStringToObject(j, "program", p->program);
  cJSON_AddBoolToObject(j, "forked", p->forked);
  cJSON_AddBoolToObject(j, "root", p->is_root);
  cJSON_AddNumberToObject(j, "started_at", p->started_at);
  const cJSON *end = p->rep.root ? cJSON_GetObjectItemCaseSensitive(p->rep.root, "end") : NULL;
  if (end) cJSON_AddItemToObject(j, "end", cJSON_Duplicate(end, true));
  const char *verdict = p->state == VKM_PROC_CHECKED ? (p->failed ? "fail" : "pass")
                        : p->state == VKM_PROC_BAD_REPORT ? "fail" : "not checked";
  cJSON_AddStringToObject(j, "verdict", verdict);
  if (p->state != VKM_PROC_CHECKED) {
    vkm_buf_t r = {0};
    vkm_gate_proc_reason(&r, p, o);
    cJSON_AddStringToObject(j, "reason", r.p ? r.p : "");
    vkm_buf_free(&r);
  } else {
    cJSON_AddNumberToObject(j, "failures", (double)p->res.failures);
    cJSON_AddNumberToObject(j, "leak_bytes", (double)p->res.leak_bytes);
    cJSON_AddNumberToObject(j, "suppressed_bytes", (double)p->res.suppressed_bytes);
    if (p->baseline_from[0]) cJSON_AddStringToObject(j, "baseline", p->baseline_from);
    cJSON *checks = cJSON_AddArrayToObject(j, "checks");
    for (size_t i = 0; i < p->res.n; i++) cJSON_AddItemToArray(checks, check_json(&p->res.checks[i], NULL));
  }
  if (p == run->doc) cJSON_AddBoolToObject(j, "document", true);
  else if (p->rep.root) cJSON_AddItemToObject(j, "report", cJSON_Duplicate(p->rep.root, true));
  return j;
}

void vkm_gate_json(cJSON *root, const vkm_gate_opts_t *o, const vkm_supp_list_t *supp,
                   const vkm_gate_result_t *res, const vkm_gate_run_t *run, int exit_code) {
  bool multi = vkm_gate_multi(run);
  size_t failures = res->failures;
  uint64_t leak = res->leak_bytes, suppressed = res->suppressed_bytes;
  if (multi) {
    failures = leak = suppressed = 0;
    for (size_t i = 0; i < run->nprocs; i++) {
      const vkm_gate_proc_t *p = &run->procs[i];
      if (p->state == VKM_PROC_BAD_REPORT) failures++;
      if (p->state != VKM_PROC_CHECKED) continue;
      failures += p->res.failures;
      leak += p->res.leak_bytes;
      suppressed += p->res.suppressed_bytes;
    }
  }
  cJSON_DeleteItemFromObjectCaseSensitive(root, "gate");
  cJSON *g = cJSON_AddObjectToObject(root, "gate");
  cJSON_AddStringToObject(g, "result", (multi ? run->nfailed || !run->nchecked : failures != 0) ? "fail" : "pass");
  cJSON_AddNumberToObject(g, "exit_code", exit_code);
  cJSON_AddNumberToObject(g, "failures", (double)failures);
  cJSON *cmd = cJSON_AddObjectToObject(g, "command");
  cJSON *av = cJSON_AddArrayToObject(cmd, "argv");
  for (size_t i = 0; run->argv && run->argv[i]; i++) cJSON_AddItemToArray(av, cJSON_CreateString(run->argv[i]));
  cJSON_AddNumberToObject(cmd, "exit_code", run->child.exit_code);
  if (run->child.signal) {
    cJSON_AddNumberToObject(cmd, "signal", run->child.signal);
    cJSON_AddStringToObject(cmd, "signal_name", vkm_signal_name(run->child.signal));
  }
  cJSON_AddBoolToObject(cmd, "crashed", run->crashed);
  if (run->nprocs) {
    cJSON_AddNumberToObject(g, "processes_checked", (double)run->nchecked);
    cJSON_AddNumberToObject(g, "processes_failed", (double)run->nfailed);
  }
  cJSON_AddNumberToObject(g, "unchecked_processes", (double)run->others);
  cJSON_AddNumberToObject(g, "leak_bytes", (double)leak);
  cJSON_AddNumberToObject(g, "suppressed_bytes", (double)suppressed);
  cJSON_AddBoolToObject(g, "exact", !o->sampled);
  cJSON *checks = cJSON_AddArrayToObject(g, "checks");
  if (multi) {
    for (size_t i = 0; i < run->nprocs; i++) {
      const vkm_gate_proc_t *p = &run->procs[i];
      if (p->state != VKM_PROC_CHECKED) continue;
      for (size_t k = 0; k < p->res.n; k++) cJSON_AddItemToArray(checks, check_json(&p->res.checks[k], p));
    }
  } else {
    for (size_t i = 0; i < res->n; i++) cJSON_AddItemToArray(checks, check_json(&res->checks[i], NULL));
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
  if (o->nonly) {
    cJSON *oj = cJSON_AddArrayToObject(g, "only");
    for (size_t i = 0; i < o->nonly; i++) cJSON_AddItemToArray(oj, cJSON_CreateString(o->only[i]));
  }
  if (run->nprocs) {
    cJSON *pj = cJSON_AddArrayToObject(g, "processes");
    for (size_t i = 0; i < run->nprocs; i++) cJSON_AddItemToArray(pj, proc_json(&run->procs[i], o, run));
  }
}
