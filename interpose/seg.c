/* seg.c - the recorder's side of the shared segment (segment.h): creating
 * it, handing out its memory, publishing the module list, leaving notes for
 * the agent, and giving a forked child a segment of its own.
 *
 * The segment is MAP_SHARED so the agent sees every store; that is also
 * why fork() needs care here: a child would otherwise keep writing into
 * its parent's counters. fork_prepare makes a copy of the segment's
 * structures into a new memfd (while the forking thread is inside fork and
 * cannot change its own counters), and the child moves that copy over the
 * parent's mapping at the same address, so every pointer into it stays
 * valid. Ring buffers are not copied: a child replays nothing from before
 * the fork.
 */
#include "hot.h"

#include <sched.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

vkm_seg_hdr_t *vkm_seg;
static int seg_fd = -1;          /* until handed over */
static int fork_fd = -1;         /* fork_prepare's copy, for the child */
static void *fork_map;

/* Structures at the front; ring buffers from RING_BASE on, so that a fork
 * copies only [0, bump). */
#define ARENA_BASE (((sizeof(vkm_seg_hdr_t) + 4095) & ~(size_t)4095) + VKM_SEG_MODULES_BYTES)
#define RING_BASE VKM_SEG_RING_BASE

/* ---------------------------------------------------------------------------
 * Notes: what the recorder would have said, said by the agent instead.
 * Before the segment exists (config is read first) they wait here.
 * ------------------------------------------------------------------------- */
/* TSan builds: the recorder is not instrumented, so TSan cannot see its
 * locks, but it intercepts memcpy even from here and would report the
 * copies those locks order as races. Copy by hand there (this file is
 * compiled with -fno-tree-loop-distribute-patterns under TSan, so the
 * loop stays a loop). */
static void copy(void *dst, const void *src, size_t n) {
#if VKM_TSAN
  unsigned char *d = dst;
  const unsigned char *s = src;
  for (size_t i = 0; i < n; i++) d[i] = s[i];
#else
  memcpy(dst, src, n);
#endif
}

static char early_notes[1024];
static uint32_t early_used;

static void note_append(char *buf, uint32_t cap, uint32_t *used, const char *msg, size_t len) {
  if (*used + len + 1 > cap) return;
  copy(buf + *used, msg, len);
  buf[*used + len] = 0;
  *used += (uint32_t)len + 1;
}

void vkm_seg_note(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  size_t len = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
  if (!vkm_seg) {
    note_append(early_notes, sizeof early_notes, &early_used, msg, len);
    return;
  }
  while (__atomic_exchange_n(&vkm_seg->notes_lock, 1, __ATOMIC_ACQUIRE)) sched_yield();
  uint32_t used = vkm_seg->notes_used;
  note_append(vkm_seg->notes, VKM_SEG_NOTES_BYTES, &used, msg, len);
  __atomic_store_n(&vkm_seg->notes_used, used, __ATOMIC_RELEASE);
  __atomic_store_n(&vkm_seg->notes_lock, 0, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------------------
 * Creation and allocation
 * ------------------------------------------------------------------------- */
/* The segment's size, chosen once (a forked child keeps its parent's):
 * smaller when the address space is limited (segment.h). */
static uint64_t seg_size = VKM_SEG_SIZE;

static int seg_map(int *fd_out, void **map_out) { return vkm_plat_shm_create(seg_size, fd_out, map_out); }

int vkm_seg_create(void) {
  if (vkm_seg) return 0;
  void *p = NULL;
  int fd = -1;
  struct rlimit as;
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) seg_size = VKM_SEG_SIZE_SMALL;
  if (seg_map(&fd, &p) != 0) {
    /* No shared memory (a seccomp filter, say): count in private memory, with no
     * agent. Nothing is lost but the dashboard. */
    p = vkm_plat_map(seg_size);
    if (!p) return -1;
  }
  vkm_seg_hdr_t *h = p;
  h->magic = VKM_SEG_MAGIC;
  h->version = VKM_SEG_VERSION;
  h->hdr_size = sizeof *h;
  h->size = seg_size;
  h->bump = ARENA_BASE;
  h->modules_off = ARENA_BASE - VKM_SEG_MODULES_BYTES;
  h->pid = (int32_t)getpid();
  h->ppid = (int32_t)getppid();
  h->end_state = VKM_END_RUNNING;
  snprintf(h->platform, sizeof h->platform, "%s", vkm_plat_name());
  memcpy(h->notes, early_notes, early_used);
  h->notes_used = early_used;
  seg_fd = fd;
  vkm_seg = h;
  return 0;
}

int vkm_seg_take_fd(void) {
  int fd = seg_fd;
  seg_fd = -1;
  return fd;
}

#if VKM_ASSERTS
void vkm_assert_fail(const char *what, const char *file, int line) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "valkmem: invariant broken: %s (%s:%d)\n", what, file, line);
  ssize_t w = write(2, buf, n > 0 && (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
  (void)w;
  abort();
}
#endif

uint64_t vkm_seg_alloc(size_t n, size_t align) {
  if (!vkm_seg) return 0;
  VKM_ASSERT(align && (align & (align - 1)) == 0);
  uint64_t cur = __atomic_load_n(&vkm_seg->bump, __ATOMIC_RELAXED);
  for (;;) {
    uint64_t start = (cur + align - 1) & ~(uint64_t)(align - 1);
    if (start + n > RING_BASE) return 0;
    if (__atomic_compare_exchange_n(&vkm_seg->bump, &cur, start + n, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
      return start;
  }
}

/* Ring buffers: from the region above RING_BASE, which a fork does not
 * copy. Only the recorder allocates, so the bump pointer is its own (a
 * forked child inherits it with the copy of the structures it matches). */
static uint64_t ring_bump = RING_BASE; /* atomic; the same in a forked child (its copy is alike) */

uint64_t vkm_seg_alloc_ring(size_t n) {
  if (!vkm_seg) return 0;
  uint64_t cur = __atomic_load_n(&ring_bump, __ATOMIC_RELAXED);
  for (;;) {
    uint64_t start = (cur + 4095) & ~(uint64_t)4095;
    if (start + n > vkm_seg->size) return 0;
    if (__atomic_compare_exchange_n(&ring_bump, &cur, start + n, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
      return start;
  }
}

/* ---------------------------------------------------------------------------
 * Modules
 * ------------------------------------------------------------------------- */
static int modules_lock;
static uint64_t seen_adds, seen_subs, last_check_ns; /* atomic: see vkm_seg_modules_check */

typedef struct {
  vkm_seg_modules_t *m;
  vkm_seg_module_t *ent;
  char *strings;
  uint32_t max, str_cap;
} pub_t;

static int publish_cb(const char *name, uint64_t bias, uint64_t lo, uint64_t hi, void *arg) {
  pub_t *p = arg;
  if (p->m->count >= p->max) return 1;
  if (hi <= lo) return 0;
  size_t len = strlen(name);
  if (p->m->strings_used + len + 1 > p->str_cap) return 1;
  vkm_seg_module_t *e = &p->ent[p->m->count++];
  e->bias = bias;
  e->lo = lo;
  e->hi = hi;
  e->path_off = p->m->strings_used;
  e->path_len = (uint32_t)len;
  copy(p->strings + p->m->strings_used, name, len + 1);
  p->m->strings_used += (uint32_t)len + 1;
  return 0;
}

void vkm_seg_publish_modules(void) {
  if (!vkm_seg) return;
  while (__atomic_exchange_n(&modules_lock, 1, __ATOMIC_ACQUIRE)) sched_yield();
  vkm_seg_modules_t *m = (vkm_seg_modules_t *)((char *)vkm_seg + vkm_seg->modules_off);
  __atomic_add_fetch(&m->seq, 1, __ATOMIC_ACQ_REL); /* odd: being written */
  pub_t p = {.m = m, .ent = (vkm_seg_module_t *)(m + 1), .max = VKM_SEG_MODULES_MAX};
  p.strings = (char *)(p.ent + p.max);
  p.str_cap = (uint32_t)(VKM_SEG_MODULES_BYTES - sizeof *m - p.max * sizeof(vkm_seg_module_t));
  m->count = 0;
  m->strings_used = 0;
  uint64_t c[2] = {0, 0};
  vkm_plat_modules_counts(&c[0], &c[1]);
  /* An object went away: the unwinder's rules for its addresses go too
   * (another object may be loaded there). */
  if (c[1] != __atomic_load_n(&seen_subs, __ATOMIC_RELAXED)) vkm_unwind_flush();
  __atomic_store_n(&seen_adds, c[0], __ATOMIC_RELAXED);
  __atomic_store_n(&seen_subs, c[1], __ATOMIC_RELAXED);
  vkm_plat_modules(publish_cb, &p);
  __atomic_add_fetch(&m->seq, 1, __ATOMIC_ACQ_REL);
  __atomic_store_n(&modules_lock, 0, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------------------
 * fork
 * ------------------------------------------------------------------------- */
void vkm_seg_fork_prepare(void) {
  fork_fd = -1;
  fork_map = NULL;
  if (!vkm_seg || seg_map(&fork_fd, &fork_map) != 0) return;
  /* What is in use only: the header, the module list's entries and
   * strings, the arena up to bump. Each page copied is a page fault in the
   * new memfd (the modules area alone is 64 pages, nearly all empty). */
  char *to = fork_map, *from = (char *)vkm_seg;
  copy(to, from, sizeof(vkm_seg_hdr_t));
  const vkm_seg_modules_t *m = (const vkm_seg_modules_t *)(from + vkm_seg->modules_off);
  size_t ent = sizeof *m + (size_t)m->count * sizeof(vkm_seg_module_t);
  size_t str_at = sizeof *m + VKM_SEG_MODULES_MAX * sizeof(vkm_seg_module_t);
  copy(to + vkm_seg->modules_off, m, ent);
  copy(to + vkm_seg->modules_off + str_at, (const char *)m + str_at, m->strings_used);
  uint64_t used = __atomic_load_n(&vkm_seg->bump, __ATOMIC_RELAXED);
  copy(to + ARENA_BASE, from + ARENA_BASE, used - ARENA_BASE);
}

void vkm_seg_fork_parent(void) {
  vkm_plat_shm_release(fork_fd, fork_map, seg_size);
  fork_map = NULL;
  fork_fd = -1;
}

/* The child of a fork whose segment could not be made its own: it must
 * never write its parent's counters, so it stops counting (and says
 * nothing: there is no agent to hear it). The hot path passes everything
 * through from here on. */
static void child_stop(void) {
  vkm_config.enabled = false;
  vkm_sampling = 0;
  vkm_tls.ts = vkm_tls.other = vkm_tls.state = NULL;
  vkm_tls.stateless = 0;
  vkm_seg = NULL;
}

int vkm_seg_fork_child(void) {
  if (!vkm_seg) return -1;
  if (fork_map) {
    if (vkm_plat_shm_place(fork_map, fork_fd, vkm_seg, seg_size) != 0) {
      vkm_plat_shm_release(fork_fd, NULL, seg_size);
      fork_map = NULL;
      fork_fd = -1;
      child_stop();
      return -1;
    }
  } else { /* no memfd copy could be made: a private one keeps the parent's counters safe */
    void *tmp = vkm_plat_map(seg_size);
    if (!tmp) {
      child_stop();
      return -1;
    }
    copy(tmp, vkm_seg, vkm_seg->bump);
    if (vkm_plat_shm_place(tmp, -1, vkm_seg, seg_size) != 0) {
      child_stop();
      return -1;
    }
  }
  fork_map = NULL;
  seg_fd = fork_fd;
  fork_fd = -1;
  vkm_seg_hdr_t *h = vkm_seg;
  h->pid = (int32_t)getpid();
  h->ppid = (int32_t)getppid();
  h->forked = 1;
  h->end_state = VKM_END_RUNNING;
  h->agent_sock[0] = 0;
  h->notes_used = 0;
  h->notes_lock = 0;
  h->dropped = 0;
  h->producers_waiting = 0;
  modules_lock = 0;
  return 0;
}

/* ---------------------------------------------------------------------------
 * Module changes. dlopen itself is not interposed: glibc searches the
 * calling object's RUNPATH, and the caller would become us. Instead a
 * sampler, before it emits its stack, checks the loader's own counts of
 * objects added and removed (at most once a millisecond) and publishes the
 * list again when they moved, so the agent knows every module a sampled
 * frame can be in by the time it reads the sample.
 * ------------------------------------------------------------------------- */
void vkm_seg_modules_check(void) {
  uint64_t now = vkm_now_ns();
  uint64_t last = __atomic_load_n(&last_check_ns, __ATOMIC_RELAXED);
  if (now - last < 1000000 || !__atomic_compare_exchange_n(&last_check_ns, &last, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    return;
  uint64_t c[2] = {0, 0};
  vkm_plat_modules_counts(&c[0], &c[1]);
  if (c[0] == __atomic_load_n(&seen_adds, __ATOMIC_RELAXED) && c[1] == __atomic_load_n(&seen_subs, __ATOMIC_RELAXED)) return;
  /* An object went away: the unwinder's rules for its addresses go too
   * (another object may be loaded there). */
  if (c[1] != __atomic_load_n(&seen_subs, __ATOMIC_RELAXED)) vkm_unwind_flush();
  __atomic_store_n(&seen_adds, c[0], __ATOMIC_RELAXED);
  __atomic_store_n(&seen_subs, c[1], __ATOMIC_RELAXED);
  vkm_seg_publish_modules();
  vkm_sample_find_libgcc();
}
