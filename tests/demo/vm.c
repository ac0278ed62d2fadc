/* vm.c - the demo's managed heap: slab pools of fixed-size objects, a
 * stop-the-world mark-sweep collector over named root sets, and scratch
 * arenas. Each event is reported through the public runtime API:
 *
 *   slot handed out / swept     valkmem_pool_alloc / valkmem_pool_free
 *   slabs committed             valkmem_pool_held
 *   heap full                   valkmem_pool_overflow
 *   a collection                valkmem_gc_begin / valkmem_gc_end(before, after)
 *   what each root set keeps    valkmem_root_report (after marking)
 *   arena reset                 valkmem_pool_reset
 *
 * Slabs are malloc'd (so the shim sees them too, under slab_new); a heap of
 * heap_initial bytes per class is committed up front, like a runtime's
 * initial heap size, and empty slabs above it are given back after a sweep.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"

#define SLAB_BYTES (64 * 1024)
#define MAX_ROOTSETS 32

typedef struct slab_s {
  struct slab_s *next;
  obj_t *free;          /* free slots, chained through ref[0] */
  uint32_t nfree, nslots;
  char *slots;          /* nslots x class size */
} slab_t;

typedef struct vm_class_s {
  size_t size;
  slab_t *slabs;
  size_t nslabs, min_slabs, max_slabs;
  size_t held_slabs;    /* slabs with at least one live object */
  uint64_t used;        /* bytes in live slots */
  valkmem_pool_t *pool;
} vm_class_t;

static struct {
  vm_config_t cfg;
  vm_class_t cls[VM_CLASSES];
  struct {
    const char *name;
    obj_t **slots;
    size_t n;
  } roots[MAX_ROOTSETS];
  int nroots;
  obj_t **stack;        /* mark stack */
  size_t stack_cap;
  uint64_t since_gc;    /* bytes allocated since the last collection */
  uint64_t gcs;
  rng_t rng;
} vm;

/* ---------------------------------------------------------------------------
 * Slabs
 * ------------------------------------------------------------------------- */

/* The one place the heap grows: a new slab from malloc. */
static __attribute__((noinline)) slab_t *slab_new(vm_class_t *c) {
  slab_t *s = malloc(sizeof *s + SLAB_BYTES);
  if (!s) return NULL;
  s->slots = (char *)(s + 1);
  s->nslots = (uint32_t)(SLAB_BYTES / c->size);
  s->nfree = s->nslots;
  s->free = NULL;
  for (uint32_t i = s->nslots; i-- > 0;) {
    obj_t *o = (obj_t *)(s->slots + (size_t)i * c->size);
    o->live = 0;
    o->ref[0] = s->free;
    s->free = o;
  }
  s->next = c->slabs;
  c->slabs = s;
  c->nslabs++;
  return s;
}

/* What the pool holds is reported as the slabs that hold a live object:
 * those cannot be given back, so their free slots are the heap's
 * fragmentation (a non-moving collector scatters survivors). Empty slabs
 * kept as the initial-heap reserve are not counted. */
static void class_report_held(vm_class_t *c) {
  size_t n = 0;
  for (slab_t *s = c->slabs; s; s = s->next) n += s->nfree < s->nslots;
  c->held_slabs = n;
  valkmem_pool_held(c->pool, (uint64_t)n * SLAB_BYTES);
}

static obj_t *class_take(vm_class_t *c) {
  for (slab_t *s = c->slabs; s; s = s->next) {
    if (!s->nfree) continue;
    if (s->nfree == s->nslots) { /* an empty slab comes into use */
      c->held_slabs++;
      valkmem_pool_held(c->pool, (uint64_t)c->held_slabs * SLAB_BYTES);
    }
    obj_t *o = s->free;
    s->free = o->ref[0];
    s->nfree--;
    return o;
  }
  return NULL;
}

static void sleep_us(uint64_t us) {
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

/* ---------------------------------------------------------------------------
 * Public
 * ------------------------------------------------------------------------- */

void vm_init(const vm_config_t *cfg, uint64_t seed) {
  memset(&vm, 0, sizeof vm);
  vm.cfg = *cfg;
  vm.rng.s = seed * 0x9E3779B97F4A7C15ull + 7;
  static const char *names[VM_CLASSES] = {"heap.small", "heap.big"};
  static const size_t sizes[VM_CLASSES] = {VM_SMALL_SIZE, VM_BIG_SIZE};
  size_t slots_total = 0;
  for (int k = 0; k < VM_CLASSES; k++) {
    vm_class_t *c = &vm.cls[k];
    c->size = sizes[k];
    c->max_slabs = cfg->heap_max / SLAB_BYTES;
    c->min_slabs = cfg->heap_initial / SLAB_BYTES;
    if (c->max_slabs < 1) c->max_slabs = 1;
    if (c->min_slabs > c->max_slabs) c->min_slabs = c->max_slabs;
    c->pool = valkmem_pool_register(names[k], VALKMEM_POOL_SLAB, (uint64_t)c->max_slabs * SLAB_BYTES, c->size);
    for (size_t i = 0; i < c->min_slabs; i++) slab_new(c);
    slots_total += c->max_slabs * (SLAB_BYTES / c->size);
  }
  vm.stack_cap = slots_total;
  vm.stack = malloc(vm.stack_cap * sizeof *vm.stack);
}

void vm_shutdown(void) {
  for (int k = 0; k < VM_CLASSES; k++) {
    slab_t *s = vm.cls[k].slabs;
    while (s) {
      slab_t *n = s->next;
      free(s);
      s = n;
    }
    vm.cls[k].slabs = NULL;
  }
  free(vm.stack);
  vm.stack = NULL;
}

void vm_root_add(const char *name, obj_t **slots, size_t n) {
  if (vm.nroots == MAX_ROOTSETS) return;
  vm.roots[vm.nroots].name = name;
  vm.roots[vm.nroots].slots = slots;
  vm.roots[vm.nroots].n = n;
  vm.nroots++;
}

obj_t *vm_alloc(int cls) {
  vm_class_t *c = &vm.cls[cls];
  obj_t *o = class_take(c);
  if (!o && c->nslabs < c->max_slabs && slab_new(c)) o = class_take(c);
  /* Never collect here: callers hold unrooted objects in locals. A full
   * heap is an overflow; the next safepoint collects. */
  if (!o) {
    valkmem_pool_overflow(c->pool, c->size);
    return NULL;
  }
  memset(o, 0, c->size);
  o->live = 1;
  o->cls = (uint8_t)cls;
  c->used += c->size;
  vm.since_gc += c->size;
  valkmem_pool_alloc(c->pool, c->size);
  return o;
}

obj_t *vm_list(size_t n, int cls) {
  obj_t *head = NULL;
  for (size_t i = 0; i < n; i++) {
    obj_t *o = vm_alloc(cls);
    if (!o) break;
    o->ref[0] = head;
    o->nref = 1;
    o->val = i;
    head = o;
  }
  return head;
}

uint64_t vm_gc_count(void) { return vm.gcs; }
uint64_t vm_used(void) { return vm.cls[CLS_SMALL].used + vm.cls[CLS_BIG].used; }

void vm_safepoint(void) {
  if (vm.since_gc >= vm.cfg.gc_budget) vm_gc();
}

/* ---------------------------------------------------------------------------
 * The collector
 * ------------------------------------------------------------------------- */

/* Marks everything reachable from `o`; returns bytes and objects newly
 * marked (so each root set is charged what it alone reached first). */
static void mark_from(obj_t *o, uint64_t *bytes, uint64_t *objs) {
  size_t sp = 0;
  if (!o || o->mark) return;
  o->mark = 1;
  vm.stack[sp++] = o;
  while (sp) {
    obj_t *x = vm.stack[--sp];
    *bytes += vm.cls[x->cls].size;
    *objs += 1;
    for (uint32_t i = 0; i < x->nref && i < VM_REFS; i++) {
      obj_t *y = x->ref[i];
      if (y && !y->mark && sp < vm.stack_cap) {
        y->mark = 1;
        vm.stack[sp++] = y;
      }
    }
  }
}

static uint64_t pause_extra_us(void) {
  rng_t *r = &vm.rng;
  uint64_t x = rng_below(r, 100);
  switch (vm.cfg.pause_profile) {
  case PAUSE_GAME: /* mostly quick, an occasional hitch past the frame budget */
    return x < 80 ? 0 : x < 94 ? rng_range(r, 1500, 6000) : x < 98 ? rng_range(r, 6000, 11000) : rng_range(r, 12000, 24000);
  case PAUSE_SERVER:
    return x < 70 ? rng_range(r, 0, 900) : rng_range(r, 1000, 9000);
  case PAUSE_DESKTOP:
    return x < 60 ? rng_range(r, 500, 5000) : x < 85 ? rng_range(r, 5000, 12000) : rng_range(r, 15000, 40000);
  case PAUSE_INTERACTIVE:
    return rng_range(r, 300, 4000);
  default:
    return 0;
  }
}

void vm_gc(void) {
  uint64_t before = vm_used();
  valkmem_gc_begin();
  /* Waiting for threads to reach a safepoint: the part of a real pause that
   * is not marking work. Drawn from the mode's profile so the dashboard's
   * pause histogram shows every bucket. */
  uint64_t extra = pause_extra_us();
  if (extra) sleep_us(extra);

  /* mark, charging each root set with what it reaches first */
  struct {
    uint64_t bytes, objs;
  } per[MAX_ROOTSETS];
  memset(per, 0, sizeof per);
  for (int r = 0; r < vm.nroots; r++)
    for (size_t i = 0; i < vm.roots[r].n; i++) mark_from(vm.roots[r].slots[i], &per[r].bytes, &per[r].objs);

  /* sweep */
  for (int k = 0; k < VM_CLASSES; k++) {
    vm_class_t *c = &vm.cls[k];
    slab_t **link = &c->slabs;
    while (*link) {
      slab_t *s = *link;
      for (uint32_t i = 0; i < s->nslots; i++) {
        obj_t *o = (obj_t *)(s->slots + (size_t)i * c->size);
        if (!o->live) continue;
        if (o->mark) {
          o->mark = 0;
          continue;
        }
        o->live = 0;
        o->ref[0] = s->free;
        s->free = o;
        s->nfree++;
        c->used -= c->size;
        valkmem_pool_free(c->pool, c->size);
      }
      if (s->nfree == s->nslots && c->nslabs > c->min_slabs) { /* give back empty slabs above the initial heap */
        *link = s->next;
        free(s);
        c->nslabs--;
        continue;
      }
      link = &s->next;
    }
    class_report_held(c);
  }
  for (int r = 0; r < vm.nroots; r++) valkmem_root_report(vm.roots[r].name, per[r].bytes, per[r].objs);
  vm.since_gc = 0;
  vm.gcs++;
  valkmem_gc_end(before, vm_used());
}

/* ---------------------------------------------------------------------------
 * Arenas
 * ------------------------------------------------------------------------- */

void arena_init(arena_t *a, const char *name, int kind, size_t cap) {
  memset(a, 0, sizeof *a);
  a->buf = malloc(cap);
  a->cap = a->buf ? cap : 0;
  a->pool = valkmem_pool_register(name, kind, cap, 0);
}

/* A request the arena cannot hold: served by malloc until the reset. */
static __attribute__((noinline)) void *arena_spill(arena_t *a, size_t n) {
  valkmem_pool_overflow(a->pool, n);
  if (a->nspill == a->capspill) {
    size_t cap = a->capspill ? a->capspill * 2 : 8;
    void **v = realloc(a->spill, cap * sizeof *v);
    if (!v) return NULL;
    a->spill = v;
    a->capspill = cap;
  }
  void *p = malloc(n);
  if (p) a->spill[a->nspill++] = p;
  return p;
}

void *arena_alloc(arena_t *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (a->used + n > a->cap) return arena_spill(a, n);
  void *p = a->buf + a->used;
  a->used += n;
  valkmem_pool_alloc(a->pool, n);
  return p;
}

void arena_reset(arena_t *a) {
  for (size_t i = 0; i < a->nspill; i++) free(a->spill[i]);
  a->nspill = 0;
  a->used = 0;
  valkmem_pool_reset(a->pool);
}

void arena_destroy(arena_t *a) {
  arena_reset(a);
  free(a->spill);
  free(a->buf);
  memset(a, 0, sizeof *a);
}
