/* init.c - start-up, shutdown and process-wide plumbing of the shim.
 *
 *  - resolving the real allocator (dlsym RTLD_NEXT) with a bootstrap buffer
 *    for the calloc that dlsym itself makes;
 *  - choosing how usable sizes are read (glibc header or the real call);
 *  - the library constructor/destructor, fork handlers, report ownership,
 *    VALKMEM_FOLLOW_EXEC;
 *  - valkmem's own memory (mimalloc) and its accounting, diagnostics.
 */
#include "hot.h"

#include <mimalloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

int vkm_ready;
int vkm_sampling;
vkm_real_t vkm_real;
int vkm_usable_mode = VKM_USABLE_NEXT;
uint16_t vkm_class_usable[VKM_CLASS_MAX / 8 + 1];
int vkm_constructed;

static int init_busy;        /* atomic: resolution in progress */
static uint64_t start_ns, start_unix_ms;
static int report_owner;
static pid_t my_pid;         /* set at load and in fork children; a vfork child differs */
static int64_t self_bytes;   /* atomic */

/* ---------------------------------------------------------------------------
 * Diagnostics and time
 * ------------------------------------------------------------------------- */
/* The calling thread's file table is its own (only the agent's can be). */
static __thread int files_private __attribute__((tls_model("initial-exec")));
static __thread int files_pidfd __attribute__((tls_model("initial-exec")));

void vkm_set_private_files(int self_pidfd) {
  files_private = 1;
  files_pidfd = self_pidfd;
}
int vkm_private_files(void) { return files_private; }

/* Raw write to stderr (POSIX on every platform): no buffering, no
 * allocation, safe inside a hook. */
void vkm_write_stderr(const char *buf, size_t len) {
  int fd = 2, borrowed = 0;
#ifdef SYS_pidfd_getfd
  if (files_private) { /* the program's descriptor 2 as it is now */
    fd = (int)syscall(SYS_pidfd_getfd, files_pidfd, 2, 0);
    if (fd < 0) return;
    borrowed = 1;
  }
#endif
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n <= 0) break;
    buf += n;
    len -= (size_t)n;
  }
  if (borrowed) syscall(SYS_close, fd);
}

void vkm_say(const char *level, const char *fmt, ...) {
  if (vkm_config.quiet && strcmp(level, "error") != 0) return;
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "valkmem: %s: ", level);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  vkm_write_stderr(buf, len);
}

uint64_t vkm_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
uint64_t vkm_start_ns(void) { return start_ns; }
uint64_t vkm_started_at_unix_ms(void) { return start_unix_ms; }
const char *vkm_platform(void) { return vkm_plat_name(); }

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
      vkm_write_stderr("valkmem: error: bootstrap buffer exhausted\n", 43);
      return NULL;
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
  if (!f) {
    vkm_say("error", "cannot find the real %s (dlsym RTLD_NEXT): is libvalkmem preloaded before the C library?", name);
    abort();
  }
  return f;
}

static void use_mimalloc(void) {
  vkm_real.malloc = mi_malloc;
  vkm_real.free = mi_free;
  vkm_real.calloc = mi_calloc;
  vkm_real.realloc = mi_realloc;
  vkm_real.reallocarray = mi_reallocarray;
  vkm_real.posix_memalign = mi_posix_memalign;
  vkm_real.aligned_alloc = mi_aligned_alloc;
  vkm_real.memalign = mi_memalign;
  vkm_real.valloc = mi_valloc;
  vkm_real.pvalloc = mi_pvalloc;
  vkm_real.usable_size = (size_t (*)(void *))mi_usable_size;
}

/* The inline glibc read is used only when it agrees with glibc's own
 * malloc_usable_size on small, medium, aligned and mmapped blocks. */
static void choose_usable_mode(void) {
  if (!vkm_plat_is_libc_malloc((void *)vkm_real.malloc)) return;
  static const size_t sizes[] = {0, 1, 24, 25, 100, 1000, 4096, 70000, 300000, 5u << 20};
  int agree = 1;
  vkm_usable_mode = VKM_USABLE_GLIBC;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && agree; i++) {
    void *p = vkm_real.malloc(sizes[i]);
    void *q = vkm_real.memalign(256, sizes[i] + 1);
    if (p) agree &= vkm_usable(p) == vkm_real.usable_size(p);
    if (q) agree &= vkm_usable(q) == vkm_real.usable_size(q);
    vkm_real.free(p);
    vkm_real.free(q);
  }
  if (!agree) vkm_usable_mode = VKM_USABLE_NEXT;
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
  if (vkm_real.malloc == mi_malloc) {
    good = mi_good_size;
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
  start_ns = vkm_now_ns();
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  start_unix_ms = (uint64_t)wall.tv_sec * 1000 + (uint64_t)wall.tv_nsec / 1000000;
  vkm_config_load();
  if (!strcmp(vkm_config.allocator, "mimalloc")) use_mimalloc();
  else if (vkm_config.allocator[0]) vkm_say("warning", "VALKMEM_ALLOCATOR=%s: unknown allocator (try mimalloc)", vkm_config.allocator);
  choose_usable_mode();
  if (vkm_usable_mode != VKM_USABLE_GLIBC) choose_class_table();
  vkm_sampling = vkm_config.sample_bytes != 0 && vkm_config.enabled;
  vkm_filter_pin_bootstrap();
  vkm_sample_init();
  vkm_guard_leave();
  __atomic_store_n(&vkm_ready, 1, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------------------
 * valkmem's own memory: mimalloc, counted apart as self bytes.
 * ------------------------------------------------------------------------- */
void vkm_self_track(int64_t delta) { __atomic_add_fetch(&self_bytes, delta, __ATOMIC_RELAXED); }
uint64_t vkm_self_bytes(void) {
  int64_t v = __atomic_load_n(&self_bytes, __ATOMIC_RELAXED);
  return v > 0 ? (uint64_t)v : 0;
}

void *vkm_malloc(size_t n) {
  void *p = mi_malloc(n);
  if (p) vkm_self_track((int64_t)mi_usable_size(p));
  return p;
}
void *vkm_calloc(size_t n, size_t m) {
  void *p = mi_calloc(n, m);
  if (p) vkm_self_track((int64_t)mi_usable_size(p));
  return p;
}
void *vkm_realloc(void *p, size_t n) {
  size_t old = p ? mi_usable_size(p) : 0;
  void *q = mi_realloc(p, n);
  if (q) vkm_self_track((int64_t)mi_usable_size(q) - (int64_t)old);
  else if (n == 0) vkm_self_track(-(int64_t)old);
  return q;
}
char *vkm_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = vkm_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}
void vkm_free(void *p) {
  if (!p) return;
  vkm_self_track(-(int64_t)mi_usable_size(p));
  mi_free(p);
}

/* ---------------------------------------------------------------------------
 * argv, report ownership, exec
 * ------------------------------------------------------------------------- */
static char cmdline[8192];
static char *argv_store[128];
static int argc_store;

int vkm_argv(char ***argv_out) {
  *argv_out = argv_store;
  return argc_store;
}

static void capture_argv(void) {
  size_t used = 0;
  int argc = vkm_plat_cmdline(cmdline, sizeof cmdline, &used);
  char *p = cmdline;
  argc_store = 0;
  for (int i = 0; i < argc && argc_store < 127 && p < cmdline + used; i++) {
    argv_store[argc_store++] = p;
    p += strlen(p) + 1;
  }
  argv_store[argc_store] = NULL;
}

/* Without %p in VALKMEM_REPORT only the process the user started writes the
 * report: the first process to load the shim records its pid in the
 * environment, which exec'd descendants inherit; forked children differ by
 * pid. */
static void decide_report_owner(void) {
  if (!vkm_config.report[0]) return;
  if (strstr(vkm_config.report, "%p")) {
    report_owner = 1;
    return;
  }
  char me[32];
  snprintf(me, sizeof me, "%d", (int)getpid());
  const char *owner = getenv("VALKMEM_OWNER_PID");
  if (!owner || !*owner) {
    setenv("VALKMEM_OWNER_PID", me, 1);
    report_owner = 1;
  } else {
    report_owner = strcmp(owner, me) == 0;
  }
}

bool vkm_is_report_owner(void) { return report_owner != 0; }

/* VALKMEM_FOLLOW_EXEC=0: take ourselves out of LD_PRELOAD so that programs
 * this one execs run without the shim. */
static void drop_from_preload(void) {
  const char *pre = getenv("LD_PRELOAD");
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
  if (n) setenv("LD_PRELOAD", out, 1);
  else unsetenv("LD_PRELOAD");
}

/* ---------------------------------------------------------------------------
 * fork
 * ------------------------------------------------------------------------- */
/* In this order: samplers first (in exact mode one may be waiting for the
 * agent to drain its ring), then the agent (it may take retire_lock). */
static void fork_prepare(void) {
  vkm_guard_enter();
  vkm_sample_fork_prepare();
  vkm_agent_fork_prepare();
  vkm_thread_fork_prepare();
}

static void fork_parent(void) {
  vkm_thread_fork_parent();
  vkm_agent_fork_parent();
  vkm_sample_fork_parent();
  vkm_guard_leave();
}

static void fork_child(void) {
  my_pid = getpid();
  /* The child's own life, and its report's started_at, begin now. */
  start_ns = vkm_now_ns();
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  start_unix_ms = (uint64_t)wall.tv_sec * 1000 + (uint64_t)wall.tv_nsec / 1000000;
  vkm_thread_fork_child();
  vkm_sample_fork_child();
  if (!strstr(vkm_config.report, "%p") || !vkm_config.follow_fork) report_owner = 0;
  vkm_guard_leave();
  vkm_agent_after_fork_child();
}

/* ---------------------------------------------------------------------------
 * Constructor and destructor
 * ------------------------------------------------------------------------- */
__attribute__((constructor(101))) static void vkm_load(void) {
  vkm_constructed = 1;
  vkm_init_real();
  vkm_guard_enter();
  my_pid = getpid();
  capture_argv();
  decide_report_owner();
  if (!vkm_config.follow_exec) drop_from_preload();
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  vkm_guard_leave();
  vkm_sample_warm_up();
  if (vkm_config.enabled) vkm_agent_start();
}

__attribute__((destructor(101))) static void vkm_unload(void) {
  if (vkm_config.enabled) vkm_agent_stop_and_report("exit");
}

/* Programs that leave through _exit (dash, many forked children) skip
 * destructors; the report is written here instead. Only in the process that
 * loaded us or forked with our handlers: a vfork child shares its parent's
 * memory and must touch nothing. */
static void exit_now(void) {
  if (vkm_config.enabled && vkm_ready && my_pid == getpid() && !vkm_tls.guard) vkm_agent_stop_and_report("_exit");
}

VKM_EXPORT void _exit(int code) {
  exit_now();
  void (*real)(int) = (void (*)(int))vkm_plat_next("_exit");
  if (real) real(code);
  for (;;) syscall(SYS_exit_group, code);
}

VKM_EXPORT void _Exit(int code) { _exit(code); }
