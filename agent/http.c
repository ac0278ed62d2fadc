/* http.c - the HTTP/1.1 + SSE server of an agent worker.
 *
 * One poll(2) loop over non-blocking sockets, run only on the worker's main thread
 * between ticks, so nothing here is locked. The rule that shapes it: a
 * client can never make the agent wait. Reads are bounded (a request head
 * fits in one fixed buffer), writes never block (output is queued per
 * client and drained when poll says so), every state has a deadline, and a
 * stream that falls behind is dropped instead of buffered without bound.
 *
 * Client life: READ (head arriving) -> WRITE (response queued; input is not
 * read meanwhile, which is the back-pressure for pipelining) -> READ again
 * for keep-alive, or LINGER (output flushed, write side shut, input drained
 * for a moment so the close does not reset the response away) -> closed.
 * /api/events turns a client into a STREAM until it goes away.
 * /debug/pprof/...?seconds=N makes it DEFER (no input read, nothing to
 * write) until its delta profile is due, then WRITE as usual.
 */
#include "agent.h"
#include "debug_pprof.h"
#include "http_listen.h"
#include "http_parse.h"
#include "metrics.h"
#include "sys.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Limits
 * ------------------------------------------------------------------------- */

#define MAX_CLIENTS 64          /* connections served at once */
#define MAX_LINGER 64           /* extra slots for refusing (503) and closing */
#define NSLOTS (MAX_CLIENTS + MAX_LINGER)
#define IN_CAP (VKM_HTTP_MAX_HEAD + 256)
#define STREAM_QUEUE_MAX (256u << 10) /* an SSE client this far behind is dropped */
#define STREAM_SNDBUF (32 << 10)      /* kernel buffering for a stream: small, so a stalled reader shows */
#define TOTAL_QUEUE_MAX (64u << 20)   /* all queued output; beyond it: 503 */
#define HEAD_TIMEOUT_MS 10000   /* a request head must arrive within this (slowloris) */
#define IDLE_TIMEOUT_MS 30000   /* keep-alive connection with nothing in flight */
#define STALL_TIMEOUT_MS 15000  /* queued output, no progress: the reader is gone or hostile */
#define STREAM_STALL_MS 10000   /* the same for SSE, which a live reader drains every tick */
#define LINGER_MS 1000
#define KEEPALIVE_MS 15000      /* SSE comment, ticks or not: proxies and clients see the stream alive */
#define POLL_SLICE_MS 250

enum { C_FREE = 0, C_READ, C_WRITE, C_STREAM, C_LINGER, C_DEFER };

typedef struct client_s {
  int fd;
  int state;
  bool close_after;         /* LINGER once the output is flushed */
  bool shut;                /* write side shut down (LINGER) */
  char *in;                 /* IN_CAP bytes, READ state only */
  size_t in_len;
  char *out;
  size_t out_off, out_len, out_cap;
  uint64_t t_head;          /* ms: when the current request's head started (or accept) */
  uint64_t t_io;            /* ms: last byte in or out */
  uint64_t t_progress;      /* ms: last time queued output shrank */
  uint64_t t_keepalive;     /* ms: last SSE comment */
  uint64_t t_linger;        /* ms: LINGER deadline */
  unsigned requests;
  int fwd_port;             /* handed over by another worker: the port it came in on (Host check) */
  struct vkm_dbg_pending_s *dbg; /* DEFER: the delta profile's baseline */
  uint64_t t_due;           /* ms: DEFER ends */
  int dbg_method;           /* DEFER: what respond() needs of the request, which is gone by then */
  bool dbg_conn_close;
  char *dbg_extra;          /* DEFER: extra header lines (Set-Cookie), or NULL */
} client_t;

static struct {
  bool running;
  bool not_root;            /* not the tree's root: a free port, and a URL file of its own */
  int lfd;
  int port;
  char bound[64];           /* URL host of the bound address ("127.0.0.1", "[::1]", "*") */
  client_t c[NSLOTS];
  size_t queued;            /* sum of unsent output bytes */
  uint64_t tick_seq;        /* fallback SSE id when the tick JSON has none */
  struct {
    uint64_t accepted, refused, requests, streams_dropped, timeouts;
  } stats;
} S = {.lfd = -1};

static uint64_t now_ms(void) { return vkm_now_ns() / 1000000u; }

/* ---------------------------------------------------------------------------
 * Output queue
 * ------------------------------------------------------------------------- */

static size_t pending(const client_t *c) { return c->out_len - c->out_off; }

static int queue(client_t *c, const void *p, size_t n) {
  if (!pending(c)) c->t_progress = now_ms(); /* the stall clock starts with the first queued byte */
  if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
  if (c->out_len + n > c->out_cap) {
    /* Slide unsent bytes down before growing. */
    if (c->out_off) {
      memmove(c->out, c->out + c->out_off, pending(c));
      c->out_len -= c->out_off;
      c->out_off = 0;
    }
    if (c->out_len + n > c->out_cap) {
      size_t cap = c->out_cap ? c->out_cap : 4096;
      while (cap < c->out_len + n) cap *= 2;
      char *np = vkm_realloc(c->out, cap);
      if (!np) return -ENOMEM;
      c->out = np;
      c->out_cap = cap;
    }
  }
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
  S.queued += n;
  return 0;
}

static void client_close(client_t *c) {
  if (c->state == C_FREE) return;
  close(c->fd);
  S.queued -= pending(c);
  vkm_free(c->in);
  vkm_free(c->out);
  vkm_dbg_pprof_cancel(c->dbg);
  vkm_free(c->dbg_extra);
  memset(c, 0, sizeof *c);
  c->fd = -1;
}

/* The connection was handed to another worker: close our copy only (no
 * shutdown: the other process serves it now). */
static void client_forget(client_t *c) { client_close(c); }

/* Sends what is queued without blocking. 0, or -1 when the client is gone
 * (and closed). */
static int flush(client_t *c, uint64_t now) {
  while (pending(c)) {
    ssize_t k = send(c->fd, c->out + c->out_off, pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      c->out_off += (size_t)k;
      S.queued -= (size_t)k;
      c->t_io = c->t_progress = now;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    client_close(c);
    return -1;
  }
  c->out_off = c->out_len = 0;
  /* A big response is over: give its buffer back rather than hold it for
   * the life of a keep-alive connection. */
  if (c->out_cap > 65536 && c->state != C_STREAM) {
    vkm_free(c->out);
    c->out = NULL;
    c->out_cap = 0;
  }
  return 0;
}

/* ---------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------- */

/* Queues one complete response. `extra` holds additional header lines,
 * each ending in CRLF. A HEAD request gets the same head without the body. */
static void respond(client_t *c, const vkm_http_req_t *req, int status, const char *ctype, const char *extra,
                    const void *body, size_t blen) {
  bool head_only = req && req->method == VKM_HTTP_HEAD;
  bool close_it = c->close_after || !req || req->conn_close || status == 400 || status == 408 ||
                  status == 413 || status == 414 || status == 431 || status == 503 || status == 505;
  if (!head_only && S.queued + blen > TOTAL_QUEUE_MAX) {
    status = 503, ctype = "text/plain; charset=utf-8", extra = "Retry-After: 1\r\n";
    body = "503 Service Unavailable: too much output queued\n", blen = strlen(body);
    close_it = true;
  }
  char head[1024];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\n"
                   "Content-Type: %s\r\n"
                   "Content-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n"
                   "X-Content-Type-Options: nosniff\r\n"
                   "Referrer-Policy: no-referrer\r\n"
                   "%s"
                   "Connection: %s\r\n\r\n",
                   status, vkm_http_reason(status), ctype, blen, extra ? extra : "",
                   close_it ? "close" : "keep-alive");
  if (n < 0 || (size_t)n >= sizeof head || queue(c, head, (size_t)n) < 0 ||
      (!head_only && blen && queue(c, body, blen) < 0)) {
    client_close(c); /* out of memory: nothing sensible to send */
    return;
  }
  c->close_after = close_it;
  c->state = C_WRITE;
  c->t_progress = now_ms();
}

static void respond_text(client_t *c, const vkm_http_req_t *req, int status, const char *extra, const char *msg) {
  char body[512];
  int n = snprintf(body, sizeof body, "%d %s%s%s\n", status, vkm_http_reason(status), msg ? ": " : "", msg ? msg : "");
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof body) n = sizeof body - 1;
  respond(c, req, status, "text/plain; charset=utf-8", extra, body, (size_t)n);
}

/* Prints and queues a JSON document; takes ownership of doc. */
static void respond_json(client_t *c, const vkm_http_req_t *req, const char *extra, cJSON *doc) {
  char *s = doc ? cJSON_PrintUnformatted(doc) : NULL;
  cJSON_Delete(doc);
  if (!s) {
    respond_text(c, req, 500, extra, "could not build the document");
    return;
  }
  respond(c, req, 200, "application/json", extra, s, strlen(s));
  cJSON_free(s);
}

/* ---------------------------------------------------------------------------
 * Endpoints
 * ------------------------------------------------------------------------- */

static const vkm_asset_t *find_asset(vkm_span_t path) {
  if (vkm_span_eq(path, "/", false)) path = (vkm_span_t){"/index.html", 11};
  for (size_t i = 0; i < vkm_assets_count; i++)
    if (vkm_assets[i].path && vkm_span_eq(path, vkm_assets[i].path, false)) return &vkm_assets[i];
  return NULL;
}

static const char *const k_ranges[] = {"1m", "5m", "1h", "10h"};
static const int k_steps_ms[] = {100, 1000, 10000, 10000};

static void serve_history(client_t *c, const vkm_http_req_t *req, const char *extra) {
  char range[8] = "1m";
  int rn = vkm_http_query_get(req->query, "range", range, sizeof range);
  int idx = -1;
  for (int i = 0; i < 4; i++)
    if (rn != -2 && strcmp(range, k_ranges[i]) == 0) idx = i;
  if (idx < 0) {
    respond_text(c, req, 400, extra, "range must be one of 1m, 5m, 1h, 10h");
    return;
  }
  const cJSON *view = vkm_view_doc();
  cJSON *h = view ? vkm_history_from_doc(view, range) : vkm_history_json(range, 0);
  if (!h) {
    respond_text(c, req, 400, extra, "unknown range");
    return;
  }
  if (cJSON_IsArray(h)) {
    /* agent.h's history returns the points; SCHEMA.md's endpoint wraps them. */
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "range", range);
    cJSON_AddNumberToObject(doc, "step_ms", k_steps_ms[idx]);
    cJSON_AddItemToObject(doc, "points", h);
    h = doc;
  }
  respond_json(c, req, extra, h);
}

static void serve_profile(client_t *c, const vkm_http_req_t *req, const char *extra) {
  char type[16];
  int tn = vkm_http_query_get(req->query, "type", type, sizeof type);
  if (tn == -2 || (tn >= 0 && strcmp(type, "alloc") != 0 && strcmp(type, "inuse") != 0)) {
    respond_text(c, req, 400, extra, "type must be alloc or inuse");
    return;
  }
  cJSON *report = vkm_report_json();
  unsigned char *pb = NULL;
  size_t len = 0;
  int rc = report ? vkm_pprof_from_report(report, tn >= 0 ? type : NULL, &pb, &len) : -ENOMEM;
  cJSON_Delete(report);
  if (rc == -ENOSYS) {
    respond_text(c, req, 503, extra, "pprof export is not available in this build yet");
  } else if (rc < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "pprof export failed: %s", strerror(-rc));
    respond_text(c, req, 500, extra, msg);
  } else {
    char hdr[512];
    snprintf(hdr, sizeof hdr, "%sContent-Disposition: attachment; filename=\"valkmem-%d-%s.pb.gz\"\r\n",
             extra ? extra : "", vkm_target_pid(), tn >= 0 ? type : "heap");
    respond(c, req, 200, "application/octet-stream", hdr, pb, len);
  }
  vkm_free(pb);
}

/* Go's net/http/pprof (debug_pprof.c). A delta profile (?seconds=N) is
 * answered later, from check_timers: the loop keeps serving meanwhile. */
static void dbg_answer(client_t *c, const vkm_http_req_t *req, vkm_dbg_resp_t *r, const char *extra) {
  char hdr[640];
  snprintf(hdr, sizeof hdr, "%s%s", extra ? extra : "", r->headers);
  respond(c, req, r->status, r->ctype, hdr, r->body ? r->body : "", r->len);
  vkm_free(r->body);
}

static void serve_debug_pprof(client_t *c, const vkm_http_req_t *req, vkm_span_t path, const char *extra) {
  vkm_dbg_resp_t r;
  vkm_dbg_pprof_serve(path, req->query, &r);
  if (!r.pending) {
    dbg_answer(c, req, &r, extra);
    return;
  }
  c->dbg = r.pending;
  c->t_due = now_ms() + r.defer_ms;
  c->dbg_method = req->method;
  c->dbg_conn_close = req->conn_close;
  c->dbg_extra = extra && extra[0] ? vkm_strdup(extra) : NULL;
  c->state = C_DEFER;
}

static double count_open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) d = opendir("/dev/fd");
  if (!d) return -1;
  double n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

static void serve_metrics(client_t *c, const vkm_http_req_t *req, const char *extra) {
  vkm_metrics_extra_t x = {-1, -1, -1};
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    x.cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                    ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
  x.open_fds = count_open_fds();
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) x.max_fds = (double)rl.rlim_cur;
  cJSON *snap = vkm_snapshot_json();
  char *text = NULL;
  size_t len = 0;
  /* Per-process series of the tree (tree.c decides which). */
  enum { MAXP = 256 };
  vkm_metrics_proc_t *procs = vkm_malloc(MAXP * (sizeof *procs + 64));
  size_t np = procs ? vkm_tree_metrics(procs, MAXP, (char(*)[64])(procs + MAXP)) : (size_t)-1;
  int rc = snap ? vkm_metrics_render_tree(snap, &x, procs, np, &text, &len) : -ENOMEM;
  vkm_free(procs);
  cJSON_Delete(snap);
  if (rc < 0) respond_text(c, req, 500, extra, "could not render metrics");
  else respond(c, req, 200, VKM_METRICS_CONTENT_TYPE, extra, text, len);
  vkm_free(text);
}

/* Queues SSE frames for the 1m history points after last_id, so a client
 * that reconnects sees what it missed (as far back as the 1m ring holds). */
static void sse_catchup(client_t *c, uint64_t last_id) {
  if (vkm_view_doc()) return; /* a saved view has no stream to catch up on */
  cJSON *h = vkm_history_json("1m", last_id);
  const cJSON *pts = cJSON_IsObject(h) ? cJSON_GetObjectItemCaseSensitive(h, "points") : h;
  if (cJSON_IsArray(pts)) {
    for (const cJSON *p = pts->child; p; p = p->next) {
      const cJSON *seq = cJSON_GetObjectItemCaseSensitive(p, "seq");
      if (cJSON_IsNumber(seq) && seq->valuedouble <= (double)last_id) continue;
      char *s = cJSON_PrintUnformatted(p);
      if (!s) break;
      char id[48];
      int n = cJSON_IsNumber(seq) ? snprintf(id, sizeof id, "id: %.0f\n", seq->valuedouble) : 0;
      if ((n > 0 && queue(c, id, (size_t)n) < 0) || queue(c, "event: catchup\ndata: ", 21) < 0 ||
          queue(c, s, strlen(s)) < 0 || queue(c, "\n\n", 2) < 0) {
        cJSON_free(s);
        break;
      }
      cJSON_free(s);
      if (pending(c) > STREAM_QUEUE_MAX / 2) break;
    }
  }
  cJSON_Delete(h);
}

static void serve_events(client_t *c, const vkm_http_req_t *req, const char *extra) {
  if (req->method != VKM_HTTP_GET) {
    respond_text(c, req, 405, "Allow: GET\r\n", NULL);
    return;
  }
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\n"
                   "Content-Type: text/event-stream\r\n"
                   "Cache-Control: no-store\r\n"
                   "X-Content-Type-Options: nosniff\r\n"
                   "X-Accel-Buffering: no\r\n"
                   "%s"
                   "Connection: keep-alive\r\n\r\n"
                   "retry: 1000\n\n",
                   extra ? extra : "");
  if (n < 0 || (size_t)n >= sizeof head || queue(c, head, (size_t)n) < 0) {
    client_close(c);
    return;
  }
  c->state = C_STREAM;
  c->t_keepalive = c->t_progress = now_ms();
  /* Without this the kernel would autotune the buffer up to megabytes and
   * hide a reader that stopped reading for minutes. */
  int sb = STREAM_SNDBUF;
  setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
  if (req->last_event_id.n && req->last_event_id.n < 21) {
    uint64_t id = 0;
    bool ok = true;
    for (size_t i = 0; i < req->last_event_id.n; i++) {
      char ch = req->last_event_id.p[i];
      if (ch < '0' || ch > '9') ok = false;
      else id = id * 10 + (uint64_t)(ch - '0');
    }
    if (ok && id > 0) sse_catchup(c, id);
  }
  /* A stream's input is only ever discarded. Not before this point: req
   * points into c->in. */
  vkm_free(c->in);
  c->in = NULL;
  c->in_len = 0;
}

/* Token from the Authorization header, the ?token= parameter (a browser
 * opening the printed URL) or the cookie set after that. */
static bool authorized(const vkm_http_req_t *req, bool *via_query) {
  const char *token = vkm_config.token;
  *via_query = false;
  if (!token[0]) return true;
  vkm_span_t a = req->authorization;
  if (a.n > 7 && vkm_span_eq((vkm_span_t){a.p, 7}, "bearer ", true) &&
      vkm_http_token_eq(a.p + 7, a.n - 7, token))
    return true;
  char buf[300];
  int n = vkm_http_query_get(req->query, "token", buf, sizeof buf);
  if (n >= 0 && vkm_http_token_eq(buf, (size_t)n, token)) return *via_query = true;
  n = vkm_http_cookie_get(req->cookie, "valkmem_token", buf, sizeof buf);
  return n >= 0 && vkm_http_token_eq(buf, (size_t)n, token);
}

/* A token goes into Set-Cookie and the URL only when it cannot break
 * either (RFC 6265 cookie-octet, and URL-unreserved for the URL). */
static bool cookie_safe(const char *s) {
  for (; *s; s++)
    if (*s <= 0x20 || *s >= 0x7f || strchr("\";,\\", *s)) return false;
  return true;
}

/* ---------------------------------------------------------------------------
 * The process tree (tree.c): /p/PID/... and ?pid=PID name a process; this
 * worker answers for its own, and hands any other's connection to the
 * worker that serves it.
 * ------------------------------------------------------------------------- */
static void client_forget(client_t *c); /* below: our copy goes, the connection lives on elsewhere */

/* A pid in decimal, 1..2^22: 0 when s is not one. */
static int parse_pid(const char *s, size_t n) {
  if (n == 0 || n > 7) return 0;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
  }
  return v > 0 && v <= (1 << 22) ? (int)v : 0;
}

/* Returns true when the request was answered or handed over; otherwise
 * *p is the path to serve here (the /p/PID prefix of our own pid taken
 * off). */
static bool route_tree(client_t *c, const vkm_http_req_t *req, const char *extra, vkm_span_t *p) {
  int want = 0;
  bool prefixed = false;
  vkm_span_t rest = *p;
  if (p->n >= 3 && memcmp(p->p, "/p/", 3) == 0) {
    size_t i = 3;
    while (i < p->n && p->p[i] != '/') i++;
    want = parse_pid(p->p + 3, i - 3);
    if (!want) {
      respond_text(c, req, 404, extra[0] ? extra : NULL, "no such process: /p/ takes a process id, as in /p/1234/");
      return true;
    }
    if (i == p->n) { /* /p/1234 -> /p/1234/ so that the page's relative URLs resolve under it */
      char loc[64];
      snprintf(loc, sizeof loc, "%sLocation: /p/%d/\r\n", extra, want);
      respond(c, req, 301, "text/plain; charset=utf-8", loc, "", 0);
      return true;
    }
    prefixed = true;
    rest = (vkm_span_t){p->p + i, p->n - i};
  } else if (req->query.n) {
    char v[32];
    int r = vkm_http_query_get(req->query, "pid", v, sizeof v);
    if (r != -1) { /* present: a pid, or an error */
      want = r > 0 ? parse_pid(v, strlen(v)) : 0;
      if (!want) {
        respond_text(c, req, 400, extra[0] ? extra : NULL, "pid= takes a process id (a positive decimal number)");
        return true;
      }
    }
  }
  if (!want || want == vkm_target_pid()) {
    if (prefixed) *p = rest;
    return false;
  }
  if (!vkm_tree_find(want)) {
    char msg[96];
    snprintf(msg, sizeof msg, "no process %d in this tree (GET /api/processes lists them)", want);
    /* A profile scraper reads 404 as "not served here": a wrong pid is a
     * bad request (net/http/pprof answers bad parameters with 400). */
    bool dbg = rest.n >= 12 && memcmp(rest.p, "/debug/pprof", 12) == 0;
    respond_text(c, req, dbg ? 400 : 404, extra[0] ? extra : NULL, msg);
    return true;
  }
  if (!prefixed && (vkm_span_eq(*p, "/", false) || vkm_span_eq(*p, "/index.html", false))) {
    /* The page: its relative URLs must resolve under the process's prefix. */
    char loc[64];
    snprintf(loc, sizeof loc, "%sLocation: /p/%d/\r\n", extra, want);
    respond(c, req, 302, "text/plain; charset=utf-8", loc, "", 0);
    return true;
  }
  int rc = vkm_tree_forward(want, c->fd, c->in, c->in_len, c->fwd_port ? c->fwd_port : S.port);
  if (rc == 0) {
    client_forget(c);
    return true;
  }
  char msg[160];
  snprintf(msg, sizeof msg, "process %d has ended and its dashboard with it%s", want,
           vkm_config.report[0] ? " (its report is in VALKMEM_REPORT)" : "");
  respond_text(c, req, rc == -ENOENT || rc == -ECONNREFUSED ? 404 : 502, extra[0] ? extra : NULL, msg);
  return true;
}

static void route(client_t *c, const vkm_http_req_t *req) {
  S.stats.requests++;
  c->requests++;
  if ((req->has_content_length && req->content_length > 0) || req->has_transfer_encoding) {
    /* Nothing here takes a body, and skipping one is not worth the risk of
     * mis-framing the next request. */
    respond_text(c, req, 413, NULL, "request bodies are not accepted");
    return;
  }
  if (req->has_host ? !vkm_http_host_ok(req->host, S.bound, c->fwd_port ? c->fwd_port : S.port) : req->minor == 1) {
    respond_text(c, req, 403, NULL, "unexpected Host header (DNS rebinding protection)");
    return;
  }
  bool via_query;
  if (!authorized(req, &via_query)) {
    respond_text(c, req, 401, "WWW-Authenticate: Bearer realm=\"valkmem\"\r\n",
                 "this server needs the token (Authorization: Bearer, or ?token=)");
    return;
  }
  char extra[400] = "";
  if (via_query && cookie_safe(vkm_config.token))
    snprintf(extra, sizeof extra, "Set-Cookie: valkmem_token=%s; Path=/; HttpOnly; SameSite=Strict\r\n",
             vkm_config.token);
  vkm_span_t p = req->path;
  if (route_tree(c, req, extra, &p)) return;
  if (vkm_span_eq(p, "/api/events", false)) {
    serve_events(c, req, extra);
    return;
  }
  if (req->method == VKM_HTTP_OTHER) {
    respond_text(c, req, 405, "Allow: GET, HEAD\r\n", NULL);
    return;
  }
  const vkm_asset_t *a;
  if (vkm_span_eq(p, "/api/snapshot", false)) respond_json(c, req, extra, vkm_snapshot_json());
  else if (vkm_span_eq(p, "/api/processes", false) && vkm_tree) respond_json(c, req, extra, vkm_tree_json());
  else if (vkm_span_eq(p, "/api/report", false)) respond_json(c, req, extra, vkm_report_json());
  else if (vkm_span_eq(p, "/api/history", false)) serve_history(c, req, extra);
  else if (vkm_span_eq(p, "/api/profile", false)) serve_profile(c, req, extra);
  else if (vkm_span_eq(p, "/api/stacks", false)) respond_json(c, req, extra, vkm_stacks_json());
  else if (vkm_span_eq(p, "/metrics", false)) serve_metrics(c, req, extra);
  else if (p.n >= 12 && memcmp(p.p, "/debug/pprof", 12) == 0 && (p.n == 12 || p.p[12] == '/'))
    serve_debug_pprof(c, req, p, extra);
  else if ((a = find_asset(p))) respond(c, req, 200, a->content_type, extra, a->data, a->len);
  else if (vkm_span_eq(p, "/", false)) {
    static const char page[] = "<!doctype html><meta charset=utf-8><title>valkmem</title>"
                               "<p>valkmem is running. The dashboard is not built into this library; "
                               "see <a href=/api/snapshot>/api/snapshot</a>.\n";
    respond(c, req, 200, "text/html; charset=utf-8", extra, page, sizeof page - 1);
  } else respond_text(c, req, 404, extra[0] ? extra : NULL, NULL);
}

/* ---------------------------------------------------------------------------
 * Per-client I/O
 * ------------------------------------------------------------------------- */

static void begin_linger(client_t *c, uint64_t now) {
  c->state = C_LINGER;
  c->t_linger = now + LINGER_MS;
  vkm_free(c->in);
  c->in = NULL;
  c->in_len = 0;
}

/* Parses and answers what is buffered, as long as a complete request is
 * there and the previous response has been flushed. */
static void process_input(client_t *c, uint64_t now) {
  while (c->state == C_READ && c->in_len) {
    vkm_http_req_t req;
    int rc = vkm_http_parse(c->in, c->in_len, &req);
    if (rc == 0) {
      if (c->in_len >= IN_CAP) respond_text(c, NULL, 431, NULL, NULL);
      return;
    }
    if (rc < 0) {
      c->close_after = true;
      respond_text(c, NULL, -rc, NULL, NULL);
    } else {
      route(c, &req);
      if (c->state == C_FREE) return;
      if (c->in) {
        memmove(c->in, c->in + rc, c->in_len - (size_t)rc);
        c->in_len -= (size_t)rc;
      }
    }
    c->t_head = now;
    if (flush(c, now) < 0) return;
    if (c->state == C_WRITE && !pending(c)) {
      if (c->close_after) begin_linger(c, now);
      else c->state = C_READ;
    }
  }
}

/* Reads what is there. Returns -1 when the client went away (closed). */
static int read_some(client_t *c, uint64_t now) {
  char sink[4096];
  for (;;) {
    char *dst = sink;
    size_t room = sizeof sink;
    if (c->state == C_READ) {
      if (c->in_len == 0) c->t_head = now; /* a new request starts with its first byte */
      dst = c->in + c->in_len;
      room = IN_CAP - c->in_len;
      if (room == 0) return 0;
    }
    ssize_t k = recv(c->fd, dst, room, MSG_DONTWAIT);
    if (k > 0) {
      c->t_io = now;
      if (c->state == C_READ) {
        c->in_len += (size_t)k;
        if ((size_t)k < room) return 0;
      }
      continue; /* discarding (STREAM, LINGER): keep draining */
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    client_close(c); /* EOF or error */
    return -1;
  }
}

static void on_event(client_t *c, short rev, uint64_t now) {
  if (rev & (POLLERR | POLLNVAL)) {
    client_close(c);
    return;
  }
  if ((rev & POLLOUT) && flush(c, now) < 0) return;
  if (c->state == C_WRITE && !pending(c)) {
    if (c->close_after) begin_linger(c, now);
    else c->state = C_READ;
  }
  if (rev & (POLLIN | POLLHUP)) {
    if (c->state == C_WRITE || c->state == C_DEFER) {
      if (rev & POLLHUP) client_close(c);
      return; /* back-pressure: the next request waits for this response */
    }
    if (read_some(c, now) < 0) return;
  }
  if (c->state == C_LINGER && !pending(c) && !c->shut) {
    shutdown(c->fd, SHUT_WR);
    c->shut = true;
  }
  process_input(c, now);
}

/* A deferred delta profile is due (or the process ended): answer it. */
static void finish_deferred(client_t *c, uint64_t now) {
  vkm_dbg_resp_t r;
  struct vkm_dbg_pending_s *p = c->dbg;
  c->dbg = NULL;
  vkm_dbg_pprof_finish(p, &r);
  vkm_http_req_t req;
  memset(&req, 0, sizeof req);
  req.method = c->dbg_method;
  req.conn_close = c->dbg_conn_close;
  char *extra = c->dbg_extra;
  c->dbg_extra = NULL;
  dbg_answer(c, &req, &r, extra);
  vkm_free(extra);
  if (c->state == C_FREE || flush(c, now) < 0) return;
  if (c->state == C_WRITE && !pending(c)) {
    if (c->close_after) begin_linger(c, now);
    else {
      c->state = C_READ;
      process_input(c, now); /* a request pipelined behind it */
    }
  }
}

static void check_timers(client_t *c, uint64_t now) {
  switch (c->state) {
  case C_READ:
    if (c->in_len || c->requests == 0) {
      if (now - c->t_head > HEAD_TIMEOUT_MS) {
        S.stats.timeouts++;
        c->close_after = true;
        if (c->in_len) {
          respond_text(c, NULL, 408, NULL, "the request head took too long");
          flush(c, now); /* goes on to LINGER once flushed */
        } else {
          client_close(c);
        }
      }
    } else if (now - c->t_io > IDLE_TIMEOUT_MS) {
      client_close(c);
    }
    break;
  case C_WRITE:
  case C_STREAM:
    if (pending(c) && now - c->t_progress > (c->state == C_STREAM ? STREAM_STALL_MS : STALL_TIMEOUT_MS)) {
      S.stats.timeouts++;
      client_close(c);
    } else if (c->state == C_STREAM && now - c->t_keepalive >= KEEPALIVE_MS) {
      c->t_keepalive = now;
      if (queue(c, ": keep-alive\n\n", 14) < 0) client_close(c);
      else flush(c, now);
    }
    break;
  case C_LINGER:
    if (now > c->t_linger) client_close(c);
    break;
  case C_DEFER:
    if (now >= c->t_due) finish_deferred(c, now);
    break;
  }
}

/* ---------------------------------------------------------------------------
 * Accepting
 * ------------------------------------------------------------------------- */

static client_t *free_slot(int from, int to) {
  for (int i = from; i < to; i++)
    if (S.c[i].state == C_FREE) return &S.c[i];
  return NULL;
}

void vkm_http_adopt(int fd, const char *buf, size_t len, int port) {
  uint64_t now = now_ms();
  client_t *c = S.running ? free_slot(0, MAX_CLIENTS) : NULL;
  if (!c || len > IN_CAP) {
    close(fd);
    return;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  memset(c, 0, sizeof *c);
  c->fd = fd;
  c->state = C_READ;
  c->fwd_port = port;
  c->t_head = c->t_io = c->t_progress = now;
  c->in = vkm_malloc(IN_CAP);
  if (!c->in) {
    client_close(c);
    return;
  }
  memcpy(c->in, buf, len);
  c->in_len = len;
  S.stats.accepted++;
  process_input(c, now);
}

static void accept_all(uint64_t now) {
  for (int i = 0; i < 256; i++) {
    client_t *c = free_slot(0, MAX_CLIENTS);
    bool refuse = c == NULL;
    if (refuse) c = free_slot(MAX_CLIENTS, NSLOTS);
    /* Every slot, refusing ones included, is busy: leave the rest in the
     * kernel's backlog until one frees up (the loop stops polling the
     * listener meanwhile). */
    if (!c) return;
    int fd = vkm_sys_accept(S.lfd, 1);
    if (fd < 0) return; /* EAGAIN, or a transient error (EMFILE, ECONNABORTED) */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->state = C_READ;
    c->t_head = c->t_io = c->t_progress = now;
    if (refuse) {
      S.stats.refused++;
      c->close_after = true;
      respond_text(c, NULL, 503, "Retry-After: 1\r\n", "too many connections");
      if (c->state != C_FREE && flush(c, now) == 0) begin_linger(c, now);
      continue;
    }
    c->in = vkm_malloc(IN_CAP);
    if (!c->in) {
      client_close(c);
      continue;
    }
    S.stats.accepted++;
  }
}

static int inherited_fd = -1;
static bool inherited_announce = true;

/* A listening socket where cfg says (any port: a free one), or -errno,
 * said only when `say`. */
static int listen_as(const vkm_config_t *cfg, bool any_port, bool say) {
  vkm_listen_addr_t la;
  if (vkm_listen_parse(cfg->listen, &la) < 0) {
    if (say)
      vkm_say("error", "VALKMEM_LISTEN=%s: expected host:port, :port or [v6]:port with a numeric host; "
              "dashboard off", cfg->listen);
    return -EINVAL;
  }
  if (!la.loopback && !cfg->token[0]) {
    if (say)
      vkm_say("error", "VALKMEM_LISTEN=%s: a non-loopback address needs VALKMEM_TOKEN (anyone who can reach "
              "it could read this process's memory profile); dashboard off", cfg->listen);
    return -EACCES;
  }
  if (any_port) ((struct sockaddr_in *)&la.ss)->sin_port = 0; /* same offset in sockaddr_in6 */
  int fd = vkm_listen_bind(&la);
  if (fd < 0 && say)
    vkm_say("error", "bind %s: %s; dashboard off", cfg->listen[0] ? cfg->listen : "127.0.0.1:0", strerror(-fd));
  return fd;
}

int vkm_http_listener(const vkm_config_t *cfg) {
  int fd = cfg->http ? listen_as(cfg, false, false) : -1;
  if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd < 0 ? -1 : fd;
}

void vkm_http_inherit(int fd, bool announce) {
  inherited_fd = fd;
  inherited_announce = announce;
}

int vkm_http_start(void) {
  if (S.running) return 0;
  if (!vkm_config.http) return 0;
  for (int i = 0; i < NSLOTS; i++) S.c[i].fd = -1;
  /* Only the tree's root takes the address asked for; every other process
   * of the tree is reached through it (/p/PID/) and takes a free port. */
  S.not_root = !vkm_agent_is_root();
  int fd = !S.not_root && inherited_fd >= 0 ? inherited_fd : listen_as(&vkm_config, S.not_root, true);
  if (fd < 0) return fd;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  char ip[INET6_ADDRSTRLEN] = "";
  bool any;
  if (ss.ss_family == AF_INET6) {
    S.port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
    snprintf(S.bound, sizeof S.bound, "[%s]", ip);
    any = IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);
  } else {
    S.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
    snprintf(S.bound, sizeof S.bound, "%s", ip);
    any = ((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_ANY);
  }
  if (any) strcpy(S.bound, "*");
  S.lfd = fd;
  S.running = true;
  /* A later image of the root serves the same address: said once. */
  if (S.not_root || fd != inherited_fd || inherited_announce) vkm_listen_announce(S.bound, S.port, S.not_root);
  return 0;
}

/* ---------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------- */

void vkm_http_poll(int timeout_ms) {
  uint64_t start = now_ms(), end = start + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
  if (!S.running) {
    if (timeout_ms > 0) {
      struct pollfd w = {.fd = vkm_agent_wake_fd(), .events = POLLIN};
      if (vkm_agent_poll(&w, 1, timeout_ms) > 0) vkm_agent_woken();
    }
    return;
  }
  for (;;) {
    struct pollfd pfd[NSLOTS + 2];
    client_t *who[NSLOTS + 2];
    nfds_t n = 0;
    pfd[n] = (struct pollfd){.fd = S.lfd, .events = POLLIN};
    who[n++] = NULL;
    /* Last slot: the agent's wake-up (work waiting, or shutdown). */
    struct pollfd *wake = NULL;
    bool room = free_slot(0, NSLOTS) != NULL;
    if (!room) pfd[0].fd = -1; /* poll ignores it: no busy loop on a full house */
    for (int i = 0; i < NSLOTS; i++) {
      client_t *c = &S.c[i];
      short ev = 0;
      switch (c->state) {
      case C_READ: ev = POLLIN; break;
      case C_WRITE: ev = POLLOUT; break;
      case C_STREAM:
      case C_LINGER: ev = (short)(POLLIN | (pending(c) ? POLLOUT : 0)); break;
      case C_DEFER: ev = 0; break; /* only POLLHUP/POLLERR: the client gave up */
      default: continue;
      }
      pfd[n] = (struct pollfd){.fd = c->fd, .events = ev};
      who[n++] = c;
    }
    nfds_t nclients = n;
    if (vkm_agent_wake_fd() >= 0) {
      pfd[n] = (struct pollfd){.fd = vkm_agent_wake_fd(), .events = POLLIN};
      wake = &pfd[n++];
    }
    uint64_t now = now_ms();
    int wait = now >= end ? 0 : (int)(end - now);
    if (wait > POLL_SLICE_MS) wait = POLL_SLICE_MS;
    int r = vkm_agent_poll(pfd, n, wait);
    now = now_ms();
    if (r > 0) {
      for (nfds_t i = 1; i < nclients; i++)
        if (pfd[i].revents && who[i]->state != C_FREE) on_event(who[i], pfd[i].revents, now);
      if (pfd[0].revents & POLLIN) accept_all(now);
    }
    for (int i = 0; i < NSLOTS; i++)
      if (S.c[i].state != C_FREE) check_timers(&S.c[i], now);
    if (wake && (wake->revents & POLLIN)) {
      vkm_agent_woken();
      return;
    }
    if (now >= end) return;
  }
}

void vkm_http_broadcast_tick(void) {
  if (!S.running) return;
  int streams = 0;
  for (int i = 0; i < NSLOTS; i++) streams += S.c[i].state == C_STREAM;
  S.tick_seq++;
  if (!streams) return; /* nobody listening: do not even build the JSON */
  cJSON *t = vkm_tick_json();
  if (!t) return;
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(t, "seq");
  uint64_t id = cJSON_IsNumber(seq) ? (uint64_t)seq->valuedouble : S.tick_seq;
  char *s = cJSON_PrintUnformatted(t);
  cJSON_Delete(t);
  if (!s) return;
  char head[64];
  int hn = snprintf(head, sizeof head, "id: %llu\nevent: tick\ndata: ", (unsigned long long)id);
  size_t sn = strlen(s), frame = (size_t)hn + sn + 2;
  uint64_t now = now_ms();
  for (int i = 0; i < NSLOTS; i++) {
    client_t *c = &S.c[i];
    if (c->state != C_STREAM) continue;
    if (pending(c) + frame > STREAM_QUEUE_MAX) {
      S.stats.streams_dropped++; /* fell behind: drop it, the browser reconnects */
      client_close(c);
      continue;
    }
    if (queue(c, head, (size_t)hn) < 0 || queue(c, s, sn) < 0 || queue(c, "\n\n", 2) < 0) {
      client_close(c);
      continue;
    }
    flush(c, now);
  }
  cJSON_free(s);
}

void vkm_http_stop(void) {
  if (!S.running) return;
  uint64_t now = now_ms();
  for (int i = 0; i < NSLOTS; i++) {
    client_t *c = &S.c[i];
    if (c->state == C_FREE) continue;
    if (c->state == C_DEFER) finish_deferred(c, now); /* the process ended: the delta so far */
    if (c->state == C_FREE) continue;
    if (flush(c, now) == 0) client_close(c); /* one last try, never a wait */
  }
  close(S.lfd);
  S.lfd = -1;
  S.running = false;
}

int vkm_http_port(void) { return S.running ? S.port : 0; }
