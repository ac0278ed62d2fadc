/* gate.c - `valkmem gate`: run a command under the shim in exact mode,
 * then hold its report to limits and to a baseline.
 *
 * Exit status: the command's own status when every check holds; 3 (or
 * --error-exitcode N) when one fails; 2 for usage and configuration errors,
 * found before the command runs whenever possible; 127/126 when the command
 * cannot be started, as in a shell. */
#include "cli.h"

#include <dirent.h>

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char gate_usage[] =
    "usage: valkmem gate [limits] [options] -- CMD [ARGS...]\n"
    "\n"
    "Runs CMD under the shim (exact mode, no dashboard) and checks its memory.\n"
    "\n"
    "Limits (SIZE: \"24 MB\", \"512KiB\", \"1.5GB\", \"0\"; kB/MB/GB = 1000^n, K/KiB/M/MiB = 1024^n):\n"
    "  --max-peak SIZE           peak live heap (peak.live_bytes)\n"
    "  --max-rss SIZE            peak resident set size (peak.rss_bytes)\n"
    "  --max-leak SIZE           live heap at exit, after suppressions\n"
    "  --max-leak-per-site SIZE  live bytes at exit of any one call site\n"
    "  --max-allocs N            number of allocations\n"
    "  --max-alloc-bytes SIZE    bytes requested in total\n"
    "\n"
    "Baseline:\n"
    "  --baseline FILE           a report from an earlier run (valkmem gate --report / VALKMEM_REPORT)\n"
    "  --tolerance PCT[,ABS]     growth allowed (default 10): a metric or site fails when it grew\n"
    "                            by more than PCT %% and by more than ABS (e.g. 10,64KiB)\n"
    "\n"
    "Options:\n"
    "  --suppressions FILE       LeakSanitizer-style leak:<pattern> lines (repeatable)\n"
    "  --no-default-suppressions do not ignore libc/ld.so/libstdc++ start-up allocations\n"
    "  --config FILE             JSON file with the same settings (flags override it)\n"
    "  --report FILE             write the JSON report, with a \"gate\" section\n"
    "  --junit FILE              write JUnit XML, one testcase per check\n"
    "  --benchmark-json FILE     write github-action-benchmark customSmallerIsBetter JSON\n"
    "  --error-exitcode N        exit status when a check fails (default 3)\n"
    "  --sampled                 sampled attribution instead of exact mode (faster; per-site\n"
    "                            numbers become estimates)\n"
    "  --only NAME               check only the processes whose program name (basename of\n"
    "                            argv[0]) is NAME or matches it as a glob (repeatable); the\n"
    "                            others are listed as not checked\n"
    "\n"
    "Every process of CMD's tree (CMD itself, what it execs into, and every process it\n"
    "starts) is held to the limits on its own; the gate fails when one of them fails and\n"
    "names it (pid and program). A baseline that is a gate report of several processes\n"
    "is matched by program name; any other baseline applies to every process.\n"
    "\n"
    "Under GitHub Actions (GITHUB_ACTIONS=true) failures are also printed as ::error\n"
    "annotations and a table is appended to $GITHUB_STEP_SUMMARY.\n"
    "\n"
    "Exit status: CMD's status when every check holds; 3 (--error-exitcode) when one\n"
    "fails; 2 for a usage or configuration error; 127/126 when CMD cannot be started.\n"
    "A command that crashes before the agent has its report keeps its own status.\n";

static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *missing) {
  size_t n = strlen(name);
  *missing = false;
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != 0) return NULL;
  if (*i + 1 >= argc || strcmp(argv[*i + 1], "--") == 0) {
    *missing = true;
    return "";
  }
  return argv[++*i];
}

static void opts_free(vkm_gate_opts_t *o) {
  free(o->baseline);
  free(o->report);
  free(o->junit);
  free(o->benchmark_json);
  free(o->config);
  for (size_t i = 0; i < o->nonly; i++) free(o->only[i]);
  free(o->only);
  vkm_supp_free(&o->supp);
}

/* Parses the gate's flags. Returns the index of CMD, or -1 after saying
 * what is wrong, or 0 for --help. */
static int parse_args(int argc, char **argv, vkm_gate_opts_t *o, bool *cmdline, char ***supp_files,
                      size_t *nsupp) {
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i], *v;
    bool missing;
    if (strcmp(a, "--") == 0) return i + 1;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 0;
    bool matched = false;
    for (int id = 0; id < VKM_LIM_COUNT && !matched; id++) {
      if (!(v = opt_value(argc, argv, &i, vkm_limit_info[id].flag, &missing))) continue;
      matched = true;
      const char *why = NULL;
      if (missing) {
        vkm_cli_err("gate: %s needs a value", vkm_limit_info[id].flag);
        return -1;
      }
      int rc = vkm_limit_info[id].is_size ? vkm_parse_size(v, &o->limit[id], &why)
                                          : vkm_parse_count(v, &o->limit[id], &why);
      if (rc < 0) {
        vkm_cli_err("gate: %s: bad %s \"%s\": %s", vkm_limit_info[id].flag,
                    vkm_limit_info[id].is_size ? "size" : "number", v, why);
        return -1;
      }
      o->set[id] = cmdline[id] = true;
    }
    if (matched) continue;
    struct {
      const char *flag;
      char **dst;
      int opt;
    } paths[] = {
        {"--baseline", &o->baseline, VKM_OPT_BASELINE},   {"--report", &o->report, VKM_OPT_REPORT},
        {"--junit", &o->junit, VKM_OPT_JUNIT},            {"--benchmark-json", &o->benchmark_json, VKM_OPT_BENCH},
        {"--config", &o->config, -1},
    };
    for (size_t k = 0; k < sizeof paths / sizeof paths[0] && !matched; k++) {
      if (!(v = opt_value(argc, argv, &i, paths[k].flag, &missing))) continue;
      matched = true;
      if (missing || !*v) {
        vkm_cli_err("gate: %s needs a file name", paths[k].flag);
        return -1;
      }
      free(*paths[k].dst);
      *paths[k].dst = strdup(v);
      if (paths[k].opt >= 0) cmdline[paths[k].opt] = true;
    }
    if (matched) continue;
    if ((v = opt_value(argc, argv, &i, "--suppressions", &missing))) {
      if (missing || !*v) {
        vkm_cli_err("gate: --suppressions needs a file name");
        return -1;
      }
      char **nv = realloc(*supp_files, (*nsupp + 1) * sizeof *nv);
      if (!nv) return -1;
      *supp_files = nv;
      nv[(*nsupp)++] = argv[i][strlen("--suppressions")] == '=' ? argv[i] + strlen("--suppressions=") : argv[i];
    } else if ((v = opt_value(argc, argv, &i, "--tolerance", &missing))) {
      const char *why = NULL;
      if (missing || vkm_parse_tolerance(v, &o->tol_pct, &o->tol_abs, &why) < 0) {
        vkm_cli_err("gate: --tolerance: bad tolerance \"%s\": %s (expected PCT[,ABS], e.g. 10 or 10,64KiB)", v,
                    missing ? "missing value" : why);
        return -1;
      }
      o->have_tolerance = cmdline[VKM_OPT_TOLERANCE] = true;
    } else if ((v = opt_value(argc, argv, &i, "--error-exitcode", &missing))) {
      uint64_t n;
      const char *why = "must be from 1 to 255";
      if (missing || vkm_parse_count(v, &n, &why) < 0 || n < 1 || n > 255) {
        vkm_cli_err("gate: --error-exitcode: bad exit status \"%s\": %s", v,
                    missing ? "missing value" : (n < 1 || n > 255) ? "must be from 1 to 255" : why);
        return -1;
      }
      o->error_exitcode = (int)n;
      o->have_error_exitcode = cmdline[VKM_OPT_EXITCODE] = true;
    } else if ((v = opt_value(argc, argv, &i, "--only", &missing))) {
      if (missing || !*v) {
        vkm_cli_err("gate: --only needs a program name or glob (e.g. --only unit_tests or --only 'test_*')");
        return -1;
      }
      char **nv = realloc(o->only, (o->nonly + 1) * sizeof *nv);
      if (!nv) return -1;
      o->only = nv;
      if (!(nv[o->nonly] = strdup(v))) return -1;
      o->nonly++;
    } else if (strcmp(a, "--sampled") == 0) {
      o->sampled = cmdline[VKM_OPT_SAMPLED] = true;
    } else if (strcmp(a, "--no-default-suppressions") == 0) {
      o->no_default_supp = cmdline[VKM_OPT_NODEFSUPP] = true;
    } else if (a[0] == '-') {
      vkm_cli_err("gate: unknown option \"%s\" (see valkmem gate --help)", a);
      return -1;
    } else {
      return i;
    }
  }
  return i;
}

static int write_text(const char *what, const char *path, const char *text) {
  return vkm_cli_write_file(what, path, text, strlen(text));
}

static int append_text(const char *what, const char *path, const char *text) {
  FILE *f = fopen(path, "a");
  if (!f) {
    vkm_cli_err("cannot append to %s %s: %s", what, path, strerror(errno));
    return -1;
  }
  fputs(text, f);
  if (fclose(f) != 0) {
    vkm_cli_err("cannot append to %s %s: %s", what, path, strerror(errno));
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------------------
 * The tree: every report-PID.json of the gate's report directory.
 *
 * With %p each process writes its own file; an exec'd image writes the
 * same pid's file, so normally only the final image of a pid is there. Its
 * replaced image's report ("end": {"kind": "exec"}) is seen only when it
 * happened to land after the new image's: such a report is not checked
 * (the image it describes is gone, and the new one left nothing).
 * ------------------------------------------------------------------------- */
static bool only_matches(const vkm_gate_opts_t *o, const char *name) {
  if (!o->nonly) return true;
  for (size_t k = 0; k < o->nonly; k++)
    if (strcmp(o->only[k], name) == 0 || fnmatch(o->only[k], name, 0) == 0) return true;
  return false;
}

/* "report-123.json" -> 123; -1 for anything else (temporaries included). */
static int report_pid(const char *name) {
  if (strncmp(name, "report-", 7) != 0) return -1;
  const char *p = name + 7;
  long v = 0;
  if (*p < '0' || *p > '9') return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    v = v * 10 + (*p - '0');
    if (v > INT_MAX) return -1;
  }
  return strcmp(p, ".json") == 0 ? (int)v : -1;
}

static void proc_fill(vkm_gate_proc_t *p) {
  const cJSON *root = p->rep.root, *j;
  if ((j = cJSON_GetObjectItemCaseSensitive(root, "ppid")) && cJSON_IsNumber(j)) p->ppid = (int)j->valuedouble;
  p->forked = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "forked"));
  if ((j = cJSON_GetObjectItemCaseSensitive(root, "started_at")) && cJSON_IsNumber(j)) p->started_at = j->valuedouble;
  j = cJSON_GetObjectItemCaseSensitive(root, "program");
  const cJSON *av = cJSON_GetObjectItemCaseSensitive(root, "argv");
  const cJSON *a0 = cJSON_IsArray(av) ? cJSON_GetArrayItem(av, 0) : NULL;
  if (cJSON_IsString(j) && j->valuestring[0]) snprintf(p->program, sizeof p->program, "%s", j->valuestring);
  else if (cJSON_IsString(a0) && a0->valuestring[0]) snprintf(p->program, sizeof p->program, "%s", vkm_cli_base_name(a0->valuestring));
  const cJSON *end = cJSON_GetObjectItemCaseSensitive(root, "end");
  j = cJSON_GetObjectItemCaseSensitive(end, "kind");
  if (cJSON_IsString(j)) snprintf(p->end_kind, sizeof p->end_kind, "%s", j->valuestring);
  else if (p->rep.state && strcmp(p->rep.state, "exited") == 0) snprintf(p->end_kind, sizeof p->end_kind, "unknown");
  if ((j = cJSON_GetObjectItemCaseSensitive(end, "code")) && cJSON_IsNumber(j)) p->end_code = (int)j->valuedouble;
  if ((j = cJSON_GetObjectItemCaseSensitive(end, "signal")) && cJSON_IsNumber(j)) p->end_signal = (int)j->valuedouble;
  j = cJSON_GetObjectItemCaseSensitive(end, "name");
  if (cJSON_IsString(j)) snprintf(p->end_name, sizeof p->end_name, "%s", j->valuestring);
  else if (p->end_signal) snprintf(p->end_name, sizeof p->end_name, "%s", vkm_signal_name(p->end_signal));
}

static int proc_order(const void *a, const void *b) {
  const vkm_gate_proc_t *x = a, *y = b;
  if (x->is_root != y->is_root) return x->is_root ? -1 : 1;
  if (x->started_at != y->started_at) return x->started_at < y->started_at ? -1 : 1;
  return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Loads every report of dir. Returns how many reports there were (the
 * root's placeholder, added when others reported and it did not, is not
 * counted). */
static size_t load_tree(const char *dir, int root_pid, const char *cmd, const vkm_gate_opts_t *o,
                        vkm_gate_run_t *run) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  size_t n = 0, cap = 0, reports = 0;
  vkm_gate_proc_t *v = NULL;
  bool have_root = false;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int pid = report_pid(e->d_name);
    if (pid < 0) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 8;
      vkm_gate_proc_t *nv = realloc(v, cap * sizeof *nv);
      if (!nv) break;
      v = nv;
    }
    vkm_gate_proc_t *p = &v[n++];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    p->is_root = pid == root_pid;
    have_root |= p->is_root;
    snprintf(p->program, sizeof p->program, "%s", p->is_root ? vkm_cli_base_name(cmd) : "?");
    reports++;
    char path[PATH_MAX], *text = NULL, err[200] = "";
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    int rc = vkm_cli_slurp(path, &text, &len);
    cJSON *root = NULL;
    if (rc < 0) snprintf(err, sizeof err, "%s", strerror(-rc));
    else if (len == 0) snprintf(err, sizeof err, "empty file");
    else root = vkm_cli_json_parse(text, len, err, sizeof err);
    free(text);
    if (root && vkm_report_from_json(root, &p->rep, err, sizeof err) == 0) {
      proc_fill(p);
    } else {
      p->state = VKM_PROC_BAD_REPORT;
      snprintf(p->problem, sizeof p->problem, "its report is malformed: %s", err);
    }
  }
  closedir(d);
  if (n && !have_root) {
    vkm_gate_proc_t *nv = n == cap ? realloc(v, (cap + 1) * sizeof *nv) : v;
    if (nv) {
      v = nv;
      vkm_gate_proc_t *p = &v[n++];
      memset(p, 0, sizeof *p);
      p->pid = root_pid;
      p->is_root = true;
      snprintf(p->program, sizeof p->program, "%s", vkm_cli_base_name(cmd));
      p->state = VKM_PROC_NO_REPORT;
    }
  }
  if (v) qsort(v, n, sizeof *v, proc_order);
  for (size_t i = 0; i < n; i++) {
    vkm_gate_proc_t *p = &v[i];
    if (p->state == VKM_PROC_NO_REPORT) continue;
    if (!only_matches(o, p->program)) p->state = VKM_PROC_UNMATCHED;
    else if (p->state == VKM_PROC_BAD_REPORT) p->failed = true;
    else if (strcmp(p->end_kind, "exec") == 0) p->state = VKM_PROC_EXEC;
    else p->state = VKM_PROC_CHECKED;
  }
  run->procs = v;
  run->nprocs = n;
  return reports;
}

static void tree_free(vkm_gate_run_t *run) {
  for (size_t i = 0; i < run->nprocs; i++) {
    vkm_report_free(&run->procs[i].rep);
    vkm_gate_result_free(&run->procs[i].res);
  }
  free(run->procs);
  run->procs = NULL;
  run->nprocs = 0;
}

/* ---------------------------------------------------------------------------
 * Baselines of a tree: a gate report of several processes carries each
 * one's report in gate.processes[] (the document's own process is the
 * document, "document": true). Processes are matched by program name, the
 * k-th process of a name (by start) against the k-th of the baseline, the
 * last of that name when the baseline had fewer.
 * ------------------------------------------------------------------------- */
typedef struct base_proc_s {
  char program[128];
  int pid;
  double started_at;
  vkm_report_t own;       /* an embedded report (owned) */
  vkm_report_t *rep;      /* own, or the document */
  bool used;
} base_proc_t;

typedef struct base_tree_s {
  base_proc_t *v;
  size_t n;
} base_tree_t;

static int base_order(const void *a, const void *b) {
  const base_proc_t *x = a, *y = b;
  if (x->started_at != y->started_at) return x->started_at < y->started_at ? -1 : 1;
  return (x->pid > y->pid) - (x->pid < y->pid);
}

/* 0 (bt->n == 0 when the baseline is a single report) or -1 after saying
 * what is wrong. */
static int base_tree_load(const char *path, vkm_report_t *base, base_tree_t *bt) {
  memset(bt, 0, sizeof *bt);
  const cJSON *g = cJSON_GetObjectItemCaseSensitive(base->root, "gate");
  const cJSON *procs = cJSON_GetObjectItemCaseSensitive(g, "processes"), *e;
  if (!cJSON_IsArray(procs) || cJSON_GetArraySize(procs) < 2) return 0;
  bt->v = calloc((size_t)cJSON_GetArraySize(procs), sizeof *bt->v);
  if (!bt->v) return -1;
  int i = -1;
  cJSON_ArrayForEach(e, procs) {
    i++;
    const cJSON *prog = cJSON_GetObjectItemCaseSensitive(e, "program");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(e, "pid");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "started_at");
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(e, "report");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "end"), "kind");
    if (!cJSON_IsString(prog)) {
      vkm_cli_err("baseline %s: gate.processes[%d]: no \"program\"", path, i);
      return -1;
    }
    if (cJSON_IsString(kind) && strcmp(kind->valuestring, "exec") == 0) continue;
    base_proc_t *b = &bt->v[bt->n];
    snprintf(b->program, sizeof b->program, "%s", prog->valuestring);
    b->pid = cJSON_IsNumber(pid) ? (int)pid->valuedouble : 0;
    b->started_at = cJSON_IsNumber(st) ? st->valuedouble : 0;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "document"))) {
      b->rep = base;
    } else if (cJSON_IsObject(rep)) {
      char err[256];
      if (vkm_report_from_json(cJSON_Duplicate(rep, true), &b->own, err, sizeof err) < 0) {
        vkm_cli_err("baseline %s: gate.processes[%d].report: %s", path, i, err);
        return -1;
      }
      b->rep = &b->own;
    } else {
      continue; /* not reported (e.g. a bad report): no baseline for it */
    }
    bt->n++;
  }
  qsort(bt->v, bt->n, sizeof *bt->v, base_order);
  if (!bt->n) {
    vkm_cli_err("baseline %s: gate.processes lists no process with a report", path);
    return -1;
  }
  return 0;
}

static void base_tree_free(base_tree_t *bt) {
  for (size_t i = 0; i < bt->n; i++) vkm_report_free(&bt->v[i].own);
  free(bt->v);
  memset(bt, 0, sizeof *bt);
}

static void base_match(base_tree_t *bt, vkm_gate_proc_t *p) {
  base_proc_t *last = NULL;
  for (size_t i = 0; i < bt->n; i++) {
    base_proc_t *b = &bt->v[i];
    if (strcmp(b->program, p->program) != 0) continue;
    last = b;
    if (b->used) continue;
    b->used = true;
    p->baseline = b->rep;
    snprintf(p->baseline_from, sizeof p->baseline_from, "baseline process %d %s", b->pid, b->program);
    return;
  }
  if (last) {
    p->baseline = last->rep;
    snprintf(p->baseline_from, sizeof p->baseline_from, "baseline process %d %s (the last of that name)",
             last->pid, last->program);
  } else {
    snprintf(p->baseline_from, sizeof p->baseline_from,
             "none: the baseline has no process named %s (limits only)", p->program);
  }
}

int vkm_cmd_gate(int argc, char **argv) {
  vkm_gate_opts_t o;
  memset(&o, 0, sizeof o);
  bool cmdline[VKM_OPT_COUNT] = {0};
  char **supp_files = NULL;
  size_t nsupp = 0;
  int status = VKM_EXIT_USAGE;
  vkm_report_t base;
  memset(&base, 0, sizeof base);
  base_tree_t btree;
  memset(&btree, 0, sizeof btree);
  char dir[PATH_MAX] = "";
  vkm_gate_result_t nores;
  memset(&nores, 0, sizeof nores);
  vkm_gate_run_t run;
  memset(&run, 0, sizeof run);

  int cmd = parse_args(argc, argv, &o, cmdline, &supp_files, &nsupp);
  if (cmd == 0) {
    fputs(gate_usage, stdout);
    fputs("\nDefault suppressions (allocations the C/C++ runtime keeps until exit):\n", stdout);
    vkm_supp_print_defaults(stdout);
    status = 0;
    goto out;
  }
  if (cmd < 0) goto out;
  for (size_t k = 0; k < nsupp; k++)
    if (vkm_supp_load(&o.supp, supp_files[k]) < 0) goto out;
  if (o.config && vkm_config_load_file(o.config, &o, cmdline) < 0) goto out;
  if (!o.no_default_supp) vkm_supp_add_defaults(&o.supp);
  if (cmd >= argc) {
    vkm_cli_err("gate: no command given: valkmem gate [limits] -- CMD [ARGS...]");
    goto out;
  }
  if (o.have_tolerance && !o.baseline) vkm_cli_warn("gate: --tolerance has no effect without --baseline");
  if (o.baseline && vkm_report_load("baseline", o.baseline, &base) < 0) goto out;
  /* Absent figures read as 0, and every run would "grow" past a 0. */
  for (const char *const *sec = (const char *const[]){"totals", "live", "peak", NULL}; o.baseline && *sec; sec++)
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(base.root, *sec))) {
      vkm_cli_err("malformed baseline %s: no \"%s\" object (a baseline needs totals, live and peak: a report "
                  "from VALKMEM_REPORT or valkmem gate --report)", o.baseline, *sec);
      goto out;
    }
  if (o.baseline && base_tree_load(o.baseline, &base, &btree) < 0) goto out;
  /* An output that cannot be written is said now, not after a long run. */
  if (o.report && vkm_cli_check_writable("report", o.report) < 0) goto out;
  if (o.junit && vkm_cli_check_writable("JUnit file", o.junit) < 0) goto out;
  if (o.benchmark_json && vkm_cli_check_writable("benchmark JSON", o.benchmark_json) < 0) goto out;

  char lib[PATH_MAX];
  if (vkm_find_library(lib, sizeof lib) < 0) goto out;
  if (vkm_temp_dir(dir, sizeof dir, "gate") < 0) goto out;
  char env_report[PATH_MAX + 32];
  snprintf(env_report, sizeof env_report, "VALKMEM_REPORT=%s/report-%%p.json", dir);
  /* Every site when the reports may serve as a baseline (--report) or
   * are compared with one; otherwise what the checks need (sites.c,
   * VALKMEM_LIVE_SITES): all sites holding memory, and the top ones by
   * bytes and by count allocated. A compiler's report of every site is
   * megabytes of JSON: `gate -- make` took four times as long. */
  int all_sites = o.report || o.baseline;
  const char *env[] = {env_report,
                       "VALKMEM_HTTP=0",
                       all_sites ? "VALKMEM_TOP_SITES=0" : "VALKMEM_TOP_SITES=50",
                       all_sites ? "VALKMEM_LIVE_SITES=0" : "VALKMEM_LIVE_SITES=1",
                       "VALKMEM_CHECKPOINT_MS=0", /* every end writes a report, and a stop (a daemon) too */
                       "VALKMEM_SAMPLE_BYTES=1", /* dropped below with --sampled: the user's own setting stays */
                       NULL};
  if (o.sampled) env[5] = NULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  run.argv = argv + cmd;
  vkm_launch_orphan_ms = 2000; /* a daemon the command leaves behind: the report written when we stop waiting */
  int rc = vkm_run_child(lib, argv + cmd, env, &run.child);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  if (rc < 0) {
    vkm_cli_err("gate: cannot start %s: %s", argv[cmd], strerror(-rc));
    goto out;
  }
  if (run.child.exec_errno) {
    vkm_cli_err("gate: cannot run %s: %s", argv[cmd], strerror(run.child.exec_errno));
    status = run.child.exit_code;
    goto out;
  }
  run.crashed = run.child.signal != 0;
  int fail_code = o.have_error_exitcode ? o.error_exitcode : VKM_EXIT_GATE_FAIL;
  if (run.crashed)
    vkm_cli_err("gate: %s %s by %s (signal %d)", argv[cmd],
                vkm_signal_is_crash(run.child.signal) ? "crashed: killed" : "was killed",
                vkm_signal_name(run.child.signal), run.child.signal);

  if (load_tree(dir, run.child.pid, argv[cmd], &o, &run) == 0) {
    /* Nothing measured. A command that failed on its own keeps its status
     * (the build fails either way, for the right reason); one that exited
     * 0 must not pass a gate nobody checked. */
    if (run.crashed)
      vkm_cli_err("gate: %s %s before the agent had its report, so no limit could be checked", argv[cmd],
                  vkm_signal_is_crash(run.child.signal) ? "crashed" : "was killed");
    else
      vkm_cli_err("gate: %s left no report, so no limit could be checked (is it statically linked, or does it "
                  "set VALKMEM_DISABLE?)", argv[cmd]);
    status = run.child.exit_code ? run.child.exit_code : fail_code;
    const char *gha = getenv("GITHUB_ACTIONS");
    if (run.crashed && gha && strcmp(gha, "true") == 0) {
      char *s = vkm_gate_annotations(&nores, &run, getenv("GITHUB_WORKSPACE"));
      fputs(s, stdout);
      fflush(stdout);
      free(s);
    }
    goto out;
  }

  /* Check each process; the document of --report is the root's report
   * (else the first process with one). */
  bool warned_sample = false;
  for (size_t i = 0; i < run.nprocs; i++) {
    vkm_gate_proc_t *p = &run.procs[i];
    if (!run.doc && p->rep.root) run.doc = p;
    if (p->state == VKM_PROC_BAD_REPORT) {
      run.nfailed++;
      vkm_cli_err("gate: process %d %s: %s", p->pid, p->program, p->problem);
      continue;
    }
    if (p->state != VKM_PROC_CHECKED) {
      run.others++;
      continue;
    }
    run.nchecked++;
    if (base.root) {
      if (btree.n) {
        base_match(&btree, p);
      } else {
        p->baseline = &base;
        snprintf(p->baseline_from, sizeof p->baseline_from, "%s", o.baseline);
      }
    }
    if (p->baseline && !warned_sample && p->baseline->sample_bytes != p->rep.sample_bytes) {
      warned_sample = true;
      vkm_cli_warn("gate: the baseline was measured with sample_bytes=%llu, this run with %llu: per-site "
                   "numbers may not compare", (unsigned long long)p->baseline->sample_bytes,
                   (unsigned long long)p->rep.sample_bytes);
    }
    vkm_gate_evaluate(&o, &o.supp, &p->rep, p->baseline, &p->res);
    if (p->res.failures) {
      p->failed = true;
      run.nfailed++;
    }
  }
  /* The single-process form reads the root's report and result. */
  vkm_report_t *rep = run.doc ? &((vkm_gate_proc_t *)run.doc)->rep : NULL;
  vkm_gate_result_t *res = run.doc && run.doc->state == VKM_PROC_CHECKED ? &((vkm_gate_proc_t *)run.doc)->res : &nores;
  status = run.nfailed ? fail_code : run.child.exit_code;
  if (!run.nchecked && !run.nfailed) {
    status = run.child.exit_code ? run.child.exit_code : fail_code;
    if (o.nonly) {
      vkm_buf_t names = {0};
      for (size_t i = 0; i < run.nprocs; i++)
        vkm_buf_printf(&names, "%s%s", i ? ", " : "", run.procs[i].program);
      vkm_cli_err("gate: --only matched none of the %zu process(es) of the tree (%s), so nothing was checked",
                  run.nprocs, names.p ? names.p : "");
      vkm_buf_free(&names);
    } else {
      vkm_cli_err("gate: no process of the tree left a report that could be checked");
    }
  }
  if (rep) vkm_gate_print_human(stderr, &o, &o.supp, rep, res, &run);

  int werr = 0;
  if (o.report && rep) {
    vkm_gate_json(rep->root, &o, &o.supp, res, &run, status);
    char *s = cJSON_Print(rep->root);
    if (!s || write_text("report", o.report, s) < 0) werr = 1;
    free(s);
  }
  if (o.junit) {
    char *s = vkm_gate_junit(res, &run, secs);
    if (write_text("JUnit file", o.junit, s) < 0) werr = 1;
    free(s);
  }
  if (o.benchmark_json && rep) {
    char *s = vkm_gate_benchmark_json_run(rep, res, &run);
    if (!s || write_text("benchmark JSON", o.benchmark_json, s) < 0) werr = 1;
    free(s);
  }
  const char *gha = getenv("GITHUB_ACTIONS");
  if (gha && strcmp(gha, "true") == 0) {
    char *s = vkm_gate_annotations(res, &run, getenv("GITHUB_WORKSPACE"));
    fflush(stderr);
    fputs(s, stdout);
    fflush(stdout);
    free(s);
    const char *sum = getenv("GITHUB_STEP_SUMMARY");
    if (sum && *sum) {
      s = vkm_gate_step_summary(res, &run, &o.supp);
      if (append_text("step summary", sum, s) < 0) werr = 1;
      free(s);
    }
  }
  if (werr && !run.nfailed) status = VKM_EXIT_USAGE;

out:
  if (dir[0]) vkm_temp_dir_remove(dir);
  tree_free(&run);
  base_tree_free(&btree);
  vkm_report_free(&base);
  opts_free(&o);
  free(supp_files);
  return run.child.pid > 0 && !run.child.exec_errno ? vkm_exit_like_child(&run.child, status) : status;
}
