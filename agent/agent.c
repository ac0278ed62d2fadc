/* agent.c - the agent thread: tick loop, rates, the JSON documents, the
 * report and its checkpoints, shutdown and signals.
 *
 * One thread, started at load with every signal blocked and the re-entry
 * guard held for its whole life (so whatever it allocates through libc is
 * not counted as the application's). Between ticks it serves HTTP and
 * drains the event rings when they fill up (agent.h says when). A fork
 * waits until the thread is at a safe point (below, "fork").
 */
#include "agent.h"
#include "../interpose/gate.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_MS 20
#define PRESSURE_WINDOW 50 /* ticks (5 s at 100 ms) */

static pthread_t agent_thread;
static int agent_running;       /* atomic */
static int agent_stop;          /* atomic */
static int signal_pending;      /* atomic: SIGTERM/SIGINT number waiting for a report */
static int signal_done;         /* atomic */
static int exited;              /* the report is final */

static vkm_tick_t cur, prev;
static vkm_os_t os_now;
static vkm_allocstats_t alloc_now;
static cJSON *view_doc;         /* VALKMEM_VIEW: a saved report served instead of live data */
static uint64_t last_checkpoint_ns;
static int report_error_said;
static int wake_fd = -1;        /* eventfd: ring filling up, or shutdown */
static int files_private;       /* the agent thread has a file table of its own
                                   (vkm_os_private_files): only it may touch
                                   its sockets; atomic */

/* Pressure window: usable bytes allocated and reclaimed per tick. */
static double win_alloc[PRESSURE_WINDOW], win_free[PRESSURE_WINDOW];
static unsigned win_pos, win_fill, pressure_high_ticks;

const vkm_tick_t *vkm_tick_current(void) { return &cur; }

int vkm_agent_wake_fd(void) { return wake_fd; }
void vkm_agent_woken(void) {
  uint64_t n;
  while (wake_fd >= 0 && read(wake_fd, &n, sizeof n) == (ssize_t)sizeof n) {
  }
}

static void wake_agent(void) {
  uint64_t one = 1;
  if (wake_fd >= 0 && write(wake_fd, &one, sizeof one) < 0) { /* full counter: already awake */
  }
}

/* ---------------------------------------------------------------------------
 * fork
 *
 * The agent thread works inside a fork gate (interpose/gate.h) and steps
 * out only at its safe points - about to block in poll, or between two
 * rounds of its loop - where it holds no lock and no table is half
 * updated. A fork that caught it in dl_iterate_phdr (symbols.c, writing a
 * checkpoint) left the loader's write lock taken in the child, which hung
 * at its first unwind (soak_fork, in CI); one that caught it growing its
 * site table crashed the child in vkm_sites_init. The agent's longest
 * round (an smaps breakdown of a process with 10,000 mappings, a report)
 * is tens of milliseconds; a fork gives up after FORK_WAIT_MS all the
 * same, so a wedged agent (its stderr a full pipe, say) cannot hang the
 * program's fork.
 * ------------------------------------------------------------------------- */
#define FORK_WAIT_MS 2000

static vkm_gate_t agent_gate;

int vkm_agent_poll(struct pollfd *fds, unsigned long n, int timeout_ms) {
  vkm_gate_leave(&agent_gate);
  int r = poll(fds, (nfds_t)n, timeout_ms);
  int saved = errno;
  vkm_gate_enter(&agent_gate);
  errno = saved;
  return r;
}

void vkm_agent_fork_prepare(void) { vkm_gate_close(&agent_gate, FORK_WAIT_MS); }
void vkm_agent_fork_parent(void) { vkm_gate_open(&agent_gate); }

static void make_wake_fd(void) {
  if (wake_fd >= 0) close(wake_fd);
  wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  vkm_rings_set_wake_fd(wake_fd);
}

static void *cjson_malloc(size_t n) { return vkm_malloc(n); }
static void cjson_free(void *p) { vkm_free(p); }

/* ---------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------- */
static void on_event(const vkm_event_t *ev, const void *extra, void *ud) {
  (void)ud;
  if (ev->type == VKM_EV_ALLOC || ev->type == VKM_EV_FREE) vkm_sites_on_event(ev, extra);
  else vkm_runtime_on_event(ev, extra);
}

/* ---------------------------------------------------------------------------
 * The tick
 * ------------------------------------------------------------------------- */
static uint64_t unix_ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int smaps_mode = VKM_SMAPS_DUE; /* vkm_os_sample's; the final tick sets it */

static void compute_tick(void) {
  prev = cur;
  cur.seq = prev.seq + 1;
  cur.t_ns = vkm_now_ns();
  cur.unix_ms = unix_ms_now();
  cur.dt_s = prev.t_ns ? (double)(cur.t_ns - prev.t_ns) / 1e9 : (double)(cur.t_ns - vkm_start_ns()) / 1e9;
  if (cur.dt_s <= 0) cur.dt_s = 1e-3;
  vkm_counters_sum(&cur.c);
  cur.live_bytes = (int64_t)(cur.c.alloc_usable - cur.c.free_usable);
  cur.live_count = (int64_t)(cur.c.alloc_count - cur.c.free_count);
  int64_t peak = vkm_live_peak();
  if (cur.live_bytes > peak) peak = cur.live_bytes;
  if (prev.peak_live_bytes > peak) peak = prev.peak_live_bytes;
  cur.peak_live_bytes = peak;
  double da = (double)(cur.c.alloc_usable - prev.c.alloc_usable);
  double df = (double)(cur.c.free_usable - prev.c.free_usable);
  cur.alloc_bps = da / cur.dt_s;
  cur.free_bps = df / cur.dt_s;
  cur.alloc_ops = (double)(cur.c.alloc_count - prev.c.alloc_count) / cur.dt_s;
  cur.free_ops = (double)(cur.c.free_count - prev.c.free_count) / cur.dt_s;

  /* Pressure: how far allocation outruns reclaim over the window. */
  win_alloc[win_pos] = da;
  win_free[win_pos] = df;
  win_pos = (win_pos + 1) % PRESSURE_WINDOW;
  if (win_fill < PRESSURE_WINDOW) win_fill++;
  double A = 0, F = 0;
  for (unsigned i = 0; i < win_fill; i++) {
    A += win_alloc[i];
    F += win_free[i];
  }
  cur.pressure_pct = A > 0 && A > F ? (A - F) / A * 100.0 : 0.0;
  double window_s = win_fill * (vkm_config.tick_ms / 1000.0);
  /* Sustained: above 50 % for a whole window, at a rate worth a warning. */
  if (cur.pressure_pct >= 50.0 && A / (window_s > 0 ? window_s : 1) >= 1024 * 1024) pressure_high_ticks++;
  else pressure_high_ticks = 0;
  cur.pressure_warn = pressure_high_ticks >= PRESSURE_WINDOW;

  vkm_os_sample(&os_now, cur.t_ns, smaps_mode);
  vkm_allocstats_sample(&alloc_now, cur.t_ns);
  cur.rss_bytes = os_now.rss;
  cur.vms_bytes = os_now.vms;
  cur.peak_rss_bytes = os_now.peak_rss > prev.peak_rss_bytes ? os_now.peak_rss : prev.peak_rss_bytes;
  if (cur.rss_bytes > cur.peak_rss_bytes) cur.peak_rss_bytes = cur.rss_bytes;
  cur.dropped_events = vkm_dropped_events();
  cur.self_bytes = vkm_self_bytes();
}

static size_t tick(void) {
  size_t drained = vkm_rings_drain(on_event, NULL);
  compute_tick();
  vkm_sites_tick(&cur, vkm_runtime_gc_cycles());
  vkm_runtime_tick(&cur);
  vkm_history_push(&cur, &os_now, &alloc_now);
  return drained;
}

/* ---------------------------------------------------------------------------
 * JSON documents
 * ------------------------------------------------------------------------- */
static const char *program_name(void) {
  char **argv;
  int argc = vkm_argv(&argv);
  if (argc < 1 || !argv[0]) return "?";
  const char *s = strrchr(argv[0], '/');
  return s ? s + 1 : argv[0];
}

static void add_u64(cJSON *o, const char *k, uint64_t v) { cJSON_AddNumberToObject(o, k, (double)v); }

static void add_totals(cJSON *o, const vkm_counters_t *c) {
  cJSON *t = cJSON_AddObjectToObject(o, "totals");
  add_u64(t, "alloc_count", c->alloc_count);
  add_u64(t, "free_count", c->free_count);
  add_u64(t, "realloc_count", c->realloc_count);
  add_u64(t, "failed_count", c->failed_count);
  add_u64(t, "alloc_bytes", c->alloc_bytes);
  add_u64(t, "alloc_usable_bytes", c->alloc_usable);
  add_u64(t, "free_usable_bytes", c->free_usable);
  add_u64(t, "mmap_count", c->mmap_count);
  add_u64(t, "munmap_count", c->munmap_count);
  add_u64(t, "mremap_count", c->mremap_count);
  add_u64(t, "mmap_bytes", c->mmap_bytes);
  add_u64(t, "munmap_bytes", c->munmap_bytes);
  cJSON *h = cJSON_AddArrayToObject(t, "size_hist");
  for (int i = 0; i < VKM_HIST_BUCKETS; i++) cJSON_AddItemToArray(h, cJSON_CreateNumber((double)c->size_hist[i]));
}

static cJSON *document(const char *schema, unsigned top_sites) {
  cJSON *o = cJSON_CreateObject();
  char **argv;
  int argc = vkm_argv(&argv);
  cJSON_AddStringToObject(o, "schema", schema);
  cJSON_AddStringToObject(o, "platform", vkm_platform());
  cJSON_AddNumberToObject(o, "pid", (double)getpid());
  cJSON_AddStringToObject(o, "program", program_name());
  cJSON *av = cJSON_AddArrayToObject(o, "argv");
  for (int i = 0; i < argc; i++) cJSON_AddItemToArray(av, cJSON_CreateString(argv[i]));
  add_u64(o, "started_at", vkm_started_at_unix_ms());
  double up = (double)(cur.t_ns - vkm_start_ns()) / 1e9;
  cJSON_AddNumberToObject(o, "uptime_s", up);
  cJSON_AddNumberToObject(o, "duration_s", up);
  add_u64(o, "seq", cur.seq);
  add_u64(o, "t_ms", cur.unix_ms);
  cJSON_AddStringToObject(o, "state", exited ? "exited" : "running");
  add_u64(o, "sample_bytes", vkm_config.sample_bytes);
  add_u64(o, "dropped_events", cur.dropped_events);
  add_u64(o, "self_bytes", cur.self_bytes);
  add_totals(o, &cur.c);
  cJSON *live = cJSON_AddObjectToObject(o, "live");
  cJSON_AddNumberToObject(live, "bytes", (double)cur.live_bytes);
  cJSON_AddNumberToObject(live, "count", (double)cur.live_count);
  cJSON *peak = cJSON_AddObjectToObject(o, "peak");
  cJSON_AddNumberToObject(peak, "live_bytes", (double)cur.peak_live_bytes);
  add_u64(peak, "live_error_bytes", vkm_live_peak_error_bound());
  add_u64(peak, "rss_bytes", cur.peak_rss_bytes);
  cJSON *r = cJSON_AddObjectToObject(o, "rates");
  cJSON_AddNumberToObject(r, "alloc_bps", cur.alloc_bps);
  cJSON_AddNumberToObject(r, "free_bps", cur.free_bps);
  cJSON_AddNumberToObject(r, "alloc_ops", cur.alloc_ops);
  cJSON_AddNumberToObject(r, "free_ops", cur.free_ops);
  cJSON_AddNumberToObject(r, "pressure_pct", cur.pressure_pct);
  cJSON_AddBoolToObject(r, "pressure_warn", cur.pressure_warn);
  cJSON *th = cJSON_AddObjectToObject(o, "threads");
  add_u64(th, "live", vkm_threads_live());
  add_u64(th, "max", vkm_threads_max());
  add_u64(th, "total", vkm_threads_total());
  vkm_os_json(&os_now, o);
  vkm_allocstats_json(&alloc_now, o);
  vkm_sites_json(o, top_sites);
  vkm_runtime_json(o);
  return o;
}

static cJSON *newest_point(void) {
  cJSON *h = vkm_history_json("1m", cur.seq ? cur.seq - 1 : 0);
  if (!h) return NULL;
  cJSON *pts = cJSON_IsArray(h) ? h : cJSON_GetObjectItem(h, "points");
  cJSON *last = cJSON_GetArrayItem(pts, cJSON_GetArraySize(pts) - 1);
  cJSON *copy = last ? cJSON_Duplicate(last, 1) : NULL;
  cJSON_Delete(h);
  return copy;
}

static cJSON *view_copy(const char *schema) {
  cJSON *o = cJSON_Duplicate(view_doc, 1);
  cJSON_ReplaceItemInObject(o, "schema", cJSON_CreateString(schema));
  if (!cJSON_GetObjectItem(o, "state")) cJSON_AddStringToObject(o, "state", "exited");
  cJSON_AddBoolToObject(o, "view", 1);
  return o;
}

cJSON *vkm_snapshot_json(void) {
  if (view_doc) return view_copy("valkmem.snapshot/1");
  cJSON *o = document("valkmem.snapshot/1", vkm_config.top_sites ? vkm_config.top_sites : 50);
  cJSON *p = newest_point();
  if (p) cJSON_AddItemToObject(o, "point", p);
  return o;
}

cJSON *vkm_tick_json(void) {
  if (view_doc) return view_copy("valkmem.snapshot/1");
  cJSON *o = document("valkmem.snapshot/1", 20);
  cJSON *p = newest_point();
  cJSON_AddItemToObject(o, "point", p ? p : cJSON_CreateObject());
  /* Per-tick runtime counters go under their own key: several of their
   * names (frames, evals) are snapshot sections. */
  vkm_runtime_tick_json(cJSON_AddObjectToObject(o, "tick"));
  return o;
}

cJSON *vkm_report_json(void) {
  if (view_doc) return view_copy("valkmem.report/1");
  cJSON *o = document("valkmem.report/1", vkm_config.top_sites);
  cJSON *h = cJSON_AddObjectToObject(o, "history");
  static const char *ranges[] = {"1m", "10h"};
  for (int i = 0; i < 2; i++) {
    cJSON *r = vkm_history_json(ranges[i], 0);
    if (r) cJSON_AddItemToObject(h, ranges[i], r);
  }
  return o;
}

/* ---------------------------------------------------------------------------
 * Report file
 * ------------------------------------------------------------------------- */
static void expand_path(const char *in, char *out, size_t cap) {
  size_t n = 0;
  for (const char *s = in; *s && n + 1 < cap; s++) {
    if (s[0] == '%' && s[1] == 'p') {
      n += (size_t)snprintf(out + n, cap - n, "%d", (int)getpid());
      s++;
    } else {
      out[n++] = *s;
    }
  }
  out[n < cap ? n : cap - 1] = 0;
}

static int write_all(int fd, const char *buf, size_t len) {
  while (len) {
    ssize_t w = write(fd, buf, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

int vkm_report_write(const char *path) {
  cJSON *doc = vkm_report_json();
  char *text = cJSON_Print(doc);
  cJSON_Delete(doc);
  if (!text) return -ENOMEM;
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
  int rc = 0;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) rc = -errno;
  else {
    rc = write_all(fd, text, strlen(text));
    if (!rc) rc = write_all(fd, "\n", 1);
    if (close(fd) && !rc) rc = -errno;
    if (!rc && rename(tmp, path)) rc = -errno;
    if (rc) unlink(tmp);
  }
  vkm_free(text);
  return rc;
}

/* Checkpoints are best effort: one that fails (say the program has used
 * up its RLIMIT_AS for a moment) is retried at the next; only a final
 * report that cannot be written is worth the user's attention. */
static void write_report_if_owner(void) {
  if (!vkm_config.report[0] || !vkm_is_report_owner() || view_doc) return;
  char path[1100];
  expand_path(vkm_config.report, path, sizeof path);
  int rc = vkm_report_write(path);
  if (rc && exited && !report_error_said) {
    report_error_said = 1;
    vkm_say("error", "cannot write report %s: %s", path, strerror(-rc));
  }
}

/* ---------------------------------------------------------------------------
 * Signals: SIGTERM/SIGINT still produce a report. Installed only where the
 * program left the default action; the handler hands over to the agent,
 * waits (bounded) for the report, then dies by the same signal.
 * ------------------------------------------------------------------------- */
static void on_fatal_signal(int sig) {
  int saved = errno;
  __atomic_store_n(&signal_pending, sig, __ATOMIC_RELEASE);
  for (int i = 0; i < 300 && __atomic_load_n(&agent_running, __ATOMIC_ACQUIRE) &&
                  !__atomic_load_n(&signal_done, __ATOMIC_ACQUIRE); i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  signal(sig, SIG_DFL);
  errno = saved;
  raise(sig);
}

static void install_signal_handlers(void) {
  if (!vkm_config.report[0]) return;
  static const int sigs[] = {SIGTERM, SIGINT};
  for (int i = 0; i < 2; i++) {
    struct sigaction old;
    if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_fatal_signal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART;
      sigaction(sigs[i], &sa, NULL);
    }
  }
}

/* ---------------------------------------------------------------------------
 * View mode: VALKMEM_VIEW=file serves a saved report or snapshot export.
 * ------------------------------------------------------------------------- */
static void load_view(void) {
  const char *path = getenv("VALKMEM_VIEW");
  if (!path || !*path) return;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    vkm_say("error", "VALKMEM_VIEW=%s: %s", path, strerror(errno));
    return;
  }
  struct stat st;
  char *buf = NULL;
  if (fstat(fd, &st) == 0 && (buf = vkm_malloc((size_t)st.st_size + 1))) {
    ssize_t n = read(fd, buf, (size_t)st.st_size);
    buf[n > 0 ? n : 0] = 0;
    view_doc = cJSON_Parse(buf);
    if (!view_doc) vkm_say("error", "VALKMEM_VIEW=%s: not valid JSON near byte %ld", path,
                           (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - buf : 0));
  }
  vkm_free(buf);
  close(fd);
}

const cJSON *vkm_view_doc(void) { return view_doc; }

/* ---------------------------------------------------------------------------
 * The thread
 * ------------------------------------------------------------------------- */
static void modules_init(void) {
  memset(&cur, 0, sizeof cur);
  memset(&prev, 0, sizeof prev);
  win_pos = win_fill = pressure_high_ticks = 0;
  smaps_mode = VKM_SMAPS_DUE;
  vkm_sites_init();
  vkm_runtime_init();
  vkm_history_init();
}

/* A forked child opens its dashboard only once it has lived this long: the
 * children of fork+exec and of shells come and go in milliseconds and
 * should neither bind a port nor print a URL line. */
#define CHILD_HTTP_DELAY_NS (250ull * 1000000ull)
static int forked_child;
static int http_on;       /* the server is running (agent thread, then the exit path) */

/* The last tick, the "exited" event to the dashboards, the report, and
 * the server's shutdown. The agent thread does it as it ends when its file
 * table is its own (its sockets are not in the program's table); otherwise,
 * or when no agent ran, the thread that stops it. */
static void finish(void) {
  if (!exited) {
    /* A fresh smaps breakdown for a report that will be written; none at
     * all when nobody will see this tick (no report, no dashboard): a
     * short-lived process - a forked child, a command a script runs -
     * would otherwise walk every page of its mappings just before it
     * exits, since its first breakdown is still due (a third of /bin/true's
     * instructions under the shim). */
    if (vkm_config.report[0] && vkm_is_report_owner() && !view_doc) smaps_mode = VKM_SMAPS_FORCE;
    else if (!http_on) smaps_mode = VKM_SMAPS_NONE;
    tick();
    exited = 1;
    if (http_on) vkm_http_broadcast_tick(); /* the last event says "exited" */
    write_report_if_owner();
  }
  if (http_on) vkm_http_stop();
  http_on = 0;
}

static void *agent_main(void *arg) {
  (void)arg;
  vkm_guard_enter(); /* for the whole life of this thread */
  vkm_gate_enter(&agent_gate);
  __atomic_store_n(&files_private, vkm_os_private_files(wake_fd), __ATOMIC_RELEASE);
  uint64_t born = vkm_now_ns();
  int http_due = vkm_config.http;
  if (http_due && !forked_child) {
    http_due = 0;
    http_on = vkm_http_start() == 0;
  }
  uint64_t tick_ns = (uint64_t)vkm_config.tick_ms * 1000000ull;
  int exact_events = vkm_config.exact || vkm_config.sample_bytes <= 1;
  uint64_t next_tick = vkm_now_ns() + tick_ns;
  while (!__atomic_load_n(&agent_stop, __ATOMIC_ACQUIRE)) {
    vkm_gate_leave(&agent_gate); /* a safe point, also when it does not sleep (below) */
    vkm_gate_enter(&agent_gate);
    size_t drained = 0;
    uint64_t now = vkm_now_ns();
    if (http_due && now - born >= CHILD_HTTP_DELAY_NS) {
      http_due = 0;
      http_on = vkm_http_start() == 0;
    }
    if (now >= next_tick) {
      drained = tick();
      if (http_on) vkm_http_broadcast_tick();
      next_tick += tick_ns;
      if (next_tick < now) next_tick = now + tick_ns; /* we were stopped: skip, do not burst */
      if (vkm_config.checkpoint_ms && now - last_checkpoint_ns >= (uint64_t)vkm_config.checkpoint_ms * 1000000ull) {
        last_checkpoint_ns = now;
        write_report_if_owner();
      }
    } else {
      drained = vkm_rings_drain(on_event, NULL);
    }
    int sig = __atomic_load_n(&signal_pending, __ATOMIC_ACQUIRE);
    if (sig && !__atomic_load_n(&signal_done, __ATOMIC_ACQUIRE)) {
      tick();
      exited = 1;
      write_report_if_owner();
      __atomic_store_n(&signal_done, 1, __ATOMIC_RELEASE);
    }
    now = vkm_now_ns();
    uint64_t wait_ns = next_tick > now ? next_tick - now : 0;
    int wait_ms = (int)((wait_ns + 999999) / 1000000); /* rounded up: no busy loop in the last ms */
    /* Between ticks the agent drains when a ring passes half full (its
     * producer wakes it, ring.c). Only exact mode, whose producers wait
     * on a full ring, also drains every DRAIN_MS while events come in.
     * Sampled mode needs no more: every wake on a busy program's CPU
     * costs it a context switch and cold caches, and the tick drains
     * first anyway, so the live view is no staler. */
    if (wait_ms > DRAIN_MS && drained > 0 && exact_events) wait_ms = DRAIN_MS;
    if (drained > 256) wait_ms = 0; /* busy producers: drain again at once */
    if (http_on) vkm_http_poll(wait_ms);
    else if (wait_ms > 0) {
      struct pollfd w = {.fd = wake_fd, .events = POLLIN};
      if (vkm_agent_poll(&w, 1, wait_ms) > 0) vkm_agent_woken();
    }
  }
  if (__atomic_load_n(&files_private, __ATOMIC_ACQUIRE)) finish();
  vkm_gate_leave(&agent_gate); /* for good */
  vkm_guard_leave();
  return NULL;
}

static int spawn_agent(void) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 512 * 1024);
  int rc = pthread_create(&agent_thread, &attr, agent_main, NULL);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) {
    vkm_say("error", "cannot start the agent thread: pthread_create: %s; counting without it", strerror(rc));
    return -rc;
  }
  /* Named, so that top -H and /proc/PID/task show the agent's own CPU
   * apart from the program's threads. */
  pthread_setname_np(agent_thread, "valkmem-agent");
  __atomic_store_n(&agent_running, 1, __ATOMIC_RELEASE);
  return 0;
}

void vkm_agent_start(void) {
  vkm_guard_enter();
  cJSON_Hooks hooks = {cjson_malloc, cjson_free};
  cJSON_InitHooks(&hooks);
  make_wake_fd();
  vkm_os_private_files_probe(wake_fd); /* before the agent thread: see os_linux.c */
  load_view();
  modules_init();
  install_signal_handlers();
  spawn_agent();
  vkm_guard_leave();
}

void vkm_agent_stop_and_report(const char *why) {
  (void)why;
  vkm_guard_enter();
  if (__atomic_exchange_n(&agent_running, 0, __ATOMIC_ACQ_REL)) {
    __atomic_store_n(&agent_stop, 1, __ATOMIC_RELEASE);
    wake_agent();
    pthread_join(agent_thread, NULL);
  }
  finish(); /* nothing left to do if the agent did it */
  vkm_guard_leave();
}

/* In the child of fork() only the forking thread exists: the agent thread
 * is gone and its state may be mid-update, so start over from scratch. */
void vkm_agent_after_fork_child(void) {
  vkm_guard_enter();
  int was_running = agent_running;
  agent_running = 0;
  vkm_gate_reset(&agent_gate); /* no agent thread here */
  agent_stop = 0;
  signal_pending = 0;
  signal_done = 0;
  exited = 0;
  last_checkpoint_ns = 0;
  /* Started or not, the child must know it is one. The parent's sockets are
   * in this table only if its agent shared the program's. */
  if (vkm_config.http) vkm_http_forget(!__atomic_load_n(&files_private, __ATOMIC_ACQUIRE));
  files_private = 0;
  http_on = 0;
  make_wake_fd(); /* the inherited eventfd is shared with the parent */
  forked_child = 1;
  if (was_running && vkm_config.follow_fork) {
    modules_init();
    spawn_agent();
  } else {
    vkm_config.http = false;
  }
  vkm_guard_leave();
}
