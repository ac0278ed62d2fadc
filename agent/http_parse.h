/* http_parse.h - a pure HTTP/1.x request-head parser and the small checks
 * the server makes on what it parsed (Host, query parameters, token).
 *
 * No I/O, no allocation, no global state: every function reads only the
 * bytes it is given, so the parser can be fuzzed on its own
 * (tests/fuzz/fuzz_http.c). The parsed request points into the caller's
 * buffer; it is valid while that buffer is.
 */
#ifndef VKM_HTTP_PARSE_H
#define VKM_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on a request head. A request line longer than max_line is refused
 * with 414; a head (request line + headers) longer than max_head, or with
 * more than max_headers header fields, with 431. */
#define VKM_HTTP_MAX_LINE 2048
#define VKM_HTTP_MAX_HEAD 8192
#define VKM_HTTP_MAX_HEADERS 64

enum vkm_http_method {
  VKM_HTTP_OTHER = 0, /* syntactically valid, not one we serve: 405 */
  VKM_HTTP_GET,
  VKM_HTTP_HEAD,
};

/* A byte range inside the request buffer (not NUL-terminated). */
typedef struct vkm_span_s {
  const char *p;
  size_t n;
} vkm_span_t;

typedef struct vkm_http_req_s {
  int method;              /* enum vkm_http_method */
  vkm_span_t method_name;
  vkm_span_t target;       /* the whole request-target */
  vkm_span_t path;         /* target up to '?' */
  vkm_span_t query;        /* after '?', without it; n == 0 when absent */
  int minor;               /* HTTP/1.<minor>: 0 or 1 */
  bool has_host;
  vkm_span_t host;         /* Host field value, trimmed */
  vkm_span_t authorization;
  vkm_span_t cookie;
  vkm_span_t last_event_id;
  bool has_content_length;
  uint64_t content_length;
  bool has_transfer_encoding;
  bool conn_close;         /* Connection: close, or HTTP/1.0 without keep-alive */
  size_t head_len;         /* bytes of the head, final empty line included */
  unsigned nheaders;
} vkm_http_req_t;

/* Parses the request head at buf[0..len). Returns
 *   > 0   the head is complete: its length (also in req->head_len);
 *   0     incomplete: read more and call again with the longer buffer;
 *   < 0   a malformed or refused head: minus the HTTP status to answer
 *         (-400, -414, -431, -505); the connection should be closed after.
 * Lines end in CRLF; a bare LF is accepted too (RFC 9112 section 2.2).
 * Leading empty lines before the request line are skipped (section 2.2). */
int vkm_http_parse(const char *buf, size_t len, vkm_http_req_t *req);

/* Looks up `name` in an application/x-www-form-urlencoded query and
 * percent-decodes its value (with '+' as space) into out[0..cap), NUL-
 * terminated. Returns the decoded length, -1 when the name is absent, -2
 * when the value is malformed or does not fit. */
int vkm_http_query_get(vkm_span_t query, const char *name, char *out, size_t cap);

/* Looks up a cookie by name in a Cookie field value; same returns as
 * vkm_http_query_get (no percent-decoding). */
int vkm_http_cookie_get(vkm_span_t cookie, const char *name, char *out, size_t cap);

/* True when a Host value names this server without DNS being involved:
 * 127.0.0.1, localhost, [::1] or `bound` (the bound address as a URL host:
 * "10.0.0.5" or "[fe80::1]"; "*" when bound to every interface, which
 * accepts any IP literal), each with no port or with `port`. This is the
 * defence against DNS rebinding: a page from evil.example that resolves to
 * 127.0.0.1 still sends Host: evil.example. */
bool vkm_http_host_ok(vkm_span_t host, const char *bound, int port);

/* Constant-time comparison of a candidate token with the configured one. */
bool vkm_http_token_eq(const char *candidate, size_t n, const char *token);

/* True when the span equals the NUL-terminated string s (ASCII
 * case-insensitive when nocase). */
bool vkm_span_eq(vkm_span_t a, const char *s, bool nocase);

/* The reason phrase for a status we send ("Not Found"). */
const char *vkm_http_reason(int status);

#endif
