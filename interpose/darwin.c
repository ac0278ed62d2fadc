/* darwin.c - the platform seam on macOS. See platform.h.
 *
 * Built only on macOS (CMakeLists.txt picks one file per platform); on
 * Linux CI it is cross-compiled and linked for arm64 and x86_64 by
 * tests/macos_check.py, never run. The shim is loaded with
 * DYLD_INSERT_LIBRARIES and replaces the allocator through the
 * __DATA,__interpose table of wrap_darwin.c, not by symbol order.
 *
 * Decisions a reader needs first:
 *  - The real functions are this image's own references to malloc & co.:
 *    dyld applies interposing to every image but the interposing one, so
 *    a call from here reaches libsystem_malloc. No dlsym at start-up.
 *  - Shared segment: a POSIX shared memory object, unlinked as soon as it
 *    is mapped (only the descriptor names it), handed to the agent over
 *    the Unix socket with SCM_RIGHTS like Linux's memfd.
 *  - No futex: the recorder's wake of the agent is a no-op and the agent
 *    polls the wake word (agent/proc_darwin.c); a thread held at the fork
 *    gate naps in short steps.
 *  - No pidfd: the agent watches the pid with kqueue EVFILT_PROC.
 *  - Loaded objects from dyld's image list; changes counted by the
 *    callbacks of _dyld_register_func_for_add_image/remove_image.
 *  - Thread ids: pthread_threadid_np (64-bit, truncated like Linux's tids
 *    are 32-bit). Clocks: clock_gettime(CLOCK_MONOTONIC), shared by every
 *    process as on Linux (init.c).
 */
#include "hot.h"

#include <crt_externs.h>
#include <errno.h>
#include <fcntl.h>
#include <mach-o/dyld.h>
#include <mach-o/loader.h>
#include <mach/mach.h>
#include <malloc/malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * The real allocator
 * ------------------------------------------------------------------------- */
/* macOS has no memalign: posix_memalign under memalign's contract. */
static void *darwin_memalign(size_t align, size_t n) {
  void *p = NULL;
  if (align < sizeof(void *)) align = sizeof(void *);
  return posix_memalign(&p, align, n) == 0 ? p : NULL;
}

static size_t darwin_usable(void *p) { return malloc_size(p); }

void *vkm_plat_next(const char *name) {
  static const struct {
    const char *name;
    void *fn;
  } real[] = {
      {"malloc", (void *)malloc},
      {"free", (void *)free},
      {"calloc", (void *)calloc},
      {"realloc", (void *)realloc},
      {"posix_memalign", (void *)posix_memalign},
      {"aligned_alloc", (void *)aligned_alloc},
      {"valloc", (void *)valloc},
      {"memalign", (void *)darwin_memalign},
      {"malloc_usable_size", (void *)darwin_usable}, /* usable sizes come from malloc_size */
      {"mmap", (void *)mmap},
      {"munmap", (void *)munmap},
  };
  for (size_t i = 0; i < sizeof real / sizeof real[0]; i++)
    if (strcmp(name, real[i].name) == 0) return real[i].fn;
  return NULL; /* reallocarray, pvalloc, mremap, nallocx: none here */
}

/* The zones' headers are not read inline: usable sizes are malloc_size's. */
int vkm_plat_is_libc_malloc(void *fn) {
  (void)fn;
  return 0;
}

/* ---------------------------------------------------------------------------
 * Loaded objects: dyld's image list. An image's extent is its __TEXT
 * segment: return addresses lie there, and in the shared cache an image's
 * other segments are far from its text (and __LINKEDIT is shared by all).
 * The bias is the image's slide: a symbol's n_value plus the slide is its
 * runtime address, as st_value plus dlpi_addr is on Linux.
 * ------------------------------------------------------------------------- */
static int text_of(const struct mach_header *mh, intptr_t slide, uint64_t *lo, uint64_t *hi) {
  if (!mh || mh->magic != MH_MAGIC_64) return -1;
  const struct load_command *lc = (const struct load_command *)((const struct mach_header_64 *)mh + 1);
  for (uint32_t i = 0; i < mh->ncmds; i++) {
    if (lc->cmd == LC_SEGMENT_64) {
      const struct segment_command_64 *seg = (const struct segment_command_64 *)lc;
      if (strcmp(seg->segname, SEG_TEXT) == 0) {
        *lo = seg->vmaddr + (uint64_t)slide;
        *hi = *lo + seg->vmsize;
        return 0;
      }
    }
    lc = (const struct load_command *)((const char *)lc + lc->cmdsize);
  }
  return -1;
}

/* dyld's index-based list is not a snapshot: an image unloaded by another
 * thread during the walk shifts the indices (an entry may be missed or
 * seen twice until the next publication; _dyld_get_image_header answers
 * NULL past the end). The remove callback's count makes the next sampler
 * publish the list again. */
void vkm_plat_modules(vkm_plat_module_fn fn, void *arg) {
  uint32_t n = _dyld_image_count();
  for (uint32_t i = 0; i < n; i++) {
    const struct mach_header *mh = _dyld_get_image_header(i); /* NULL once the list shrank */
    const char *name = _dyld_get_image_name(i);
    intptr_t slide = _dyld_get_image_vmaddr_slide(i);
    uint64_t lo, hi;
    if (!mh || !name || text_of(mh, slide, &lo, &hi) != 0) continue;
    if (fn(name, (uint64_t)slide, lo, hi, arg)) return;
  }
}

static uint64_t image_adds, image_subs; /* atomic */
static int image_hooks;                 /* atomic: the callbacks are registered */

static void on_add_image(const struct mach_header *mh, intptr_t slide) {
  (void)mh;
  (void)slide;
  __atomic_add_fetch(&image_adds, 1, __ATOMIC_RELAXED);
}
static void on_remove_image(const struct mach_header *mh, intptr_t slide) {
  (void)mh;
  (void)slide;
  __atomic_add_fetch(&image_subs, 1, __ATOMIC_RELAXED);
}

/* Registered on the first call (from the constructor, seg.c): dyld calls
 * on_add_image for every image already loaded right then, and for each
 * later one; the callbacks only count. */
void vkm_plat_modules_counts(uint64_t *adds, uint64_t *subs) {
  if (!__atomic_exchange_n(&image_hooks, 1, __ATOMIC_ACQ_REL)) {
    _dyld_register_func_for_add_image(on_add_image);
    _dyld_register_func_for_remove_image(on_remove_image);
  }
  *adds = __atomic_load_n(&image_adds, __ATOMIC_RELAXED);
  *subs = __atomic_load_n(&image_subs, __ATOMIC_RELAXED);
}

typedef struct {
  uintptr_t addr;
  const char *name;
  const void *text;
} object_of_t;

static int object_of_cb(const char *path, uint64_t bias, uint64_t lo, uint64_t hi, void *arg) {
  (void)bias;
  object_of_t *o = arg;
  if (o->addr < lo || o->addr >= hi) return 0;
  o->name = path;
  o->text = (const void *)(uintptr_t)lo;
  return 1;
}

int vkm_plat_same_object(void *a, void *b) {
  object_of_t oa = {(uintptr_t)a, NULL, NULL}, ob = {(uintptr_t)b, NULL, NULL};
  if (!a || !b) return 0;
  vkm_plat_modules(object_of_cb, &oa);
  vkm_plat_modules(object_of_cb, &ob);
  return oa.text && oa.text == ob.text;
}

const char *vkm_plat_object_path(const void *addr) {
  object_of_t o = {(uintptr_t)addr, NULL, NULL};
  vkm_plat_modules(object_of_cb, &o);
  return o.name ? o.name : "";
}

/* No libgcc here: stacks are walked by frame pointers (unwind_darwin.c). */
void *vkm_plat_loaded_symbol(const char *lib, const char *sym) {
  (void)lib;
  (void)sym;
  return NULL;
}

/* ---------------------------------------------------------------------------
 * Threads
 * ------------------------------------------------------------------------- */
uint32_t vkm_plat_tid(void) {
  uint64_t tid = 0;
  pthread_threadid_np(NULL, &tid);
  return (uint32_t)tid;
}

/* The recorder's per-thread block (hot.h): a pthread key whose value points
 * into slabs of our own mapped memory. Before the key exists (the first
 * calls of the process, from dyld's and libSystem's initialisers) every
 * thread shares one block whose guard is held, so everything passes
 * through uncounted, as before the constructor on Linux. Blocks are never
 * given back: a thread may allocate after its exit destructor (thread.c)
 * and must still find its own block saying so. 64 bytes per thread the
 * process ever had; counted in the "valkmem self" figure. */
_Static_assert(sizeof(vkm_tls_t) <= 64, "a thread's block is 64 bytes of a slab");
static pthread_key_t tls_key;
static int tls_state; /* atomic: 0 no key, 1 being made, 2 made */
static vkm_tls_t boot_tls = {.guard = 1};
static char *slab;
static size_t slab_used, slab_size;
static int slab_lock;

static VKM_COLD vkm_tls_t *tls_new(void) {
  int st = __atomic_load_n(&tls_state, __ATOMIC_ACQUIRE);
  if (st == 0 && __atomic_compare_exchange_n(&tls_state, &st, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    if (pthread_key_create(&tls_key, NULL) != 0) return &boot_tls; /* stays 1: pass through for good */
    __atomic_store_n(&tls_state, 2, __ATOMIC_RELEASE);
  }
  if (__atomic_load_n(&tls_state, __ATOMIC_ACQUIRE) != 2) return &boot_tls;
  while (__atomic_exchange_n(&slab_lock, 1, __ATOMIC_ACQUIRE)) sched_yield();
  if (!slab || slab_used + 64 > slab_size) {
    slab_size = 64 * 1024;
    slab = vkm_plat_map(slab_size);
    slab_used = 0;
    if (slab) vkm_self_track((int64_t)slab_size);
  }
  vkm_tls_t *t = NULL;
  if (slab) {
    t = (vkm_tls_t *)(slab + slab_used);
    slab_used += 64;
  }
  __atomic_store_n(&slab_lock, 0, __ATOMIC_RELEASE);
  if (!t || pthread_setspecific(tls_key, t) != 0) return &boot_tls;
  /* A thread that starts after start-up passes nothing through. */
  return t;
}

vkm_tls_t *vkm_tls_darwin(void) {
  if (vkm_likely(__atomic_load_n(&tls_state, __ATOMIC_RELAXED) == 2)) {
    vkm_tls_t *t = pthread_getspecific(tls_key);
    if (vkm_likely(t != NULL)) return t;
  }
  /* Before the constructor the key is not made yet: the boot block
   * answers. The first call after vkm_constructed makes it. */
  if (!vkm_constructed && !vkm_ready) return &boot_tls;
  return tls_new();
}

/* ---------------------------------------------------------------------------
 * Memory of our own
 * ------------------------------------------------------------------------- */
/* Calls from this image are not interposed, and no mmap wrapper exists
 * here: plain mmap is our own memory. */
void *vkm_plat_map(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void vkm_plat_unmap(void *p, size_t len) {
  if (p) munmap(p, len);
}

/* Whole pages are replaced by fresh zero pages (a fixed anonymous mapping
 * over them: madvise does not promise zeroes on macOS); the edges are
 * cleared by hand. Pages are 16 KiB on arm64, 4 KiB on x86_64. */
void vkm_plat_zero(void *p, size_t len) {
  uintptr_t page = (uintptr_t)vm_page_size;
  uintptr_t a = (uintptr_t)p, e = a + len;
  uintptr_t pa = (a + page - 1) & ~(page - 1), pe = e & ~(page - 1);
  if (pe <= pa ||
      mmap((void *)pa, pe - pa, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON | MAP_FIXED, -1, 0) == MAP_FAILED) {
    memset(p, 0, len);
    return;
  }
  memset(p, 0, pa - a);
  memset((void *)pe, 0, e - pe);
}

/* ---------------------------------------------------------------------------
 * The shared segment
 * ------------------------------------------------------------------------- */
int vkm_plat_shm_create(size_t len, int *fd_out, void **map_out) {
  static uint32_t seq; /* atomic */
  char name[32];       /* PSHMNAMLEN is 31 */
  for (int tries = 0; tries < 8; tries++) {
    snprintf(name, sizeof name, "/vkm.%d.%u", (int)getpid(), __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue; /* a leftover of a pid before ours */
      return -1;
    }
    shm_unlink(name); /* the descriptor is its only name from now on */
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    void *p = MAP_FAILED;
    if (ftruncate(fd, (off_t)len) == 0) p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      close(fd);
      return -1;
    }
    *fd_out = fd;
    *map_out = p;
    return 0;
  }
  return -1;
}

void vkm_plat_shm_release(int fd, void *map, size_t len) {
  if (map) munmap(map, len);
  if (fd >= 0) close(fd);
}

/* Shared memory: map the object again at the fixed address (it replaces
 * what was there) and drop the first mapping. Private memory: move its
 * pages with vm_remap, which copies nothing. */
int vkm_plat_shm_place(void *from, int fd, void *at, size_t len) {
  int ok;
  if (fd >= 0) {
    ok = mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == at;
  } else {
    vm_address_t to = (vm_address_t)at;
    vm_prot_t cur, max;
    ok = vm_remap(mach_task_self(), &to, len, 0, VM_FLAGS_FIXED | VM_FLAGS_OVERWRITE, mach_task_self(),
                  (vm_address_t)from, FALSE, &cur, &max, VM_INHERIT_DEFAULT) == KERN_SUCCESS &&
         to == (vm_address_t)at;
  }
  munmap(from, len);
  return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------------
 * Process facts
 * ------------------------------------------------------------------------- */
int vkm_plat_cmdline(char *buf, size_t cap, size_t *used) {
  int argc = *_NSGetArgc();
  char **argv = *_NSGetArgv();
  size_t n = 0;
  int kept = 0;
  for (int i = 0; i < argc && argv[i]; i++) {
    size_t l = strlen(argv[i]) + 1;
    if (n + l > cap) break;
    memcpy(buf + n, argv[i], l);
    n += l;
    kept++;
  }
  *used = n;
  return kept;
}

const char *vkm_plat_name(void) { return "darwin"; }

/* environ is the main program's; a library asks dyld for it. */
char **vkm_plat_environ(void) { return *_NSGetEnviron(); }
void vkm_plat_set_environ(char **env) { *_NSGetEnviron() = env; }

/* No such advice on macOS; there every copy of a process is a fork() or a
 * posix_spawn, and fork runs the atfork handlers. */
void *vkm_plat_map_wiped_in_copies(size_t len) {
  (void)len;
  return NULL;
}

const char *vkm_plat_preload_var(void) { return "DYLD_INSERT_LIBRARIES"; }

/* ---------------------------------------------------------------------------
 * Waiting. No public futex: a waiter naps briefly and re-checks (the
 * callers loop, platform.h); the agent polls the shared word.
 * ------------------------------------------------------------------------- */
void vkm_plat_wait(int *addr, int val, int timeout_ms) {
  if (timeout_ms <= 0 || __atomic_load_n(addr, __ATOMIC_ACQUIRE) != val) return;
  struct timespec ts = {0, 200 * 1000}; /* 0.2 ms: the fork gate, held while a fork copies us (gate.h) */
  nanosleep(&ts, NULL);
}

void vkm_plat_wake(int *addr) { (void)addr; }
void vkm_plat_wake_shared(uint32_t *addr) { (void)addr; }

/* ---------------------------------------------------------------------------
 * Exit. atexit handlers are not told the code; the code exit() was called
 * with is caught by the interposed exit (wrap_darwin.c). A process whose
 * exit() we did not see (return from main through a path dyld does not
 * interpose) reports VKM_EXIT_UNKNOWN, and the agent says so.
 * ------------------------------------------------------------------------- */
int vkm_darwin_exit_code = VKM_EXIT_UNKNOWN;
static void (*exit_fn)(int, void *);
static void *exit_arg;

static void at_exit_darwin(void) {
  if (exit_fn) exit_fn(vkm_darwin_exit_code, exit_arg);
}

void vkm_plat_on_exit(void (*fn)(int code, void *arg), void *arg) {
  exit_fn = fn;
  exit_arg = arg;
  atexit(at_exit_darwin);
}

/* ---------------------------------------------------------------------------
 * Link to the agent
 * ------------------------------------------------------------------------- */
/* No SOCK_CLOEXEC here: the flag is set right after; the window only
 * matters to a thread that forks and execs in between, at start-up.
 * SO_NOSIGPIPE: a write to a gone agent must not kill the program. */
int vkm_plat_unix_socket(void) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0) return -1;
  fcntl(s, F_SETFD, FD_CLOEXEC);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
  return s;
}

/* No pidfd: the agent watches the pid (kqueue EVFILT_PROC). */
int vkm_plat_self_handle(void) { return -1; }

/* posix_spawn in a session of its own (POSIX_SPAWN_SETSID), with only the
 * descriptors we pass (POSIX_SPAWN_CLOEXEC_DEFAULT), /dev/null on 0-2 and
 * an empty signal mask. macOS has no clone without an exit signal: the
 * spawned `valkmem agent` forks once and its first process exits at once
 * (agent/proc_darwin.c, vkm_sys_detach), which is waited for here, so the
 * program keeps no child of ours; it does get that one SIGCHLD, in our
 * constructor, before main has installed any handler. posix_spawn's
 * attribute objects are allocated with the real malloc (uncounted) and
 * freed here. */
int vkm_plat_spawn_detached(const char *path, char *const argv[], char *const envp[], const int *fds, int n) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  if (posix_spawn_file_actions_init(&fa) != 0) return -ENOMEM;
  if (posix_spawnattr_init(&at) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return -ENOMEM;
  }
  /* Above any target number first, then into place (as on Linux). */
  for (int i = 0; i < n && i < 8; i++) posix_spawn_file_actions_adddup2(&fa, fds[i], 64 + i);
  for (int i = 0; i < n && i < 8; i++) {
    posix_spawn_file_actions_adddup2(&fa, 64 + i, 3 + i);
    posix_spawn_file_actions_addclose(&fa, 64 + i);
  }
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&fa, 0, 1);
  posix_spawn_file_actions_adddup2(&fa, 0, 2);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_CLOEXEC_DEFAULT | POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int rc = posix_spawn(&pid, path, &fa, &at, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc != 0) return -rc;
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return 0;
}
