/* init.c - start-up and process-wide plumbing of the recorder.
 *
 *  - resolving the real allocator (dlsym RTLD_NEXT) with a bootstrap buffer
 *    for the calloc that dlsym itself makes;
 *  - choosing how usable sizes are read (glibc header or the real call);
 *  - the library constructor, fork handlers, the exit handler,
 *    VALKMEM_FOLLOW_EXEC.
 *
 * What the constructor leaves behind in the host: the segment's mapping,
 * the sampler's address table, one pthread key (thread exit), the fork
 * handlers and one on_exit handler. No thread, no signal handler, no
 * descriptor, nothing written to stdout or stderr.
 */
#include "hot.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

int vkm_ready;
int vkm_sampling;
#ifdef __APPLE__
/* macOS: the real functions are this image's own references to them
 * (darwin.c), bound by dyld before any code runs. The recorder starts in
 * its constructor (VKM_DEFER_INIT, CMakeLists.txt), not inside libSystem's
 * initialisers, which already allocate through the interposed names: until
 * then every call passes straight through to these. */
vkm_real_t vkm_real = {.malloc = malloc, .free = free, .calloc = calloc, .realloc = realloc,
                       .posix_memalign = posix_memalign, .aligned_alloc = aligned_alloc, .valloc = valloc};
#else
vkm_real_t vkm_real;
#endif
int vkm_usable_mode = VKM_USABLE_NEXT;
int vkm_fast_path;
uint16_t vkm_class_usable[VKM_CLASS_MAX / 8 + 1];
int vkm_constructed;

static int init_busy;        /* atomic: resolution in progress */
static size_t (*mi_good)(size_t); /* mimalloc's mi_good_size, when it is the allocator */
static pid_t my_pid;         /* set at load and in fork children; a vfork child differs */

/* ---------------------------------------------------------------------------
 * Time, and the one message the recorder ever prints: that the program
 * cannot run with it at all.
 * ------------------------------------------------------------------------- */
static void fatal(const char *what) {
  static const char pre[] = "valkmem: error: cannot find the real ";
  static const char post[] = " (dlsym RTLD_NEXT): is libvalkmem preloaded before the C library?\n";
  ssize_t w = write(2, pre, sizeof pre - 1);
  w = write(2, what, strlen(what));
  w = write(2, post, sizeof post - 1);
  (void)w;
  abort();
}

uint64_t vkm_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void stamp_start(void) {
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  vkm_seg->start_ns = vkm_now_ns();
  vkm_seg->start_unix_ms = (uint64_t)wall.tv_sec * 1000 + (uint64_t)wall.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------
 * Bootstrap buffer: answers allocations made while the real functions are
 * being resolved. Static, zeroed, never freed; free() ignores it.
 * ------------------------------------------------------------------------- */
#define BOOT_SIZE VKM_BOOT_SIZE
_Alignas(4096) unsigned char vkm_boot_buf[BOOT_SIZE];
#define boot_buf vkm_boot_buf
static size_t boot_used; /* atomic */

void *vkm_bootstrap_alloc(size_t n, size_t align) {
  if (align < 16) align = 16;
  size_t cur = __atomic_load_n(&boot_used, __ATOMIC_RELAXED);
  for (;;) {
    size_t start = (cur + 16 + align - 1) & ~(align - 1);
    if (n > BOOT_SIZE || start + n > BOOT_SIZE) {
      return NULL; /* the caller sees an allocation failure */
    }
    if (__atomic_compare_exchange_n(&boot_used, &cur, start + n, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      ((size_t *)(boot_buf + start))[-1] = n;
      return boot_buf + start;
    }
  }
}

size_t vkm_bootstrap_size(const void *p) { return ((const size_t *)p)[-1]; }

void vkm_filter_pin_bootstrap(void) {
  for (size_t off = 0; off < BOOT_SIZE; off += 16) vkm_sample_filter[vkm_filter_slot(boot_buf + off)] = 255;
  vkm_sample_filter[vkm_filter_slot(NULL)] = 255; /* free(NULL) too: see free() */
}

/* ---------------------------------------------------------------------------
 * Real functions
 * ------------------------------------------------------------------------- */
static void *need(const char *name) {
  void *f = vkm_plat_next(name);
  if (!f) fatal(name);
  return f;
}

/* VALKMEM_ALLOCATOR=mimalloc: the program's allocations go to mimalloc,
 * opened here only on request, local to us (RTLD_LOCAL), so that nothing
 * else in the process resolves to it. 0, or -1 when it cannot be had. */
static int use_mimalloc(void) {
  void *h = dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!h) h = dlopen("libmimalloc.so", RTLD_NOW | RTLD_LOCAL);
  if (!h) return -1;
#define MI(field, sym) *(void **)&vkm_real.field = dlsym(h, sym)
  vkm_real_t keep = vkm_real;
  MI(malloc, "mi_malloc");
  MI(free, "mi_free");
  MI(calloc, "mi_calloc");
  MI(realloc, "mi_realloc");
  MI(reallocarray, "mi_reallocarray");
  MI(posix_memalign, "mi_posix_memalign");
  MI(aligned_alloc, "mi_aligned_alloc");
  MI(memalign, "mi_memalign");
  MI(valloc, "mi_valloc");
  MI(pvalloc, "mi_pvalloc");
  MI(usable_size, "mi_usable_size");
#undef MI
  mi_good = (size_t(*)(size_t))dlsym(h, "mi_good_size");
  if (!vkm_real.malloc || !vkm_real.free || !vkm_real.calloc || !vkm_real.realloc || !vkm_real.posix_memalign ||
      !vkm_real.aligned_alloc || !vkm_real.memalign || !vkm_real.valloc || !vkm_real.usable_size) {
    vkm_real = keep;
    return -1;
  }
  if (!vkm_real.reallocarray) vkm_real.reallocarray = keep.reallocarray;
  if (!vkm_real.pvalloc) vkm_real.pvalloc = vkm_real.valloc;
  return 0;
}

/* LZCNT (hot.h, vkm_lz_fast): every x86-64 CPU since about 2013 has it;
 * one without it counts through the other allocators' path. */
static int cpu_has_lzcnt(void) {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  return __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & bit_LZCNT);
#else
  return 1;
#endif
}

/* The inline glibc read is used when the real malloc is glibc's own. It
 * is not probed here: allocating and freeing test blocks at start-up left
 * the program's heap in another state than without valkmem (bins and
 * tcache filled by the probes' leftovers, and an mmapped block's free
 * raising glibc's dynamic mmap threshold), and the program's own malloc
 * then took other paths - sqlite3 ran 0.8 % more instructions inside
 * glibc's malloc alone. The chunk header rule has not changed in glibc's
 * history; soak_classes and soak_large pin it against malloc_usable_size
 * for every size from 0 to 4200 and for mmapped blocks. */
static void choose_usable_mode(void) {
  if (vkm_plat_is_libc_malloc((void *)vkm_real.malloc)) vkm_usable_mode = VKM_USABLE_GLIBC;
  vkm_fast_path = vkm_usable_mode == VKM_USABLE_GLIBC && cpu_has_lzcnt() && vkm_config.fast_path;
}

/* Another allocator's size classes (see vkm_class_lookup), taken only
 * when the allocator states them itself - nallocx(n, 0), "the real size of
 * the allocation that would result from the equivalent mallocx() call", in
 * the same library as the malloc we forward to (jemalloc, tcmalloc), or
 * mimalloc's mi_good_size -, when every request in a group of 8 bytes has
 * the same class, and when real blocks of the probed sizes have exactly
 * the stated usable size. Otherwise the table stays empty and malloc asks
 * malloc_usable_size, as free always does. */
static size_t (*next_nallocx)(size_t, int);
static size_t good_size_nallocx(size_t n) { return next_nallocx(n, 0); }

static void choose_class_table(void) {
  size_t (*good)(size_t) = NULL;
  if (mi_good) {
    good = mi_good;
  } else {
    next_nallocx = (size_t(*)(size_t, int))vkm_plat_next("nallocx");
    if (next_nallocx && vkm_plat_same_object((void *)next_nallocx, (void *)vkm_real.malloc) &&
        vkm_plat_same_object((void *)vkm_real.usable_size, (void *)vkm_real.malloc))
      good = good_size_nallocx;
  }
  if (!good) return;
  uint16_t t[VKM_CLASS_MAX / 8 + 1] = {0};
  for (size_t i = 1; i <= VKM_CLASS_MAX / 8; i++) {
    size_t u = good(i * 8);
    if (u < i * 8 || u > UINT16_MAX || good(i * 8 - 7) != u) return;
    t[i] = (uint16_t)u;
  }
  for (size_t n = 1; n <= VKM_CLASS_MAX; n += n < 128 ? 1 : 5) {
    void *p = vkm_real.malloc(n);
    int agree = !p || vkm_real.usable_size(p) == t[(n + 7) >> 3];
    vkm_real.free(p);
    if (!agree) return;
  }
  memcpy(vkm_class_usable, t, sizeof t);
}

void vkm_init_real(void) {
  if (__atomic_load_n(&vkm_ready, __ATOMIC_ACQUIRE)) return;
  if (__atomic_exchange_n(&init_busy, 1, __ATOMIC_ACQ_REL)) return; /* re-entered from dlsym: bootstrap answers */
  vkm_guard_enter();
  vkm_real.malloc = need("malloc");
  vkm_real.free = need("free");
  vkm_real.calloc = need("calloc");
  vkm_real.realloc = need("realloc");
  vkm_real.reallocarray = vkm_plat_next("reallocarray");
  vkm_real.posix_memalign = need("posix_memalign");
  vkm_real.aligned_alloc = need("aligned_alloc");
  vkm_real.memalign = need("memalign");
  vkm_real.valloc = need("valloc");
  vkm_real.pvalloc = vkm_plat_next("pvalloc");
  vkm_real.usable_size = need("malloc_usable_size");
  vkm_real.mmap = need("mmap");
  vkm_real.munmap = need("munmap");
  vkm_real.mremap = vkm_plat_next("mremap");
  if (!vkm_real.pvalloc) vkm_real.pvalloc = vkm_real.valloc;
  vkm_config_load();
  if (vkm_config.enabled && vkm_seg_create() != 0) vkm_config.enabled = false; /* pass everything through */
  if (vkm_seg) stamp_start();
  if (vkm_seg) vkm_rings_init();
  if (!strcmp(vkm_config.allocator, "mimalloc")) {
    if (use_mimalloc() != 0) vkm_seg_note("VALKMEM_ALLOCATOR=mimalloc: cannot load libmimalloc.so.2; using the next malloc");
  } else if (vkm_config.allocator[0]) {
    vkm_seg_note("VALKMEM_ALLOCATOR=%s: unknown allocator (try mimalloc)", vkm_config.allocator);
  }
  choose_usable_mode();
  if (vkm_usable_mode != VKM_USABLE_GLIBC) choose_class_table();
  if (vkm_seg) {
    vkm_seg->usable_mode = (uint32_t)vkm_usable_mode;
    snprintf(vkm_seg->allocator, sizeof vkm_seg->allocator, "%s",
             mi_good ? "mimalloc" : vkm_usable_mode == VKM_USABLE_GLIBC ? "glibc" : "other");
  }
  vkm_sampling = vkm_config.sample_bytes != 0 && vkm_config.enabled;
  vkm_filter_pin_bootstrap();
  vkm_sample_init();
  vkm_guard_leave();
  __atomic_store_n(&vkm_ready, 1, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------------------
 * What the recorder maps for itself, counted for the "valkmem self" figure.
 * ------------------------------------------------------------------------- */
void vkm_self_track(int64_t delta) {
  if (vkm_seg) __atomic_add_fetch(&vkm_seg->self_bytes, (uint64_t)delta, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------------------
 * argv, report ownership, exec
 * ------------------------------------------------------------------------- */
/* argv into the segment, read without the app's heap. */
static void capture_argv(void) {
  size_t used = 0;
  int argc = vkm_plat_cmdline(vkm_seg->argv, sizeof vkm_seg->argv, &used);
  vkm_seg->argc = argc > 0 ? (uint32_t)argc : 0;
}

/* VALKMEM_FOLLOW_EXEC=0: take ourselves out of LD_PRELOAD (macOS:
 * DYLD_INSERT_LIBRARIES) so that programs this one execs run without the
 * shim. */
static void drop_from_preload(void) {
  const char *var = vkm_plat_preload_var();
  const char *pre = getenv(var);
  if (!pre) return;
  char out[4096];
  size_t n = 0;
  const char *s = pre;
  while (*s) {
    size_t len = strcspn(s, ": ");
    if (len && !memmem(s, len, "libvalkmem", 10) && n + len + 2 < sizeof out) {
      if (n) out[n++] = ':';
      memcpy(out + n, s, len);
      n += len;
    }
    s += len;
    while (*s == ':' || *s == ' ') s++;
  }
  out[n] = 0;
  if (n) vkm_env_set(var, out);
  else unsetenv(var);
}

/* ---------------------------------------------------------------------------
 * fork. In this order: samplers first (none may be inside the unwinder or
 * half-way through a table insert), then the fold lock, then the copy of
 * the segment for the child (seg.c), which must see no fold half done.
 * ------------------------------------------------------------------------- */
volatile uint8_t *vkm_alive;
volatile int vkm_forking;

/* A raw copy of the process (hot.h): it records nothing from here on, and
 * leaves its parent's segment alone. Its calls pass straight through. */
void vkm_stop_copy(void) {
  vkm_config.enabled = false; /* no thread attaches, the exit handler does nothing */
  vkm_sampling = 0;
  vkm_tls.ts = vkm_tls.other = vkm_tls.state = NULL;
}

static void fork_prepare(void) {
  vkm_forking = 1;
  vkm_guard_enter();
  vkm_sample_fork_prepare();
  vkm_thread_fork_prepare();
  vkm_seg_fork_prepare();
}

static void fork_parent(void) {
  vkm_seg_fork_parent();
  vkm_thread_fork_parent();
  vkm_sample_fork_parent();
  vkm_guard_leave();
  vkm_forking = 0;
}

static void fork_child(void) {
  if (vkm_alive) *vkm_alive = 1; /* the kernel zeroed it in this copy */
  vkm_forking = 0;
  my_pid = getpid();
  if (vkm_seg_fork_child() != 0) { /* no segment of its own could be had: it counts nothing */
    vkm_sample_fork_child();
    vkm_guard_leave();
    return;
  }
  stamp_start();        /* the child's own life, and its report's started_at, begin now */
  vkm_thread_fork_child();
  vkm_sample_fork_child();
  vkm_guard_leave();
  vkm_link_fork_child();
}

/* ---------------------------------------------------------------------------
 * Constructor and exit
 * ------------------------------------------------------------------------- */
/* The last of the exit handlers to run (registered first), with the exit
 * code: the counts are final here. A vfork child that called exit() shares
 * its parent's memory and must touch nothing. */
static void at_exit(int code, void *arg) {
  (void)arg;
  if (!vkm_config.enabled || !vkm_seg || my_pid != getpid()) return;
  vkm_guard_enter();
  vkm_link_at_exit(code);
  vkm_guard_leave();
}

__attribute__((constructor(101))) static void vkm_load(void) {
  vkm_constructed = 1;
  vkm_init_real();
  if (!vkm_config.enabled) return;
  vkm_guard_enter();
  my_pid = getpid();
  capture_argv();
  vkm_seg->config = vkm_config;
  if (!vkm_config.follow_exec) drop_from_preload();
  uint8_t *alive = vkm_plat_map_wiped_in_copies(4096);
  if (alive) {
    *alive = 1;
    vkm_alive = alive;
  }
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  vkm_plat_on_exit(at_exit, NULL);
  vkm_seg_publish_modules();
  vkm_guard_leave();
  vkm_sample_warm_up();
  vkm_link_start();
}
