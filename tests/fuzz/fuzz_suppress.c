/* fuzz_suppress.c - libFuzzer target: suppression files and LSan template
 * matching. Properties: never crash; a parsed pattern without '*', '^' or
 * '$' matches itself and any string containing it; "^p$" matches p. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size > 16384) return 0;
  vkm_supp_list_t l = {0};
  char err[256] = "";
  if (vkm_supp_parse(&l, (const char *)data, size, "fuzz", err, sizeof err) < 0 && !err[0]) abort();
  for (size_t i = 0; i < l.n; i++) {
    const char *p = l.v[i].pattern;
    if (!*p) abort(); /* empty patterns are rejected */
    if (!strpbrk(p, "*^$")) {
      if (!vkm_supp_match(p, p)) abort();
      size_t n = strlen(p);
      char *wrapped = malloc(n + 3);
      wrapped[0] = 'x';
      memcpy(wrapped + 1, p, n);
      wrapped[n + 1] = 'y';
      wrapped[n + 2] = 0;
      if (!vkm_supp_match(p, wrapped)) abort();
      char *anch = malloc(n + 3);
      anch[0] = '^';
      memcpy(anch + 1, p, n);
      anch[n + 1] = '$';
      anch[n + 2] = 0;
      if (!vkm_supp_match(anch, p)) abort();
      if (vkm_supp_match(anch, wrapped)) abort();
      free(anch);
      free(wrapped);
    }
    /* Arbitrary pattern against the raw input as a string. */
    char s[129];
    size_t k = size < 128 ? size : 128;
    memcpy(s, data, k);
    s[k] = 0;
    vkm_supp_match(p, s);
  }
  vkm_supp_free(&l);
  return 0;
}
