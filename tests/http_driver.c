/* http_driver.c - runs agent/http.c's poll loop against stub documents, so
 * the server can be tested without libvalkmem.so.
 *
 * Links http.c, http_parse.c and metrics.c with stand-ins for everything
 * else they call (vkm_snapshot_json, vkm_tick_json, history, report,
 * pprof, config, assets). The stub state is a fake process whose counters
 * advance by known amounts each tick: tick k has seq k, alloc_count 10*k,
 * free_count 7*k. Configuration comes from the VALKMEM_* variables the real
 * library reads (LISTEN, TOKEN, URL_FILE, QUIET) plus:
 *   DRV_SECONDS  run this long, then exit 0 (default 60); SIGTERM ends too
 *   DRV_GC=1     the snapshot carries a "gc" section (pause histogram)
 *   DRV_PPROF=1  vkm_pprof_from_report succeeds (else -ENOSYS, as the stub)
 *   DRV_FORK=1   fork once after 1 s; the child forgets and restarts the
 *                server (its URL goes to VALKMEM_URL_FILE.<pid>)
 * At exit it prints "ticks N" on stdout.
 */
#include "agent.h"
#include "debug_pprof.h"
#include "http_parse.h"

#include <poll.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Stand-ins for the library
 * ------------------------------------------------------------------------- */

vkm_config_t vkm_config;
static char *g_argv[] = {"/some/dir/http_driver", NULL};
static uint64_t g_seq;
static uint64_t g_started_ms;
static int g_gc, g_pprof;

void *vkm_malloc(size_t n) { return malloc(n); }
void *vkm_realloc(void *p, size_t n) { return realloc(p, n); }
void vkm_free(void *p) { free(p); }
char *vkm_strdup(const char *s) { return strdup(s); }
int vkm_argv(char ***argv_out) { *argv_out = g_argv; return 1; }
uint64_t vkm_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
void vkm_say(const char *level, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = snprintf(buf, sizeof buf, "valkmem: %s: ", level);
  vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s\n", buf);
}

/* The driver's server runs on a thread that shares the process's files. */
void vkm_write_stderr(const char *buf, size_t len) { fwrite(buf, 1, len, stderr); }
int vkm_target_pid(void) { return (int)getpid(); }
/* The root is the driver the test started; a DRV_FORK child (re-executed,
 * as another process of the tree would be) is not. */
int vkm_agent_is_root(void) { return getenv("DRV_CHILD") == NULL; }

static const unsigned char index_html[] = "<!doctype html><title>valkmem</title><script src=app.js></script>";
static const unsigned char app_js[] = "console.log('valkmem');";
const vkm_asset_t vkm_assets[] = {
    {"/app.js", "text/javascript; charset=utf-8", app_js, sizeof app_js - 1},
    {"/index.html", "text/html; charset=utf-8", index_html, sizeof index_html - 1},
    {0, 0, 0, 0},
};
const size_t vkm_assets_count = 2;

static cJSON *point(uint64_t seq) {
  cJSON *p = cJSON_CreateObject();
  cJSON_AddNumberToObject(p, "seq", (double)seq);
  cJSON_AddNumberToObject(p, "t_ms", (double)(g_started_ms + seq * 100));
  cJSON_AddNumberToObject(p, "live_bytes", (double)(seq * 48));
  cJSON_AddNumberToObject(p, "alloc_ops", 10);
  return p;
}

cJSON *vkm_snapshot_json(void) {
  uint64_t k = g_seq;
  cJSON *s = cJSON_CreateObject();
  cJSON_AddStringToObject(s, "schema", "valkmem.snapshot/1");
  cJSON_AddStringToObject(s, "platform", "linux");
  cJSON_AddNumberToObject(s, "pid", getpid());
  cJSON_AddStringToObject(s, "program", "http_driver");
  cJSON_AddNumberToObject(s, "started_at", (double)g_started_ms);
  cJSON_AddNumberToObject(s, "seq", (double)k);
  cJSON_AddStringToObject(s, "state", "running");
  cJSON_AddNumberToObject(s, "dropped_events", 3);
  cJSON_AddNumberToObject(s, "self_bytes", 1 << 20);
  cJSON *t = cJSON_AddObjectToObject(s, "totals");
  cJSON_AddNumberToObject(t, "alloc_count", (double)(10 * k));
  cJSON_AddNumberToObject(t, "free_count", (double)(7 * k));
  cJSON_AddNumberToObject(t, "realloc_count", 0);
  cJSON_AddNumberToObject(t, "failed_count", 0);
  cJSON_AddNumberToObject(t, "alloc_bytes", (double)(10 * k * 60));
  cJSON_AddNumberToObject(t, "alloc_usable_bytes", (double)(10 * k * 64));
  cJSON_AddNumberToObject(t, "free_usable_bytes", (double)(7 * k * 64));
  cJSON *l = cJSON_AddObjectToObject(s, "live");
  cJSON_AddNumberToObject(l, "bytes", (double)(3 * k * 64));
  cJSON_AddNumberToObject(l, "count", (double)(3 * k));
  cJSON *pk = cJSON_AddObjectToObject(s, "peak");
  cJSON_AddNumberToObject(pk, "live_bytes", (double)(3 * k * 64));
  cJSON *r = cJSON_AddObjectToObject(s, "rates");
  cJSON_AddNumberToObject(r, "pressure_pct", 30);
  cJSON *os = cJSON_AddObjectToObject(s, "os");
  cJSON_AddNumberToObject(os, "rss", 10 << 20);
  cJSON_AddNumberToObject(os, "vms", 100 << 20);
  cJSON_AddNumberToObject(os, "peak_rss", 11 << 20);
  cJSON *a = cJSON_AddObjectToObject(s, "allocator");
  cJSON_AddStringToObject(a, "source", "glibc");
  cJSON_AddNumberToObject(a, "frag_pct", 12.5);
  cJSON_AddItemToObject(s, "leaks", cJSON_CreateArray());
  if (g_gc) {
    cJSON *gc = cJSON_AddObjectToObject(s, "gc");
    cJSON_AddNumberToObject(gc, "cycles", 6);
    cJSON *pause = cJSON_AddObjectToObject(gc, "pause");
    cJSON_AddNumberToObject(pause, "count", 6);
    cJSON_AddNumberToObject(pause, "total_ms", 42.5);
    const double h[5] = {1, 2, 1, 1, 1};
    cJSON_AddItemToObject(pause, "hist", cJSON_CreateDoubleArray(h, 5));
  } else {
    cJSON_AddNullToObject(s, "gc");
  }
  cJSON_AddItemToObject(s, "point", point(k));
  return s;
}

/* Padded to 4 KiB so a stream that stops reading fills its buffers within
 * seconds, as a real tick with many sites would. */
cJSON *vkm_tick_json(void) {
  static char pad[4097];
  if (!pad[0]) memset(pad, 'p', sizeof pad - 1);
  cJSON *t = vkm_snapshot_json();
  cJSON_AddStringToObject(t, "pad", pad);
  return t;
}

cJSON *vkm_report_json(void) {
  cJSON *r = vkm_snapshot_json();
  cJSON_ReplaceItemInObject(r, "schema", cJSON_CreateString("valkmem.report/1"));
  cJSON_AddItemToObject(r, "sites", cJSON_CreateArray());
  return r;
}

cJSON *vkm_stacks_json(void) { return cJSON_CreateObject(); } /* GET /api/stacks (sites.c) */

/* The 1m ring: the last 600 ticks. */
cJSON *vkm_history_json(const char *range, uint64_t since_seq) {
  if (strcmp(range, "1m") && strcmp(range, "5m") && strcmp(range, "1h") && strcmp(range, "10h")) return NULL;
  cJSON *arr = cJSON_CreateArray();
  uint64_t first = g_seq > 600 ? g_seq - 599 : 1;
  if (since_seq + 1 > first) first = since_seq + 1;
  for (uint64_t s = first; s <= g_seq; s++) cJSON_AddItemToArray(arr, point(s));
  return arr;
}

/* Live data only: no saved view in the driver. */
const cJSON *vkm_view_doc(void) { return NULL; }
cJSON *vkm_history_from_doc(const cJSON *doc, const char *range) {
  (void)doc;
  return vkm_history_json(range, 0);
}

int vkm_pprof_from_report(const cJSON *report, const char *type, unsigned char **out, size_t *out_len) {
  if (!g_pprof) { *out = NULL; *out_len = 0; return -ENOSYS; }
  static const unsigned char gz[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  *out = malloc(sizeof gz);
  memcpy(*out, gz, sizeof gz);
  *out_len = sizeof gz;
  return 0;
}

/* /debug/pprof/ is tested against a real agent (tests/fleet.cmake): here
 * it answers 404 so the server links without the profile's sources. */
void vkm_dbg_pprof_serve(vkm_span_t path, vkm_span_t query, vkm_dbg_resp_t *r) {
  (void)path;
  (void)query;
  memset(r, 0, sizeof *r);
  r->status = 404;
  r->ctype = "text/plain; charset=utf-8";
}
void vkm_dbg_pprof_finish(struct vkm_dbg_pending_s *p, vkm_dbg_resp_t *r) {
  (void)p;
  memset(r, 0, sizeof *r);
  r->status = 500;
  r->ctype = "text/plain; charset=utf-8";
}
void vkm_dbg_pprof_cancel(struct vkm_dbg_pending_s *p) { (void)p; }

/* ---------------------------------------------------------------------------
 * The agent loop, in miniature
 * ------------------------------------------------------------------------- */

static volatile sig_atomic_t g_stop;
static void on_term(int sig) { (void)sig; g_stop = 1; }

static void cfg_str(char *dst, size_t cap, const char *env) {
  const char *v = getenv(env);
  snprintf(dst, cap, "%s", v ? v : "");
}

int main(int argc, char **argv) {
  (void)argc;
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  vkm_config.http = true;
  cfg_str(vkm_config.listen, sizeof vkm_config.listen, "VALKMEM_LISTEN");
  if (!vkm_config.listen[0]) strcpy(vkm_config.listen, "127.0.0.1:0");
  cfg_str(vkm_config.token, sizeof vkm_config.token, "VALKMEM_TOKEN");
  cfg_str(vkm_config.url_file, sizeof vkm_config.url_file, "VALKMEM_URL_FILE");
  vkm_config.quiet = getenv("VALKMEM_QUIET") != NULL;
  g_gc = getenv("DRV_GC") != NULL;
  g_pprof = getenv("DRV_PPROF") != NULL;
  double seconds = getenv("DRV_SECONDS") ? atof(getenv("DRV_SECONDS")) : 60;
  bool do_fork = getenv("DRV_FORK") != NULL && !getenv("DRV_CHILD");
  if (getenv("DRV_CHILD") && seconds > 5) seconds = 5;
  g_started_ms = (uint64_t)time(NULL) * 1000;

  if (vkm_http_start() < 0) return 3;
  if (vkm_http_port() <= 0) return 4;
  uint64_t t0 = vkm_now_ns();
  pid_t child = -1;
  while (!g_stop && (double)(vkm_now_ns() - t0) / 1e9 < seconds) {
    uint64_t t_next = vkm_now_ns() + 100000000u;
    vkm_http_poll(100);
    /* poll returns at its deadline; keep the cadence even if it was early. */
    while (vkm_now_ns() < t_next) vkm_http_poll((int)((t_next - vkm_now_ns()) / 1000000u) + 1);
    g_seq++;
    vkm_http_broadcast_tick();
    if (do_fork && child < 0 && g_seq == 10) {
      child = fork();
      if (child == 0) { /* a fresh process with a server of its own (the parent's sockets are close-on-exec) */
        setenv("DRV_CHILD", "1", 1);
        execv("/proc/self/exe", argv);
        _exit(127);
      }
    }
  }
  vkm_http_stop();
  printf("ticks %llu\n", (unsigned long long)g_seq);
  if (child > 0) {
    kill(child, SIGTERM);
    int st;
    waitpid(child, &st, 0);
  }
  return 0;
}

/* The agent's wake-up eventfd: none in the driver (the poll loop times out). */
int vkm_agent_wake_fd(void) { return -1; }
void vkm_agent_woken(void) {}
/* No forks to wait for: plain poll. */
int vkm_agent_poll(struct pollfd *fds, unsigned long n, int timeout_ms) { return poll(fds, (nfds_t)n, timeout_ms); }
