/* wrap.c - the malloc-family wrappers: the hot path.
 *
 * Every wrapper has one shape: guard -> call the real function -> record ->
 * return. The fast path touches only the caller's own vkm_tstate_t (plain
 * stores), the glibc chunk header, and a byte of the sampling filter on
 * free. Anything rare - first use on a thread, re-entry, sampling, a peak
 * check - is a separate cold function.
 *
 * The wrappers are named VKM_FN(malloc) and so on (hot.h): the allocator's
 * own names on Linux, vkm_wrap_* on macOS, where wrap_darwin.c's
 * __interpose table puts them in place. The mapped-memory wrappers (mmap,
 * munmap, mremap) are Linux's alone: wrap_linux.c.
 */
#include "hot.h"

#include <errno.h>
#include <string.h>

#define VKM_WRAP VKM_EXPORT

/* ---------------------------------------------------------------------------
 * Recording (inline into every wrapper)
 * ------------------------------------------------------------------------- */
/* The rare half of recording: a sample. Returns p so that the wrappers
 * can tail-call it and keep nothing alive across it. Every sample is taken
 * from here, so the recorder's frames on its stacks are the same whichever
 * path led to it (the agent keeps stacks that differ only in trimmed frames
 * apart). */
static VKM_COLD void *record_sample(vkm_tstate_t *ts, void *p, size_t req, size_t u) {
  vkm_sample_alloc(ts, p, req, u);
  return p;
}

static VKM_COLD void *record_failure(vkm_tstate_t *ts) {
  VKM_OWN_ADD(ts->c.failed_count, 1);
  return NULL;
}

/* Records a successful allocation of `req` bytes at p; returns p. */
VKM_INLINE void *record_alloc(vkm_tstate_t *ts, void *p, size_t req) {
  size_t u = vkm_usable(p);
  VKM_OWN_ADD(ts->c.alloc_usable, u);
  VKM_OWN_ADD(*vkm_hist_slot(ts, req), 1); /* also the alloc count */
  if (vkm_unlikely(vkm_req_due(ts, req))) return record_sample(ts, p, req, u); /* also the requested bytes */
  return p;
}

/* The counting halves shared by glibc's fast paths and the other
 * allocators': a request of n bytes (nonzero when a sample is due), and a
 * free of u usable bytes (nonzero when a peak check is due). Each counter
 * is one instruction: the requested and freed totals are the countdowns
 * themselves (segment.h). */
VKM_INLINE int count_request(vkm_tstate_t *ts, size_t n) {
  VKM_OWN_ADD(*vkm_hist_slot(ts, n), 1); /* also the alloc count */
  return vkm_req_due(ts, n);
}

/* The same on glibc's fast path, where the CPU is known to have LZCNT. */
VKM_INLINE int count_request_fast(vkm_tstate_t *ts, size_t n) {
  VKM_OWN_ADD(*vkm_hist_at(ts, vkm_lz_fast(n)), 1);
  return vkm_req_due(ts, n);
}

VKM_INLINE int count_free(vkm_tstate_t *ts, size_t u) {
  VKM_OWN_ADD(ts->c.free_count, 1);
  return vkm_free_due(ts, u);
}

VKM_INLINE void record_free(vkm_tstate_t *ts, size_t u) {
  if (vkm_unlikely(count_free(ts, u))) vkm_peak_check(ts, u);
}

/* The heap is about to shrink: check its peak first. */
static VKM_COLD void free_checked(vkm_tstate_t *ts, void *p, size_t u) {
  vkm_peak_check(ts, u);
  vkm_real.free(p);
}

VKM_INLINE void *record_result(vkm_tstate_t *ts, void *p, size_t req) {
  if (vkm_unlikely(p == NULL)) return record_failure(ts);
  return record_alloc(ts, p, req);
}

/* ---------------------------------------------------------------------------
 * Slow entry: first call on a thread, re-entry, before init, after exit.
 * Returns the state to record into, or NULL to pass through uncounted.
 * ------------------------------------------------------------------------- */
static VKM_COLD vkm_tstate_t *enter_slow(void) {
#if VKM_DEFER_INIT
  /* Sanitizer builds: the sanitizer runtime allocates while it is still
   * starting up; the bootstrap buffer answers until our constructor runs. */
  if (!vkm_ready && !vkm_constructed) return NULL;
#endif
  if (!vkm_ready) vkm_init_real();
  if (!vkm_ready || vkm_tls.guard) return NULL;
  return vkm_thread_attach(); /* NULL when exiting or disabled */
}

/* The slow paths' state: attached and not re-entered is the common case
 * there too (every call, when the allocator is not glibc's). */
VKM_INLINE vkm_tstate_t *slow_state(void) {
  vkm_tstate_t *ts = vkm_tls.state;
  if (vkm_likely(ts != NULL && !vkm_tls.guard)) return ts;
  return enter_slow();
}

#define ENTER(ts)        \
  vkm_tstate_t *ts = vkm_tls.ts; \
  if (vkm_unlikely(ts == NULL)) ts = slow_state()

/* Bootstrap allocations (dlsym's own calloc during init) never reach the
 * real allocator; see init.c. */
void *vkm_bootstrap_alloc(size_t n, size_t align);
size_t vkm_bootstrap_size(const void *p);

/* Passing through while not tracking: still correct, just uncounted. When
 * the thread is past its exit destructor, or has no state because memory
 * ran out, the call is counted into the retired total directly
 * (vkm_count_orphan), so nothing is lost. */
enum { ORPHAN_ALLOC = 0, ORPHAN_FREE = 1, ORPHAN_FAIL = 2 };
#define ORPHAN_ALLOC_RESULT(p, req)                                                 \
  do {                                                                              \
    if (vkm_count_stateless()) {                                                    \
      if (p) vkm_count_orphan(ORPHAN_ALLOC, (req), vkm_usable(p));                  \
      else vkm_count_orphan(ORPHAN_FAIL, (req), 0);                                 \
    }                                                                               \
  } while (0)

/* ---------------------------------------------------------------------------
 * malloc family
 * ------------------------------------------------------------------------- */
static VKM_COLD void *malloc_slow(vkm_tstate_t *ts, size_t n) {
  if (!ts) ts = slow_state();
  if (!ts) {
    if (!vkm_real.malloc) return vkm_bootstrap_alloc(n, 16);
    void *p = vkm_real.malloc(n);
    ORPHAN_ALLOC_RESULT(p, n);
    return p;
  }
  return record_result(ts, vkm_real.malloc(n), n);
}

/* malloc's rare halves, each finishing the call the fast path began. The
 * fast path counts the request (bytes, size class, sampling countdown)
 * before the real call, so that only ts lives across it; a failure undoes
 * that. */
static VKM_COLD void *malloc_failed(vkm_tstate_t *ts, size_t n) {
  VKM_OWN_ADD(*vkm_hist_slot(ts, n), -1); /* nothing was allocated after all */
  ts->req_left += (int64_t)n;
  return record_failure(ts);
}

static VKM_COLD void *malloc_failed_pending(vkm_tstate_t *ts) { return malloc_failed(ts, ts->pending); }

/* The usable half of a counted request, when the fast path cannot finish
 * it: a sample is due, or the chunk is mmapped (usable size 16 below its
 * size, not 8). req matters only for a sample. */
static VKM_COLD void *alloc_finish(vkm_tstate_t *ts, void *p, size_t req, int sample) {
  size_t u = vkm_usable(p);
  VKM_OWN_ADD(ts->c.alloc_usable, u);
  if (sample) return record_sample(ts, p, req, u); /* one call site for every sample: its stacks match */
  return p;
}

/* The common end of malloc's and realloc's fast paths: a new block from
 * glibc's allocator counted in, its usable size read from the chunk header
 * (an mmapped chunk takes the slow way). */
VKM_INLINE void *count_new_block(vkm_tstate_t *ts, void *p) {
  size_t h = vkm_glibc_header(p);
  if (vkm_unlikely(h & VKM_GLIBC_MMAPPED)) return alloc_finish(ts, p, 0, 0);
  vkm_add(&ts->c.alloc_usable, vkm_glibc_heap_usable(h));
  return p;
}

static VKM_COLD void *malloc_sampled(vkm_tstate_t *ts, size_t n) {
  void *p = vkm_real.malloc(n);
  if (p == NULL) return malloc_failed(ts, n);
  return alloc_finish(ts, p, n, 1);
}

/* Another allocator behind the shim (jemalloc, tcmalloc, mimalloc): the
 * same counts as glibc's fast path below, with the usable size from the
 * size-class table, or the allocator's own lookup when the table does not
 * know. Reached when vkm_tls.ts is NULL; n is kept in a register across
 * the real call (the table needs it), so a failure undoes it directly. */
static VKM_NOINLINE void *malloc_other(size_t n) {
  vkm_tstate_t *ts = vkm_tls.other;
  if (vkm_unlikely(ts == NULL)) return malloc_slow(ts, n);
  if (vkm_unlikely(count_request(ts, n))) return malloc_sampled(ts, n);
  void *p = vkm_real.malloc(n);
  if (vkm_unlikely(p == NULL)) return malloc_failed(ts, n);
  size_t u = vkm_class_lookup(n);
  if (vkm_unlikely(u == 0)) u = vkm_real.usable_size(p);
  VKM_OWN_ADD(ts->c.alloc_usable, u);
  return p;
}

/* The common case: vkm_tls.ts is set only when the thread is attached, not
 * re-entered, and the allocator is glibc's, so one test covers all three.
 * Only ts lives across the real call (n waits in ts->pending, for a
 * failure), so the function saves one register. Every counter update is
 * one instruction, so a signal handler that allocates in between loses
 * nothing; it can only overwrite ts->pending, which matters solely if the
 * interrupted real malloc then fails. */
VKM_WRAP void *VKM_FN(malloc)(size_t n) {
  vkm_tstate_t *ts = vkm_tls.ts;
  if (vkm_unlikely(ts == NULL)) return malloc_other(n);
  if (vkm_unlikely(count_request_fast(ts, n))) return malloc_sampled(ts, n);
  ts->pending = n;
  void *p = vkm_real.malloc(n);
  if (vkm_unlikely(p == NULL)) return malloc_failed_pending(ts);
  return count_new_block(ts, p);
}

/* Everything free() does besides the common case, ending in the real free:
 * free(NULL), not attached or re-entered, a bootstrap block, a block that
 * may have been sampled, an mmapped chunk, a peak check due. */
static VKM_COLD void free_slow(vkm_tstate_t *ts, void *p) {
  if (p == NULL || vkm_is_bootstrap(p)) return;
  if (vkm_unlikely(vkm_is_copy())) { /* a raw copy of the process (hot.h): not ours to count */
    vkm_stop_copy();
    vkm_real.free(p);
    return;
  }
  if (!ts) ts = slow_state();
  if (!ts) {
    if (vkm_count_stateless()) {
      size_t u = vkm_usable(p);
      if (vkm_maybe_sampled(p)) vkm_sample_free(NULL, p);
      vkm_real.free(p);
      vkm_count_orphan(ORPHAN_FREE, 0, u);
      return;
    }
    if (vkm_real.free) vkm_real.free(p);
    return;
  }
  /* All before the real free: once it returns, another thread may be
   * handed the same address and sample it. */
  if (vkm_maybe_sampled(p)) vkm_sample_free(ts, p);
  record_free(ts, vkm_usable(p));
  vkm_real.free(p);
}

/* Another allocator behind the shim: only it knows p's usable size. */
static VKM_NOINLINE void free_other(void *p) {
  vkm_tstate_t *ts = vkm_tls.other;
  if (vkm_unlikely(ts == NULL || vkm_maybe_sampled(p))) return free_slow(ts, p);
  size_t u = vkm_real.usable_size(p);
  if (vkm_unlikely(count_free(ts, u))) return free_checked(ts, p, u);
  vkm_real.free(p);
}

/* The common case has no call but the real free, as a tail call, so it
 * saves no registers. NULL needs no test of its own: its filter slot is
 * pinned like the bootstrap buffer's, so it takes free_slow. */
VKM_WRAP void VKM_FN(free)(void *p) {
  vkm_tstate_t *ts = vkm_tls.ts;
  if (vkm_unlikely(ts == NULL)) return free_other(p);
  if (vkm_unlikely(vkm_maybe_sampled(p))) return free_slow(ts, p);
  size_t h = vkm_glibc_header(p);
  if (vkm_unlikely(h & VKM_GLIBC_MMAPPED)) return free_slow(ts, p);
  size_t u = vkm_glibc_heap_usable(h);
  if (vkm_unlikely(count_free(ts, u))) return free_checked(ts, p, u);
  vkm_real.free(p);
}

VKM_WRAP void *VKM_FN(calloc)(size_t a, size_t b) {
  ENTER(ts);
  size_t req;
  int overflow = __builtin_mul_overflow(a, b, &req);
  if (vkm_unlikely(!ts)) {
    if (!vkm_real.calloc) {
      if (overflow) return NULL;
      void *p = vkm_bootstrap_alloc(req, 16);
      return p; /* bootstrap memory is zeroed (static) */
    }
    void *p = vkm_real.calloc(a, b);
    ORPHAN_ALLOC_RESULT(p, overflow ? SIZE_MAX : req);
    return p;
  }
  void *p = vkm_real.calloc(a, b);
  if (vkm_unlikely(overflow)) {
    /* The real calloc has already refused; count the failure. errno is
     * the allocator's (tcmalloc leaves it alone), unless it said yes. */
    VKM_OWN_ADD(ts->c.failed_count, 1);
    if (p) {
      vkm_real.free(p);
      errno = ENOMEM;
    }
    return NULL;
  }
  return record_result(ts, p, req);
}

/* realloc's bookkeeping: the old block leaves as a free of its usable size,
 * the new one arrives as requested/usable bytes; alloc_count/free_count
 * change only for realloc(NULL, n) and realloc(p, 0). */
static void *realloc_common(vkm_tstate_t *ts, void *p, size_t n) {
  if (p == NULL) {
    void *q = vkm_real.realloc(NULL, n);
    if (q) VKM_OWN_ADD(ts->c.realloc_count, 1);
    return record_result(ts, q, n);
  }
  size_t old_u = vkm_usable(p);
  uint64_t sid = vkm_maybe_sampled(p) ? vkm_sample_take(p) : 0;
  void *q = vkm_real.realloc(p, n);
  if (q == NULL) {
    if (n == 0) { /* glibc: realloc(p, 0) frees p */
      VKM_OWN_ADD(ts->c.realloc_count, 1);
      if (sid) vkm_sample_emit_free(ts, p, sid);
      record_free(ts, old_u);
      return NULL;
    }
    if (sid) vkm_sample_put_back(p, sid); /* p is intact */
    VKM_OWN_ADD(ts->c.failed_count, 1);
    return NULL;
  }
  size_t new_u = vkm_usable(q);
  if (sid) vkm_sample_emit_free(ts, p, sid);
  VKM_OWN_ADD(ts->c.realloc_count, 1);
  VKM_OWN_ADD(ts->c.alloc_usable, new_u);
  if (vkm_unlikely(vkm_free_due(ts, old_u))) vkm_peak_check(ts, old_u);
  if (vkm_unlikely(vkm_req_due(ts, n))) return record_sample(ts, q, n, new_u);
  return q;
}

static VKM_COLD void *realloc_untracked(void *p, size_t n) {
  if (p && vkm_is_bootstrap(p)) {
    size_t old = vkm_bootstrap_size(p);
    void *q = VKM_FN(malloc)(n); /* through the wrapper: counted if tracking */
    if (q) memcpy(q, p, old < n ? old : n);
    return q;
  }
  if (!vkm_real.realloc) return p ? NULL : vkm_bootstrap_alloc(n, 16);
  if (vkm_count_stateless()) {
    size_t old_u = p ? vkm_usable(p) : 0;
    if (p && vkm_maybe_sampled(p)) vkm_sample_free(NULL, p);
    void *q = vkm_real.realloc(p, n);
    if (q) {
      if (p) vkm_count_orphan(ORPHAN_FREE, 0, old_u);
      vkm_count_orphan(ORPHAN_ALLOC, n, vkm_usable(q));
    }
    return q;
  }
  return vkm_real.realloc(p, n);
}

static VKM_COLD void *realloc_slow(vkm_tstate_t *ts, void *p, size_t n) {
  if (!ts) ts = slow_state();
  if (vkm_unlikely(!ts || (p && vkm_is_bootstrap(p)))) return realloc_untracked(p, n);
  return realloc_common(ts, p, n);
}

/* realloc's fast path counts the old block out and the request in before
 * the real call (n and the old usable size wait in ts, for a failure, which
 * leaves the old block in place and undoes both). */
static VKM_COLD void *realloc_failed(vkm_tstate_t *ts) {
  size_t n = ts->pending, old_u = ts->pending_old;
  if (n == 0) { /* glibc's realloc(p, 0) frees p and says NULL: the old block went out as counted */
    VKM_OWN_ADD(ts->c.free_count, 1);
    return NULL;
  }
  VKM_OWN_ADD(ts->c.realloc_count, -1);
  ts->req_left += (int64_t)n;
  ts->free_left += (int64_t)old_u;
  return record_failure(ts);
}

static VKM_COLD void *realloc_sampled(vkm_tstate_t *ts, void *p, size_t n) {
  void *q = vkm_real.realloc(p, n);
  if (q == NULL) return realloc_failed(ts);
  return alloc_finish(ts, q, n, 1);
}

/* The second half of realloc's fast path: the real call and the new block
 * counted in. */
VKM_INLINE void *realloc_call(vkm_tstate_t *ts, void *p, size_t n) {
  if (vkm_unlikely(vkm_req_due(ts, n))) return realloc_sampled(ts, p, n);
  void *q = vkm_real.realloc(p, n);
  if (vkm_unlikely(q == NULL)) return realloc_failed(ts);
  return count_new_block(ts, q);
}

/* The old block's size made a peak check due: check, then go on as the
 * fast path does. Out of line, so that the fast path makes no call before
 * the real one and keeps p and n in their argument registers. */
static VKM_COLD void *realloc_checked(vkm_tstate_t *ts, void *p, size_t n) {
  vkm_peak_check(ts, ts->pending_old);
  return realloc_call(ts, p, n);
}

/* The common case: glibc's allocator, a block that was not sampled (the
 * filter's pinned slots also send NULL and bootstrap blocks away) and not
 * mmapped. realloc(p, 0) takes it too: glibc frees p and says NULL, which
 * realloc_failed tells from a failure by the size. */
VKM_WRAP void *VKM_FN(realloc)(void *p, size_t n) {
  vkm_tstate_t *ts = vkm_tls.ts;
  if (vkm_unlikely(ts == NULL || vkm_maybe_sampled(p))) return realloc_slow(ts, p, n);
  size_t h = vkm_glibc_header(p);
  if (vkm_unlikely(h & VKM_GLIBC_MMAPPED)) return realloc_slow(ts, p, n);
  size_t old_u = vkm_glibc_heap_usable(h);
  VKM_OWN_ADD(ts->c.realloc_count, 1);
  ts->pending = n;
  ts->pending_old = old_u;
  if (vkm_unlikely(vkm_free_due(ts, old_u))) return realloc_checked(ts, p, n);
  return realloc_call(ts, p, n);
}

VKM_WRAP void *VKM_FN(reallocarray)(void *p, size_t a, size_t b) {
  size_t n;
  if (__builtin_mul_overflow(a, b, &n)) {
    ENTER(ts);
    if (ts) VKM_OWN_ADD(ts->c.failed_count, 1);
    errno = ENOMEM;
    return NULL;
  }
  return VKM_FN(realloc)(p, n);
}

VKM_WRAP int VKM_FN(posix_memalign)(void **out, size_t align, size_t n) {
  ENTER(ts);
  if (vkm_unlikely(!ts)) {
    if (!vkm_real.posix_memalign) {
      if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
      *out = vkm_bootstrap_alloc(n, align);
      return *out ? 0 : ENOMEM;
    }
    int rc = vkm_real.posix_memalign(out, align, n);
    ORPHAN_ALLOC_RESULT(rc == 0 ? *out : NULL, n);
    return rc;
  }
  int rc = vkm_real.posix_memalign(out, align, n);
  record_result(ts, rc == 0 ? *out : NULL, n);
  return rc;
}

#define ALIGNED_WRAPPER(name, params, args, req)                  \
  VKM_WRAP void *VKM_FN(name) params {                            \
    ENTER(ts);                                                    \
    if (vkm_unlikely(!ts)) {                                      \
      if (!vkm_real.name) return vkm_bootstrap_alloc((req), 4096); \
      void *p = vkm_real.name args;                               \
      ORPHAN_ALLOC_RESULT(p, (req));                              \
      return p;                                                   \
    }                                                             \
    return record_result(ts, vkm_real.name args, (req));          \
  }

ALIGNED_WRAPPER(aligned_alloc, (size_t align, size_t n), (align, n), n)
ALIGNED_WRAPPER(memalign, (size_t align, size_t n), (align, n), n)
ALIGNED_WRAPPER(valloc, (size_t n), (n), n)
ALIGNED_WRAPPER(pvalloc, (size_t n), (n), n)

/* With glibc's allocator the answer is read from the chunk header, the
 * same read (checked at start-up) the wrappers make. */
VKM_WRAP size_t VKM_FN(malloc_usable_size)(void *p) {
  if (p == NULL) return 0;
  if (vkm_is_bootstrap(p)) return vkm_bootstrap_size(p);
  if (vkm_likely(vkm_usable_mode == VKM_USABLE_GLIBC)) return vkm_usable_glibc(p);
  if (!vkm_real.usable_size) vkm_init_real();
  return vkm_real.usable_size ? vkm_real.usable_size(p) : 0;
}
