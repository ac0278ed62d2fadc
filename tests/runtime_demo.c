/* runtime_demo.c - runs valkmem-demo under the library until its 5th GC
 * cycle and checks the exit report:
 *
 *   runtime_demo LIB DEMO --leak     the planted leak (leaky_cache_put) is
 *                                    flagged within those 5 GC cycles
 *   runtime_demo LIB DEMO            the same run without --leak flags
 *                                    nothing
 *
 * Both also check that every runtime panel got data (GC, pools, frames and
 * zones, evals, roots), which is what the dashboard demo relies on.
 *
 * The sampling mean is 64 KiB here: the demo leaks ~256 KiB/s and collects
 * about every 2 s, so 5 cycles leak ~2.5 MiB = ~40 expected samples, and
 * the leak analysis' growth threshold (3 sample means) is far below it. At
 * the default 512 KiB the same leak is ~5 samples: found, but after more
 * cycles than this test allows.
 */
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "runtime_json.h"

extern char **environ;

#define GC_LIMIT 5

static int run_demo(const char *lib, const char *demo, int leak, const char *report) {
  char env_pre[1024], env_rep[512];
  snprintf(env_pre, sizeof env_pre, "LD_PRELOAD=%s", lib);
  snprintf(env_rep, sizeof env_rep, "VALKMEM_REPORT=%s", report);
  char *envp[] = {env_pre, env_rep, "VALKMEM_SAMPLE_BYTES=65536", "VALKMEM_QUIET=1", "VALKMEM_HTTP=0", NULL};
  char limit[16];
  snprintf(limit, sizeof limit, "%d", GC_LIMIT);
  char *argv_leak[] = {(char *)demo, "--mode", "all", "--gc-limit", limit, "--seconds", "60", "--leak", NULL};
  char *argv_clean[] = {(char *)demo, "--mode", "all", "--gc-limit", limit, "--seconds", "60", NULL};
  pid_t pid;
  if (posix_spawn(&pid, demo, NULL, NULL, leak ? argv_leak : argv_clean, envp) != 0) return -1;
  int st = 0;
  if (waitpid(pid, &st, 0) < 0) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int names_leaky(const cJSON *l) {
  const char *fn = rj_str(l, "function");
  return fn && strstr(fn, "leaky_cache_put") != NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: runtime_demo LIB DEMO [--leak]\n");
    return 2;
  }
  int leak = argc > 3 && strcmp(argv[3], "--leak") == 0;
  char report[] = "/tmp/vkm-runtime-demo-XXXXXX";
  int fd = mkstemp(report);
  if (fd < 0) return 1;
  close(fd);
  CHECK_EQ(run_demo(argv[1], argv[2], leak, report), 0);
  char *text = check_slurp(report, NULL);
  cJSON *r = text ? cJSON_Parse(text) : NULL;
  CHECK(r != NULL);
  if (!r) return check_done("runtime_demo");

  /* every runtime panel has data */
  CHECK_EQ(rj_num(r, "gc.cycles"), GC_LIMIT);
  CHECK_EQ(rj_num(r, "gc.pause.count"), GC_LIMIT);
  CHECK_GE(cJSON_GetArraySize(rj_get(r, "pools")), 8);
  const cJSON *p = rj_find(r, "pools", "name", "heap.small");
  CHECK(p != NULL);
  CHECK_GT(rj_num(p, "alloc_count"), 0);
  CHECK_GT(rj_num(p, "free_count"), 0);
  p = rj_find(r, "pools", "name", "render.scratch");
  CHECK_GT(rj_num(p, "reset_count"), 0);
  p = rj_find(r, "pools", "name", "io.buffers");
  CHECK_GT(rj_num(p, "alloc_count"), 0); /* from the I/O threads */
  CHECK_GT(rj_num(r, "frames.count"), 0);
  CHECK_GT(rj_num(r, "frames.alloc_count"), 0);
  CHECK(rj_find(r, "frames.zones", "name", "logic") != NULL);
  CHECK(rj_find(r, "frames.zones", "name", "render") != NULL);
  CHECK_GT(rj_num(r, "evals.count"), 0);
  CHECK_GT(cJSON_GetArraySize(rj_get(r, "roots")), 0);
  CHECK(rj_find(r, "roots", "name", "entities") != NULL);

  /* the leak verdict */
  const cJSON *leaks = rj_get(r, "leaks"), *l;
  CHECK(cJSON_IsArray(leaks));
  int flagged = 0, others = 0;
  cJSON_ArrayForEach(l, leaks) {
    if (names_leaky(l)) flagged++;
    else others++;
  }
  if (leak) {
    CHECK_EQ(flagged, 1);
  } else {
    CHECK_EQ(flagged, 0);
    CHECK_EQ(others, 0);
  }
  if (check_failures) {
    char *s = cJSON_Print(leaks);
    fprintf(stderr, "runtime_demo: leaks = %s\nruntime_demo: report kept in %s\n", s ? s : "?", report);
    free(s);
  } else {
    unlink(report);
  }
  cJSON_Delete(r);
  free(text);
  return check_done(leak ? "runtime_demo --leak" : "runtime_demo");
}
