/* vkm.h - the vocabulary that the recorder (interpose/, in the host) and
 * the agent (agent/, its own process) share: counters, events and the
 * configuration, as they lie in the shared segment (segment.h), and the
 * few helpers both sides implement for themselves.
 *
 * Data flows one way: application threads write per-thread counters and
 * per-thread event rings in the segment; the agent process reads counters
 * with relaxed loads and drains rings. Nothing here is public API: the
 * public header is include/valkmem.h. Internal non-static symbols are
 * prefixed vkm_ and are hidden (-fvisibility=hidden); only VKM_EXPORT
 * symbols leave the .so.
 */
#ifndef VKM_H
#define VKM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define VKM_EXPORT __attribute__((visibility("default")))
#define VKM_HIDDEN __attribute__((visibility("hidden")))
#define vkm_likely(x) __builtin_expect(!!(x), 1)
#define vkm_unlikely(x) __builtin_expect(!!(x), 0)
#define VKM_COLD __attribute__((noinline, cold))

/* Invariants the code relies on, checked in debug builds (VKM_ASSERTS: the
 * Debug build type and the sanitizer passes) and compiled out otherwise.
 * A failure says which invariant, where, and aborts. Safe in a hook: no
 * allocation, no stdio. */
#if VKM_ASSERTS
void vkm_assert_fail(const char *what, const char *file, int line) __attribute__((noreturn, cold));
#define VKM_ASSERT(cond) ((cond) ? (void)0 : vkm_assert_fail(#cond, __FILE__, __LINE__))
#else
#define VKM_ASSERT(cond) ((void)0)
#endif
#define VKM_NOINLINE __attribute__((noinline))
#define VKM_INLINE static inline __attribute__((always_inline))

/* Counters are written only by their owning thread and read by the agent.
 * Relaxed atomics compile to plain loads/stores on x86-64 and arm64 but keep
 * the C11 memory model (and TSan) honest about the cross-thread read. */
#define VKM_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define VKM_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define VKM_BUMP(p, d) VKM_STORE((p), VKM_LOAD(p) + (d))
/* The wrappers' own counter updates: a plain add, which x86-64 does as one
 * read-modify-write instruction (VKM_BUMP takes three). Only the owning
 * thread writes; the agent's relaxed loads of an aligned 64-bit word see
 * either value on every platform valkmem supports. The hot path is not
 * TSan-instrumented (CMakeLists.txt), so this is the one place the formal
 * race is accepted (with the sampling filter's byte read in free()), for
 * about 14 instructions per malloc/free pair. */
#define VKM_OWN_ADD(lval, d) ((lval) += (d))

/* ---------------------------------------------------------------------------
 * Counters
 * ------------------------------------------------------------------------- */

#define VKM_HIST_BUCKETS 64 /* log2 size classes: bucket b holds requested sizes in [2^b, 2^(b+1)); sizes 0 and 1 share bucket 0 */

typedef struct vkm_counters_s {
  uint64_t alloc_count;    /* successful allocations (malloc, calloc, memalign family, realloc(NULL, n)) */
  uint64_t free_count;     /* frees of non-NULL pointers (free, realloc(p, 0)) */
  uint64_t realloc_count;  /* every realloc/reallocarray call that did not fail */
  uint64_t failed_count;   /* allocation calls that returned NULL (or an error) for a non-zero request */
  uint64_t alloc_bytes;    /* requested bytes (malloc n, calloc a*b, realloc's new size) */
  uint64_t alloc_usable;   /* usable bytes handed out, from the real allocator */
  uint64_t free_usable;    /* usable bytes given back */
  uint64_t mmap_count, munmap_count, mremap_count;
  uint64_t mmap_bytes, munmap_bytes; /* mremap adds growth to mmap_bytes, shrink to munmap_bytes */
  uint64_t size_hist[VKM_HIST_BUCKETS]; /* allocation counts per log2 class of the requested size */
} vkm_counters_t;

/* Agent: sum of all live threads plus the retired total, read consistently
 * with respect to thread exit (a dying thread is never counted twice or
 * zero times). */
void vkm_counters_sum(vkm_counters_t *out);

/* The live heap's high-water mark (usable bytes). A thread checks it each
 * time it has freed VKM_LIVE_QUANTUM bytes since its last check, and when
 * it ends: the live heap, summed exactly over every thread, raises the
 * peak. The heap peaks just before it shrinks, and between the true peak
 * and the next check each thread has freed less than a quantum, so the
 * mark is low by at most (concurrent threads x quantum), never high.
 * Exact mode checks at every free. */
#define VKM_LIVE_QUANTUM (64 * 1024)
int64_t vkm_live_peak(void);
uint64_t vkm_live_peak_error_bound(void); /* max concurrent threads x quantum */
uint32_t vkm_threads_live(void);
uint32_t vkm_threads_max(void);
uint64_t vkm_threads_total(void);         /* threads ever seen */

/* ---------------------------------------------------------------------------
 * Events: per-thread single-producer rings, drained by the agent.
 * ------------------------------------------------------------------------- */

enum vkm_ev_type {
  VKM_EV_ALLOC = 1,   /* sampled allocation: id, a=requested size, b=usable size, c=address; frames follow */
  VKM_EV_FREE,        /* free of a sampled allocation: id (same as its ALLOC), c=address */
  VKM_EV_GC_BEGIN,    /* runtime API: the rest are defined in interpose/api.c and agent/runtime.c */
  VKM_EV_GC_END,
  VKM_EV_POOL_REGISTER,
  VKM_EV_POOL_RESET,
  VKM_EV_POOL_OVERFLOW,
  VKM_EV_FRAME,
  VKM_EV_ZONE_BEGIN,
  VKM_EV_ZONE_END,
  VKM_EV_EVAL_BEGIN,
  VKM_EV_EVAL_END,
  VKM_EV_ROOT,
  VKM_EV_MARK,
  VKM_EV_MAX
};

/* One record in a ring. `extra_len` bytes of payload follow the header,
 * padded to 8 bytes: for ALLOC, nframes return addresses (uintptr_t); for
 * named runtime events, a NUL-terminated name. */
typedef struct vkm_event_s {
  uint16_t type;
  uint16_t nframes;
  uint16_t extra_len;
  uint16_t pad_;
  uint32_t thread;      /* index of the producing thread state */
  uint32_t os_tid;      /* gettid() of the producer, cached */
  uint64_t id;          /* sample id, or pool id for pool events */
  uint64_t a, b, c;     /* payload, meaning per type */
  uint64_t t_ns;        /* CLOCK_MONOTONIC, ns; 0 in ALLOC/FREE events: the
                           agent dates samples by its own tick epoch, and a
                           clock read per sample would cost more than the
                           rest of the event */
} vkm_event_t;

/* Emit an event from the calling (application) thread. Never blocks in
 * sampled mode: a full ring drops the event and counts it. In exact mode
 * (VALKMEM_SAMPLE_BYTES=1) the producer waits for the agent instead.
 * Safe to call from any thread at any time; a no-op while valkmem is off.
 * ev->thread and ev->os_tid are filled in here, and ev->t_ns when 0
 * (except for ALLOC and FREE events). */
void vkm_emit(vkm_event_t *ev, const void *extra, size_t extra_len);

/* Agent: drain every ring, calling fn for each event in per-thread order.
 * Returns the number of events drained. Only one thread may drain. */
typedef void (*vkm_event_fn)(const vkm_event_t *ev, const void *extra, void *ud);
size_t vkm_rings_drain(vkm_event_fn fn, void *ud);
uint64_t vkm_dropped_events(void);

/* ---------------------------------------------------------------------------
 * Configuration (read once at start-up from VALKMEM_* in one table,
 * interpose/config.c).
 * ------------------------------------------------------------------------- */

typedef struct vkm_config_s {
  uint64_t sample_bytes;     /* VALKMEM_SAMPLE_BYTES, default 512 KiB; 1 = exact; 0 = sampling off */
  uint32_t max_frames;       /* VALKMEM_MAX_FRAMES, default 64 */
  bool exact;                /* sample_bytes == 1 */
  bool follow_fork;          /* VALKMEM_FOLLOW_FORK, default on */
  bool follow_exec;          /* VALKMEM_FOLLOW_EXEC, default on */
  bool http;                 /* VALKMEM_HTTP, default on */
  bool enabled;              /* VALKMEM_DISABLE turns tracking off entirely */
  char report[1024];         /* VALKMEM_REPORT, with %p not yet expanded */
  char listen[256];          /* VALKMEM_LISTEN, default 127.0.0.1:0 */
  char token[256];           /* VALKMEM_TOKEN */
  char url_file[1024];       /* VALKMEM_URL_FILE */
  char allocator[32];        /* VALKMEM_ALLOCATOR: "" (the real next malloc) or "mimalloc" */
  uint32_t top_sites;        /* VALKMEM_TOP_SITES, default 50 */
  uint32_t tick_ms;          /* VALKMEM_TICK_MS, default 100 */
  uint32_t checkpoint_ms;    /* VALKMEM_CHECKPOINT_MS: rewrite the report this often (0 = only at exit); default 10000 when a report is set (a checkpoint with full 10 h history costs ~55 ms) */
  bool quiet;                /* VALKMEM_QUIET: no URL line, no warnings */
  bool agent;                /* VALKMEM_AGENT, default on: 0 = count only, no agent process */
  bool fast_path;            /* VALKMEM_FAST_PATH, default on: 0 = glibc's calls go the general way (tests) */
  bool live_sites;           /* VALKMEM_LIVE_SITES: reports list every site holding memory (and TOP_SITES by bytes and by count allocated) */
} vkm_config_t;

/* The recorder reads it from the environment (config.c) and copies it into
 * the segment; the agent takes that copy. */
extern vkm_config_t vkm_config;
void vkm_config_load(void);

/* ---------------------------------------------------------------------------
 * Process facts and lifecycle
 * ------------------------------------------------------------------------- */

const char *vkm_platform(void);  /* "linux" or "darwin" */
int vkm_argv(char ***argv_out);  /* argc; argv as the recorder captured it */
uint64_t vkm_started_at_unix_ms(void);
uint64_t vkm_now_ns(void);       /* CLOCK_MONOTONIC (one clock for every process) */
uint64_t vkm_start_ns(void);     /* monotonic time of load */
bool vkm_is_report_owner(void);  /* this process may write VALKMEM_REPORT (see init.c) */

/* Recorder: the calling thread's re-entry guard. While it is held, every
 * wrapper on this thread passes straight through to the real allocator
 * uncounted. */
void vkm_guard_enter(void);
void vkm_guard_leave(void);

/* Agent: says `valkmem: <level>: <msg>` on its diagnostics channel. The
 * recorder says nothing itself (it writes nothing to the program's stderr):
 * it leaves notes in the segment for the agent (vkm_seg_note). */
void vkm_say(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Agent: its own memory (libc's, in its own process). */
void *vkm_malloc(size_t n);
void *vkm_calloc(size_t n, size_t m);
void *vkm_realloc(void *p, size_t n);
char *vkm_strdup(const char *s);
void vkm_free(void *p);

/* Recorder: what it maps for itself in the host, outside the segment. */
void vkm_self_track(int64_t delta);

#endif
