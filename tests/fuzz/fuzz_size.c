/* fuzz_size.c - libFuzzer target: size, count, percent and tolerance
 * parsers. Properties: never crash; a digits-only input parses as a size
 * equal to its decimal value (or is rejected as too large); formatting any
 * accepted value stays NUL-terminated and short. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size > 256) return 0;
  char s[257];
  memcpy(s, data, size);
  s[size] = 0;
  uint64_t v = 0, c = 0, ab = 0;
  double p = 0;
  const char *why = NULL;
  int rc = vkm_parse_size(s, &v, &why);
  if (rc < 0 && (!why || !*why)) abort();
  int rc2 = vkm_parse_count(s, &c, &why);
  size_t n = strlen(s); /* the parsers see the text up to the first NUL */
  bool digits = n > 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') digits = false;
  if (digits && rc != rc2) abort();       /* a plain number means the same to both */
  if (digits && rc == 0 && v != c) abort();
  if (rc2 == 0 && !digits) {
    /* counts accept only digits and surrounding blanks */
    for (size_t i = 0; i < n; i++)
      if (!(s[i] == ' ' || s[i] == '\t' || (s[i] >= '0' && s[i] <= '9'))) abort();
  }
  vkm_parse_percent(s, &p, &why);
  vkm_parse_tolerance(s, &p, &ab, &why);
  if (rc == 0) {
    char buf[48];
    vkm_fmt_size(v, buf, sizeof buf);
    if (strlen(buf) >= sizeof buf) abort();
    vkm_fmt_delta((int64_t)v, buf, sizeof buf);
  }
  return 0;
}
