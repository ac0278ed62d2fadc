/* gate_text.c - the gate's phrasing, shared by its outputs (gate_text.h). */
#include "gate_text.h"

#include <string.h>

const char *vkm_gate_fmt_val(bool is_size, uint64_t v, char *buf, size_t len) {
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

void vkm_gate_command_line(vkm_buf_t *b, char *const *argv) {
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

void vkm_gate_command_outcome(vkm_buf_t *b, const vkm_gate_run_t *run) {
  if (run->child.signal)
    vkm_buf_printf(b, "%skilled by %s (signal %d)", vkm_signal_is_crash(run->child.signal) ? "crashed: " : "",
                   vkm_signal_name(run->child.signal), run->child.signal);
  else
    vkm_buf_printf(b, "exited with %d", run->child.exit_code);
}

/* One line: "max-leak: live heap at exit ... 1.00 MiB > limit 0 B". */
void vkm_gate_check_line(vkm_buf_t *b, const vkm_check_t *c) {
  char m[64], l[64], o[64];
  if (c->is_baseline)
    vkm_buf_printf(b, "%s: %s %s %s allowed %s (baseline %s)", c->name, c->what,
                   vkm_gate_fmt_val(c->is_size, c->measured, m, sizeof m), c->ok ? "<=" : ">",
                   vkm_gate_fmt_val(c->is_size, c->limit, l, sizeof l), vkm_gate_fmt_val(c->is_size, c->baseline, o, sizeof o));
  else
    vkm_buf_printf(b, "%s: %s %s %s limit %s", c->name, c->what, vkm_gate_fmt_val(c->is_size, c->measured, m, sizeof m),
                   c->ok ? "<=" : ">", vkm_gate_fmt_val(c->is_size, c->limit, l, sizeof l));
}

/* ---------------------------------------------------------------------------
 * Processes of a tree
 * ------------------------------------------------------------------------- */
bool vkm_gate_multi(const vkm_gate_run_t *run) {
  return run && (run->nprocs > 1 || (run->nprocs == 1 && run->procs[0].state != VKM_PROC_CHECKED));
}

/* How a process ended: "exited with 0", "killed by SIGKILL (signal 9)". */
void vkm_gate_proc_outcome(vkm_buf_t *b, const vkm_gate_proc_t *p) {
  if (p->state == VKM_PROC_NO_REPORT) vkm_buf_printf(b, "no report");
  else if (strcmp(p->end_kind, "exit") == 0) vkm_buf_printf(b, "exited with %d", p->end_code);
  else if (strcmp(p->end_kind, "signal") == 0)
    vkm_buf_printf(b, "killed by %s (signal %d)", p->end_name[0] ? p->end_name : "a signal", p->end_signal);
  else if (strcmp(p->end_kind, "exec") == 0) vkm_buf_printf(b, "replaced by exec");
  else if (p->end_kind[0]) vkm_buf_printf(b, "ended (how is unknown)");
  else if (p->rep.root) vkm_buf_printf(b, "last report checkpoint");
  else vkm_buf_printf(b, "report unreadable");
}

bool vkm_gate_proc_crashed(const vkm_gate_proc_t *p) {
  return strcmp(p->end_kind, "signal") == 0;
}

const char *vkm_gate_proc_verdict(const vkm_gate_proc_t *p) {
  if (p->state == VKM_PROC_CHECKED) return p->failed ? "FAIL" : "PASS";
  if (p->state == VKM_PROC_BAD_REPORT) return "FAIL";
  return "not checked";
}

void vkm_gate_proc_reason(vkm_buf_t *b, const vkm_gate_proc_t *p, const vkm_gate_opts_t *o) {
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

void vkm_gate_verdict_line(vkm_buf_t *b, const vkm_gate_run_t *run) {
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

/* A title for a process: "proc_leaky (pid 1234)". */
void vkm_gate_proc_title(vkm_buf_t *b, const vkm_gate_proc_t *p) {
  vkm_buf_printf(b, "%s (pid %d)", p->program, p->pid);
}
