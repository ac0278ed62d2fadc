/* runtime_api.c - a test runtime that reports known GC cycles, pools,
 * frames, evals and roots through the public header only, and checks that
 * /api/snapshot and the exit report show exactly those figures.
 *
 *   runtime_api --workload           no library: every call is a no-op; exits 0
 *   runtime_api --drive LIBPATH      runs itself as `--workload --with-lib`
 *                                    under LD_PRELOAD=LIBPATH with a report and
 *                                    a URL file, then checks the snapshot the
 *                                    child fetched and the report it left
 *
 * The workload's own code does only the allocations it counts inside frames
 * and evals (no stdio there), so the per-thread malloc figures are exact.
 */
#include <errno.h>
#include <malloc.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "runtime_json.h"
#include "valkmem.h"

extern char **environ;

/* ---------------------------------------------------------------------------
 * The known truth
 * ------------------------------------------------------------------------- */

/* GC cycles reported with their own pause (exact), then one timed by
 * begin/end around a 20 ms sleep (at least 20 ms: the last bucket). */
static const struct { uint64_t before, after, pause_ns; } gc_cycles[] = {
    {1000000, 250000, 400000},    /* <1 ms */
    {2000000, 1000000, 1000000},  /* 1-5 */
    {2000000, 1500000, 4000000},  /* 1-5 */
    {3000000, 1000000, 7500000},  /* 5-10 */
    {3000000, 2700000, 12000000}, /* 10-16.6, over 10 */
    {4000000, 1000000, 900000},   /* <1 */
    {4000000, 3000000, 600000},   /* <1 */
};
#define GC_REPORTED (sizeof gc_cycles / sizeof gc_cycles[0])
#define GC_TOTAL (GC_REPORTED + 1)
#define GC_SLEEP_MS 20
#define GC_LAST_BEFORE 5000000
#define GC_LAST_AFTER 4000000

#define N_FRAMES 5       /* measured frames: N_FRAMES + 1 marks */
#define FRAME_BLOCK 1000 /* frame i (0-based) mallocs i + 1 blocks of this size */

#define N_ROOTS 12

/* Figures only the workload knows (usable sizes), handed to the checker
 * through the environment of neither: the checker recomputes them the same
 * way (malloc_usable_size of the same requests is deterministic in glibc). */
static size_t usable_of(size_t n) {
  void *p = malloc(n);
  size_t u = malloc_usable_size(p);
  free(p);
  return u;
}

/* ---------------------------------------------------------------------------
 * The workload
 * ------------------------------------------------------------------------- */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

static void *keep[64];

static void workload(int with_lib) {
  if (with_lib) CHECK_EQ(valkmem_version(), VALKMEM_VERSION);
  else CHECK_EQ(valkmem_version(), 0);

  /* Pools */
  valkmem_pool_t *objs = valkmem_pool_register("objects", VALKMEM_POOL_SLAB, 1 << 20, 48);
  valkmem_pool_t *frame = valkmem_pool_register("frame-arena", VALKMEM_POOL_ARENA, 16384, 0);
  valkmem_pool_t *bump = valkmem_pool_register("strings", VALKMEM_POOL_BUMP, 0, 0);
  CHECK(with_lib ? objs && frame && bump : !objs && !frame && !bump);
  for (int i = 0; i < 1000; i++) valkmem_pool_alloc(objs, 48);
  for (int i = 0; i < 400; i++) valkmem_pool_free(objs, 48);
  valkmem_pool_held(objs, 64 * 1024);
  valkmem_pool_alloc(bump, 5000);

  /* GC */
  for (size_t i = 0; i < GC_REPORTED; i++)
    valkmem_gc_report(gc_cycles[i].before, gc_cycles[i].after, gc_cycles[i].pause_ns);
  valkmem_gc_begin();
  sleep_ms(GC_SLEEP_MS);
  valkmem_gc_end(GC_LAST_BEFORE, GC_LAST_AFTER);

  /* Frames: frame i mallocs i + 1 blocks, frees the previous frame's, and
   * uses 6000 bytes of the arena, 20000 in frame 3 (over its 16384). */
  void *prev[N_FRAMES] = {0};
  int nprev = 0;
  valkmem_frame_mark();
  for (int f = 0; f < N_FRAMES; f++) {
    valkmem_zone_begin("logic");
    void *cur[N_FRAMES];
    for (int i = 0; i <= f; i++) cur[i] = malloc(FRAME_BLOCK);
    valkmem_zone_end();
    valkmem_zone_begin("render");
    valkmem_pool_alloc(frame, f == 3 ? 20000 : 6000);
    for (int i = 0; i < nprev; i++) free(prev[i]);
    valkmem_zone_end();
    memcpy(prev, cur, sizeof cur);
    nprev = f + 1;
    valkmem_pool_reset(frame);
    valkmem_frame_mark();
  }
  for (int i = 0; i < nprev; i++) free(prev[i]);

  /* Evals: "grow" keeps 3 blocks of 3000 and 10 objects; "shrink" frees one
   * block and 5 objects; "balanced" allocates and frees the same. */
  valkmem_eval_begin("grow");
  for (int i = 0; i < 3; i++) keep[i] = malloc(3000);
  for (int i = 0; i < 10; i++) valkmem_pool_alloc(objs, 48);
  valkmem_pool_alloc(frame, 9000);
  valkmem_eval_end();
  valkmem_eval_begin("shrink");
  free(keep[2]);
  keep[2] = NULL;
  for (int i = 0; i < 5; i++) valkmem_pool_free(objs, 48);
  valkmem_gc_report(777000, 555000, 100000);
  valkmem_eval_end();
  valkmem_eval_begin("balanced");
  void *t = malloc(100);
  free(t);
  valkmem_pool_alloc(objs, 48);
  valkmem_pool_free(objs, 48);
  valkmem_eval_end();
  valkmem_pool_reset(frame);

  /* Roots and a mark */
  for (int i = 0; i < N_ROOTS; i++) {
    char name[16];
    snprintf(name, sizeof name, "root-%02d", i);
    valkmem_root_report(name, (uint64_t)(i + 1) * 1024, (uint64_t)(i + 1));
  }
  valkmem_mark("workload-done", 1);
}

/* ---------------------------------------------------------------------------
 * What the snapshot and the report must show
 * ------------------------------------------------------------------------- */

static void check_doc(const cJSON *d, const char *what) {
  fprintf(stderr, "runtime_api: checking %s\n", what);
  /* gc */
  CHECK_EQ(rj_num(d, "gc.cycles"), GC_TOTAL + 1); /* + the one inside "shrink" */
  CHECK_EQ(rj_num(d, "gc.pause.count"), GC_TOTAL + 1);
  CHECK_EQ(rj_num(d, "gc.pause.hist[0]"), 3 + 1);
  CHECK_EQ(rj_num(d, "gc.pause.hist[1]"), 2);
  CHECK_EQ(rj_num(d, "gc.pause.hist[2]"), 1);
  CHECK_EQ(rj_num(d, "gc.pause.hist[3]"), 1);
  CHECK_EQ(rj_num(d, "gc.pause.hist[4]"), 1);
  CHECK_EQ(rj_num(d, "gc.pause.over10_count"), 2);
  CHECK_EQ(rj_bool(d, "gc.pause.warn"), 1); /* 2 of 9 = 22 % > 10 % */
  CHECK_GE(rj_num(d, "gc.pause.max_ms"), GC_SLEEP_MS);
  double eff = 0, reclaimed = 0;
  for (size_t i = 0; i < GC_REPORTED; i++) {
    eff += (double)(gc_cycles[i].before - gc_cycles[i].after) / (double)gc_cycles[i].before;
    reclaimed += (double)(gc_cycles[i].before - gc_cycles[i].after);
  }
  eff += 0.2 + 222.0 / 777.0;
  reclaimed += 1000000 + 222000;
  CHECK_NEAR(rj_num(d, "gc.efficiency_avg"), eff / (GC_TOTAL + 1), 1e-5);
  CHECK_NEAR(rj_num(d, "gc.efficiency_last"), 222.0 / 777.0, 1e-5);
  CHECK_EQ(rj_num(d, "gc.reclaimed_bytes"), reclaimed);
  CHECK_EQ(rj_num(d, "gc.recent[0].before"), gc_cycles[0].before);
  CHECK_EQ(rj_num(d, "gc.recent[0].after"), gc_cycles[0].after);
  CHECK_NEAR(rj_num(d, "gc.recent[0].pause_ms"), 0.4, 1e-9);
  CHECK_EQ(rj_num(d, "gc.recent[7].before"), GC_LAST_BEFORE);
  CHECK_NEAR(rj_num(d, "gc.recent[7].efficiency"), 0.2, 1e-9);

  /* pools */
  const cJSON *p = rj_find(d, "pools", "name", "objects");
  CHECK(p != NULL);
  CHECK_STREQ(rj_str(p, "kind"), "slab");
  CHECK_EQ(rj_num(p, "capacity"), 1 << 20);
  CHECK_EQ(rj_num(p, "used"), (600 + 10 - 5) * 48);
  CHECK_EQ(rj_num(p, "high_water"), 1000 * 48);
  CHECK_EQ(rj_num(p, "alloc_count"), 1011);
  CHECK_EQ(rj_num(p, "free_count"), 406);
  CHECK_EQ(rj_num(p, "overflow_count"), 0);
  CHECK_NEAR(rj_num(p, "frag_pct"), 100.0 * (65536.0 - 605 * 48) / 65536.0, 1e-3);
  p = rj_find(d, "pools", "name", "frame-arena");
  CHECK(p != NULL);
  CHECK_STREQ(rj_str(p, "kind"), "arena");
  CHECK_EQ(rj_num(p, "used"), 0);
  CHECK_EQ(rj_num(p, "high_water"), 20000);
  CHECK_EQ(rj_num(p, "overflow_count"), 1);
  CHECK_EQ(rj_num(p, "reset_count"), N_FRAMES + 1);
  p = rj_find(d, "pools", "name", "strings");
  CHECK_EQ(rj_num(p, "used"), 5000);

  /* frames */
  CHECK_EQ(rj_num(d, "frames.count"), N_FRAMES);
  int total_count = 0;
  for (int f = 0; f < N_FRAMES; f++) {
    char path[64];
    snprintf(path, sizeof path, "frames.recent[%d].alloc_count", f);
    CHECK_EQ(rj_num(d, path), f + 1);
    snprintf(path, sizeof path, "frames.recent[%d].alloc_bytes", f);
    CHECK_EQ(rj_num(d, path), (f + 1) * FRAME_BLOCK);
    snprintf(path, sizeof path, "frames.recent[%d].pool_bytes", f);
    CHECK_EQ(rj_num(d, path), f == 3 ? 20000 : 6000);
    snprintf(path, sizeof path, "frames.recent[%d].zones.logic", f);
    CHECK_GE(rj_num(d, path), 0);
    total_count += f + 1;
  }
  CHECK_EQ(rj_num(d, "frames.alloc_count"), total_count);
  CHECK_EQ(rj_num(d, "frames.alloc_bytes"), total_count * FRAME_BLOCK);
  CHECK(rj_find(d, "frames.zones", "name", "render") != NULL);

  /* evals */
  size_t u3000 = usable_of(3000), u100 = usable_of(100);
  CHECK_EQ(rj_num(d, "evals.count"), 3);
  const cJSON *e = rj_find(d, "evals.recent", "label", "grow");
  CHECK_EQ(rj_num(e, "allocated"), 3 * u3000 + 10 * 48 + 9000);
  CHECK_EQ(rj_num(e, "freed"), 0);
  CHECK_EQ(rj_num(e, "net"), 3 * u3000 + 10 * 48 + 9000);
  CHECK_EQ(rj_num(e, "arena_high_water"), 9000 + 5000); /* the frame arena's 9000 + the strings bump pool's 5000 */
  CHECK(cJSON_IsNull(rj_get(e, "retained")));
  e = rj_find(d, "evals.recent", "label", "shrink");
  CHECK_EQ(rj_num(e, "allocated"), 0);
  CHECK_EQ(rj_num(e, "freed"), u3000 + 5 * 48);
  CHECK_EQ(rj_num(e, "net"), -(double)(u3000 + 5 * 48));
  CHECK_EQ(rj_num(e, "retained"), 555000);
  CHECK_NEAR(rj_num(e, "gc_ms"), 0.1, 1e-9);
  e = rj_find(d, "evals.recent", "label", "balanced");
  CHECK_EQ(rj_num(e, "allocated"), u100 + 48);
  CHECK_EQ(rj_num(e, "net"), 0);
  CHECK_EQ(rj_bool(d, "evals.warn"), 0);

  /* roots: top 10 by bytes */
  CHECK_EQ(cJSON_GetArraySize(rj_get(d, "roots")), 10);
  CHECK_STREQ(rj_str(d, "roots[0].name"), "root-11");
  CHECK_EQ(rj_num(d, "roots[0].retained_bytes"), 12 * 1024);
  CHECK_EQ(rj_num(d, "roots[0].objects"), 12);
  CHECK_STREQ(rj_str(d, "roots[9].name"), "root-02");
  CHECK(rj_find(d, "marks", "name", "workload-done") != NULL);
}

/* ---------------------------------------------------------------------------
 * HTTP: fetch /api/snapshot from our own agent
 * ------------------------------------------------------------------------- */

static char *http_get(int port, const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return NULL;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return NULL;
  }
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path, port);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return NULL;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  ssize_t r;
  while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
    len += (size_t)r;
    if (cap - len < 2) buf = realloc(buf, cap *= 2);
  }
  close(fd);
  buf[len] = 0;
  char *body = strstr(buf, "\r\n\r\n");
  if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || !body) {
    free(buf);
    return NULL;
  }
  body += 4;
  /* de-chunk in place if needed */
  if (strstr(buf, "Transfer-Encoding: chunked") || strstr(buf, "transfer-encoding: chunked")) {
    char *out = body, *in = body;
    for (;;) {
      unsigned long sz = strtoul(in, &in, 16);
      in = strstr(in, "\r\n");
      if (!in || sz == 0) break;
      in += 2;
      memmove(out, in, sz);
      out += sz;
      in += sz + 2;
    }
    *out = 0;
  }
  char *res = strdup(body);
  free(buf);
  return res;
}

static int read_port(const char *url_file) {
  for (int i = 0; i < 100; i++) {
    char *s = check_slurp(url_file, NULL);
    const char *c = s ? strstr(s, "127.0.0.1:") : NULL;
    int port = c ? atoi(c + 10) : 0;
    free(s);
    if (port > 0) return port;
    sleep_ms(50);
  }
  return 0;
}

/* Child: the workload under the library, then the snapshot once the agent
 * has drained every event (gc.cycles and evals.count complete). */
static int run_child(const char *snap_out) {
  workload(1);
  const char *url_file = getenv("VALKMEM_URL_FILE");
  int port = url_file ? read_port(url_file) : 0;
  if (!port) {
    fprintf(stderr, "runtime_api: no agent URL in %s\n", url_file ? url_file : "(unset)");
    return 1;
  }
  cJSON *snap = NULL;
  char *text = NULL;
  for (int i = 0; i < 200; i++) {
    free(text);
    cJSON_Delete(snap);
    text = http_get(port, "/api/snapshot");
    snap = text ? cJSON_Parse(text) : NULL;
    if (snap && rj_num(snap, "gc.cycles") == GC_TOTAL + 1 && rj_num(snap, "evals.count") == 3 &&
        cJSON_GetArraySize(rj_get(snap, "roots")) == 10 && rj_find(snap, "marks", "name", "workload-done"))
      break;
    sleep_ms(50);
  }
  FILE *f = fopen(snap_out, "w");
  if (f && text) fputs(text, f);
  if (f) fclose(f);
  free(text);
  cJSON_Delete(snap);
  return check_done("runtime_api child");
}

static int drive(const char *lib) {
  char dir[] = "/tmp/vkm-runtime-api-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char report[256], snap[256], url[256], env_pre[512], env_rep[300], env_url[300];
  snprintf(report, sizeof report, "%s/report.json", dir);
  snprintf(snap, sizeof snap, "%s/snapshot.json", dir);
  snprintf(url, sizeof url, "%s/url", dir);
  snprintf(env_pre, sizeof env_pre, "LD_PRELOAD=%s", lib);
  snprintf(env_rep, sizeof env_rep, "VALKMEM_REPORT=%s", report);
  snprintf(env_url, sizeof env_url, "VALKMEM_URL_FILE=%s", url);
  char *envp[] = {env_pre, env_rep, env_url, "VALKMEM_QUIET=1", "VALKMEM_LISTEN=127.0.0.1:0", NULL};
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = 0;
  char *argv[] = {self, "--workload", "--with-lib", snap, NULL};
  pid_t pid;
  if (posix_spawn(&pid, self, NULL, NULL, argv, envp) != 0) return 1;
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

  char *s = check_slurp(snap, NULL);
  cJSON *doc = s ? cJSON_Parse(s) : NULL;
  CHECK(doc != NULL);
  if (doc) check_doc(doc, "/api/snapshot");
  cJSON_Delete(doc);
  free(s);
  s = check_slurp(report, NULL);
  doc = s ? cJSON_Parse(s) : NULL;
  CHECK(doc != NULL);
  if (doc) {
    CHECK_STREQ(rj_str(doc, "schema"), "valkmem.report/1");
    check_doc(doc, "the exit report");
  }
  cJSON_Delete(doc);
  free(s);
  if (!check_failures) {
    unlink(report), unlink(snap), unlink(url);
    rmdir(dir);
  } else {
    fprintf(stderr, "runtime_api: files kept in %s\n", dir);
  }
  return check_done("runtime_api");
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "--workload") == 0) {
    if (argc >= 4 && strcmp(argv[2], "--with-lib") == 0) return run_child(argv[3]);
    workload(0);
    return check_done("runtime_api (no library)");
  }
  if (argc >= 3 && strcmp(argv[1], "--drive") == 0) return drive(argv[2]);
  fprintf(stderr, "usage: runtime_api --workload | --drive LIBPATH\n");
  return 2;
}
