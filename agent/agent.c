/* agent.c - one worker of the agent process: the tick loop over one
 * process's segment, rates, the JSON documents, the report and its
 * checkpoints, and the end of the process.
 *
 * A worker is a process of its own (agentd.c forks one per recorded
 * process), single-threaded, so its modules keep plain, unlocked state.
 * Between ticks it serves HTTP and drains the event rings when they fill
 * up (agent.h says when). It watches the recorded process (a pidfd on
 * Linux, kqueue on macOS: proc.h): when the process ends, for whatever
 * reason, the worker drains what is left, takes the last tick and writes
 * the report from the segment.
 */
#include "agent.h"
#include "proc.h"
#include "runtime.h"
#include "sys.h"
#include "../interpose/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PRESSURE_WINDOW 50 /* ticks (5 s at 100 ms) */

static int exited;              /* the report is final */
static int end_kind;            /* how the process ended: VKM_ENDED_* */
static int end_code, end_signal;

static vkm_tick_t cur, prev;
static vkm_os_t os_now;
static vkm_allocstats_t alloc_now;
static cJSON *view_doc;         /* VALKMEM_VIEW: a saved report served instead of live data */
static uint64_t last_checkpoint_ns;
static int report_error_said;
/* Pressure window: usable bytes allocated and reclaimed per tick. */
static double win_alloc[PRESSURE_WINDOW], win_free[PRESSURE_WINDOW];
static unsigned win_pos, win_fill, pressure_high_ticks;


/* poll(2) for the worker: its one way to block. */
int vkm_agent_poll(struct pollfd *fds, unsigned long n, int timeout_ms) { return poll(fds, (nfds_t)n, timeout_ms); }

/* ---------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------- */
static void row_update(void); /* the tree's table (below) */

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

/* The counts balance (nothing is freed that was not allocated) unless the
 * program frees a pointer the allocator never handed out: the recorder
 * then counts whatever the word before it held as the block's size, and
 * glibc aborts a moment later (free(): invalid pointer). Said once, in the
 * report too; the live heap is then shown as 0, not as a negative or
 * wrapped number, and every total stays a number a report can hold. */
static int unbalanced;

static void check_balance(void) {
  if (!unbalanced && cur.c.free_usable <= cur.c.alloc_usable && cur.c.free_count <= cur.c.alloc_count) return;
  if (!unbalanced)
    vkm_say("warning", "pid %d: more freed than allocated: the program freed a pointer its allocator did not hand out "
            "(an invalid free); byte counts are not exact from here on", vkm_target_pid());
  unbalanced = 1;
  if (cur.live_bytes < 0) cur.live_bytes = 0;
  if (cur.live_count < 0) cur.live_count = 0;
}

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
  check_balance();
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
  cur.gc_cycles = vkm_runtime_gc_cycles();
  cur.gc_pause_ms_total = vkm_runtime_gc_pause_ms_total();
  vkm_allocstats_sample(&alloc_now, &cur, vkm_seg ? vkm_seg->allocator : "");
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
  vkm_sites_tick(&cur);
  vkm_runtime_tick(&cur);
  vkm_history_push(&cur, &os_now, &alloc_now);
  row_update();
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

/* Counters are far below 2^63; one that is not was thrown off by an invalid
 * free (check_balance) and is capped so that the report stays readable. */
static void add_u64(cJSON *o, const char *k, uint64_t v) {
  cJSON_AddNumberToObject(o, k, (double)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v));
}

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
  cJSON_AddNumberToObject(o, "pid", (double)vkm_target_pid());
  if (vkm_seg) {
    cJSON_AddNumberToObject(o, "ppid", (double)vkm_seg->ppid);
    cJSON_AddBoolToObject(o, "forked", vkm_seg->forked != 0);
  }
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
  if (exited) vkm_end_json(o, end_kind, end_code, end_signal);
  add_u64(o, "sample_bytes", vkm_config.sample_bytes);
  add_u64(o, "dropped_events", cur.dropped_events);
  add_u64(o, "self_bytes", cur.self_bytes);
  add_totals(o, &cur.c);
  if (unbalanced) {
    cJSON *w = cJSON_AddArrayToObject(o, "warnings");
    cJSON_AddItemToArray(w, cJSON_CreateString("invalid free: the program freed a pointer its allocator did not hand "
                                               "out; byte counts are not exact"));
  }
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
/* VALKMEM_REPORT: %p is the pid, %% a '%'; any other '%' is written as
 * is (the recorder notes it at start-up). */
int vkm_report_per_pid(const char *pattern) {
  for (const char *s = pattern; *s; s++) {
    if (s[0] != '%') continue;
    if (s[1] == 'p') return 1;
    if (s[1] == '%') s++;
  }
  return 0;
}

static void expand_path(const char *in, char *out, size_t cap) {
  size_t n = 0;
  for (const char *s = in; *s && n + 1 < cap; s++) {
    if (s[0] == '%' && s[1] == 'p') {
      n += (size_t)snprintf(out + n, cap - n, "%d", vkm_target_pid());
      s++;
    } else if (s[0] == '%' && s[1] == '%') {
      out[n++] = '%';
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
 * The worker
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

/* A non-root process's dashboard opens only once it has lived this long
 * (a connection handed over from the root opens it at once). */
#define CHILD_HTTP_DELAY_NS (250ull * 1000000ull)

static int http_on;
static int wake_fd = -1;     /* the wait set (proc.h): the process's end, the exit handshake */
static int pid_fd = -1;      /* the recorded process (pidfd), or -1 */
static int final_fd = -1;    /* control socket: the recorder's exit handshake, connections from other workers */
static char final_path[108];
static volatile sig_atomic_t stop_flag; /* SIGTERM from agentd: the pid exec'd, or the tree is done */
static int ended;            /* the process is gone */

int vkm_agent_wake_fd(void) { return wake_fd; }

/* How the process ended: the kernel's wait status when it can be had
 * (proc.h; on Linux a zombie's /proc/PID/stat, or the pidfd once it is
 * reaped; the reaping parent may take a moment), else the exit code the
 * recorder saw. */
static int kernel_status(int *st) {
  for (int i = 0; i < 50; i++) {
    if (vkm_proc_exit_status(pid_fd, vkm_target_pid(), st) == 0) return 0;
    if (pid_fd < 0 || kill(vkm_target_pid(), 0) != 0) {
      /* gone, reaped, and no pidfd information: nothing more to learn */
      if (pid_fd < 0) return -1;
    }
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return -1;
}

/* The command name of the process; "" when it cannot be read. A zombie
 * still has it. */
static void read_comm(char *out, size_t cap) { vkm_proc_comm(vkm_target_pid(), out, cap); }
static char start_comm[32];

static void learn_end(void) {
  int st;
  /* VALKMEM_FOLLOW_EXEC=0: an exec leaves no recorder behind to tell us.
   * A different command name at the end says the image was replaced; its
   * successor, unrecorded, has no report either. */
  if (!vkm_config.follow_exec && start_comm[0]) {
    char now[32];
    read_comm(now, sizeof now);
    if (now[0] && strcmp(now, start_comm) != 0) stop_flag = 2;
  }
  int have = ended && kernel_status(&st) == 0;
  if (stop_flag == 2) {
    end_kind = VKM_ENDED_EXEC;
  } else if (have && WIFSIGNALED(st)) {
    end_kind = VKM_ENDED_SIGNAL;
    end_signal = WTERMSIG(st);
  } else if (__atomic_load_n(&vkm_seg->end_state, __ATOMIC_ACQUIRE) == VKM_END_EXIT) {
    end_kind = VKM_ENDED_EXIT;
    end_code = vkm_seg->exit_code;
  } else if (have && WIFEXITED(st)) {
    end_kind = VKM_ENDED_EXIT;
    end_code = WEXITSTATUS(st);
  } else if (stop_flag == 2) {
    end_kind = VKM_ENDED_EXEC;
  } else {
    end_kind = VKM_ENDED_UNKNOWN;
  }
}

/* The last tick, the "exited" event to the dashboards, the report. Called
 * again when the process was still finishing after its exit handshake: the
 * report is rewritten only if the counts moved since. */
static void finish(void) {
  vkm_counters_t before = cur.c;
  int again = exited;
  learn_end();
  if (vkm_config.report[0] && vkm_is_report_owner() && !view_doc && !ended) smaps_mode = VKM_SMAPS_FORCE;
  else smaps_mode = VKM_SMAPS_NONE;
  tick();
  exited = 1;
  if (http_on) vkm_http_broadcast_tick(); /* the last event says "exited" */
  /* An image replaced by exec leaves the report to its successor: the
   * same pid, the same report file. */
  if (end_kind == VKM_ENDED_EXEC) return;
  if (!again || memcmp(&before, &cur.c, sizeof before) != 0) write_report_if_owner();
}

/* The control socket. Two callers: the recorder's exit handler, which
 * waits for one byte once the report is out (VKM_HELLO_FINAL); and another
 * worker of the tree handing over a dashboard connection for this process
 * (VKM_HELLO_HTTP, tree.c). */
static void on_control(void) {
  int c = vkm_sys_accept(final_fd, 0);
  if (c < 0) return;
  /* Our own user's (the tree's other workers), or the process itself,
   * which may run as another user (open_final_socket); anyone else is
   * closed on before a byte is read. */
  if (!vkm_sys_peer_trusted(c) && vkm_sys_peer_pid(c) != vkm_target_pid()) {
    close(c);
    return;
  }
  struct timeval tv = {2, 0};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  vkm_hello_t h;
  uint32_t len = 0;
  static char req[16384];
  struct iovec iov[2] = {{&h, sizeof h}, {&len, sizeof len}};
  union {
    char b[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr m = {.msg_iov = iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
  ssize_t n = vkm_sys_recvmsg(c, &m, MSG_WAITALL);
  int fd = -1;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len >= CMSG_LEN(sizeof(int)))
      memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  if (n == (ssize_t)sizeof h && h.magic == VKM_HELLO_MAGIC && h.kind == VKM_HELLO_FINAL) {
    finish();
    char ok = 1;
    ssize_t w = send(c, &ok, 1, MSG_NOSIGNAL);
    (void)w;
  } else if (n == (ssize_t)sizeof h && h.magic == VKM_HELLO_MAGIC && h.kind == VKM_HELLO_HTTP && fd >= 0 &&
             recv(c, &len, sizeof len, MSG_WAITALL) == (ssize_t)sizeof len && len <= sizeof req &&
             (len == 0 || recv(c, req, len, MSG_WAITALL) == (ssize_t)len)) {
    if (!http_on && vkm_config.http) http_on = vkm_http_start() == 0;
    if (http_on) {
      vkm_http_adopt(fd, req, len, h.port);
      fd = -1;
    }
  }
  if (fd >= 0) close(fd);
  close(c);
}

/* This process's row in the tree's table (agent.h): what /api/processes
 * says of it. */
static vkm_tree_row_t *my_row;

static void row_update(void) {
  if (!my_row) return;
  __atomic_store_n(&my_row->live_bytes, cur.live_bytes > 0 ? (uint64_t)cur.live_bytes : 0, __ATOMIC_RELAXED);
  __atomic_store_n(&my_row->rss_bytes, cur.rss_bytes, __ATOMIC_RELAXED);
  __atomic_store_n(&my_row->alloc_count, cur.c.alloc_count, __ATOMIC_RELAXED);
  __atomic_store_n(&my_row->free_count, cur.c.free_count, __ATOMIC_RELAXED);
  __atomic_store_n(&my_row->alloc_usable, cur.c.alloc_usable, __ATOMIC_RELAXED);
  __atomic_store_n(&my_row->free_usable, cur.c.free_usable, __ATOMIC_RELAXED);
}

static void row_end(void) {
  if (!my_row) return;
  row_update();
  my_row->end_kind = end_kind;
  my_row->end_code = end_code;
  my_row->end_signal = end_signal;
  __atomic_store_n(&my_row->state, VKM_ROW_EXITED, __ATOMIC_RELEASE);
}

static int process_alive(void) { return vkm_proc_alive(pid_fd, vkm_target_pid()); }

/* The recorder's producers bump a word in the segment when a ring passes
 * half full (interpose/ring.c); the waker (proc.h) turns that into a
 * readable descriptor in the wait set. */
static int drain_efd = -1;

static void start_waker(void) {
  drain_efd = vkm_proc_waker(&vkm_seg->wake_seq);
  if (drain_efd >= 0) vkm_proc_watch_fd(wake_fd, drain_efd);
}

void vkm_agent_woken(void) {
  int ids[4];
  int n = vkm_proc_ready(wake_fd, ids, 4);
  for (int i = 0; i < n; i++) {
    if (ids[i] == final_fd) on_control();
    else if (ids[i] == VKM_PROC_ENDED) {
      ended = 1;
      if (!vkm_config.follow_exec && start_comm[0]) { /* at once, before the parent reaps it */
        char now[32];
        read_comm(now, sizeof now);
        if (now[0] && strcmp(now, start_comm) != 0) stop_flag = 2;
      }
    }
    else if (ids[i] == drain_efd) vkm_proc_waker_clear(drain_efd);
  }
}

static void on_term(int sig) {
  (void)sig;
  stop_flag = stop_flag ? stop_flag : 1;
}
static void on_exec(int sig) {
  (void)sig;
  stop_flag = 2;
}

/* The worker's socket for the exit handshake, next to the agent's. The
 * path goes into the segment last byte first, so the recorder never reads
 * half a path. */
static void open_final_socket(const char *dir) {
  snprintf(final_path, sizeof final_path, "%s/w%d-%d.sock", dir, vkm_target_pid(), (int)getpid());
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  int s = strlen(final_path) < sizeof a.sun_path ? vkm_sys_socket(AF_UNIX, 0) : -1;
  if (s >= 0) {
    memcpy(a.sun_path, final_path, strlen(final_path) + 1);
    unlink(final_path);
  }
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) {
    if (s >= 0) close(s);
    final_path[0] = 0;
    __atomic_store_n(&vkm_seg->agent_sock[0], '-', __ATOMIC_RELEASE); /* the recorder need not wait */
    return;
  }
  /* A process that changed its user since (setpriv) still reaches it,
   * where the directory lets it in (valkmem run and gate); on_control
   * takes other users' connections from that process alone. */
  chmod(final_path, 0666);
  final_fd = s;
  size_t len = strlen(final_path);
  memcpy(vkm_seg->agent_sock + 1, final_path + 1, len);
  __atomic_store_n(&vkm_seg->agent_sock[0], final_path[0], __ATOMIC_RELEASE);
  if (my_row) memcpy(my_row->sock, final_path, len + 1);
}

static int is_root;
int vkm_agent_is_root(void) { return is_root; }

int vkm_worker_run(const vkm_worker_t *w, const sigset_t *unblock) {
  char why[256];
  is_root = w->root;
  if (vkm_segread_attach(w->seg_fd, w->owner, why, sizeof why) != 0) {
    vkm_say("error", "pid %d: %s", w->pid, why);
    return 1;
  }
  close(w->seg_fd);
  if (w->pid > 0) vkm_segread_set_pid(w->pid);
  pid_fd = w->pid_fd;
  struct sigaction sa = {.sa_handler = on_term};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_exec;
  sigaction(SIGUSR1, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (unblock) sigprocmask(SIG_SETMASK, unblock, NULL);
  /* What the recorder would have said, said here. */
  for (uint32_t off = 0; off < vkm_seg->notes_used && off < sizeof vkm_seg->notes;) {
    const char *m = vkm_seg->notes + off;
    size_t len = strnlen(m, sizeof vkm_seg->notes - off);
    if (len) vkm_say("warning", "pid %d: %.*s", w->pid, (int)len, m);
    off += (uint32_t)len + 1;
  }
  vkm_symbols_use_segment();
  wake_fd = vkm_proc_waitset();
  if (vkm_tree && w->row >= 0 && w->row < VKM_TREE_ROWS) {
    my_row = &vkm_tree->rows[w->row];
    char **argv;
    int argc = vkm_argv(&argv);
    const char *prog = argc > 0 && argv[0] ? argv[0] : "?";
    const char *sl = strrchr(prog, '/');
    snprintf(my_row->program, sizeof my_row->program, "%s", sl && sl[1] ? sl + 1 : prog);
    my_row->started_ms = vkm_started_at_unix_ms();
  }
  if (w->sock_dir[0]) open_final_socket(w->sock_dir);
  read_comm(start_comm, sizeof start_comm);
  if (final_fd >= 0) vkm_proc_watch_fd(wake_fd, final_fd);
  vkm_proc_watch_end(wake_fd, pid_fd, vkm_target_pid());
  /* Exact mode's producers wait on full rings: their wake-ups matter from
   * the start. Otherwise the waker starts when a ring is first found
   * filling up (below); most short processes never need one. */
  if (vkm_config.exact) start_waker();
  load_view();
  modules_init();
  uint64_t born = vkm_start_ns();
  /* The root's dashboard opens at once; every other process of the tree
   * is served through it (/p/PID/), and opens a port of its own only once
   * it has lived a moment: the commands a script runs come and go in
   * milliseconds. */
  int http_due = vkm_config.http;
  if (w->root && w->http_fd >= 0) vkm_http_inherit(w->http_fd, w->announce);
  if (http_due && w->root) {
    http_due = 0;
    http_on = vkm_http_start() == 0;
  }
  if (w->ready_fd >= 0) close(w->ready_fd); /* the URL line is out, or there is none: the program goes on */
  uint64_t tick_ns = (uint64_t)vkm_config.tick_ms * 1000000ull;
  uint64_t next_tick = vkm_now_ns() + tick_ns;
  while (!ended && !stop_flag) {
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
      if (!process_alive()) ended = 1;
    } else {
      drained = vkm_rings_drain(on_event, NULL);
    }
    if (ended || stop_flag) break;
    now = vkm_now_ns();
    uint64_t wait_ns = next_tick > now ? next_tick - now : 0;
    int wait_ms = (int)((wait_ns + 999999) / 1000000); /* rounded up: no busy loop in the last ms */
    /* Producers waiting on a full ring (exact mode), or rings filling up:
     * drain again soon. Otherwise the tick drains first anyway. */
    if (vkm_rings_busy()) {
      wait_ms = drained > 256 ? 0 : (wait_ms > 2 ? 2 : wait_ms);
      if (drain_efd < 0) start_waker();
    }
    if (http_on) vkm_http_poll(wait_ms);
    else if (wait_ms > 0) {
      struct pollfd p = {.fd = wake_fd, .events = POLLIN};
      if (poll(&p, 1, wait_ms) > 0) vkm_agent_woken();
    }
  }
  ended = !process_alive();
  if (!ended && stop_flag == 1) {
    /* Told to stop while the process lives on (valkmem attach detaching,
     * the launcher's agent stopping): what is known so far, not an end. */
    tick();
    write_report_if_owner();
    __atomic_store_n(&vkm_seg->agent_sock[0], '!', __ATOMIC_RELEASE); /* nobody drains from now on */
  } else {
    finish();
  }
  row_end();
  /* valkmem run keeps a finished process's dashboard until it is told to
   * go (SIGTERM): the tree's figures stay readable, and its control
   * socket still takes connections from the other workers. */
  if (http_on && w->linger && stop_flag != 1) {
    while (!stop_flag) vkm_http_poll(1000);
  }
  if (my_row) my_row->sock[0] = 0;
  if (final_fd >= 0) {
    close(final_fd);
    unlink(final_path);
  }
  if (http_on) vkm_http_stop();
  return 0;
}

/* `valkmem view`: the dashboard of a saved report or export (VALKMEM_VIEW),
 * served by this process until SIGINT or SIGTERM. vkm_config is set by
 * the caller. 0, or 1 when the file or the server cannot be had. */
int vkm_view_run(void) {
  is_root = 1;
  load_view();
  if (!view_doc) return 1;
  struct sigaction sa = {.sa_handler = on_term};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  modules_init();
  if (vkm_http_start() != 0) return 1;
  while (!stop_flag) vkm_http_poll(1000);
  vkm_http_stop();
  return 0;
}
