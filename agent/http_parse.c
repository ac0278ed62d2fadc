/* http_parse.c - the HTTP/1.x request-head parser and request checks.
 *
 * Pure functions over caller-owned bytes (see http_parse.h). The grammar is
 * RFC 9112's, strict where laxness lets requests be smuggled or confused
 * (one space between request-line parts, no whitespace before a field's
 * colon, no obs-fold, one Host, consistent Content-Length) and lenient only
 * where RFC 9112 allows it (bare LF line ends, leading empty lines).
 */
#include "http_parse.h"

#include <arpa/inet.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Character classes
 * ------------------------------------------------------------------------- */

/* tchar from RFC 9110 section 5.6.2: the characters of a token. */
static bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP, HTAB and obs-text: what a field value may hold. */
static bool is_field_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c; }

bool vkm_span_eq(vkm_span_t a, const char *s, bool nocase) {
  size_t n = strlen(s);
  if (a.n != n) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char x = (unsigned char)a.p[i], y = (unsigned char)s[i];
    if (nocase ? lower(x) != lower(y) : x != y) return false;
  }
  return true;
}

static vkm_span_t trim(const char *p, size_t n) {
  while (n && (*p == ' ' || *p == '\t')) p++, n--;
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
  return (vkm_span_t){p, n};
}

/* Does a comma-separated token list (Connection) contain `tok`? */
static bool list_has(vkm_span_t v, const char *tok) {
  size_t i = 0;
  while (i < v.n) {
    size_t j = i;
    while (j < v.n && v.p[j] != ',') j++;
    if (vkm_span_eq(trim(v.p + i, j - i), tok, true)) return true;
    i = j + 1;
  }
  return false;
}

/* ---------------------------------------------------------------------------
 * The request line
 * ------------------------------------------------------------------------- */

/* line[0..n) without its line end. 0 or -status. */
static int parse_request_line(const char *line, size_t n, vkm_http_req_t *req) {
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)line[i])) i++;
  if (i == 0 || i > 32 || i >= n || line[i] != ' ') return -400;
  req->method_name = (vkm_span_t){line, i};
  if (vkm_span_eq(req->method_name, "GET", false)) req->method = VKM_HTTP_GET;
  else if (vkm_span_eq(req->method_name, "HEAD", false)) req->method = VKM_HTTP_HEAD;
  else req->method = VKM_HTTP_OTHER;

  size_t t0 = ++i;
  while (i < n && line[i] > 0x20 && line[i] < 0x7f) i++;
  if (i == t0 || i >= n || line[i] != ' ') return -400;
  req->target = (vkm_span_t){line + t0, i - t0};
  /* Only origin-form ("/path?query"): we are nobody's proxy, and the
   * asterisk form only goes with OPTIONS, which we do not serve. */
  if (req->target.p[0] != '/') return -400;
  const char *q = memchr(req->target.p, '?', req->target.n);
  if (q) {
    req->path = (vkm_span_t){req->target.p, (size_t)(q - req->target.p)};
    req->query = (vkm_span_t){q + 1, req->target.n - req->path.n - 1};
  } else {
    req->path = req->target;
    req->query = (vkm_span_t){req->target.p + req->target.n, 0};
  }

  const char *v = line + i + 1;
  size_t vn = n - i - 1;
  if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.') return -400;
  if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return -400;
  if (v[5] != '1') return -505;
  req->minor = v[7] - '0';
  if (req->minor > 1) req->minor = 1; /* HTTP/1.2 would be 1.1-compatible */
  return 0;
}

/* ---------------------------------------------------------------------------
 * Header fields
 * ------------------------------------------------------------------------- */

static int parse_content_length(vkm_span_t v, uint64_t *out) {
  if (v.n == 0 || v.n > 19) return -400;
  uint64_t x = 0;
  for (size_t i = 0; i < v.n; i++) {
    if (v.p[i] < '0' || v.p[i] > '9') return -400;
    x = x * 10 + (uint64_t)(v.p[i] - '0');
  }
  *out = x;
  return 0;
}

/* line[0..n) without its line end. 0 or -status. */
static int parse_field(const char *line, size_t n, vkm_http_req_t *req, bool *keep_alive) {
  size_t i = 0;
  /* A field line starting with whitespace is obs-fold (or an attempt to
   * make two parsers disagree): refused, as RFC 9112 section 5.2 allows. */
  while (i < n && is_tchar((unsigned char)line[i])) i++;
  if (i == 0 || i >= n || line[i] != ':') return -400;
  vkm_span_t name = {line, i};
  for (size_t j = i + 1; j < n; j++)
    if (!is_field_char((unsigned char)line[j])) return -400;
  vkm_span_t value = trim(line + i + 1, n - i - 1);

  if (vkm_span_eq(name, "host", true)) {
    if (req->has_host) return -400; /* RFC 9112 section 3.2 */
    req->has_host = true;
    req->host = value;
  } else if (vkm_span_eq(name, "authorization", true)) {
    req->authorization = value;
  } else if (vkm_span_eq(name, "cookie", true)) {
    if (!req->cookie.n) req->cookie = value;
  } else if (vkm_span_eq(name, "last-event-id", true)) {
    req->last_event_id = value;
  } else if (vkm_span_eq(name, "content-length", true)) {
    uint64_t cl;
    if (parse_content_length(value, &cl) < 0) return -400;
    if (req->has_content_length && cl != req->content_length) return -400;
    req->has_content_length = true;
    req->content_length = cl;
  } else if (vkm_span_eq(name, "transfer-encoding", true)) {
    req->has_transfer_encoding = true;
  } else if (vkm_span_eq(name, "connection", true)) {
    if (list_has(value, "close")) req->conn_close = true;
    if (list_has(value, "keep-alive")) *keep_alive = true;
  }
  return 0;
}

/* ---------------------------------------------------------------------------
 * The head
 * ------------------------------------------------------------------------- */

/* Finds the next line starting at `pos`: sets *nl to its '\n' and returns
 * the length without CR/LF, or -1 when there is no '\n' yet. A CR anywhere
 * but right before the LF is malformed: -2. */
static long next_line(const char *buf, size_t len, size_t pos, size_t *nl) {
  const char *p = memchr(buf + pos, '\n', len - pos);
  if (!p) return -1;
  *nl = (size_t)(p - buf);
  size_t n = *nl - pos;
  if (n && buf[pos + n - 1] == '\r') n--;
  if (memchr(buf + pos, '\r', n)) return -2;
  return (long)n;
}

int vkm_http_parse(const char *buf, size_t len, vkm_http_req_t *req) {
  memset(req, 0, sizeof *req);
  size_t pos = 0;
  /* Leading empty lines (a client's stray CRLF after a previous body). */
  while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n')) {
    if (buf[pos] == '\r' && pos + 1 < len && buf[pos + 1] != '\n') return -400;
    pos++;
    if (pos > 64) return -400;
  }

  size_t nl;
  long n = next_line(buf, len, pos, &nl);
  if (n == -2) return -400;
  if (n == -1) {
    /* Refuse early what can never become valid, so a client cannot make us
     * hold a long partial line: an over-long line, or garbage bytes. */
    if (len - pos > VKM_HTTP_MAX_LINE) return -414;
    for (size_t i = pos; i < len; i++) {
      unsigned char c = (unsigned char)buf[i];
      if (c != '\r' && (c < 0x20 || c >= 0x7f)) return -400;
    }
    return 0;
  }
  if ((size_t)n > VKM_HTTP_MAX_LINE) return -414;
  int rc = parse_request_line(buf + pos, (size_t)n, req);
  if (rc < 0) return rc;

  bool keep_alive = false;
  pos = nl + 1;
  for (;;) {
    n = next_line(buf, len, pos, &nl);
    if (n == -2) return -400;
    if (n == -1) return len > VKM_HTTP_MAX_HEAD ? -431 : 0;
    if (nl + 1 > VKM_HTTP_MAX_HEAD) return -431;
    if (n == 0) break;
    if (++req->nheaders > VKM_HTTP_MAX_HEADERS) return -431;
    rc = parse_field(buf + pos, (size_t)n, req, &keep_alive);
    if (rc < 0) return rc;
    pos = nl + 1;
  }
  req->head_len = nl + 1;
  if (req->minor == 1 && !req->has_host) return -400; /* RFC 9112 section 3.2 */
  if (req->minor == 0 && !keep_alive) req->conn_close = true;
  return (int)req->head_len;
}

/* ---------------------------------------------------------------------------
 * Query strings and cookies
 * ------------------------------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = (char)lower((unsigned char)c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int vkm_http_query_get(vkm_span_t q, const char *name, char *out, size_t cap) {
  size_t nlen = strlen(name), i = 0;
  while (i < q.n) {
    size_t j = i;
    while (j < q.n && q.p[j] != '&') j++;
    const char *eq = memchr(q.p + i, '=', j - i);
    size_t klen = eq ? (size_t)(eq - (q.p + i)) : j - i;
    if (klen == nlen && memcmp(q.p + i, name, nlen) == 0) {
      size_t o = 0;
      for (size_t k = eq ? (size_t)(eq - q.p) + 1 : j; k < j; k++) {
        char c = q.p[k];
        if (c == '+') c = ' ';
        else if (c == '%') {
          if (k + 2 >= j) return -2;
          int hi = hexval(q.p[k + 1]), lo = hexval(q.p[k + 2]);
          if (hi < 0 || lo < 0) return -2;
          c = (char)(hi * 16 + lo);
          k += 2;
        }
        if (c == 0 || o + 1 >= cap) return -2;
        out[o++] = c;
      }
      if (cap == 0) return -2;
      out[o] = 0;
      return (int)o;
    }
    i = j + 1;
  }
  return -1;
}

int vkm_http_cookie_get(vkm_span_t c, const char *name, char *out, size_t cap) {
  size_t nlen = strlen(name), i = 0;
  while (i < c.n) {
    size_t j = i;
    while (j < c.n && c.p[j] != ';') j++;
    vkm_span_t pair = trim(c.p + i, j - i);
    const char *eq = memchr(pair.p, '=', pair.n);
    if (eq && (size_t)(eq - pair.p) == nlen && memcmp(pair.p, name, nlen) == 0) {
      size_t vn = pair.n - nlen - 1;
      if (vn + 1 > cap) return -2;
      memcpy(out, eq + 1, vn);
      out[vn] = 0;
      return (int)vn;
    }
    i = j + 1;
  }
  return -1;
}

/* ---------------------------------------------------------------------------
 * Host and token checks
 * ------------------------------------------------------------------------- */

static bool is_ip_literal(vkm_span_t name) {
  char tmp[64];
  unsigned char addr[16];
  if (name.n < 2 || name.n >= sizeof tmp) return false;
  if (name.p[0] == '[') {
    memcpy(tmp, name.p + 1, name.n - 2);
    tmp[name.n - 2] = 0;
    return name.p[name.n - 1] == ']' && inet_pton(AF_INET6, tmp, addr) == 1;
  }
  memcpy(tmp, name.p, name.n);
  tmp[name.n] = 0;
  return inet_pton(AF_INET, tmp, addr) == 1;
}

bool vkm_http_host_ok(vkm_span_t host, const char *bound, int port) {
  if (host.n == 0) return false;
  vkm_span_t name = host, rest = {host.p + host.n, 0};
  if (host.p[0] == '[') {
    const char *rb = memchr(host.p, ']', host.n);
    if (!rb) return false;
    name.n = (size_t)(rb - host.p) + 1;
  } else {
    const char *colon = memchr(host.p, ':', host.n);
    if (colon) name.n = (size_t)(colon - host.p);
  }
  rest = (vkm_span_t){host.p + name.n, host.n - name.n};
  if (rest.n) {
    if (rest.p[0] != ':' || rest.n < 2 || rest.n > 6) return false;
    int p = 0;
    for (size_t i = 1; i < rest.n; i++) {
      if (rest.p[i] < '0' || rest.p[i] > '9') return false;
      p = p * 10 + (rest.p[i] - '0');
    }
    if (p != port) return false;
  }
  if (vkm_span_eq(name, "127.0.0.1", true) || vkm_span_eq(name, "localhost", true) ||
      vkm_span_eq(name, "[::1]", true) || (bound && *bound && vkm_span_eq(name, bound, true)))
    return true;
  /* Bound to every interface: any IP literal names us. Rebinding needs a
   * DNS name, and a literal cannot be rebound. */
  return bound && strcmp(bound, "*") == 0 && is_ip_literal(name);
}

bool vkm_http_token_eq(const char *cand, size_t n, const char *token) {
  size_t tn = strlen(token);
  if (tn == 0) return false;
  /* Time depends only on the candidate's length, never on where the first
   * differing byte is. */
  unsigned diff = (unsigned)(n != tn);
  for (size_t i = 0; i < n; i++) diff |= (unsigned char)cand[i] ^ (unsigned char)token[i % tn];
  return diff == 0;
}

const char *vkm_http_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}
