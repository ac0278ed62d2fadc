/* sample.c - attribution: the byte-interval sampler, stack capture, and the
 * table that recognises sampled blocks again at free().
 *
 * Sampling is Poisson over bytes: each thread counts down an exponentially
 * distributed number of bytes (mean VALKMEM_SAMPLE_BYTES) and the
 * allocation that crosses zero is sampled. The agent weights a sample of
 * size s by s / (1 - exp(-s/mean)), which keeps estimates unbiased.
 *
 * Finding a sampled block at free() from any thread, without a global lock:
 *   1. a counting filter (one byte per address-hash bucket, saturating and
 *      then sticky) answers "certainly not sampled" for almost every free
 *      with one load from a 64 KiB table; a count never undercounts, so a
 *      collision can only cause a needless lookup, never a missed free;
 *   2. behind it, an open-addressing table of (address -> sample id) with
 *      linear probing, CAS insertion and tombstones. It grows by chaining a
 *      table of twice the size in front of the full one; lookups walk the
 *      chain. A block is removed by the thread that frees it, before the
 *      real free, so an address is never in the table twice.
 */
#include "hot.h"
#include "gate.h"

#include <string.h>
#include <unistd.h>
#include <unwind.h>

uint8_t vkm_sample_filter[1u << VKM_FILTER_BITS];
#define sampled_live (vkm_seg->sampled_live) /* atomic, in the segment */
static vkm_gate_t fork_gate;          /* samplers inside; closed while fork() copies us (gate.h) */

/* ---------------------------------------------------------------------------
 * Address table
 * ------------------------------------------------------------------------- */
#define KEY_EMPTY ((uintptr_t)0)
#define KEY_TOMB ((uintptr_t)1)

typedef struct slot_s {
  uintptr_t key;  /* atomic */
  uint64_t id;    /* written by the inserter before the block is returned */
} slot_t;

typedef struct table_s {
  size_t mask;
  size_t used;              /* atomic: slots ever taken from EMPTY */
  struct table_s *older;    /* immutable */
  size_t bytes;
  slot_t slots[];
} table_t;

static table_t *newest; /* atomic */

static size_t addr_hash(uintptr_t p) { return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> 17); }

static table_t *table_new(size_t nslots, table_t *older) {
  size_t bytes = sizeof(table_t) + nslots * sizeof(slot_t);
  table_t *t = vkm_plat_map(bytes); /* zeroed: every slot EMPTY */
  if (!t) return NULL;
  t->mask = nslots - 1;
  t->older = older;
  t->bytes = bytes;
  vkm_self_track((int64_t)bytes);
  return t;
}

static table_t *table_for_insert(void) {
  table_t *t = __atomic_load_n(&newest, __ATOMIC_ACQUIRE);
  if (vkm_likely(__atomic_load_n(&t->used, __ATOMIC_RELAXED) * 2 < t->mask)) return t;
  table_t *bigger = table_new((t->mask + 1) * 2, t);
  if (!bigger) return t; /* keep probing the full one; insert may fail */
  if (!__atomic_compare_exchange_n(&newest, &t, bigger, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    vkm_self_track(-(int64_t)bigger->bytes);
    vkm_plat_unmap(bigger, bigger->bytes);
    return t; /* someone else grew it; t is now their table */
  }
  return bigger;
}

static int table_insert(uintptr_t p, uint64_t id) {
  table_t *t = table_for_insert();
  size_t i = addr_hash(p) & t->mask;
  for (size_t n = 0; n <= t->mask; n++, i = (i + 1) & t->mask) {
    uintptr_t k = __atomic_load_n(&t->slots[i].key, __ATOMIC_RELAXED);
    if (k != KEY_EMPTY && k != KEY_TOMB) continue;
    if (__atomic_compare_exchange_n(&t->slots[i].key, &k, p, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      /* The id goes in once the slot is ours. Written before the claim, it
       * could be overwritten by another thread's insert that picked the
       * same free slot and then lost the claim: p's free would then report
       * that thread's id, one free lost and another doubled (attr_threads
       * saw it 1 run in 10). Only the thread that frees p reads the id,
       * and p reached it after this insert returned. */
      __atomic_store_n(&t->slots[i].id, id, __ATOMIC_RELAXED);
      if (k == KEY_EMPTY) __atomic_add_fetch(&t->used, 1, __ATOMIC_RELAXED);
      return 1;
    }
  }
  return 0;
}

/* Removes p; returns its sample id, or 0 when p was never sampled. */
static uint64_t table_remove(uintptr_t p) {
  for (table_t *t = __atomic_load_n(&newest, __ATOMIC_ACQUIRE); t; t = t->older) {
    size_t i = addr_hash(p) & t->mask;
    for (size_t n = 0; n <= t->mask; n++, i = (i + 1) & t->mask) {
      uintptr_t k = __atomic_load_n(&t->slots[i].key, __ATOMIC_ACQUIRE);
      if (k == KEY_EMPTY) break;
      if (k == p) {
        uint64_t id = __atomic_load_n(&t->slots[i].id, __ATOMIC_RELAXED);
        __atomic_store_n(&t->slots[i].key, KEY_TOMB, __ATOMIC_RELEASE);
        return id;
      }
    }
  }
  return 0;
}

/* ---------------------------------------------------------------------------
 * Filter
 * ------------------------------------------------------------------------- */
static void filter_inc(const void *p) {
  uint8_t *c = &vkm_sample_filter[vkm_filter_slot(p)];
  uint8_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
  while (v != 255 && !__atomic_compare_exchange_n(c, &v, (uint8_t)(v + 1), 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
  }
}

static void filter_dec(const void *p) {
  uint8_t *c = &vkm_sample_filter[vkm_filter_slot(p)];
  uint8_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
  while (v != 255 && v != 0 && !__atomic_compare_exchange_n(c, &v, (uint8_t)(v - 1), 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

/* ---------------------------------------------------------------------------
 * Sampler
 * ------------------------------------------------------------------------- */
void vkm_sample_init(void) {
  if (!vkm_sampling) return;
  table_t *t = table_new(vkm_config.exact ? (1u << 16) : (1u << 14), NULL); /* grows as blocks stay live */
  if (!t) {
    vkm_seg_note("sampling off: cannot map its address table");
    vkm_sampling = 0;
    return;
  }
  vkm_self_track((int64_t)sizeof vkm_sample_filter);
  newest = t;
  vkm_unwind_init();
}

static uint64_t rng_next(vkm_tstate_t *ts) {
  uint64_t x = ts->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  ts->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* ln(u) for u in (0, 1], without libm (loading it costs every process
 * under the shim a fifth of a millisecond, mostly page faults). u = m 2^e
 * with m in [sqrt(1/2), sqrt(2)); ln(m) = 2 atanh(z), z = (m-1)/(m+1),
 * |z| <= 0.172, whose odd series to z^17 is exact to 1e-15 relative. */
static double ln_unit(double u) {
  union {
    double d;
    uint64_t b;
  } v = {.d = u};
  int e = (int)((v.b >> 52) & 0x7ff) - 1022; /* u = m' 2^e, m' in [0.5, 1) */
  v.b = (v.b & 0x800fffffffffffffull) | 0x3fe0000000000000ull;
  double m = v.d;
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    e--;
  }
  double z = (m - 1.0) / (m + 1.0), z2 = z * z, t = z, sum = 0;
  for (int k = 1; k <= 17; k += 2) {
    sum += t / k;
    t *= z2;
  }
  return 2.0 * sum + e * 0.69314718055994530942;
}

/* Called at attach and after every sample: the next sample is taken when
 * the thread's requests overdraw the countdown (vkm_req_due). Exact mode
 * starts overdrawn, so that every allocation, even of 0 bytes, is due. */
void vkm_sample_reset_interval(vkm_tstate_t *ts) {
  int64_t next;
  if (!vkm_sampling) {
    next = INT64_MAX;
  } else if (vkm_config.exact) {
    next = -1;
  } else {
    double u = ((double)(rng_next(ts) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double d = -ln_unit(u) * (double)vkm_config.sample_bytes;
    next = d > 4e18 ? (int64_t)4e18 : (int64_t)d;
  }
  vkm_req_rearm(ts, next);
}

/* Stack capture: first the fast walker (unwind.c), which keeps each return
 * address's unwind rule in a table of its own and walks a frame in a few
 * dozen instructions; when some frame is beyond it (a signal frame, CFI it
 * does not model, code outside any object), libgcc's unwinder walks the
 * whole stack again (_Unwind_Backtrace, libgcc_s). Both find FDEs through
 * glibc's _dl_find_object (lock-free, glibc 2.35+) and read only memory
 * they can trust (the stack and .eh_frame), so a capture makes no system
 * call at all: it never touches a descriptor of the program's - unlike
 * libunwind 1.6, which validates addresses through a pipe of its own and
 * reopens it, on whatever numbers are free, after a program closed it
 * (tests/live_nofd.c) - it allocates nothing, and it keeps no per-thread
 * cache to free at thread exit, so sanitizer builds use it too. Nothing
 * process-wide is configured: the recorder only calls it.
 *
 * frames[0] is the return address into capture() (the caller of
 * vkm_unwind or _Unwind_Backtrace), then vkm_sample_alloc's, the
 * wrapper's and the program's: the same as unw_backtrace gave. The agent
 * trims valkmem's own frames by symbol (agent/symbols.c), so their count
 * does not matter. */
/* libgcc's unwinder, when the program has libgcc_s loaded (every C++
 * program, most others): looked up, never loaded by us - loading it costs
 * each process a sixth of a millisecond, and the fast walker rarely needs
 * it. Looked up again when objects are loaded. Without it, a walk stops at
 * the first frame the fast walker cannot model. */
typedef _Unwind_Reason_Code (*ubt_fn)(_Unwind_Trace_Fn, void *);
typedef _Unwind_Ptr (*getip_fn)(struct _Unwind_Context *);
static ubt_fn ubt;        /* atomic */
static getip_fn ubt_getip;

typedef struct walk_s {
  void **frames;
  int n, max;
} walk_t;

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg) {
  walk_t *w = arg;
  if (w->n >= w->max) return _URC_END_OF_STACK;
  uintptr_t ip = ubt_getip(ctx);
  if (!ip) return _URC_END_OF_STACK;
  w->frames[w->n++] = (void *)ip;
  return _URC_NO_REASON;
}

void vkm_sample_find_libgcc(void) {
  if (__atomic_load_n(&ubt, __ATOMIC_ACQUIRE)) return;
  getip_fn g = (getip_fn)vkm_plat_loaded_symbol("libgcc_s.so", "_Unwind_GetIP");
  ubt_fn b = (ubt_fn)vkm_plat_loaded_symbol("libgcc_s.so", "_Unwind_Backtrace");
  if (!g || !b) return;
  ubt_getip = g;
  __atomic_store_n(&ubt, b, __ATOMIC_RELEASE);
}

static __attribute__((noinline)) int capture_slow(void **frames, int max) {
  ubt_fn b = __atomic_load_n(&ubt, __ATOMIC_ACQUIRE);
  if (!b) return -1;
  walk_t w = {frames, 0, max};
  b(walk_frame, &w);
  return w.n;
}

static __attribute__((noinline)) int capture(void **frames, int max) {
  int partial;
  int n = vkm_unwind(frames, max, &partial);
  if (vkm_likely(n >= 0)) return n;
  n = capture_slow(frames, max);
  return n >= 0 ? n : partial;
}

/* libgcc's unwinder initialises its register-size table once (pthread_once)
 * on the first unwind; unwinding once from the constructor, before the
 * program starts threads, does that while the process is still
 * single-threaded and outside any allocation of the program's. The fast
 * walker is warmed too: the recorder's own frames enter its table. */
void vkm_sample_warm_up(void) {
  if (!vkm_sampling) return;
  vkm_guard_enter();
  void *frames[4];
  vkm_sample_find_libgcc();
  capture_slow(frames, 4);
  capture(frames, 4);
  vkm_guard_leave();
}

void vkm_sample_alloc(vkm_tstate_t *ts, void *p, size_t req, size_t usable) {
  if (vkm_unlikely(vkm_is_copy())) {
    vkm_stop_copy();
    return;
  }
  vkm_sample_reset_interval(ts);
  if (!vkm_sampling) return;
  vkm_guard_enter();
  vkm_gate_enter(&fork_gate);
  void *frames[256];
  int n = capture(frames, (int)(vkm_config.max_frames < 256 ? vkm_config.max_frames : 256));
  if (n < 0) n = 0;
  uint64_t id = ((uint64_t)(ts->index + 1) << 40) | (++ts->sample_seq & ((1ull << 40) - 1));
  if (table_insert((uintptr_t)p, id)) {
    filter_inc(p);
    __atomic_add_fetch(&sampled_live, 1, __ATOMIC_RELAXED);
    vkm_seg_modules_check();
    vkm_event_t ev = {.type = VKM_EV_ALLOC, .nframes = (uint16_t)n, .id = id,
                      .a = req, .b = usable, .c = (uintptr_t)p};
    vkm_emit(&ev, frames, (size_t)n * sizeof(void *));
  }
  vkm_gate_leave(&fork_gate);
  vkm_guard_leave();
}

void vkm_sample_emit_free(vkm_tstate_t *ts, void *p, uint64_t id) {
  (void)ts;
  vkm_guard_enter();
  vkm_event_t ev = {.type = VKM_EV_FREE, .id = id, .c = (uintptr_t)p};
  vkm_emit(&ev, NULL, 0);
  vkm_guard_leave();
}

uint64_t vkm_sample_take(void *p) {
  if (vkm_unlikely(vkm_is_copy())) { /* the parent's block: the parent keeps it */
    vkm_stop_copy();
    return 0;
  }
  uint64_t id = table_remove((uintptr_t)p);
  if (id) {
    filter_dec(p);
    __atomic_sub_fetch(&sampled_live, 1, __ATOMIC_RELAXED);
  }
  return id;
}

void vkm_sample_put_back(void *p, uint64_t id) {
  if (table_insert((uintptr_t)p, id)) {
    filter_inc(p);
    __atomic_add_fetch(&sampled_live, 1, __ATOMIC_RELAXED);
  }
}

void vkm_sample_free(vkm_tstate_t *ts, void *p) {
  uint64_t id = vkm_sample_take(p);
  if (id) vkm_sample_emit_free(ts, p, id);
}

/* ---------------------------------------------------------------------------
 * fork: no thread may be inside the unwinder (libgcc's takes a lock of its
 * own when a program registered frames by hand, __register_frame_info) or
 * half-way through a table insert when the process is copied.
 * ------------------------------------------------------------------------- */
void vkm_sample_fork_prepare(void) { vkm_gate_close(&fork_gate, 0); }

void vkm_sample_fork_parent(void) { vkm_gate_open(&fork_gate); }

/* The child starts with an empty table: its agent starts afresh, and blocks
 * sampled by the parent are simply unsampled in the child. */
void vkm_sample_fork_child(void) {
  vkm_gate_reset(&fork_gate);
  if (!vkm_sampling) return;
  for (table_t *t = newest; t; t = t->older) {
    vkm_plat_zero(t->slots, (t->mask + 1) * sizeof(slot_t));
    t->used = 0;
  }
  memset(vkm_sample_filter, 0, sizeof vkm_sample_filter);
  vkm_filter_pin_bootstrap();
  sampled_live = 0;
}
