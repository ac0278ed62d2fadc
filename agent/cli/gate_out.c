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
    vkm_buf_printf(b, "%skilled by %s (signal %d)", vkm_signal_is_crash(run->child.signal) ? "crashed: " : "",
                   vkm_signal_name(run->child.signal), run->child.signal);
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
 * Processes of a tree
 * ------------------------------------------------------------------------- */
bool vkm_gate_multi(const vkm_gate_run_t *run) {
  return run && (run->nprocs > 1 || (run->nprocs == 1 && run->procs[0].state != VKM_PROC_CHECKED));
}

/* How a process ended: "exited with 0", "killed by SIGKILL (signal 9)". */
static void proc_outcome(vkm_buf_t *b, const vkm_gate_proc_t *p) {
  if (p->state == VKM_PROC_NO_REPORT) vkm_buf_printf(b, "no report");
  else if (strcmp(p->end_kind, "exit") == 0) vkm_buf_printf(b, "exited with %d", p->end_code);
  else if (strcmp(p->end_kind, "signal") == 0)
    vkm_buf_printf(b, "killed by %s (signal %d)", p->end_name[0] ? p->end_name : "a signal", p->end_signal);
  else if (strcmp(p->end_kind, "exec") == 0) vkm_buf_printf(b, "replaced by exec");
  else if (p->end_kind[0]) vkm_buf_printf(b, "ended (how is unknown)");
  else if (p->rep.root) vkm_buf_printf(b, "last report checkpoint");
  else vkm_buf_printf(b, "report unreadable");
}

static bool proc_crashed(const vkm_gate_proc_t *p) {
  return strcmp(p->end_kind, "signal") == 0;
}

static const char *proc_verdict(const vkm_gate_proc_t *p) {
  if (p->state == VKM_PROC_CHECKED) return p->failed ? "FAIL" : "PASS";
  if (p->state == VKM_PROC_BAD_REPORT) return "FAIL";
  return "not checked";
}

static void proc_reason(vkm_buf_t *b, const vkm_gate_proc_t *p, const vkm_gate_opts_t *o) {
  switch (p->state) {
  case VKM_PROC_UNMATCHED:
    vkm_buf_printf(b, "--only");
    for (size_t k = 0; o && k < o->nonly; k++) vkm_buf_printf(b, "%s%s", k ? ", " : " ", o->only[k]);
    vkm_buf_printf(b, " does not match \"%s\"", p->program);
    break;
  case VKM_PROC_EXEC:
    vkm_buf_printf(b, "its image was replaced by exec and only the replaced image's report is left");
    break;
  case VKM_PROC_NO_REPORT:
    vkm_buf_printf(b, "it left no report (statically linked, or VALKMEM_DISABLE set?)");
    break;
  case VKM_PROC_BAD_REPORT:
    vkm_buf_printf(b, "%s", p->problem);
    break;
  default:
    break;
  }
}

/* "proc_leaky pid 1234, sh pid 1230" (the first five). */
static void failed_names(vkm_buf_t *b, const vkm_gate_run_t *run) {
  size_t k = 0;
  for (size_t i = 0; i < run->nprocs; i++) {
    const vkm_gate_proc_t *p = &run->procs[i];
    if (!p->failed) continue;
    if (k < 5) vkm_buf_printf(b, "%s%s pid %d", k ? ", " : "", p->program, p->pid);
    k++;
  }
  if (k > 5) vkm_buf_printf(b, " and %zu more", k - 5);
}

static void verdict_line(vkm_buf_t *b, const vkm_gate_run_t *run) {
  size_t nchecks = 0;
  for (size_t i = 0; i < run->nprocs; i++)
    if (run->procs[i].state == VKM_PROC_CHECKED) nchecks += run->procs[i].res.n;
  size_t judged = run->nchecked; /* and the unreadable reports, which fail */
  for (size_t i = 0; i < run->nprocs; i++)
    if (run->procs[i].state == VKM_PROC_BAD_REPORT) judged++;
  if (run->nfailed) {
    vkm_buf_printf(b, "valkmem gate: FAIL: %zu of %zu process(es) failed (", run->nfailed, judged);
    failed_names(b, run);
    vkm_buf_printf(b, ")");
  } else if (!run->nchecked) {
    vkm_buf_printf(b, "valkmem gate: FAIL: no process was checked");
  } else if (nchecks) {
    vkm_buf_printf(b, "valkmem gate: PASS: all %zu check(s) hold in %zu process(es)", nchecks, run->nchecked);
  } else {
    vkm_buf_printf(b, "valkmem gate: no limits set (measured only): %zu process(es)", run->nchecked);
  }
  if (run->others) vkm_buf_printf(b, "; %zu not checked", run->others);
  vkm_buf_printf(b, "\n");
}

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

/* A title for a process: "proc_leaky (pid 1234)". */
static void proc_title(vkm_buf_t *b, const vkm_gate_proc_t *p) {
  vkm_buf_printf(b, "%s (pid %d)", p->program, p->pid);
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
    check_line(b, c);
    vkm_buf_printf(b, "\n");
    if (c->detail[0]) put_indented(b, detail_prefix, c->detail); /* an ok check's: what it rests on */
  }
}

static void print_tree(vkm_buf_t *b, const vkm_gate_opts_t *o, const vkm_gate_run_t *run) {
  verdict_line(b, run);
  vkm_buf_printf(b, "  command: ");
  command_line(b, run->argv);
  vkm_buf_printf(b, " -> ");
  command_outcome(b, run);
  vkm_buf_printf(b, "\n");
  for (size_t i = 0; i < run->nprocs; i++) {
    const vkm_gate_proc_t *p = &run->procs[i];
    vkm_buf_printf(b, "  process %d %s: %s (", p->pid, p->program, proc_verdict(p));
    if (p->state == VKM_PROC_CHECKED) {
      proc_outcome(b, p);
    } else if (p->state == VKM_PROC_BAD_REPORT) {
      proc_reason(b, p, o);
    } else {
      proc_reason(b, p, o);
      if (p->rep.root) {
        vkm_buf_printf(b, "; ");
        proc_outcome(b, p);
      }
    }
    vkm_buf_printf(b, ")\n");
    if (p->state != VKM_PROC_CHECKED) continue;
    if (proc_crashed(p))
      vkm_buf_printf(b, "    it crashed: %s\n", p->rep.state && strcmp(p->rep.state, "exited") == 0
                                                    ? "its report covers it up to the signal"
                                                    : "these numbers are from its last report checkpoint");
    else if (!p->end_kind[0])
      vkm_buf_printf(b, "    its report is a checkpoint: the process had not ended when the gate read it\n");
    if (o && o->baseline) vkm_buf_printf(b, "    baseline: %s\n", p->baseline_from);
    measured_line(b, "    ", &p->rep, &p->res, proc_crashed(p));
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
    command_line(&b, run->argv);
    vkm_buf_printf(&b, " -> ");
    command_outcome(&b, run);
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
  if (multi && run->nprocs > 1) verdict_line(&b, run); /* again, last: where a CI log is read */
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
    proc_reason(&r, p, o);
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
    else if (p->state == VKM_PROC_CHECKED && proc_crashed(p)) errors++;
    else if (p->state == VKM_PROC_BAD_REPORT) errors++;
    else if (p->state != VKM_PROC_CHECKED) skipped++;
  }
  command_line(&cmd, run->argv);
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
    proc_title(&t, p);
    vkm_buf_printf(&b, "    <testcase name=\"");
    vkm_xml_escape(&b, t.p);
    vkm_buf_printf(&b, "\" classname=\"valkmem.gate\" time=\"0\">\n");
    if (p->state == VKM_PROC_CHECKED && p->failed) {
      size_t k = 0;
      for (size_t c = 0; c < p->res.n; c++) {
        const vkm_check_t *ch = &p->res.checks[c];
        if (ch->ok) continue;
        if (k++) vkm_buf_printf(&m, "; ");
        check_line(&m, ch);
        check_line(&txt, ch);
        vkm_buf_printf(&txt, "\n%s", ch->detail);
      }
      if (proc_crashed(p)) {
        vkm_buf_printf(&txt, "the process ");
        proc_outcome(&txt, p);
        vkm_buf_printf(&txt, "\n");
      }
      vkm_buf_printf(&b, "      <failure type=\"limits\" message=\"");
      vkm_xml_escape(&b, m.p);
      vkm_buf_printf(&b, "\">");
      vkm_xml_escape(&b, txt.p);
      vkm_buf_printf(&b, "</failure>\n");
    } else if (p->state == VKM_PROC_CHECKED && proc_crashed(p)) {
      proc_outcome(&m, p);
      vkm_buf_printf(&b, "      <error type=\"crash\" message=\"");
      vkm_xml_escape(&b, m.p);
      vkm_buf_printf(&b, "\">");
      vkm_xml_escape(&b, "the limits held; they were checked against its report up to the crash");
      vkm_buf_printf(&b, "</error>\n");
    } else if (p->state == VKM_PROC_BAD_REPORT) {
      proc_reason(&m, p, o);
      vkm_buf_printf(&b, "      <error type=\"report\" message=\"");
      vkm_xml_escape(&b, m.p);
      vkm_buf_printf(&b, "\"/>\n");
    } else if (p->state != VKM_PROC_CHECKED) {
      proc_reason(&m, p, o);
      vkm_buf_printf(&b, "      <skipped message=\"");
      vkm_xml_escape(&b, m.p);
      vkm_buf_printf(&b, "\"/>\n");
    }
    if (p->state == VKM_PROC_CHECKED) {
      vkm_buf_t out = {0};
      vkm_buf_printf(&out, "%s %d %s: ", p->is_root ? "command" : "process", p->pid, p->program);
      proc_outcome(&out, p);
      vkm_buf_printf(&out, "\n");
      for (size_t c = 0; c < p->res.n; c++) {
        vkm_buf_printf(&out, "%s ", p->res.checks[c].ok ? "ok  " : "FAIL");
        check_line(&out, &p->res.checks[c]);
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

/* A tree: each failed check of each process, titled with the process. */
static void annotations_tree(vkm_buf_t *b, const vkm_gate_run_t *run, const char *workspace) {
  for (size_t i = 0; i < run->nprocs; i++) {
    const vkm_gate_proc_t *p = &run->procs[i];
    vkm_buf_t t = {0}, m = {0};
    if (p->state == VKM_PROC_BAD_REPORT) {
      vkm_buf_printf(&t, "valkmem gate: ");
      proc_title(&t, p);
      vkm_buf_printf(&m, "process %d %s: ", p->pid, p->program);
      proc_reason(&m, p, NULL);
      annotation(b, t.p, NULL, 0, m.p, workspace);
    } else if (p->state == VKM_PROC_CHECKED && proc_crashed(p) && !p->is_root) {
      vkm_buf_printf(&t, "valkmem gate: ");
      proc_title(&t, p);
      vkm_buf_printf(&t, " crashed");
      vkm_buf_printf(&m, "process %d %s ", p->pid, p->program);
      proc_outcome(&m, p);
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
      check_line(&mm, c);
      if (c->detail[0]) vkm_buf_printf(&mm, "\n%s", c->detail);
      vkm_buf_printf(&tt, "valkmem gate: ");
      proc_title(&tt, p);
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
    command_line(&cmd, run->argv);
    vkm_buf_printf(&m, "%s ", cmd.p ? cmd.p : "");
    command_outcome(&m, run);
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
    check_line(&m, c);
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
  verdict_line(&v, run);
  md_code(b, v.p);
  vkm_buf_free(&v);
  vkm_buf_printf(b, "\n| Process | Check | Measured | Limit | Baseline | Result |\n|---|---|---:|---:|---:|---|\n");
  for (size_t i = 0; i < run->nprocs; i++) {
    const vkm_gate_proc_t *p = &run->procs[i];
    vkm_buf_t t = {0};
    proc_title(&t, p);
    if (p->state != VKM_PROC_CHECKED) {
      vkm_buf_t r = {0};
      proc_reason(&r, p, NULL);
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
      vkm_buf_printf(b, " | %s | %s | %s | %s |\n", fmt_val(c->is_size, c->measured, m, sizeof m),
                     fmt_val(c->is_size, c->limit, l, sizeof l),
                     c->is_baseline ? fmt_val(c->is_size, c->baseline, o, sizeof o) : "",
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
      proc_title(&t, p);
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
  command_line(&cmd, run->argv);
  bool fail = vkm_gate_multi(run) ? run->nfailed || !run->nchecked : res->failures != 0;
  vkm_buf_printf(&b, "### valkmem gate: %s\n\n", fail ? "FAIL" : "pass");
  vkm_buf_printf(&b, "Command: `");
  for (const char *p = cmd.p ? cmd.p : ""; *p; p++) vkm_buf_put(&b, *p == '`' ? "'" : p, 1);
  vkm_buf_printf(&b, "` ");
  command_outcome(&b, run);
  if (vkm_gate_multi(run)) {
    summary_tree(&b, run);
  } else {
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
