/* http_unit.c - the request parser and request checks (agent/http_parse.c)
 * on known inputs: valid heads at every split point, each refusal with its
 * status, query/cookie decoding, Host and token checks. */
#include "check.h"
#include "http_parse.h"
#include "metrics.h"

/* metrics.c allocates through these. */
void *vkm_realloc(void *p, size_t n) { return realloc(p, n); }
void vkm_free(void *p) { free(p); }

static int parse(const char *s, vkm_http_req_t *r) { return vkm_http_parse(s, strlen(s), r); }

static void test_valid(void) {
  const char *s = "GET /api/history?range=5m&x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                  "Authorization:  Bearer abc \r\nLast-Event-ID: 42\r\nCookie: a=1; valkmem_token=t0k\r\n\r\nEXTRA";
  vkm_http_req_t r;
  size_t head = strlen(s) - 5;
  CHECK_EQ(parse(s, &r), (int64_t)head);
  CHECK_EQ(r.method, VKM_HTTP_GET);
  CHECK(vkm_span_eq(r.path, "/api/history", false));
  CHECK(vkm_span_eq(r.query, "range=5m&x=1", false));
  CHECK(vkm_span_eq(r.host, "127.0.0.1:8080", false));
  CHECK(vkm_span_eq(r.authorization, "Bearer abc", false));
  CHECK(vkm_span_eq(r.last_event_id, "42", false));
  CHECK_EQ(r.minor, 1);
  CHECK(!r.conn_close);
  CHECK_EQ(r.nheaders, 4);
  char v[16];
  CHECK_EQ(vkm_http_cookie_get(r.cookie, "valkmem_token", v, sizeof v), 3);
  CHECK_STREQ(v, "t0k");
  /* Every proper prefix is incomplete, never an error. */
  for (size_t n = 0; n < head; n++) {
    int rc = vkm_http_parse(s, n, &r);
    if (rc != 0) {
      fprintf(stderr, "prefix %zu: %d\n", n, rc);
      CHECK_EQ(rc, 0);
      break;
    }
  }
  /* Bare LF line ends, leading empty lines, HEAD, HTTP/1.0 closes. */
  CHECK_GT(parse("\r\n\nHEAD / HTTP/1.0\n\n", &r), 0);
  CHECK_EQ(r.method, VKM_HTTP_HEAD);
  CHECK(r.conn_close);
  CHECK(!r.has_host);
  CHECK_GT(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r), 0);
  CHECK(!r.conn_close);
  CHECK_GT(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", &r), 0);
  CHECK(r.conn_close);
  CHECK_GT(parse("DELETE /x HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\n", &r), 0);
  CHECK_EQ(r.method, VKM_HTTP_OTHER);
  CHECK(r.has_content_length);
  CHECK_EQ(r.content_length, 12);
  CHECK_GT(parse("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", &r), 0);
  CHECK(r.has_transfer_encoding);
  CHECK_EQ(r.query.n, 0);
}

static void test_refused(void) {
  static const struct { const char *req; int rc; } cases[] = {
      {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", -400},
      {"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", -400},
      {"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", -400},
      {"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", -400},
      {"GET * HTTP/1.1\r\nHost: x\r\n\r\n", -400},
      {"GET / HTTX/1.1\r\nHost: x\r\n\r\n", -400},
      {"GET / HTTP/1.10\r\nHost: x\r\n\r\n", -400},
      {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", -505},
      {"GET / HTTP/0.9\r\nHost: x\r\n\r\n", -505},
      {" GET / HTTP/1.1\r\nHost: x\r\n\r\n", -400},
      {"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", -400},
      {"GET /\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\n\r\n", -400},                          /* no Host */
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400},     /* two Hosts */
      {"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", -400},
      {"\x16\x03\x01\x02\x00\x01", -400}, /* a TLS ClientHello: refused before it completes */
      {"\r\r\n", -400},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    vkm_http_req_t r;
    int rc = parse(cases[i].req, &r);
    if (rc != cases[i].rc) fprintf(stderr, "case %zu: %d, want %d\n", i, rc, cases[i].rc);
    CHECK_EQ(rc, cases[i].rc);
  }
}

static void test_limits(void) {
  static char buf[40000];
  vkm_http_req_t r;
  /* A request line over the limit: 414 whether or not it has ended. */
  memset(buf, 0, sizeof buf);
  strcpy(buf, "GET /");
  memset(buf + 5, 'a', 3000);
  CHECK_EQ(parse(buf, &r), -414);
  strcat(buf, " HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_EQ(parse(buf, &r), -414);
  /* Just under: fine. */
  memset(buf, 0, sizeof buf);
  strcpy(buf, "GET /");
  memset(buf + 5, 'a', VKM_HTTP_MAX_LINE - 5 - 9);
  strcat(buf, " HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_GT(parse(buf, &r), 0);
  /* Headers over the limit: 431, complete or not. */
  memset(buf, 0, sizeof buf);
  strcpy(buf, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(buf + strlen(buf), 'b', 20000);
  CHECK_EQ(parse(buf, &r), -431);
  strcat(buf, "\r\n\r\n");
  CHECK_EQ(parse(buf, &r), -431);
  /* Too many fields. */
  memset(buf, 0, sizeof buf);
  strcpy(buf, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < VKM_HTTP_MAX_HEADERS; i++) strcat(buf, "X-A: 1\r\n");
  strcat(buf, "\r\n");
  CHECK_EQ(parse(buf, &r), -431);
}

static void test_query(void) {
  char v[32];
  vkm_span_t q = {"range=1h&token=a%2Fb+c&empty=&flag&bad=%zz&cut=%4", 0};
  q.n = strlen(q.p);
  CHECK_EQ(vkm_http_query_get(q, "range", v, sizeof v), 2);
  CHECK_STREQ(v, "1h");
  CHECK_EQ(vkm_http_query_get(q, "token", v, sizeof v), 5);
  CHECK_STREQ(v, "a/b c");
  CHECK_EQ(vkm_http_query_get(q, "empty", v, sizeof v), 0);
  CHECK_EQ(vkm_http_query_get(q, "flag", v, sizeof v), 0);
  CHECK_EQ(vkm_http_query_get(q, "bad", v, sizeof v), -2);
  CHECK_EQ(vkm_http_query_get(q, "cut", v, sizeof v), -2);
  CHECK_EQ(vkm_http_query_get(q, "missing", v, sizeof v), -1);
  CHECK_EQ(vkm_http_query_get(q, "rang", v, sizeof v), -1);
  CHECK_EQ(vkm_http_query_get(q, "token", v, 3), -2);
  vkm_span_t nul = {"a=%00", 5};
  CHECK_EQ(vkm_http_query_get(nul, "a", v, sizeof v), -2);
}

static void test_host_token(void) {
#define H(s) ((vkm_span_t){s, sizeof s - 1})
  CHECK(vkm_http_host_ok(H("127.0.0.1"), "127.0.0.1", 8080));
  CHECK(vkm_http_host_ok(H("127.0.0.1:8080"), "127.0.0.1", 8080));
  CHECK(vkm_http_host_ok(H("LOCALHOST:8080"), "127.0.0.1", 8080));
  CHECK(vkm_http_host_ok(H("[::1]:8080"), "127.0.0.1", 8080));
  CHECK(vkm_http_host_ok(H("10.1.2.3:8080"), "10.1.2.3", 8080));
  CHECK(!vkm_http_host_ok(H("127.0.0.1:8081"), "127.0.0.1", 8080));
  CHECK(!vkm_http_host_ok(H("evil.example"), "127.0.0.1", 8080));
  CHECK(!vkm_http_host_ok(H("evil.example:8080"), "127.0.0.1", 8080));
  CHECK(!vkm_http_host_ok(H("localhost.evil.example"), "127.0.0.1", 8080));
  CHECK(!vkm_http_host_ok(H("127.0.0.1.nip.io:8080"), "127.0.0.1", 8080));
  CHECK(!vkm_http_host_ok(H(""), "127.0.0.1", 8080));
  CHECK(!vkm_http_host_ok(H("127.0.0.1:"), "127.0.0.1", 8080));
  CHECK(!vkm_http_host_ok(H("127.0.0.1:80x"), "127.0.0.1", 8080));
  CHECK(!vkm_http_host_ok(H("[::1"), "127.0.0.1", 8080));
  CHECK(!vkm_http_host_ok(H("10.1.2.3"), "127.0.0.1", 8080));
  CHECK(vkm_http_host_ok(H("10.1.2.3:8080"), "*", 8080));
  CHECK(vkm_http_host_ok(H("[fe80::1]:8080"), "*", 8080));
  CHECK(!vkm_http_host_ok(H("evil.example:8080"), "*", 8080));
  CHECK(vkm_http_token_eq("s3cret", 6, "s3cret"));
  CHECK(!vkm_http_token_eq("s3cre", 5, "s3cret"));
  CHECK(!vkm_http_token_eq("s3cretX", 7, "s3cret"));
  CHECK(!vkm_http_token_eq("s3creT", 6, "s3cret"));
  CHECK(!vkm_http_token_eq("", 0, ""));
  CHECK_STREQ(vkm_http_reason(431), "Request Header Fields Too Large");
#undef H
}

static char *render(const char *json, const vkm_metrics_extra_t *x) {
  cJSON *snap = cJSON_Parse(json);
  char *out = NULL;
  size_t len = 0;
  CHECK(snap != NULL);
  CHECK_EQ(vkm_metrics_render(snap, x, &out, &len), 0);
  CHECK(out && strlen(out) == len);
  cJSON_Delete(snap);
  return out;
}

/* Exact lines from a known snapshot; absent fields leave their series out. */
static void test_metrics(void) {
  char *m = render("{}", NULL);
  CHECK_STREQ(m, "");
  free(m);
  vkm_metrics_extra_t x = {1.25, 7, -1};
  m = render("{\"started_at\": 1764172800123, \"totals\": {\"alloc_count\": 12345678901234, "
             "\"alloc_usable_bytes\": 4096}, \"allocator\": {\"frag_pct\": 12.5}, \"gc\": null, "
             "\"leaks\": [{\"live_bytes\": 100}, {\"live_bytes\": 23}], \"pools\": []}", &x);
  CHECK(strstr(m, "\nprocess_cpu_seconds_total 1.25\n"));
  CHECK(strstr(m, "\nprocess_open_fds 7\n"));
  CHECK(!strstr(m, "process_max_fds"));
  CHECK(strstr(m, "\nprocess_start_time_seconds 1764172800.123\n"));
  CHECK(strstr(m, "# TYPE valkmem_allocations_total counter\nvalkmem_allocations_total 12345678901234\n"));
  CHECK(strstr(m, "\nvalkmem_alloc_bytes_total 4096\n"));
  CHECK(strstr(m, "\nvalkmem_allocator_fragmentation_ratio 0.125\n"));
  CHECK(strstr(m, "\nvalkmem_leak_suspects 2\nvalkmem_leak_suspect_bytes 123\n") ||
        strstr(m, "\nvalkmem_leak_suspect_bytes 123\n"));
  CHECK(!strstr(m, "valkmem_free_bytes_total"));
  CHECK(!strstr(m, "gc_"));
  CHECK(!strstr(m, "pool"));
  free(m);
  /* A GC histogram of the wrong shape is left out rather than guessed. */
  m = render("{\"gc\": {\"cycles\": 2, \"pause\": {\"hist\": [1, 1], \"count\": 2}}}", NULL);
  CHECK(strstr(m, "valkmem_gc_cycles_total 2\n"));
  CHECK(!strstr(m, "valkmem_gc_pause_seconds"));
  free(m);
  m = render("{\"gc\": {\"pause\": {\"hist\": [0, 2, 0, 0, 1], \"count\": 3, \"total_ms\": 30}}}", NULL);
  CHECK(strstr(m, "valkmem_gc_pause_seconds_bucket{le=\"0.001\"} 0\n"
                  "valkmem_gc_pause_seconds_bucket{le=\"0.005\"} 2\n"
                  "valkmem_gc_pause_seconds_bucket{le=\"0.01\"} 2\n"
                  "valkmem_gc_pause_seconds_bucket{le=\"0.0166\"} 2\n"
                  "valkmem_gc_pause_seconds_bucket{le=\"+Inf\"} 3\n"
                  "valkmem_gc_pause_seconds_sum 0.03\n"
                  "valkmem_gc_pause_seconds_count 3\n"));
  free(m);
}

int main(void) {
  test_valid();
  test_refused();
  test_limits();
  test_query();
  test_host_token();
  test_metrics();
  return check_done("http_unit");
}
