/* cli.h - the `valkmem` launcher: shared declarations of its modules.
 *
 * The CLI is an ordinary program (not preloaded anywhere), so it uses libc
 * memory and stdio freely. Every module returns 0 or a negative errno-style
 * code; user-facing problems are said once with vkm_cli_err and turned into
 * exit status 2 by the command that hit them.
 *
 *   main.c      dispatch, --help
 *   util.c      messages, files, JSON loading with line:column errors
 *   size.c      "24 MB" / "512KiB" parsing and human formatting
 *   launch.c    finding libvalkmem.so, running a command under it
 *   report.c    a report file -> vkm_report_t (metrics + sites)
 *   run.c       `valkmem run` and its one-screen summary
 *   suppress.c  LSan-style leak:<glob> suppressions
 *   config.c    the gate's JSON config file
 *   gate_eval.c limits and baseline checks -> results (no I/O)
 *   gate_out.c  human summary, JSON, JUnit, GitHub annotations, benchmark JSON
 *   gate.c      `valkmem gate` option parsing and orchestration
 *   diff.c      `valkmem diff`
 *   export.c    `valkmem export` (pprof / folded via agent/pprof.c)
 *   view.c      `valkmem view`
 */
#ifndef VKM_CLI_H
#define VKM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>

/* Messages and labels are built in fixed buffers with snprintf, and cutting
 * an overlong path or name short there is the intended behaviour. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define VKM_EXIT_USAGE 2       /* usage or configuration error */
#define VKM_EXIT_GATE_FAIL 3   /* default exit status when a gate limit fails */

/* ---------------------------------------------------------------------------
 * util.c
 * ------------------------------------------------------------------------- */
/* `valkmem: error: <fmt>` on stderr. */
void vkm_cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vkm_cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vkm_cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a whole file, NUL-terminated; caller frees. 0 or -errno. */
int vkm_cli_slurp(const char *path, char **out, size_t *len);

/* Parses JSON text; on error fills err (e.g. "line 3, column 7: expected ','
 * or '}' near '...'") and returns NULL. */
cJSON *vkm_cli_json_parse(const char *text, size_t len, char *err, size_t errlen);

/* Loads a JSON file. On failure says `<what> FILE: <problem>` and returns
 * NULL. */
cJSON *vkm_cli_json_load(const char *what, const char *path);

/* Writes a whole file atomically (temp + rename). 0 or -errno (said). */
int vkm_cli_write_file(const char *what, const char *path, const void *data, size_t len);
int vkm_cli_check_writable(const char *what, const char *path); /* before the command runs */
const char *vkm_cli_base_name(const char *path);              /* after the last '/' (path itself when none, or when it ends in one) */

/* Growable string buffer. */
typedef struct vkm_buf_s {
  char *p;
  size_t len, cap;
} vkm_buf_t;
void vkm_buf_printf(vkm_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vkm_buf_put(vkm_buf_t *b, const char *s, size_t n);
void vkm_buf_free(vkm_buf_t *b);

/* Escaping for the gate's outputs; append to b. */
void vkm_xml_escape(vkm_buf_t *b, const char *s);
void vkm_gh_escape_data(vkm_buf_t *b, const char *s);     /* ::cmd ...::<data> */
void vkm_gh_escape_property(vkm_buf_t *b, const char *s); /* ::cmd key=<prop>::  */
void vkm_md_escape(vkm_buf_t *b, const char *s);          /* one Markdown table cell */

/* ---------------------------------------------------------------------------
 * size.c
 * ------------------------------------------------------------------------- */
/* "24 MB", "512KiB", "1.5GB", "0", "100" (bytes). Decimal units (kB, MB, GB,
 * TB, PB = 10^3k) and binary units (K, KiB, M, MiB, ... = 2^10k, as GNU
 * coreutils reads them). 0, or -EINVAL with *why set to a static reason. */
int vkm_parse_size(const char *s, uint64_t *out, const char **why);
/* A plain non-negative integer count ("1000"). */
int vkm_parse_count(const char *s, uint64_t *out, const char **why);
/* "10", "10%", "2.5" -> percent. */
int vkm_parse_percent(const char *s, double *out, const char **why);
/* "1.5 MiB" style (binary units, 3 significant digits) into buf. */
const char *vkm_fmt_size(uint64_t v, char *buf, size_t len);
/* Same for a signed delta with an explicit sign. */
const char *vkm_fmt_delta(int64_t v, char *buf, size_t len);

/* ---------------------------------------------------------------------------
 * launch.c
 * ------------------------------------------------------------------------- */
/* Finds libvalkmem.so: $VALKMEM_LIB, next to the executable, ../lib* /, then
 * VKM_LIBDIR. Fills path. 0, or -ENOENT after saying where it looked (or why
 * $VALKMEM_LIB is unusable). */
int vkm_find_library(char *path, size_t len);

typedef struct vkm_child_s {
  int pid;         /* the started process */
  int exit_code;   /* what a shell would report: status, or 128 + signal */
  int signal;      /* non-zero when the command was killed by a signal */
  int exec_errno;  /* non-zero when the command could not be started */
} vkm_child_t;

/* Runs argv (PATH-searched) with LD_PRELOAD=lib prepended and each "NAME=VALUE"
 * in env set (a VALUE-less "NAME" unsets). While it runs, a signal sent to
 * valkmem from outside its process group is passed on to the child; the
 * terminal's, which the child has had already, are not (launch.c). 0, or
 * -errno when fork failed. */
/* Processes of the tree still running this long after the command ended (a
 * daemon, a `cmd &` left behind) are not waited for, as a shell would not
 * (vkm_agentd_t.orphan_ms): run 500 ms, gate 2 s (their last checkpoint is
 * checked). 0 waits for them. */
extern int vkm_launch_orphan_ms;
int vkm_run_child(const char *lib, char *const argv[], const char *const env[], vkm_child_t *out);
const char *vkm_signal_name(int sig);
/* Whether a death by sig is a crash (SIGSEGV, SIGABRT and their kind), not
 * a kill from outside (SIGTERM, SIGKILL, SIGINT). */
bool vkm_signal_is_crash(int sig);
/* The last step of run and gate: when status is the command's own and the
 * command died of SIGINT or SIGQUIT, valkmem dies of it too (core dumps
 * off), as env or timeout would, so that a shell running it in a loop
 * stops at Ctrl-C. Otherwise returns status (128+N for other signals). */
int vkm_exit_like_child(const vkm_child_t *c, int status);

/* Creates an empty temp file name for a report ($TMPDIR or /tmp). */
int vkm_temp_report(char *path, size_t len);
/* A fresh private directory $TMPDIR/valkmem-NAME-XXXXXX; 0 or -errno (said). */
int vkm_temp_dir(char *path, size_t len, const char *name);
/* Removes the report-*.json files in dir (and their checkpoint temporaries)
 * and dir itself; best effort. */
void vkm_temp_dir_remove(const char *dir);

/* ---------------------------------------------------------------------------
 * report.c
 * ------------------------------------------------------------------------- */
typedef struct vkm_site_s {
  const cJSON *json;       /* the site object in the report */
  const char *id;
  char *key;               /* function names innermost-first, joined by " <- " */
  uint64_t alloc_bytes, alloc_count, live_bytes, live_count;
  int suppressed_by;       /* index into the suppression list, -1 when not */
} vkm_site_t;

typedef struct vkm_report_s {
  cJSON *root;             /* owned */
  const char *schema, *state;
  uint64_t alloc_count, free_count, realloc_count, failed_count;
  uint64_t alloc_bytes, alloc_usable_bytes, free_usable_bytes;
  uint64_t live_bytes, live_count;
  uint64_t peak_live_bytes, peak_live_error_bytes, peak_rss_bytes;
  uint64_t sample_bytes, dropped_events, self_bytes;
  double duration_s;
  bool have_exit_code;
  int exit_code;
  bool have_sites;
  size_t nsites;
  vkm_site_t *sites;
} vkm_report_t;

/* Builds a report model from parsed JSON (takes ownership of root, even on
 * failure). On a malformed document fills err and returns -EINVAL. */
int vkm_report_from_json(cJSON *root, vkm_report_t *r, char *err, size_t errlen);
/* Loads and validates a report file; says `<what> FILE: <problem>` on error. */
int vkm_report_load(const char *what, const char *path, vkm_report_t *r);
void vkm_report_free(vkm_report_t *r);
/* One frame as "function (module) file:line" into buf. */
const char *vkm_frame_str(const cJSON *frame, char *buf, size_t len);
/* Checks that a document is a valkmem JSON document (schema "valkmem.*").
 * NULL when fine, else a static reason. */
const char *vkm_schema_problem(const cJSON *root);

/* ---------------------------------------------------------------------------
 * suppress.c
 * ------------------------------------------------------------------------- */
typedef struct vkm_supp_s {
  char *pattern;           /* the text after "leak:" (for a built-in rule, its description) */
  bool system_only;        /* built-in rule: every frame is in libc, ld.so, libstdc++ or libgcc_s */
  char *source;            /* "default", "config", or "FILE:LINE" */
  uint64_t sites, bytes;   /* matched sites and live bytes they removed */
} vkm_supp_t;

typedef struct vkm_supp_list_s {
  vkm_supp_t *v;
  size_t n, cap;
} vkm_supp_list_t;

/* LSan's template match: '*' wildcard, optional '^'/'$' anchors, otherwise
 * a substring match. */
bool vkm_supp_match(const char *pattern, const char *s);
int vkm_supp_add(vkm_supp_list_t *l, const char *pattern, const char *source);
/* Parses suppression text (file contents). On a bad line fills err with
 * "line N: <problem>" and returns -EINVAL. */
int vkm_supp_parse(vkm_supp_list_t *l, const char *text, size_t len, const char *source,
                   char *err, size_t errlen);
int vkm_supp_load(vkm_supp_list_t *l, const char *path); /* says the problem */
void vkm_supp_add_defaults(vkm_supp_list_t *l);
void vkm_supp_print_defaults(FILE *f); /* for --help */
/* Index of the first suppression matching any frame of a site, or -1. */
int vkm_supp_find(const vkm_supp_list_t *l, const cJSON *site);
void vkm_supp_free(vkm_supp_list_t *l);

/* ---------------------------------------------------------------------------
 * gate_eval.c: limits
 * ------------------------------------------------------------------------- */
enum vkm_limit_id {
  VKM_LIM_PEAK, VKM_LIM_RSS, VKM_LIM_LEAK, VKM_LIM_LEAK_PER_SITE, VKM_LIM_ALLOCS,
  VKM_LIM_ALLOC_BYTES, VKM_LIM_COUNT
};

typedef struct vkm_limit_info_s {
  const char *flag;   /* "--max-peak" */
  const char *key;    /* "max_peak" (config file) */
  const char *what;   /* "peak live heap" */
  bool is_size;       /* bytes (SIZE) or a count (N) */
} vkm_limit_info_t;
extern const vkm_limit_info_t vkm_limit_info[VKM_LIM_COUNT];

typedef struct vkm_gate_opts_s {
  bool set[VKM_LIM_COUNT];
  uint64_t limit[VKM_LIM_COUNT];
  char *baseline;          /* path or NULL */
  bool have_tolerance;
  double tol_pct;          /* growth allowed, percent */
  uint64_t tol_abs;        /* and absolute (both must be exceeded to fail) */
  vkm_supp_list_t supp;
  bool no_default_supp;
  char *report, *junit, *benchmark_json, *config;
  int error_exitcode;
  bool have_error_exitcode;
  bool sampled;
  char **only;             /* --only NAME (repeatable): program names or fnmatch globs */
  size_t nonly;
} vkm_gate_opts_t;

typedef struct vkm_check_s {
  char name[96];           /* "max-leak", "baseline:peak", "baseline:site-live" */
  char what[160];          /* human description */
  bool ok;
  bool is_size;
  uint64_t measured, limit;
  uint64_t baseline;       /* for baseline checks */
  bool is_baseline;
  char detail[2048];       /* offending sites / stacks, multi-line */
  char file[512];          /* source location of the top offender, if known */
  int line;
} vkm_check_t;

typedef struct vkm_gate_result_s {
  vkm_check_t *checks;
  size_t n, cap;
  size_t failures;
  uint64_t leak_bytes;       /* unsuppressed live bytes at exit (sum of sites) */
  uint64_t suppressed_bytes;
} vkm_gate_result_t;

/* Marks suppressed sites (r->sites[].suppressed_by, supp counters) and sums
 * the leak. Then checks every limit set in o, and the baseline when given.
 * The supp counters add up over calls (one call per process of a tree);
 * res->suppressed_bytes is this report's alone. */
void vkm_gate_evaluate(const vkm_gate_opts_t *o, vkm_supp_list_t *supp, vkm_report_t *r,
                       vkm_report_t *baseline, vkm_gate_result_t *res);
void vkm_gate_result_free(vkm_gate_result_t *res);
/* The unsuppressed leak of a report under supp (marks its sites). */
uint64_t vkm_gate_leak(vkm_supp_list_t *supp, vkm_report_t *r, bool count);

/* ---------------------------------------------------------------------------
 * gate_out.c
 * ------------------------------------------------------------------------- */
/* One process of the gated tree: its report (report-PID.json) and verdict. */
typedef enum vkm_proc_state_e {
  VKM_PROC_CHECKED,     /* held to the limits (res) */
  VKM_PROC_UNMATCHED,   /* not checked: --only matched none of its names */
  VKM_PROC_EXEC,        /* not checked: its image was replaced by exec, and the
                           new image's report never took this one's place */
  VKM_PROC_NO_REPORT,   /* not checked: the started process left no report */
  VKM_PROC_BAD_REPORT,  /* unreadable or malformed report: a failure */
} vkm_proc_state_t;

typedef struct vkm_gate_proc_s {
  int pid, ppid;
  bool forked, is_root;
  char program[128];       /* the report's "program" (basename of argv[0]) */
  char end_kind[16];       /* "exit", "signal", "exec", "unknown"; "" = a checkpoint */
  int end_code, end_signal;
  char end_name[32];       /* "SIGKILL" */
  double started_at;
  vkm_proc_state_t state;
  char problem[256];       /* VKM_PROC_BAD_REPORT: what is wrong */
  vkm_report_t rep;        /* owned; rep.root NULL without a report */
  vkm_gate_result_t res;   /* VKM_PROC_CHECKED only */
  vkm_report_t *baseline;  /* not owned; NULL = no baseline check */
  char baseline_from[160];        /* "baseline process 123 prog" or a note */
  bool failed;             /* a check failed, or a bad report */
} vkm_gate_proc_t;

typedef struct vkm_gate_run_s {
  char *const *argv;
  vkm_child_t child;
  bool crashed;            /* the started process was killed by a signal */
  size_t others;           /* processes of the tree not checked */
  /* Every process of the tree, root first then by start. nprocs <= 1 with
   * the root checked is the single-process form: the outputs then use the
   * res/report passed to them, as before trees were checked. */
  vkm_gate_proc_t *procs;
  size_t nprocs, nchecked, nfailed;
  const vkm_gate_proc_t *doc;  /* whose report is the JSON document (--report) */
} vkm_gate_run_t;

/* True when the outputs use the per-process form. */
bool vkm_gate_multi(const vkm_gate_run_t *run);

void vkm_gate_print_human(FILE *f, const vkm_gate_opts_t *o, const vkm_supp_list_t *supp,
                          const vkm_report_t *r, const vkm_gate_result_t *res,
                          const vkm_gate_run_t *run);
char *vkm_gate_junit(const vkm_gate_result_t *res, const vkm_gate_run_t *run, double duration_s);
char *vkm_gate_annotations(const vkm_gate_result_t *res, const vkm_gate_run_t *run, const char *workspace);
char *vkm_gate_step_summary(const vkm_gate_result_t *res, const vkm_gate_run_t *run,
                            const vkm_supp_list_t *supp);
char *vkm_gate_benchmark_json(const vkm_report_t *r, const vkm_gate_result_t *res);
/* The same for a tree: "PROGRAM: metric" entries per checked process
 * ("PROGRAM #2: ..." for a second process of the same name) when
 * vkm_gate_multi(run), else as above. */
char *vkm_gate_benchmark_json_run(const vkm_report_t *r, const vkm_gate_result_t *res, const vkm_gate_run_t *run);
/* Adds a "gate" object to r->root (results, suppressions, command). */
void vkm_gate_json(cJSON *root, const vkm_gate_opts_t *o, const vkm_supp_list_t *supp,
                   const vkm_gate_result_t *res, const vkm_gate_run_t *run, int exit_code);

/* ---------------------------------------------------------------------------
 * config.c
 * ------------------------------------------------------------------------- */
/* Applies a config document to o (only fields not already set from the
 * command line: cmdline[] marks those). base_dir resolves relative paths.
 * On error fills err ("key \"max_peak\": <problem>") and returns -EINVAL. */
int vkm_config_apply(cJSON *cfg, vkm_gate_opts_t *o, const bool *cmdline_set, const char *base_dir,
                     char *err, size_t errlen);
int vkm_config_load_file(const char *path, vkm_gate_opts_t *o, const bool *cmdline_set);

/* Flags for cmdline_set[]: which options came from the command line. */
enum {
  VKM_OPT_BASELINE = VKM_LIM_COUNT, VKM_OPT_TOLERANCE, VKM_OPT_REPORT, VKM_OPT_JUNIT,
  VKM_OPT_BENCH, VKM_OPT_EXITCODE, VKM_OPT_SAMPLED, VKM_OPT_NODEFSUPP, VKM_OPT_COUNT
};

/* Parses "PCT[,ABS]". */
int vkm_parse_tolerance(const char *s, double *pct, uint64_t *abs, const char **why);

/* ---------------------------------------------------------------------------
 * Commands (each returns the process exit status)
 * ------------------------------------------------------------------------- */
int vkm_cmd_run(int argc, char **argv);
int vkm_cmd_gate(int argc, char **argv);
int vkm_cmd_diff(int argc, char **argv);
int vkm_cmd_export(int argc, char **argv);
int vkm_cmd_view(int argc, char **argv);

/* run.c: the one-screen summary of a report (also used by gate). */
void vkm_print_summary(FILE *f, const vkm_report_t *r);

#endif
