/* segment.h - the shared-memory segment: the one thing the recorder (in the
 * host) and the agent (its own process) both see.
 *
 * The recorder creates the segment at start-up (a memfd on Linux), maps it,
 * and hands the descriptor to the agent over a Unix socket; then it closes
 * its descriptor and keeps only the mapping. Everything the agent needs is
 * in here: the per-thread counter blocks, the event rings, the totals of
 * exited threads, the published module list, the runtime API's pool
 * handles, the configuration the recorder read, and how the process ended.
 *
 * The two sides map the segment at different addresses, so nothing in it
 * holds a pointer: links are byte offsets from the start of the segment
 * (0 = none). The recorder turns an offset into a pointer with
 * vkm_seg_at(); the agent does the same against its own mapping.
 *
 * Who writes what: the recorder writes everything except the fields marked
 * "agent" (ring tails, a thread state's DEAD -> FREE hand-back, the
 * agent's own socket path). The agent only reads the rest.
 *
 * Versioning: VKM_SEG_MAGIC and VKM_SEG_VERSION are checked by the agent
 * before it reads anything else; a recorder and an agent of different
 * versions refuse each other with a message naming both versions. Any
 * change to a structure in this file bumps the version.
 */
#ifndef VKM_SEGMENT_H
#define VKM_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "vkm.h"

#define VKM_SEG_MAGIC 0x31474553204d4b56ull /* "VKM SEG1", little-endian */
#define VKM_SEG_VERSION 6u
/* Size of the segment. Pages cost nothing until touched (what a process
 * touches is its thread states, the rings its threads use and the pools
 * it registers), but the address space counts against RLIMIT_AS, which
 * programs and test harnesses set: 64 MiB, of which 8 MiB for structures
 * and 56 MiB for ring buffers (896 threads' rings in sampled mode, 224 in
 * exact mode; a thread without a ring of its own emits through the shared
 * one, made at start-up). */
#define VKM_SEG_SIZE ((uint64_t)64 << 20)
/* The size under a finite RLIMIT_AS (`ulimit -v`, which programs and test
 * harnesses set to see how little memory a program needs): the same 8 MiB
 * for structures and 4 MiB of ring buffers (64 threads' rings in sampled
 * mode, 16 in exact mode; the others share one), so the program keeps
 * 52 MiB more of its address space. h->size says which. */
#define VKM_SEG_SIZE_SMALL ((uint64_t)12 << 20)
VKM_INLINE int vkm_seg_size_ok(uint64_t size) { return size == VKM_SEG_SIZE || size == VKM_SEG_SIZE_SMALL; }
#define VKM_SEG_RING_BASE ((uint64_t)8 << 20)
#define VKM_SEG_THREADS_MAX 4096       /* thread states; more threads count into `retired` */
#define VKM_SEG_MODULES_BYTES (256 * 1024)
#define VKM_SEG_NOTES_BYTES 4096
#define VKM_SEG_ARGV_BYTES 8192

/* ---------------------------------------------------------------------------
 * Thread state (one per live thread; reused after the agent drains a dead
 * thread's ring). Aligned and padded to 128 bytes (two cache lines, the
 * adjacent-line prefetcher's unit): neighbouring states are written by
 * different threads on every call, and must not share a line.
 * ------------------------------------------------------------------------- */
enum { VKM_TS_FREE = 0, VKM_TS_LIVE = 1, VKM_TS_DEAD = 2 };

typedef struct __attribute__((aligned(128))) vkm_tstate_s {
  vkm_counters_t c;           /* owner writes, agent reads through
                                 vkm_tstate_counters: c.alloc_count is not
                                 kept (it is the sum of the histogram),
                                 c.size_hist is kept by leading zeros
                                 (below), and c.alloc_bytes and
                                 c.free_usable hold only what was counted
                                 up to their countdown's last re-arm */
  /* A thread's histogram is indexed by the leading zeros of the requested
   * size, which x86-64's lzcnt and arm64's clz give in one instruction with
   * no special case for 0 (the size class, 63 minus that, takes three more
   * on the fast path): slot z of c.size_hist counts requests with z leading
   * zeros, for z in 0..63, and hist_zero, right after it, the requests of 0
   * bytes (64 leading zeros). vkm_tstate_counters turns it round. */
  uint64_t hist_zero;
  /* Two counters are countdowns, so that the fast path's one subtraction
   * both counts and tests: requested bytes count down to the next sample
   * (req_left), freed usable bytes to the next peak check (free_left).
   * Their totals are c.alloc_bytes + (req_armed - req_left) and
   * c.free_usable + (free_armed - free_left). The owner re-arms under
   * arm_seq (odd while it does). */
  int64_t req_left, req_armed;
  int64_t free_left, free_armed;
  uint64_t arm_seq;
  size_t pending;             /* owner only: malloc's/realloc's request while the real call runs */
  size_t pending_old;         /* owner only: realloc's old usable size, likewise */
  uint64_t rng;               /* owner only: xorshift64* state */
  uint64_t sample_seq;        /* owner only: sample ids are (index << 40) | seq */
  uint32_t index;             /* position in the registry, stable */
  uint32_t os_tid;
  int status;                 /* VKM_TS_*; atomic. DEAD -> FREE: agent */
  int pad_;
  uint64_t ring_off;          /* the thread's ring (vkm_seg_ring_t), 0 until its first event; kept across reuse */
  uint64_t next_off;          /* registry list; immutable once published */
} vkm_tstate_t;
/* The histogram's 65 slots are contiguous (vkm_hist_slot). */
_Static_assert(offsetof(vkm_tstate_t, hist_zero) == offsetof(vkm_tstate_t, c.size_hist) + VKM_HIST_BUCKETS * sizeof(uint64_t),
               "hist_zero follows c.size_hist");

/* ---------------------------------------------------------------------------
 * Event ring: a power-of-two byte buffer of variable-length records (a
 * vkm_event_t header plus payload, 8-byte aligned), single producer, the
 * agent the single consumer. A record that would straddle the end is
 * preceded by a pad record (type 0) that fills the rest of the buffer.
 * ------------------------------------------------------------------------- */
typedef struct vkm_seg_ring_s {
  uint64_t head;     /* producer: bytes written; release store */
  uint64_t tail;     /* agent: bytes consumed; release store */
  uint64_t mask;     /* buffer bytes - 1 */
  uint64_t buf_off;  /* the buffer */
  int woke;          /* producer asked for an early drain (agent clears) */
  int pad_;
} vkm_seg_ring_t;
#define VKM_REC_ALIGN(n) (((n) + 7u) & ~(size_t)7u)

/* ---------------------------------------------------------------------------
 * Loaded modules, for symbolisation in the agent. Published by the
 * recorder at start-up and after dlopen/dlclose; a sequence count (odd
 * while writing) lets the agent take a consistent copy.
 * ------------------------------------------------------------------------- */
typedef struct vkm_seg_module_s {
  uint64_t bias;          /* load bias (dlpi_addr) */
  uint64_t lo, hi;        /* runtime extent of the PT_LOAD segments */
  uint32_t path_off;      /* into the modules' string area */
  uint32_t path_len;
} vkm_seg_module_t;

typedef struct vkm_seg_modules_s {
  uint64_t seq;           /* odd while the recorder rewrites the list */
  uint32_t count;
  uint32_t strings_used;
  /* VKM_SEG_MODULES_MAX vkm_seg_module_t (count of them used), then the
   * strings (strings_used bytes), to the end of VKM_SEG_MODULES_BYTES */
} vkm_seg_modules_t;
#define VKM_SEG_MODULES_MAX 2048

/* How the process ended, as far as the recorder saw it (the agent adds
 * what the kernel says: a signal, an _exit). */
enum { VKM_END_RUNNING = 0, VKM_END_EXIT = 1 /* exit() or return from main: code in exit_code */ };

/* ---------------------------------------------------------------------------
 * The header, at offset 0.
 * ------------------------------------------------------------------------- */
typedef struct vkm_seg_hdr_s {
  uint64_t magic;            /* VKM_SEG_MAGIC */
  uint32_t version;          /* VKM_SEG_VERSION */
  uint32_t hdr_size;         /* sizeof(vkm_seg_hdr_t) */
  uint64_t size;             /* bytes of the segment */
  uint64_t bump;             /* atomic: bytes handed out from the arena (offset of its end) */
  int32_t pid, ppid;
  uint64_t start_ns;         /* CLOCK_MONOTONIC at load (or fork) */
  uint64_t start_unix_ms;
  uint32_t forked;           /* this segment is a forked child's */
  uint32_t pad3_;
  vkm_config_t config;       /* as the recorder read it */
  char platform[16];         /* "linux", "darwin" */
  char allocator[32];        /* the allocator behind the shim: "glibc", "other", "mimalloc" */
  uint32_t usable_mode;      /* enum vkm_usable_mode */
  uint32_t argc;
  char argv[VKM_SEG_ARGV_BYTES]; /* NUL-separated */

  /* Totals: exited threads' counters, folded under a sequence count. */
  uint64_t retire_seq;       /* odd while a fold is under way */
  int retire_lock;
  int pad0_;
  vkm_counters_t retired;
  int64_t live_peak;         /* atomic: the live heap's high-water mark, as the peak checks saw it */
  uint32_t threads_live, threads_max;
  uint64_t threads_total;
  uint32_t registry_count;   /* states ever created */
  uint32_t pad1_;
  uint64_t registry_off;     /* atomic: newest thread state; list via next_off */
  uint64_t orphan_ring_off;  /* ring of threads past their exit destructor */
  int orphan_lock;
  uint32_t producers_waiting; /* exact mode: producers waiting on a full ring */
  uint32_t wake_seq;         /* futex (shared): bumped when a ring passes half full */
  uint32_t pad2_;
  uint64_t dropped;          /* events dropped (full ring in sampled mode) */
  uint64_t sampled_live;     /* sampled allocations in the recorder's address table */
  uint64_t self_bytes;       /* what the recorder maps for itself in the host (segment pages touched are extra) */
  uint64_t pools_off;        /* atomic: newest pool handle (valkmem_pool_t); list via next_off */

  /* Modules: offset of a vkm_seg_modules_t area of VKM_SEG_MODULES_BYTES. */
  uint64_t modules_off;

  /* Messages the recorder would have printed (unknown variables, invalid
   * values): it writes nothing to the program's stderr, the agent says
   * them. NUL-separated, appended under notes_lock. */
  int notes_lock;
  uint32_t notes_used;
  char notes[VKM_SEG_NOTES_BYTES];

  /* The end. */
  int32_t end_state;         /* VKM_END_* */
  int32_t exit_code;
  uint64_t end_ns;

  /* agent: the worker's socket that the recorder's exit handler reports
   * to, so that a report exists once the process has exited. Empty: not
   * known yet (the exit handler waits for it, 2 s at most); "-": the
   * worker has no socket (do not wait); "!": the worker has stopped while the process lives on
   * (nobody drains the rings: exact mode must not wait for it). */
  char agent_sock[108];
} vkm_seg_hdr_t;

/* One thread's counters as totals (the countdowns folded in), consistent
 * with its re-arms: the owner thread, the recorder's peak check and the
 * agent all read a state through this. Counters the fast path writes
 * change under the read; each value is one it had. */
static inline void vkm_tstate_counters(const vkm_tstate_t *ts, vkm_counters_t *out) {
  for (int tries = 0;; tries++) {
    uint64_t s1 = __atomic_load_n(&ts->arm_seq, __ATOMIC_ACQUIRE);
    const uint64_t *src = (const uint64_t *)&ts->c;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(vkm_counters_t) / sizeof(uint64_t); i++) dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    int64_t ra = __atomic_load_n(&ts->req_armed, __ATOMIC_RELAXED), rl = __atomic_load_n(&ts->req_left, __ATOMIC_RELAXED);
    int64_t fa = __atomic_load_n(&ts->free_armed, __ATOMIC_RELAXED), fl = __atomic_load_n(&ts->free_left, __ATOMIC_RELAXED);
#if defined(__SANITIZE_THREAD__)
    uint64_t s2 = __atomic_load_n(&ts->arm_seq, __ATOMIC_SEQ_CST);
#else
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint64_t s2 = __atomic_load_n(&ts->arm_seq, __ATOMIC_RELAXED);
#endif
    /* A re-arm is a few stores; an owner stopped inside one (a process
     * killed there) must not stop the reader: after many tries the
     * figures read stand. */
    if ((s1 == s2 && !(s1 & 1)) || tries >= 1000) {
      for (int b = 0; b < VKM_HIST_BUCKETS / 2; b++) { /* leading zeros to size classes */
        uint64_t t = out->size_hist[b];
        out->size_hist[b] = out->size_hist[VKM_HIST_BUCKETS - 1 - b];
        out->size_hist[VKM_HIST_BUCKETS - 1 - b] = t;
      }
      out->size_hist[0] += __atomic_load_n(&ts->hist_zero, __ATOMIC_RELAXED);
      out->alloc_bytes += (uint64_t)(ra - rl);
      out->free_usable += (uint64_t)(fa - fl);
      return;
    }
  }
}

/* Each side's own mapping of the segment, and an offset made a pointer
 * into it. */
extern vkm_seg_hdr_t *vkm_seg;
static inline void *vkm_seg_at(uint64_t off) { return off ? (void *)((char *)vkm_seg + off) : (void *)0; }

/* An agent's socket is named after its tree's root: agent-PID-NONCE.sock,
 * PID in 10 digits, NONCE in 16 hex digits (interpose/link.c; `valkmem
 * run` and `gate` link one such name to theirs). The root's pid, or -1 for
 * a path named otherwise. */
static inline long vkm_sock_root(const char *path) {
  const char *b = path;
  for (const char *c = path; *c; c++)
    if (*c == '/') b = c + 1;
  static const char head[] = "agent-", tail[] = ".sock";
  long pid = 0;
  for (int i = 0; i < 6; i++)
    if (b[i] != head[i]) return -1;
  for (int i = 6; i < 16; i++) {
    if (b[i] < '0' || b[i] > '9') return -1;
    pid = pid * 10 + (b[i] - '0');
  }
  if (b[16] != '-') return -1;
  for (int i = 17; i < 33; i++)
    if (!((b[i] >= '0' && b[i] <= '9') || (b[i] >= 'a' && b[i] <= 'f'))) return -1;
  for (int i = 0; i < 6; i++)
    if (b[33 + i] != tail[i]) return -1; /* the terminating NUL included */
  return pid;
}

/* What a recorder sends the agent with its segment and pidfd. */
#define VKM_HELLO_MAGIC 0x4f4c4c45484d4b56ull /* "VKMHELLO" */
typedef struct vkm_hello_s {
  uint64_t magic;
  uint32_t version;   /* VKM_SEG_VERSION */
  int32_t pid;
  int32_t ppid;
  uint32_t kind;      /* VKM_HELLO_* */
  int32_t port;       /* VKM_HELLO_HTTP: the port the client came in on */
  int32_t pad_;
} vkm_hello_t;
enum { VKM_HELLO_SEGMENT = 1, /* fds: segment, pidfd */
       VKM_HELLO_FINAL = 2, /* to a worker: the process is exiting; reply 1 byte when the report is out */
       VKM_HELLO_HTTP = 3 /* agent-internal, worker to worker: fd = a client (port: where it came in);
                             then a uint32 length and the request bytes already read */ };

#endif
