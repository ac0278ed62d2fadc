/* check.h - the test harness: CHECK macros that print both operands on
 * failure, and a few helpers every area needs (run a command, read a JSON
 * file). One header, no framework. */
#ifndef VKM_CHECK_H
#define VKM_CHECK_H
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      check_failures++;                                                      \
    }                                                                        \
  } while (0)

#define CHECK_OP_(a, op, b, fmt, T)                                              \
  do {                                                                           \
    T va_ = (T)(a), vb_ = (T)(b);                                                \
    if (!(va_ op vb_)) {                                                         \
      fprintf(stderr, "%s:%d: CHECK(%s %s %s) failed: " fmt " vs " fmt "\n",     \
              __FILE__, __LINE__, #a, #op, #b, va_, vb_);                        \
      check_failures++;                                                          \
    }                                                                            \
  } while (0)

#define CHECK_EQ(a, b) CHECK_OP_(a, ==, b, "%" PRId64, int64_t)
#define CHECK_NE(a, b) CHECK_OP_(a, !=, b, "%" PRId64, int64_t)
#define CHECK_LE(a, b) CHECK_OP_(a, <=, b, "%" PRId64, int64_t)
#define CHECK_LT(a, b) CHECK_OP_(a, <, b, "%" PRId64, int64_t)
#define CHECK_GE(a, b) CHECK_OP_(a, >=, b, "%" PRId64, int64_t)
#define CHECK_GT(a, b) CHECK_OP_(a, >, b, "%" PRId64, int64_t)
#define CHECK_NEAR(a, b, tol)                                                      \
  do {                                                                             \
    double va_ = (double)(a), vb_ = (double)(b), t_ = (double)(tol);               \
    if (!(va_ >= vb_ - t_ && va_ <= vb_ + t_)) {                                   \
      fprintf(stderr, "%s:%d: CHECK_NEAR(%s, %s, %s) failed: %g vs %g (tol %g)\n", \
              __FILE__, __LINE__, #a, #b, #tol, va_, vb_, t_);                     \
      check_failures++;                                                            \
    }                                                                              \
  } while (0)
#define CHECK_STREQ(a, b)                                                              \
  do {                                                                                 \
    const char *va_ = (a), *vb_ = (b);                                                 \
    if (!va_ || !vb_ || strcmp(va_, vb_) != 0) {                                       \
      fprintf(stderr, "%s:%d: CHECK_STREQ(%s, %s) failed: \"%s\" vs \"%s\"\n",         \
              __FILE__, __LINE__, #a, #b, va_ ? va_ : "(null)", vb_ ? vb_ : "(null)"); \
      check_failures++;                                                                \
    }                                                                                  \
  } while (0)

/* Ends main: prints a verdict line and returns the exit code. */
static inline int check_done(const char *name) {
  if (check_failures) fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
  else fprintf(stderr, "%s: ok\n", name);
  return check_failures ? 1 : 0;
}

/* Reads a whole file (malloc'd, NUL-terminated) or NULL. */
static inline char *check_slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (cap - n < 2) { cap *= 2; buf = realloc(buf, cap); }
  }
  fclose(f);
  if (buf) buf[n] = 0;
  if (len) *len = n;
  return buf;
}
#endif
