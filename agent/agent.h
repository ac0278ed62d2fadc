/* agent.h - the agent process: its modules and how they meet.
 *
 * The agent is a process of its own (agentd.c). For each recorded process
 * it forks a worker, a single-threaded process that maps that process's
 * segment and runs everything declared here; so agent modules keep plain,
 * unlocked state. Memory is the agent's own (vkm_malloc & co. are libc's):
 * none of it counts against the recorded program.
 *
 * The tick (every vkm_config.tick_ms, default 100 ms):
 *   1. vkm_rings_drain -> vkm_sites_on_event / vkm_runtime_on_event
 *   2. vkm_counters_sum -> vkm_tick_t (rates)
 *   3. vkm_os_sample / vkm_allocstats_sample (each rate-limits itself)
 *   4. vkm_sites_tick (epochs, leak analysis), vkm_runtime_tick
 *   5. vkm_history_push
 *   6. vkm_http_broadcast_tick (SSE)
 * Between ticks the worker sits in vkm_http_poll. It drains the rings
 * early when a ring passes half full (its producer bumps a futex word in
 * the segment, which the worker's waker thread turns into an event), and
 * every 2 ms while producers wait on a full ring (exact mode); an idle
 * process's worker wakes once a tick.
 */
#ifndef VKM_AGENT_H
#define VKM_AGENT_H

#include "../interpose/vkm.h"
#include <cjson/cJSON.h>
#include <stddef.h>
#include <sys/mman.h>

/* ---------------------------------------------------------------------------
 * Plumbing every module uses (util.c, alloc.c in agent/cli)
 * ------------------------------------------------------------------------- */
/* The agent's diagnostics channel: the terminal the tree was started from
 * (spawned agent), or the CLI's own stderr (valkmem run, gate). */
void vkm_write_stderr(const char *buf, size_t len);
void vkm_set_diag_fd(int fd);

/* ---------------------------------------------------------------------------
 * The recorded process, through its segment (segread.c)
 * ------------------------------------------------------------------------- */
struct vkm_seg_hdr_s;
struct vkm_seg_module_s;
/* Maps the segment behind fd and checks its version; fills `why` and
 * returns -1 when it cannot be read. owner: this process writes
 * VALKMEM_REPORT (the root of the tree, or every process with %p). */
int vkm_segread_attach(int fd, int owner, char *why, size_t cap);
/* A segment header's magic, version and size (one of segment.h's; equal
 * to size, the file's or the mapping's, unless size is 0). */
int vkm_segread_check(const struct vkm_seg_hdr_s *h, uint64_t size, char *why, size_t cap);
int vkm_segread_modules(struct vkm_seg_module_s *out, size_t max, char *strings, size_t str_cap, size_t *count);
int vkm_target_pid(void);           /* the recorded process, as the agent sees it */
void vkm_segread_set_pid(int pid);
int vkm_rings_busy(void);           /* producers wait, or a ring is filling: drain soon */
uint64_t vkm_sampled_live(void);
uint64_t vkm_self_bytes(void);      /* what valkmem costs the host */
void vkm_symbols_use_segment(void); /* symbols.c: modules from the segment, /proc/PID/maps after */

enum { VKM_ENDED_UNKNOWN = 0, VKM_ENDED_EXIT, VKM_ENDED_SIGNAL, VKM_ENDED_EXEC };
/* Adds "end" to o: {"kind":"exit","code":N}, {"kind":"signal","signal":N,
 * "name":"SIGKILL"}, {"kind":"exec"} or {"kind":"unknown"} (tree.c). */
void vkm_end_json(cJSON *o, int kind, int code, int sig);

/* The process tree, shared by agentd and its workers (a MAP_SHARED
 * mapping made before the first worker is forked): one row per recorded
 * process, written by its worker each tick, read by every worker for
 * /api/processes and for routing /p/PID/ to the worker that serves PID. */
#define VKM_TREE_ROWS 2048
enum { VKM_ROW_FREE = 0, VKM_ROW_RUNNING = 1, VKM_ROW_EXITED = 2 };
typedef struct vkm_tree_row_s {
  int32_t pid, ppid;
  int32_t state;              /* VKM_ROW_*; atomic */
  int32_t end_kind, end_code, end_signal;
  uint64_t live_bytes, rss_bytes; /* the last tick's */
  uint64_t alloc_count, free_count, alloc_usable, free_usable; /* the last tick's totals (root's /metrics) */
  uint64_t started_ms;        /* unix ms */
  char program[64];
  char sock[108];             /* the worker's control socket ("" when gone) */
} vkm_tree_row_t;
typedef struct vkm_tree_s {
  uint32_t nrows;             /* atomic: rows handed out */
  int32_t root;               /* the tree's root pid */
  vkm_tree_row_t rows[VKM_TREE_ROWS];
} vkm_tree_t;
extern vkm_tree_t *vkm_tree;  /* NULL outside an agent (valkmem view, units) */
/* The row of pid (the newest one: an exec'd image has a new row), or NULL. */
vkm_tree_row_t *vkm_tree_find(int pid);
cJSON *vkm_tree_json(void);   /* /api/processes */
/* The running processes /metrics labels (metrics.h): every one on the
 * root, none elsewhere; (size_t)-1 outside an agent. programs: out's names. */
struct vkm_metrics_proc_s;
size_t vkm_tree_metrics(struct vkm_metrics_proc_s *out, size_t max, char (*programs)[64]);
/* Hands an HTTP connection (with the request bytes already read) to the
 * worker that serves pid. 0, or -errno. */
int vkm_tree_forward(int pid, int fd, const char *buf, size_t len, int port);
/* In the worker that receives it: serve that connection (http.c). */
void vkm_http_adopt(int fd, const char *buf, size_t len, int port);

/* One worker (agent.c): serves one recorded process until it ends. */
typedef struct vkm_worker_s {
  int seg_fd, pid_fd;   /* the segment and the process's pidfd (-1: none) */
  int pid;
  int owner;            /* writes VALKMEM_REPORT */
  int root;             /* the tree's root: its URL line is the tree's */
  int forked;           /* a forked child: dashboard after 250 ms */
  int linger;           /* keep the dashboard after the end, until SIGTERM */
  char sock_dir[96];    /* where its control socket goes */
  int row;              /* its row in vkm_tree, or -1 */
  int http_fd;          /* root: the tree's dashboard socket, bound by agentd (-1: bind one) */
  int announce;         /* root: print the URL line (not again for a later exec'd image) */
  int ready_fd;         /* closed once the URL line is out (or will not be), or -1 (agentd.c) */
} vkm_worker_t;
#include <signal.h>
/* unblock: the signal mask to take once its handlers are in (agentd forks
 * it with SIGUSR1 and SIGTERM held). */
int vkm_worker_run(const vkm_worker_t *w, const sigset_t *unblock);
int vkm_agent_is_root(void);
int vkm_view_run(void); /* valkmem view: serve VALKMEM_VIEW until SIGINT/SIGTERM */

/* The agent process (agentd.c): accepts segments on a listening Unix
 * socket, forks a worker for each, and returns once every process of the
 * tree has ended and its report is out. */
typedef struct vkm_agentd_s {
  int listen_fd;        /* bound and listening */
  const char *sock_path;/* unlinked at the end */
  int root_pid;         /* the tree's root (report owner); 0 = the first to arrive */
  int linger;           /* valkmem run: keep dashboards until told to stop */
  int first_seg_fd, first_pid_fd; /* a segment handed over at spawn, or -1 */
  int done_fd;          /* readable (EOF) when the launcher's command has ended, or -1 */
  int attach;           /* valkmem attach: the process runs without an agent of its own */
  int orphan_ms;        /* valkmem gate: processes that outlive the command by this long are
                         * not waited for (their workers write a checkpoint and stop); 0: wait */
  int lock_fd;          /* sock_path.lock, locked for as long as we serve the path (interpose/link.c), or -1 */
  int dash_pid;         /* the process whose dashboard is the tree's: the first to arrive */
  int http_fd;          /* its dashboard's listening socket, kept across its exec'd images, or -1 */
  int announced;        /* the URL line is out */
  int ready_fd;         /* the spawning recorder waits for its end, or -1: the first worker has it */
} vkm_agentd_t;
int vkm_agentd_run(vkm_agentd_t *d);
int vkm_cmd_agent(int argc, char **argv);
int vkm_cmd_attach(int argc, char **argv);

/* ---------------------------------------------------------------------------
 * One tick's view of the process (agent.c fills it)
 * ------------------------------------------------------------------------- */
typedef struct vkm_tick_s {
  uint64_t seq;             /* tick number since start (SSE id) */
  uint64_t t_ns;            /* monotonic */
  uint64_t unix_ms;         /* wall clock */
  double dt_s;              /* seconds since the previous tick */
  vkm_counters_t c;         /* cumulative totals */
  int64_t live_bytes;       /* alloc_usable - free_usable, exact */
  int64_t live_count;       /* alloc_count - free_count */
  int64_t peak_live_bytes;  /* high-water of the live heap (see vkm_live_peak) */
  double alloc_bps, free_bps;       /* usable bytes/s over the last tick */
  double alloc_ops, free_ops;       /* calls/s */
  double pressure_pct;      /* (alloc - reclaim) / alloc over a 5 s window, 0 when reclaim keeps up */
  int pressure_warn;        /* 1 when pressure stayed above 50 % for 5 s */
  uint64_t rss_bytes, vms_bytes, peak_rss_bytes;   /* from the OS reader */
  uint64_t self_bytes;
  uint64_t dropped_events;
  uint64_t gc_cycles;       /* GC cycles the runtime API has reported so far (0 when none) */
  double gc_pause_ms_total; /* their pauses, cumulative */
} vkm_tick_t;


/* The worker's wake-up: an epoll descriptor that vkm_http_poll also polls,
 * readable when the recorded process ends or its exit handshake arrives.
 * vkm_agent_woken() handles what it says. */
int vkm_agent_wake_fd(void);
void vkm_agent_woken(void);
/* A table of valkmem's own: mapped zero pages, touched only as it fills,
 * counted in self_bytes. Given the table again (init in a forked child) it
 * clears it by handing the pages back, without copying them first. NULL
 * when the mapping fails. */
static inline void *vkm_own_table(void *t, size_t len) {
  if (t) {
#ifdef __APPLE__
    /* madvise(MADV_DONTNEED) does not zero pages on macOS: fresh ones are
     * mapped over the table instead. */
    if (mmap(t, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
      __builtin_memset(t, 0, len);
#else
    if (madvise(t, len, MADV_DONTNEED) != 0) __builtin_memset(t, 0, len);
#endif
    return t;
  }
  t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return t == MAP_FAILED ? NULL : t;
}

/* poll(2) for the worker: its one way to block. */
struct pollfd;
int vkm_agent_poll(struct pollfd *fds, unsigned long n, int timeout_ms);

/* ---------------------------------------------------------------------------
 * Call sites, lifetimes, leaks (sites.c, symbols.c)
 * ------------------------------------------------------------------------- */
void vkm_sites_init(void);
/* ALLOC and FREE events only. */
void vkm_sites_on_event(const vkm_event_t *ev, const void *extra);
/* Once per tick: epoch accounting and leak analysis (t->gc_cycles: the GC
 * cycles the runtime API has reported so far, 0 when none). */
void vkm_sites_tick(const vkm_tick_t *t);
/* Adds "sites", "sites_by_live", "sites_by_alloc", "leaks", "lifetimes" to
 * obj. top: how many sites per ranking; 0 = every site (the gate uses that
 * in exact mode to account for every live byte at exit). */
void vkm_sites_json(cJSON *obj, unsigned top);
/* GET /api/stacks: the top sites' stacks (frames interned), for the flame
 * graph; see SCHEMA.md. Caller owns. */
cJSON *vkm_stacks_json(void);
/* For the per-site history: the n (<= VKM_SITE_HIST_TOP) sites with the most
 * live bytes now, their index and calibrated live usable bytes; returns how
 * many. vkm_sites_describe adds id, function, module, file, line, leak of
 * site idx to o. */
#define VKM_SITE_HIST_TOP 20
unsigned vkm_sites_top_live(uint32_t *idx, int64_t *live, unsigned n);
void vkm_sites_describe(uint32_t idx, cJSON *o);

/* ---------------------------------------------------------------------------
 * Runtime API aggregation: GC, pools, frames, evals, roots (runtime.c)
 * ------------------------------------------------------------------------- */
void vkm_runtime_init(void);
void vkm_runtime_on_event(const vkm_event_t *ev, const void *extra);
void vkm_runtime_tick(const vkm_tick_t *t);
uint64_t vkm_runtime_gc_cycles(void);
/* Adds "gc", "pools", "frames", "evals", "roots" to obj. */
void vkm_runtime_json(cJSON *obj);
/* Short per-tick fields for history/SSE (gc pause this tick, frame ms...). */
void vkm_runtime_tick_json(cJSON *obj);

/* ---------------------------------------------------------------------------
 * OS and allocator readers (os_linux.c / os_darwin.c, allocstats.c)
 * ------------------------------------------------------------------------- */
typedef struct vkm_os_s {
  uint64_t rss, vms, peak_rss;            /* bytes */
  uint64_t minor_faults, major_faults;
  uint64_t threads;
  int have_smaps;                          /* breakdown below is valid */
  uint64_t smaps_heap, smaps_anon, smaps_file, smaps_stack, smaps_other; /* Rss by kind */
  uint64_t smaps_at_ms;                    /* when the breakdown was taken */
  uint64_t swap;
} vkm_os_t;
/* smaps: VKM_SMAPS_DUE takes a breakdown when one is due (the first call,
 * every 10 s, RSS drift), VKM_SMAPS_FORCE always, VKM_SMAPS_NONE never
 * (a final tick whose figures nobody will read). */
enum { VKM_SMAPS_NONE = -1, VKM_SMAPS_DUE = 0, VKM_SMAPS_FORCE = 1 };
void vkm_os_sample(vkm_os_t *os, uint64_t now_ns, int smaps);
void vkm_os_json(const vkm_os_t *os, cJSON *obj);   /* adds "os" to obj */

typedef struct vkm_allocstats_s {
  const char *source;        /* "glibc", "mimalloc", "malloc_zones" (darwin), "none" */
  uint64_t held, in_use, free_held;
  double frag_pct;           /* free_held / held * 100 */
  int frag_warn;             /* frag_pct >= 25 */
} vkm_allocstats_t;
/* From this tick's figures (live heap, the program's own mmaps) and the
 * OS reader's last smaps breakdown; allocator: what the recorder found
 * behind it ("glibc", "mimalloc", "other"). */
void vkm_allocstats_sample(vkm_allocstats_t *a, const vkm_tick_t *t, const char *allocator);
void vkm_allocstats_json(const vkm_allocstats_t *a, cJSON *obj); /* adds "allocator" */

/* ---------------------------------------------------------------------------
 * History (history.c): bounded rings at 100 ms x 600, 1 s x 3000,
 * 10 s x 3600, downsampled with sums for counters and max for peaks.
 * ------------------------------------------------------------------------- */
void vkm_history_init(void);
void vkm_history_push(const vkm_tick_t *t, const vkm_os_t *os, const vkm_allocstats_t *a);
/* range: "1m", "5m", "1h", "10h". Returns {"range","step_ms","points":[...]}
 * (caller owns), or NULL for an unknown range. since_seq > 0 returns only newer points (SSE
 * catch-up). */
cJSON *vkm_history_json(const char *range, uint64_t since_seq);
/* The same answer from a saved report or export's own history (valkmem
 * view), or NULL for an unknown range. */
cJSON *vkm_history_from_doc(const cJSON *doc, const char *range);
uint64_t vkm_history_bytes(void);
uint64_t vkm_history_site_bytes(void); /* the per-site history's share, on top */

/* ---------------------------------------------------------------------------
 * JSON documents (agent.c)
 * ------------------------------------------------------------------------- */
cJSON *vkm_snapshot_json(void);   /* current state: what the dashboard shows */
cJSON *vkm_tick_json(void);       /* one SSE event's payload */
cJSON *vkm_report_json(void);     /* snapshot + full sites + history: schema valkmem.report/1 */
/* Writes the report atomically (temp + rename). 0 or -errno. */
int vkm_report_write(const char *path);
int vkm_report_per_pid(const char *pattern); /* VALKMEM_REPORT has a %p (not %%p) */
/* VALKMEM_VIEW=file (`valkmem view`): the saved report or export being
 * served instead of live data, or NULL. */
const cJSON *vkm_view_doc(void);

/* ---------------------------------------------------------------------------
 * HTTP/SSE (http.c). All calls on the worker's main thread.
 * ------------------------------------------------------------------------- */
int vkm_http_start(void);                 /* 0, or -errno (message already said) */
/* The tree's dashboard socket, bound by agentd for the root's images
 * (vkm_worker_t.http_fd): bound as cfg asks, or -1 (the worker then binds
 * and says why not). vkm_http_inherit hands it to vkm_http_start. */
int vkm_http_listener(const vkm_config_t *cfg);
void vkm_http_inherit(int fd, bool announce);
void vkm_http_poll(int timeout_ms);       /* serve until timeout */
void vkm_http_broadcast_tick(void);       /* one SSE event to every stream */
void vkm_http_stop(void);
int vkm_http_port(void);

/* Embedded viewer assets (generated at build time from viewer/). */
typedef struct vkm_asset_s {
  const char *path;          /* "/index.html" */
  const char *content_type;
  const unsigned char *data;
  size_t len;
} vkm_asset_t;
extern const vkm_asset_t vkm_assets[];
extern const size_t vkm_assets_count;

/* ---------------------------------------------------------------------------
 * Exports (pprof.c): gzip-compressed profile.proto and folded stacks, from a
 * report's "sites" array (so they work on a live report and a saved one).
 * ------------------------------------------------------------------------- */
int vkm_pprof_from_report(const cJSON *report, const char *type /* "alloc"|"inuse"|NULL=all */,
                          unsigned char **out, size_t *out_len);
int vkm_folded_from_report(const cJSON *report, const char *type, char **out, size_t *out_len);

#endif
