/* soak.h - shared helpers for the soak programs (tests/soak/soak_*.c).
 *
 * Every soak program keeps its own account of the allocations it plants
 * ("truth") and prints it as one line on stdout at the end:
 *
 *   SOAK {"planted": {...}, "exact": {...}, "atleast": {...}, "children": {...}}
 *
 * soak_check.py runs the program twice (scale N and 2N) under the shim and
 * checks the report: "exact" fields must equal the report's value in every
 * run; "atleast" fields are lower bounds; "planted" fields must match the
 * difference between the two runs' reports (start-up noise cancels).
 * Keys are report paths, e.g. "totals.alloc_count", "totals.size_hist.15",
 * "live.count".
 *
 * Marker sizes: the programs put the allocations they count exactly in
 * size classes nothing else in these processes requests, so size_hist[b] is
 * an exact count. Not bucket 16: libstdc++ (linked by jemalloc and tcmalloc)
 * allocates its 72 704-byte exception pool there at load.
 */
#ifndef VKM_SOAK_H
#define VKM_SOAK_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SOAK_MARK_A 36000u /* size_hist bucket 15: [32768, 65536) */
#define SOAK_MARK_B 24000u /* size_hist bucket 14: [16384, 32768) */
#define SOAK_BUCKET_A 15
#define SOAK_BUCKET_B 14

/* The size_hist bucket of a requested size (vkm.h: bucket b holds
 * [2^b, 2^(b+1)); sizes 0 and 1 share bucket 0). */
static inline int soak_bucket(uint64_t size) { return 63 - __builtin_clzll(size | 1); }

/* A tiny JSON object builder on a static buffer: no allocation while the
 * program is counting (the final printf allocates stdout's buffer, the same
 * in every run). */
typedef struct {
  char buf[8192];
  size_t len;
  int n;
} soak_obj_t;

static inline void soak_put(soak_obj_t *o, const char *key, int64_t v) {
  int w = snprintf(o->buf + o->len, sizeof o->buf - o->len, "%s\"%s\": %" PRId64, o->n++ ? ", " : "", key, v);
  if (w > 0 && (size_t)w < sizeof o->buf - o->len) o->len += (size_t)w;
}

static inline void soak_putf(soak_obj_t *o, int64_t v, const char *fmt, ...) {
  char key[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(key, sizeof key, fmt, ap);
  va_end(ap);
  soak_put(o, key, v);
}

/* Prints the SOAK line. Any of the objects may be NULL. */
static inline void soak_print(const soak_obj_t *planted, const soak_obj_t *exact, const soak_obj_t *atleast,
                              const char *children_json) {
  printf("SOAK {\"planted\": {%s}, \"exact\": {%s}, \"atleast\": {%s}, \"children\": %s}\n",
         planted ? planted->buf : "", exact ? exact->buf : "", atleast ? atleast->buf : "",
         children_json ? children_json : "null");
  fflush(stdout);
}

static inline void soak_die(const char *what) {
  fprintf(stderr, "soak: error: %s\n", what);
  exit(1);
}

/* Argument N (the scale soak_check.py doubles) as a positive integer. */
static inline uint64_t soak_arg(int argc, char **argv, int i, uint64_t dflt) {
  if (argc <= i) return dflt;
  char *end;
  unsigned long long v = strtoull(argv[i], &end, 10);
  if (*end || v == 0) soak_die("bad numeric argument");
  return v;
}

#endif
