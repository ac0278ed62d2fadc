/* hot.h - state shared by the files of the recorder (interpose/ only).
 *
 * Per-thread state lives in a vkm_tstate_t in the shared segment and is
 * never freed: the agent may read it at any time. Its owner thread reaches
 * it through one initial-exec TLS block. At thread exit the counters are
 * folded into the retired total and the state goes back to the registry
 * for reuse once the agent has drained its ring.
 */
#ifndef VKM_HOT_H
#define VKM_HOT_H

#include "platform.h"
#include "segment.h"
#include "vkm.h"

/* The thread state (vkm_tstate_t) lives in the shared segment: see
 * segment.h. */

/* The wrappers' symbol names (wrap.c). ELF: the allocator's own names,
 * which the preloaded library defines first. Mach-O: an image must not
 * define the names it interposes (its own references, the __interpose
 * table's included, would bind to itself), so the wrappers are vkm_wrap_*
 * and wrap_darwin.c's __DATA,__interpose table pairs each with the name it
 * replaces. A rename only: the code is the same. */
#ifdef __APPLE__
#define VKM_FN(name) vkm_wrap_##name
#else
#define VKM_FN(name) name
#endif

/* One TLS load on the fast path: `ts` is the thread's state only when
 * the fast path may use it (attached, not re-entered, and the allocator is
 * glibc's, whose chunk header it reads), NULL otherwise, so a single test
 * sends every other case to the slow path. */
typedef struct vkm_tls_s {
  vkm_tstate_t *ts;           /* the fast path's view: state or NULL */
  vkm_tstate_t *other;        /* the same for any other allocator (jemalloc,
                                 tcmalloc, mimalloc): the state when attached
                                 and not re-entered, else NULL; read only
                                 once ts was NULL */
  vkm_tstate_t *state;        /* this thread's state; NULL until attached and after exit */
  int guard;                  /* re-entry depth: >0 means pass through */
  int exiting;                /* past the thread-exit destructor */
  int stateless;              /* no state could be had (out of memory) */
} vkm_tls_t;

#ifdef __APPLE__
/* Mach-O thread-local variables are made by dyld on a thread's first touch,
 * with malloc - which is ours: a __thread block would recurse into itself.
 * The block is reached through a pthread key instead (a slot in the
 * thread's own TSD array, no allocation; darwin.c). */
vkm_tls_t *vkm_tls_darwin(void);
#define vkm_tls (*vkm_tls_darwin())
#else
extern __thread vkm_tls_t vkm_tls __attribute__((tls_model("initial-exec")));
#endif

/* A call that passes through without a state is still counted, straight
 * into the retired total, when the thread is past its exit destructor or
 * no state could be allocated for it; not when valkmem itself re-entered. */
VKM_INLINE int vkm_count_stateless(void) { return (vkm_tls.exiting | vkm_tls.stateless) && !vkm_tls.guard; }

/* The calling thread's state whether or not it holds the guard (NULL when
 * not attached). Use this, not vkm_tls.ts, outside the wrappers. */
VKM_INLINE vkm_tstate_t *vkm_self_state(void) { return vkm_tls.state; }
/* Allocations made by a thread so far (the sum of its size classes). */
uint64_t vkm_state_alloc_count(const vkm_tstate_t *ts);

/* Becomes 1 once the real functions are resolved and tracking may start. */
/* Hidden, so the hot path reaches them PC-relative rather than via the GOT. */
extern int vkm_ready VKM_HIDDEN;
extern int vkm_sampling VKM_HIDDEN;       /* sample_bytes != 0 */
extern vkm_real_t vkm_real VKM_HIDDEN;
extern int vkm_usable_mode VKM_HIDDEN;
/* glibc's allocator and, on x86-64, a CPU with LZCNT: the glibc fast paths
 * may be taken (vkm_tls.ts is set); otherwise every thread goes the other
 * allocators' way (vkm_tls.other). Fixed before any thread attaches. */
extern int vkm_fast_path VKM_HIDDEN;
extern int vkm_constructed VKM_HIDDEN;     /* our constructor has started */

/* A copy of the process made without fork() - a raw clone or clone3
 * without CLONE_VM, as sandboxes and zygotes make - runs no atfork handler,
 * so it would go on writing its parent's segment: counters, rings, the
 * address table. The kernel zeroes vkm_alive in every copy (platform.h);
 * fork_child sets it again, and fork_prepare marks a fork under way so
 * that a fork child's slow paths before that do not mistake it for a raw
 * copy. The slow paths check it (the fast path stays as it is: a copy's
 * first calls, up to its first slow path, still count into its parent);
 * a copy then stops recording (vkm_stop_copy). */
extern volatile uint8_t *vkm_alive VKM_HIDDEN;
extern volatile int vkm_forking VKM_HIDDEN;
VKM_INLINE int vkm_is_copy(void) { return vkm_alive && !*vkm_alive && !vkm_forking; }
void vkm_stop_copy(void);

/* thread.c */
vkm_tstate_t *vkm_thread_attach(void);       /* slow path: get a state for this thread, or NULL */
void vkm_peak_check(vkm_tstate_t *ts, size_t u); /* a free of u bytes made it due: re-arm, raise the peak to the heap before it */
void vkm_count_orphan(int kind, size_t req, size_t usable); /* counts after thread exit */
void vkm_thread_fork_prepare(void);
void vkm_thread_fork_parent(void);
void vkm_thread_fork_child(void);
vkm_tstate_t *vkm_registry_head(void);

/* sample.c */
void vkm_sample_init(void);
void vkm_sample_warm_up(void);  /* from the constructor */
void vkm_sample_find_libgcc(void); /* libgcc's unwinder, if the program has it loaded */
void vkm_sample_reset_interval(vkm_tstate_t *ts);
void vkm_sample_alloc(vkm_tstate_t *ts, void *p, size_t req, size_t usable);
void vkm_sample_free(vkm_tstate_t *ts, void *p);
/* realloc: take p out of the table before the real realloc, so a concurrent
 * malloc elsewhere cannot see its address reused while it is still listed;
 * put it back if the realloc fails. */
uint64_t vkm_sample_take(void *p);
void vkm_sample_put_back(void *p, uint64_t id);
void vkm_sample_emit_free(vkm_tstate_t *ts, void *p, uint64_t id);
void vkm_sample_fork_prepare(void);
void vkm_sample_fork_parent(void);
void vkm_sample_fork_child(void);
#define VKM_FILTER_BITS 16
/* Counting filter in front of the address table; static so that free()
 * reaches it without loading a pointer. The slots that the bootstrap
 * buffer maps to are pinned (255), so free()'s fast path needs no bootstrap
 * test of its own: those pointers take the slow path, which has one. */
extern uint8_t vkm_sample_filter[1u << VKM_FILTER_BITS] VKM_HIDDEN;

/* Blocks are 16-byte aligned: the next 16 address bits spread well enough
 * for a filter whose collisions only cost a table lookup. */
VKM_INLINE size_t vkm_filter_slot(const void *p) {
  return (size_t)(((uintptr_t)p >> 4) & ((1u << VKM_FILTER_BITS) - 1));
}
/* A plain byte read, which compiles to one compare with memory; only the
 * wrappers call it (see VKM_OWN_ADD for why the formal race is accepted
 * there). */
VKM_INLINE int vkm_maybe_sampled(const void *p) { return vkm_sample_filter[vkm_filter_slot(p)] != 0; }

/* unwind.c: the fast stack walker that capture() (sample.c) tries first.
 * vkm_unwind fills frames[0..max) with return addresses, frames[0] being
 * the one into its caller, and returns their number - the same frames as
 * _Unwind_Backtrace called from that caller - or -1 when some frame is
 * beyond it (then walk with _Unwind_Backtrace). No system call, no
 * allocation, no lock. */
void vkm_unwind_init(void);  /* at sampler init: maps its rule cache */
void vkm_unwind_flush(void); /* an object was unloaded: forget every rule */
int vkm_unwind(void **frames, int max, int *partial); /* -1: not sure; *partial frames are right */

/* ring.c */
void vkm_rings_init(void);
void vkm_rings_fork_child(void);

/* seg.c: the shared segment (segment.h). vkm_seg is NULL until created. */
extern vkm_seg_hdr_t *vkm_seg VKM_HIDDEN;
int vkm_seg_create(void);                 /* 0 or -errno; keeps the descriptor for vkm_seg_take_fd */
int vkm_seg_take_fd(void);                /* the segment's descriptor, once; -1 when none */
uint64_t vkm_seg_alloc(size_t n, size_t align); /* small structures; offset, 0 when full */
uint64_t vkm_seg_alloc_ring(size_t n);    /* ring buffers (not copied at fork); offset or 0 */
void vkm_seg_note(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* for the agent to say */
void vkm_env_set(const char *name, const char *value); /* setenv, off the program's heap (link.c) */
void vkm_seg_publish_modules(void);       /* at start-up */
void vkm_seg_modules_check(void);         /* a sampler: publish again if objects were loaded or unloaded */
void vkm_seg_fork_prepare(void);
void vkm_seg_fork_parent(void);
int vkm_seg_fork_child(void);             /* the copy replaces the parent's segment here; -1: the child stopped counting */

/* link.c: the recorder's link to the agent process. */
void vkm_link_start(void);                /* constructor: hand the segment over (spawning the agent if needed) */
void vkm_link_fork_child(void);           /* a forked child hands its own segment over */
void vkm_link_at_exit(int code);          /* exit(): record the code; wait for the report if one is due */

/* init.c */
/* dlsym asks for nothing on glibc 2.36; sanitizer runtimes allocate while
 * they start, before our constructor (VKM_DEFER_INIT), and need more. */
#if VKM_DEFER_INIT
#define VKM_BOOT_SIZE (256 * 1024)
#else
#define VKM_BOOT_SIZE (4 * 1024)
#endif
extern unsigned char vkm_boot_buf[VKM_BOOT_SIZE] VKM_HIDDEN;
void vkm_filter_pin_bootstrap(void); /* at init, and after the filter is cleared */
VKM_INLINE int vkm_is_bootstrap(const void *p) {
  return (uintptr_t)p - (uintptr_t)vkm_boot_buf < VKM_BOOT_SIZE;
}
void vkm_init_real(void);

/* ---------------------------------------------------------------------------
 * Countdowns. Each is one read-modify-write and one branch on the fast path:
 * a subtraction whose result turning negative says the limit is passed.
 * ------------------------------------------------------------------------- */
/* x -= d; returns nonzero when x became negative. On x86-64 this is one
 * `sub reg, mem` and a `js` (compilers otherwise load, subtract, store and
 * compare). */
VKM_INLINE int vkm_countdown(int64_t *x, uint64_t d) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  int neg;
  __asm__("subq %2, %0" : "+m"(*x), "=@ccs"(neg) : "r"(d));
  return neg;
#else
  *x = (int64_t)((uint64_t)*x - d);
  return *x < 0;
#endif
}

/* x += d as one read-modify-write instruction on x86-64 (left alone, the
 * compiler folds a neighbouring subtraction into an lea and splits the
 * add into a load and a store). */
VKM_INLINE void vkm_add(uint64_t *x, uint64_t d) {
#if defined(__x86_64__)
  __asm__("addq %1, %0" : "+m"(*x) : "r"(d));
#else
  *x += d;
#endif
}

/* Sampling: counts a request of n bytes into the thread's requested total
 * (req_left is its countdown, segment.h); nonzero when the request passes
 * the next sample point. Exact mode keeps the countdown at -1 (every
 * request is due); counting-only at INT64_MAX. */
VKM_INLINE int vkm_req_due(vkm_tstate_t *ts, size_t n) { return vkm_countdown(&ts->req_left, n); }

/* The peak of the live heap: counts a free of u usable bytes into the
 * thread's freed total; nonzero when the thread has freed VKM_LIVE_QUANTUM
 * bytes since its last peak check. The live heap only peaks just before
 * it shrinks, so checking on the way down (thread.c) is enough: the
 * allocating side needs no test at all. */
VKM_INLINE int vkm_free_due(vkm_tstate_t *ts, size_t u) { return vkm_countdown(&ts->free_left, u); }

/* Re-arming a countdown: its consumed part moves into the counter's base
 * under arm_seq, so that a reader never sees a count twice or not at all.
 * Owner thread only. */
VKM_INLINE void vkm_arm_begin(vkm_tstate_t *ts) {
  __atomic_store_n(&ts->arm_seq, ts->arm_seq | 1, __ATOMIC_RELAXED); /* odd (even if a fork copied it odd) */
  __atomic_thread_fence(__ATOMIC_RELEASE);
}
VKM_INLINE void vkm_arm_end(vkm_tstate_t *ts) { __atomic_store_n(&ts->arm_seq, (ts->arm_seq | 1) + 1, __ATOMIC_RELEASE); }
VKM_INLINE void vkm_req_rearm(vkm_tstate_t *ts, int64_t next) {
  vkm_arm_begin(ts);
  VKM_STORE(&ts->c.alloc_bytes, ts->c.alloc_bytes + (uint64_t)(ts->req_armed - ts->req_left));
  VKM_STORE(&ts->req_armed, next);
  VKM_STORE(&ts->req_left, next);
  vkm_arm_end(ts);
}
/* The freed bytes between peak checks: VKM_LIVE_QUANTUM, or none in exact
 * mode, where every free is checked (it takes the slow path anyway) and
 * the peak is exact. */
VKM_INLINE int64_t vkm_peak_quantum(void) { return vkm_config.exact ? 0 : VKM_LIVE_QUANTUM; }
VKM_INLINE void vkm_free_rearm(vkm_tstate_t *ts) {
  int64_t q = vkm_peak_quantum();
  vkm_arm_begin(ts);
  VKM_STORE(&ts->c.free_usable, ts->c.free_usable + (uint64_t)(ts->free_armed - ts->free_left));
  VKM_STORE(&ts->free_armed, q);
  VKM_STORE(&ts->free_left, q);
  vkm_arm_end(ts);
}
/* Freed bytes not yet peak-checked. */
VKM_INLINE int64_t vkm_free_unchecked(const vkm_tstate_t *ts) { return ts->free_armed - ts->free_left; }

/* ---------------------------------------------------------------------------
 * Usable size, the biggest single cost of exact byte counting.
 *
 * glibc keeps the chunk size in the word before the block; its
 * malloc_usable_size is (size - 8), or (size - 16) for mmapped chunks (bit
 * 1). Reading it inline saves a call through a dlsym'd pointer on both
 * paths. The mode is chosen once at start-up after checking the real
 * allocator is glibc's and that both methods agree on a probe.
 * ------------------------------------------------------------------------- */
#define VKM_GLIBC_MMAPPED ((size_t)2) /* chunk header bit */
VKM_INLINE size_t vkm_glibc_header(const void *p) { return ((const size_t *)p)[-1]; }
/* The usable size of a chunk that is not mmapped (the fast paths test
 * VKM_GLIBC_MMAPPED first and leave those to a cold path). */
VKM_INLINE size_t vkm_glibc_heap_usable(size_t h) { return (h & ~(size_t)7) - 8; }
VKM_INLINE size_t vkm_usable_glibc(const void *p) {
  size_t h = vkm_glibc_header(p);
  return vkm_glibc_heap_usable(h) - ((h & VKM_GLIBC_MMAPPED) << 2); /* mmapped: 16 */
}

/* Other allocators hand out size classes: the usable size of malloc(n) is
 * a function of n that the allocator states (jemalloc's and tcmalloc's
 * nallocx, mimalloc's mi_good_size). For n <= VKM_CLASS_MAX it is read
 * from a table filled from that function at start-up and checked against
 * real blocks there (init.c), which saves malloc one usable-size lookup (a
 * radix-tree walk in jemalloc). 0 means the table does not know: n == 0,
 * n > VKM_CLASS_MAX, or no table (glibc, or no such function). free still
 * asks the allocator: only it knows what p is. */
#define VKM_CLASS_MAX 4096
extern uint16_t vkm_class_usable[VKM_CLASS_MAX / 8 + 1] VKM_HIDDEN;
VKM_INLINE size_t vkm_class_lookup(size_t n) {
  return n <= VKM_CLASS_MAX ? vkm_class_usable[(n + 7) >> 3] : 0;
}

VKM_INLINE size_t vkm_usable(void *p) {
  if (vkm_likely(vkm_usable_mode == VKM_USABLE_GLIBC)) return vkm_usable_glibc(p);
  return vkm_real.usable_size(p);
}

/* A thread's histogram slot for a request of n bytes (segment.h: slots
 * by leading zeros). vkm_lz is right on every CPU; vkm_lz_fast is one
 * instruction but needs x86-64's LZCNT (elsewhere the same encoding is
 * BSR, which answers another question), so only the glibc fast path uses
 * it, and that path is taken only where the CPU has LZCNT (vkm_fast_path,
 * init.c). */
VKM_INLINE size_t vkm_lz(size_t n) { return n ? (size_t)__builtin_clzll((unsigned long long)n) : 64; }
VKM_INLINE size_t vkm_lz_fast(size_t n) {
#if defined(__x86_64__)
  size_t r;
  __asm__("lzcnt %1, %0" : "=r"(r) : "r"(n) : "cc");
  return r;
#elif defined(__aarch64__)
  size_t r; /* clz of 0 is 64 */
  __asm__("clz %0, %1" : "=r"(r) : "r"(n));
  return r;
#else
  return vkm_lz(n);
#endif
}
VKM_INLINE uint64_t *vkm_hist_at(vkm_tstate_t *ts, size_t z) {
  return (uint64_t *)((char *)ts + offsetof(vkm_tstate_t, c.size_hist)) + z; /* z == 64: hist_zero */
}
VKM_INLINE uint64_t *vkm_hist_slot(vkm_tstate_t *ts, size_t n) { return vkm_hist_at(ts, vkm_lz(n)); }

/* floor(log2(n)), with 0 in bucket 0: the size class of the retired
 * total's histogram, which is kept in class order (thread.c). */
VKM_INLINE size_t vkm_size_class(size_t n) { return (size_t)63 ^ (size_t)__builtin_clzll((unsigned long long)(n | 1)); }

#endif
