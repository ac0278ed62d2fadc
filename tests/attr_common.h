/* attr_common.h - helpers for the end-to-end attribution tests: run this
 * same program as a child under LD_PRELOAD=libvalkmem.so with VALKMEM_*
 * settings, read its report, and sum sites by their leaf function. */
#ifndef VKM_ATTR_COMMON_H
#define VKM_ATTR_COMMON_H
#include "check.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Starts `self mode arg` with LD_PRELOAD=lib and the NULL-terminated
 * "NAME=value" settings. Returns the pid. */
static inline pid_t attr_spawn(const char *self, const char *lib, const char *mode, const char *arg,
                               const char *const *env) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("LD_PRELOAD", lib, 1);
    setenv("VALKMEM_QUIET", "1", 1);
    setenv("VALKMEM_HTTP", "0", 1);
    for (; env && *env; env++) putenv((char *)*env);
    execl(self, self, mode, arg, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static inline int attr_wait(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline cJSON *attr_load(const char *path) {
  char *txt = check_slurp(path, NULL);
  if (!txt) return NULL;
  cJSON *j = cJSON_Parse(txt);
  free(txt);
  return j;
}

static inline const char *attr_leaf(const cJSON *site) {
  const cJSON *f0 = cJSON_GetArrayItem(cJSON_GetObjectItem(site, "frames"), 0);
  return f0 ? cJSON_GetStringValue(cJSON_GetObjectItem(f0, "function")) : NULL;
}

/* Sum of a numeric field over every site whose leaf frame is `fn`. */
static inline double attr_sum(const cJSON *rep, const char *fn, const char *field, int *nsites) {
  double sum = 0;
  int n = 0;
  const cJSON *s;
  cJSON_ArrayForEach(s, cJSON_GetObjectItem(rep, "sites")) {
    const char *leaf = attr_leaf(s);
    if (!leaf || strcmp(leaf, fn) != 0) continue;
    const cJSON *v = cJSON_GetObjectItem(s, field);
    if (cJSON_IsNumber(v)) sum += v->valuedouble;
    n++;
  }
  if (nsites) *nsites = n;
  return sum;
}

/* A scratch path for this test's report. */
static inline void attr_report_path(char *buf, size_t len, const char *tag) {
  snprintf(buf, len, "/tmp/vkm_%s_%d.json", tag, (int)getpid());
}
#endif
