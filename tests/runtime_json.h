/* runtime_json.h - small cJSON path helpers for the runtime tests:
 * rj_get(root, "gc.pause.hist[3]") follows object keys and array indexes. */
#ifndef RUNTIME_JSON_H
#define RUNTIME_JSON_H
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static inline const cJSON *rj_get(const cJSON *j, const char *path) {
  char key[128];
  const char *p = path;
  while (j && *p) {
    if (*p == '.') { p++; continue; }
    if (*p == '[') {
      int idx = atoi(p + 1);
      j = cJSON_GetArrayItem(j, idx);
      p = strchr(p, ']');
      if (!p) return NULL;
      p++;
      continue;
    }
    size_t n = strcspn(p, ".[");
    if (n >= sizeof key) return NULL;
    memcpy(key, p, n);
    key[n] = 0;
    j = cJSON_GetObjectItemCaseSensitive(j, key);
    p += n;
  }
  return j;
}

/* The number at path, or -1e300 when absent or not a number (so a CHECK on
 * it fails and prints something recognisable). */
static inline double rj_num(const cJSON *j, const char *path) {
  const cJSON *v = rj_get(j, path);
  return cJSON_IsNumber(v) ? v->valuedouble : -1e300;
}

static inline const char *rj_str(const cJSON *j, const char *path) {
  const cJSON *v = rj_get(j, path);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static inline int rj_bool(const cJSON *j, const char *path) {
  const cJSON *v = rj_get(j, path);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

/* The element of array `path` whose string member `key` equals `val`. */
static inline const cJSON *rj_find(const cJSON *j, const char *path, const char *key, const char *val) {
  const cJSON *a = rj_get(j, path), *e;
  cJSON_ArrayForEach(e, a) {
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, key);
    if (cJSON_IsString(k) && strcmp(k->valuestring, val) == 0) return e;
  }
  return NULL;
}
#endif
