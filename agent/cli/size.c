/* size.c - sizes as people write them ("24 MB", "512KiB", "1.5GB", "0"),
 * counts and percentages, and the reverse: bytes as people read them.
 *
 * Units follow GNU coreutils: kB/KB, MB, GB, TB, PB, EB are powers of 1000;
 * K, M, G, T, P, E and KiB, MiB, ... are powers of 1024; B or nothing is
 * bytes. Letters are case-insensitive ("mb" is "MB": a size here is never
 * in bits). Fractions are allowed when a unit is given
 * and rounded down to whole bytes ("1.5KiB" = 1536). Everything is integer
 * arithmetic, so no value is silently rounded through a double. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct unit_s {
  const char *name;
  uint64_t mult;
} unit_t;

#define K10 1000ull
#define K2 1024ull
static const unit_t units[] = {
    {"", 1},
    {"b", 1},
    {"k", K2}, {"kib", K2}, {"kb", K10},
    {"m", K2 * K2}, {"mib", K2 * K2}, {"mb", K10 * K10},
    {"g", K2 * K2 * K2}, {"gib", K2 * K2 * K2}, {"gb", K10 * K10 * K10},
    {"t", K2 * K2 * K2 * K2}, {"tib", K2 * K2 * K2 * K2}, {"tb", K10 * K10 * K10 * K10},
    {"p", K2 * K2 * K2 * K2 * K2}, {"pib", K2 * K2 * K2 * K2 * K2}, {"pb", K10 * K10 * K10 * K10 * K10},
    {"e", K2 * K2 * K2 * K2 * K2 * K2}, {"eib", K2 * K2 * K2 * K2 * K2 * K2},
    {"eb", K10 * K10 * K10 * K10 * K10 * K10},
};

static bool mul_over(uint64_t a, uint64_t b, uint64_t *out) { return __builtin_mul_overflow(a, b, out); }
static bool add_over(uint64_t a, uint64_t b, uint64_t *out) { return __builtin_add_overflow(a, b, out); }

/* The part sizes and counts share: blanks, then an unsigned decimal
 * integer. *s is left after the digits. noun names the thing in messages:
 * "size" or "number". 0, -EINVAL or -ERANGE with *why set. */
static int leading_integer(const char **sp, uint64_t *v, const char **why, const char *noun, const char *expect) {
  static char msg[96];
  const char *s = *sp;
  *v = 0;
  if (s) while (*s == ' ' || *s == '\t') s++;
  if (!s || !*s) {
    snprintf(msg, sizeof msg, "empty %s", noun);
    *why = msg;
    return -EINVAL;
  }
  if (*s == '-') {
    snprintf(msg, sizeof msg, "negative %s", noun);
    *why = msg;
    return -EINVAL;
  }
  if (!isdigit((unsigned char)*s)) {
    *why = *s == '+' && noun[0] == 's' ? "a size has no sign" : expect;
    return -EINVAL;
  }
  while (isdigit((unsigned char)*s)) {
    if (mul_over(*v, 10, v) || add_over(*v, (uint64_t)(*s - '0'), v)) {
      snprintf(msg, sizeof msg, "%s too large (over 2^64-1%s)", noun, noun[0] == 's' ? " bytes" : "");
      *why = msg;
      return -ERANGE;
    }
    s++;
  }
  *sp = s;
  return 0;
}

int vkm_parse_size(const char *s, uint64_t *out, const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  *out = 0;
  uint64_t whole;
  int rc = leading_integer(&s, &whole, why, "size", "a size starts with a digit (e.g. \"24 MB\", \"512KiB\", \"0\")");
  if (rc) return rc;
  /* Fraction digits, kept as an integer numerator over 10^fd (at most 18
   * digits matter: 10^19 overflows, and no unit needs more precision). */
  uint64_t frac = 0, frac_den = 1;
  bool have_frac = false;
  if (*s == '.') {
    s++;
    if (!isdigit((unsigned char)*s)) {
      *why = "expected a digit after the decimal point";
      return -EINVAL;
    }
    have_frac = true;
    while (isdigit((unsigned char)*s)) {
      if (frac_den < 1000000000000000000ull) {
        frac = frac * 10 + (uint64_t)(*s - '0');
        frac_den *= 10;
      }
      s++;
    }
  }
  while (*s == ' ' || *s == '\t') s++;
  char u[8];
  size_t ul = 0;
  while (*s && *s != ' ' && *s != '\t') {
    if (ul + 1 >= sizeof u) {
      *why = "unknown unit (use B, kB, MB, GB, TB or KiB, MiB, GiB, TiB)";
      return -EINVAL;
    }
    u[ul++] = (char)tolower((unsigned char)*s++);
  }
  u[ul] = 0;
  while (*s == ' ' || *s == '\t') s++;
  if (*s) {
    *why = "unexpected text after the unit";
    return -EINVAL;
  }
  const unit_t *unit = NULL;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (strcmp(u, units[i].name) == 0) unit = &units[i];
  if (!unit) {
    *why = "unknown unit (use B, kB, MB, GB, TB or KiB, MiB, GiB, TiB)";
    return -EINVAL;
  }
  if (have_frac && unit->mult == 1 && frac != 0) {
    *why = "a byte count must be a whole number";
    return -EINVAL;
  }
  uint64_t v;
  if (mul_over(whole, unit->mult, &v)) {
    *why = "size too large (over 2^64-1 bytes)";
    return -ERANGE;
  }
  if (frac) {
    /* frac/frac_den * mult without overflow: mult <= 2^60 and frac_den <=
     * 10^18, so split mult into quotient and remainder by frac_den. */
    unsigned __int128 f = (unsigned __int128)frac * unit->mult / frac_den;
    if (f > UINT64_MAX || add_over(v, (uint64_t)f, &v)) {
      *why = "size too large (over 2^64-1 bytes)";
      return -ERANGE;
    }
  }
  *out = v;
  return 0;
}

int vkm_parse_count(const char *s, uint64_t *out, const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  *out = 0;
  uint64_t v;
  int rc = leading_integer(&s, &v, why, "number", "expected a whole number");
  if (rc) return rc;
  while (*s == ' ' || *s == '\t') s++;
  if (*s) {
    *why = "expected a whole number";
    return -EINVAL;
  }
  *out = v;
  return 0;
}

int vkm_parse_percent(const char *s, double *out, const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  *out = 0;
  if (!s) {
    *why = "empty percentage";
    return -EINVAL;
  }
  while (*s == ' ' || *s == '\t') s++;
  if (!*s) {
    *why = "empty percentage";
    return -EINVAL;
  }
  if (*s == '-') {
    *why = "negative percentage";
    return -EINVAL;
  }
  if (!isdigit((unsigned char)*s)) {
    *why = "expected a percentage like 10 or 2.5%";
    return -EINVAL;
  }
  double v = 0;
  int digits = 0;
  while (isdigit((unsigned char)*s)) {
    v = v * 10 + (*s++ - '0');
    if (++digits > 9) {
      *why = "percentage too large";
      return -ERANGE;
    }
  }
  if (*s == '.') {
    s++;
    if (!isdigit((unsigned char)*s)) {
      *why = "expected a digit after the decimal point";
      return -EINVAL;
    }
    double scale = 0.1;
    while (isdigit((unsigned char)*s)) {
      v += (*s++ - '0') * scale;
      scale /= 10;
    }
  }
  while (*s == ' ' || *s == '\t') s++;
  if (*s == '%') s++;
  while (*s == ' ' || *s == '\t') s++;
  if (*s) {
    *why = "expected a percentage like 10 or 2.5%";
    return -EINVAL;
  }
  *out = v;
  return 0;
}

/* ---------------------------------------------------------------------------
 * Formatting
 * ------------------------------------------------------------------------- */
const char *vkm_fmt_size(uint64_t v, char *buf, size_t len) {
  static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (v < 1024) {
    snprintf(buf, len, "%llu B", (unsigned long long)v);
    return buf;
  }
  double d = (double)v;
  int i = 0;
  while (d >= 1024 && i < 6) {
    d /= 1024;
    i++;
  }
  if (d >= 100) snprintf(buf, len, "%.0f %s", d, names[i]);
  else if (d >= 10) snprintf(buf, len, "%.1f %s", d, names[i]);
  else snprintf(buf, len, "%.2f %s", d, names[i]);
  return buf;
}

const char *vkm_fmt_delta(int64_t v, char *buf, size_t len) {
  char tmp[48];
  uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  vkm_fmt_size(mag, tmp, sizeof tmp);
  snprintf(buf, len, "%s%s", v < 0 ? "-" : v > 0 ? "+" : "", tmp);
  return buf;
}
