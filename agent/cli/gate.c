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
    "\n"
    "The numbers are those of the process started (and what it execs into), not of\n"
    "children it forks: gate a test binary, not a shell script or `make test`.\n"
    "\n"
    "Under GitHub Actions (GITHUB_ACTIONS=true) failures are also printed as ::error\n"
    "annotations and a table is appended to $GITHUB_STEP_SUMMARY.\n"
    "\n"
    "Exit status: CMD's status when every check holds; 3 (--error-exitcode) when one\n"
    "fails; 2 for a usage or configuration error; 127/126 when CMD cannot be started.\n"
    "A command that crashes before the first report checkpoint keeps its own status.\n";

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

/* The gate checks the process it starts (and what that process execs
 * into). Every other process under the shim writes its own report-PID.json
 * beside it; they are named here, so that `gate -- sh -c ./t` or a test
 * runner does not pass silently on the wrong process. Returns how many. */
static size_t note_other_processes(const char *dir, int main_pid, const char *cmd) {
  enum { SHOW = 5 };
  DIR *d = opendir(dir);
  if (!d) return 0;
  size_t n = 0;
  vkm_buf_t lines = {0};
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int pid;
    char tail[8];
    if (sscanf(e->d_name, "report-%d.%7s", &pid, tail) != 2 || strcmp(tail, "json") != 0 || pid == main_pid)
      continue;
    n++;
    if (n > SHOW) continue;
    char path[PATH_MAX], *text = NULL, err[128];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    cJSON *root = vkm_cli_slurp(path, &text, &len) == 0 ? vkm_cli_json_parse(text, len, err, sizeof err) : NULL;
    free(text);
    vkm_report_t r;
    if (root && vkm_report_from_json(root, &r, err, sizeof err) == 0) {
      const cJSON *prog = cJSON_GetObjectItemCaseSensitive(r.root, "program");
      char a[32], b[32];
      vkm_buf_printf(&lines, "    pid %d %s: %llu allocations, peak live heap %s, live at exit %s\n", pid,
                     cJSON_IsString(prog) ? prog->valuestring : "?", (unsigned long long)r.alloc_count,
                     vkm_fmt_size(r.peak_live_bytes, a, sizeof a), vkm_fmt_size(r.live_bytes, b, sizeof b));
      vkm_report_free(&r);
    } else {
      cJSON_Delete(root);
      vkm_buf_printf(&lines, "    pid %d: report unreadable\n", pid);
    }
  }
  closedir(d);
  if (n) {
    vkm_cli_warn("gate: %zu other process(es) ran under the shim and were not checked; the gate checks only %s "
                 "(pid %d). Gate each program directly (README: \"Which process\"):",
                 n, cmd, main_pid);
    if (lines.p) fputs(lines.p, stderr);
    if (n > SHOW) fprintf(stderr, "    ... and %zu more\n", n - SHOW);
  }
  free(lines.p);
  return n;
}

int vkm_cmd_gate(int argc, char **argv) {
  vkm_gate_opts_t o;
  memset(&o, 0, sizeof o);
  bool cmdline[VKM_OPT_COUNT] = {0};
  char **supp_files = NULL;
  size_t nsupp = 0;
  int status = VKM_EXIT_USAGE;
  vkm_report_t base, rep;
  memset(&base, 0, sizeof base);
  memset(&rep, 0, sizeof rep);
  char dir[PATH_MAX] = "", tmp[PATH_MAX] = "";
  vkm_gate_result_t res;
  memset(&res, 0, sizeof res);

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

  char lib[PATH_MAX];
  if (vkm_find_library(lib, sizeof lib) < 0) goto out;
  if (vkm_temp_dir(dir, sizeof dir, "gate") < 0) goto out;
  char env_report[PATH_MAX + 32];
  snprintf(env_report, sizeof env_report, "VALKMEM_REPORT=%s/report-%%p.json", dir);
  const char *env[] = {env_report,
                       "VALKMEM_HTTP=0",
                       "VALKMEM_TOP_SITES=0",
                       "VALKMEM_CHECKPOINT_MS=500",
                       "VALKMEM_SAMPLE_BYTES=1", /* dropped below with --sampled: the user's own setting stays */
                       NULL};
  if (o.sampled) env[4] = NULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  vkm_gate_run_t run = {.argv = argv + cmd};
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
  snprintf(tmp, sizeof tmp, "%s/report-%d.json", dir, run.child.pid);
  run.others = note_other_processes(dir, run.child.pid, argv[cmd]);
  int fail_code = o.have_error_exitcode ? o.error_exitcode : VKM_EXIT_GATE_FAIL;
  if (run.crashed)
    vkm_cli_err("gate: %s crashed: killed by %s (signal %d)", argv[cmd], vkm_signal_name(run.child.signal),
                run.child.signal);

  char *text = NULL;
  size_t len = 0;
  if (vkm_cli_slurp(tmp, &text, &len) < 0 || len == 0) {
    free(text);
    /* Nothing measured. A command that failed on its own keeps its status
     * (the build fails either way, for the right reason); one that exited
     * 0 must not pass a gate nobody checked. */
    if (run.crashed)
      vkm_cli_err("gate: %s crashed before the first report checkpoint, so no limit could be checked", argv[cmd]);
    else
      vkm_cli_err("gate: %s left no report, so no limit could be checked (is it statically linked, or does it "
                  "set VALKMEM_DISABLE?)", argv[cmd]);
    status = run.child.exit_code ? run.child.exit_code : fail_code;
    const char *gha = getenv("GITHUB_ACTIONS");
    if (run.crashed && gha && strcmp(gha, "true") == 0) {
      char *s = vkm_gate_annotations(&res, &run, getenv("GITHUB_WORKSPACE"));
      fputs(s, stdout);
      fflush(stdout);
      free(s);
    }
    goto out;
  }
  char err[256];
  cJSON *root = vkm_cli_json_parse(text, len, err, sizeof err);
  free(text);
  if (!root || vkm_report_from_json(root, &rep, err, sizeof err) < 0) {
    vkm_cli_err("gate: the report of %s is malformed: %s", argv[cmd], err);
    status = fail_code;
    goto out;
  }
  if (base.root && base.sample_bytes != rep.sample_bytes)
    vkm_cli_warn("gate: the baseline was measured with sample_bytes=%llu, this run with %llu: per-site "
                 "numbers may not compare", (unsigned long long)base.sample_bytes,
                 (unsigned long long)rep.sample_bytes);

  vkm_gate_evaluate(&o, &o.supp, &rep, base.root ? &base : NULL, &res);
  status = res.failures ? fail_code : run.child.exit_code;
  vkm_gate_print_human(stderr, &o, &o.supp, &rep, &res, &run);

  int werr = 0;
  if (o.report) {
    vkm_gate_json(rep.root, &o, &o.supp, &res, &run, status);
    char *s = cJSON_Print(rep.root);
    if (!s || write_text("report", o.report, s) < 0) werr = 1;
    free(s);
  }
  if (o.junit) {
    char *s = vkm_gate_junit(&res, &run, secs);
    if (write_text("JUnit file", o.junit, s) < 0) werr = 1;
    free(s);
  }
  if (o.benchmark_json) {
    char *s = vkm_gate_benchmark_json(&rep, &res);
    if (!s || write_text("benchmark JSON", o.benchmark_json, s) < 0) werr = 1;
    free(s);
  }
  const char *gha = getenv("GITHUB_ACTIONS");
  if (gha && strcmp(gha, "true") == 0) {
    char *s = vkm_gate_annotations(&res, &run, getenv("GITHUB_WORKSPACE"));
    fflush(stderr);
    fputs(s, stdout);
    fflush(stdout);
    free(s);
    const char *sum = getenv("GITHUB_STEP_SUMMARY");
    if (sum && *sum) {
      s = vkm_gate_step_summary(&res, &run, &o.supp);
      if (append_text("step summary", sum, s) < 0) werr = 1;
      free(s);
    }
  }
  if (werr && !res.failures) status = VKM_EXIT_USAGE;

out:
  if (dir[0]) vkm_temp_dir_remove(dir);
  vkm_gate_result_free(&res);
  vkm_report_free(&rep);
  vkm_report_free(&base);
  opts_free(&o);
  free(supp_files);
  return status;
}
