/* fuzz_http.c - libFuzzer target for the request parser and the checks the
 * server runs on what it parsed. Build: clang -fsanitize=fuzzer,address
 * fuzz_http.c ../../agent/http_parse.c. Every span the parser returns must
 * lie inside the input, and a complete head's length must not exceed it. */
#include "http_parse.h"

#include <stdlib.h>
#include <string.h>

static void inside(vkm_span_t s, const char *b, size_t n) {
  if (s.n && (s.p < b || s.p + s.n > b + n)) abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  /* A private copy, exactly as long as the input, so ASan sees any read past it. */
  char *b = malloc(size ? size : 1);
  if (!b) return 0;
  memcpy(b, data, size);
  vkm_http_req_t r;
  int rc = vkm_http_parse(b, size, &r);
  if (rc > 0) {
    if ((size_t)rc > size || (size_t)rc != r.head_len || rc > VKM_HTTP_MAX_HEAD + 64) abort();
    inside(r.method_name, b, size);
    inside(r.target, b, size);
    inside(r.path, b, size);
    inside(r.query, b, size);
    inside(r.host, b, size);
    inside(r.authorization, b, size);
    inside(r.cookie, b, size);
    inside(r.last_event_id, b, size);
    if (r.path.n == 0 || r.path.p[0] != '/') abort();
    char v[64];
    static const char *const names[] = {"range", "type", "token", ""};
    for (int i = 0; i < 4; i++) {
      int k = vkm_http_query_get(r.query, names[i], v, sizeof v);
      if (k >= 0 && ((size_t)k >= sizeof v || strlen(v) != (size_t)k)) abort();
    }
    int k = vkm_http_cookie_get(r.cookie, "valkmem_token", v, sizeof v);
    if (k >= (int)sizeof v) abort();
    vkm_http_host_ok(r.host, "127.0.0.1", 8080);
    vkm_http_host_ok(r.host, "*", 8080);
    vkm_http_token_eq(r.authorization.p, r.authorization.n, "secret");
  } else if (rc < 0) {
    if (rc != -400 && rc != -414 && rc != -431 && rc != -505) abort();
  }
  free(b);
  return 0;
}
