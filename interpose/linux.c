/* linux.c - the platform seam on Linux (glibc). See platform.h. */
#include "platform.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


/* What the program's own reference would bind to. Its references are
 * versioned (malloc@GLIBC_2.2.5), and a library may define only such a
 * non-default version: glibc's libc_malloc_debug.so (MALLOC_CHECK_, mtrace)
 * does, so dlsym, which takes default versions only, skipped it for libc's
 * malloc and the debugging was silently off under the shim. So when dlsym
 * lands in libc, the same lookup by version decides (dlvsym does not take
 * the unversioned symbols of jemalloc or tcmalloc: those dlsym finds). */
void *vkm_plat_next(const char *name) {
  void *p = dlsym(RTLD_NEXT, name);
  /* Absent (nallocx where the allocator has none): the program must not
   * find our lookup's message in its dlerror(), nor its buffer on its heap
   * (the second call frees what the first returned). */
  if (!p) {
    dlerror();
    dlerror();
  }
  /* The version glibc gives the symbol on this ABI: exactly, for a lookup
   * that fails leaves its dlerror string on the program's heap. */
#if defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__))
#if defined(__x86_64__)
  const char *ver = !strcmp(name, "aligned_alloc") ? "GLIBC_2.16" : "GLIBC_2.2.5";
#else
  const char *ver = "GLIBC_2.17"; /* aarch64's base, aligned_alloc's too */
#endif
  if (!strcmp(name, "reallocarray")) ver = "GLIBC_2.26";
  if (p && vkm_plat_is_libc_malloc(p)) {
    void *v = dlvsym(RTLD_NEXT, name, ver);
    if (v) return v;
    dlerror();
    dlerror();
  }
#endif
  return p;
}

/* The loaded object holding addr, by its PT_LOAD segments: what dladdr
 * answers without dladdr's search for the nearest symbol, a linear walk of
 * the object's whole symbol table (~18 us for libc; start-up made eight of
 * them). dl_iterate_phdr takes the loader lock and never allocates; these
 * run at start-up, or on the agent thread where a fork waits for it. */
typedef struct {
  uintptr_t addr;
  const void *obj; /* the object's program headers: one per object */
  const char *name;
} object_of_t;

static int object_of_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  object_of_t *o = arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && o->addr >= lo && o->addr - lo < ph->p_memsz) {
      o->obj = info->dlpi_phdr;
      o->name = info->dlpi_name ? info->dlpi_name : "";
      return 1;
    }
  }
  return 0;
}

static int object_of(const void *addr, object_of_t *o) {
  *o = (object_of_t){.addr = (uintptr_t)addr};
  return addr && dl_iterate_phdr(object_of_cb, o) && o->obj;
}

int vkm_plat_is_libc_malloc(void *fn) {
  object_of_t o;
  if (!object_of(fn, &o)) return 0;
  const char *base = strrchr(o.name, '/');
  base = base ? base + 1 : o.name;
  return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0;
}

int vkm_plat_same_object(void *a, void *b) {
  object_of_t oa, ob;
  return object_of(a, &oa) && object_of(b, &ob) && oa.obj == ob.obj;
}

uint32_t vkm_plat_tid(void) { return (uint32_t)syscall(SYS_gettid); }

/* A raw syscall, so our own mappings never pass through the mmap wrapper. */
void *vkm_plat_map(size_t len) {
  void *p = (void *)syscall(SYS_mmap, NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return (p == MAP_FAILED || (uintptr_t)p > (uintptr_t)-4096) ? NULL : p;
}

void *vkm_plat_map_wiped_in_copies(size_t len) {
  void *p = vkm_plat_map(len);
  if (p && syscall(SYS_madvise, p, len, MADV_WIPEONFORK) != 0) {
    vkm_plat_unmap(p, len); /* a kernel before 4.14 */
    p = NULL;
  }
  return p;
}

void vkm_plat_unmap(void *p, size_t len) {
  if (p) syscall(SYS_munmap, p, len);
}

void vkm_plat_zero(void *p, size_t len) {
  static uintptr_t page;
  if (!page) {
    long ps = sysconf(_SC_PAGESIZE);
    page = ps > 0 ? (uintptr_t)ps : 4096;
  }
  uintptr_t a = (uintptr_t)p, e = a + len;
  uintptr_t pa = (a + page - 1) & ~(page - 1), pe = e & ~(page - 1);
  if (pe <= pa || syscall(SYS_madvise, (void *)pa, pe - pa, MADV_DONTNEED) != 0) {
    memset(p, 0, len);
    return;
  }
  memset(p, 0, pa - a);
  memset((void *)pe, 0, e - pe);
}

int vkm_plat_cmdline(char *buf, size_t cap, size_t *used) {
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  buf[n] = 0;
  int argc = 0;
  for (size_t i = 0; i < n; i++)
    if (buf[i] == 0) argc++;
  if (n > 0 && buf[n - 1] != 0) argc++; /* truncated last argument */
  *used = n;
  return argc;
}

const char *vkm_plat_name(void) { return "linux"; }

void vkm_plat_wait(int *addr, int val, int timeout_ms) {
  struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
  syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

void vkm_plat_wake_shared(uint32_t *addr) { syscall(SYS_futex, addr, FUTEX_WAKE, 1, NULL, NULL, 0); }

void vkm_plat_wake(int *addr) { syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0); }

/* ---------------------------------------------------------------------------
 * The shared segment: a memfd, mapped with raw system calls so that our
 * own mappings never pass through the mmap wrapper.
 * ------------------------------------------------------------------------- */
int vkm_plat_shm_create(size_t len, int *fd_out, void **map_out) {
  int fd = (int)syscall(SYS_memfd_create, "valkmem", MFD_CLOEXEC);
  if (fd < 0) return -1;
  if (syscall(SYS_ftruncate, fd, (long)len) != 0) {
    syscall(SYS_close, fd);
    return -1;
  }
  void *p = (void *)syscall(SYS_mmap, NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED || (uintptr_t)p > (uintptr_t)-4096) {
    syscall(SYS_close, fd);
    return -1;
  }
  *fd_out = fd;
  *map_out = p;
  return 0;
}

void vkm_plat_shm_release(int fd, void *map, size_t len) {
  if (map) syscall(SYS_munmap, map, len);
  if (fd >= 0) syscall(SYS_close, fd);
}

/* mremap moves the pages themselves: nothing is copied, whatever the
 * mapping (shared or private). */
int vkm_plat_shm_place(void *from, int fd, void *at, size_t len) {
  (void)fd;
  void *p = (void *)syscall(SYS_mremap, from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, at);
  if (p == at) return 0;
  syscall(SYS_munmap, from, len);
  return -1;
}

/* ---------------------------------------------------------------------------
 * Loaded objects: dl_iterate_phdr, which takes the loader lock and never
 * allocates.
 * ------------------------------------------------------------------------- */
typedef struct {
  vkm_plat_module_fn fn;
  void *arg;
  int first;
} modules_t;

static char exe_path[1024];

static int modules_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  modules_t *m = arg;
  uint64_t lo = UINT64_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uint64_t a = info->dlpi_addr + ph->p_vaddr;
    if (a < lo) lo = a;
    if (a + ph->p_memsz > hi) hi = a + ph->p_memsz;
  }
  int first = m->first;
  m->first = 0;
  if (hi <= lo) return 0;
  const char *name = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "";
  if (!name[0] && first) name = exe_path; /* the main program comes first, unnamed */
  return m->fn(name, info->dlpi_addr, lo, hi, m->arg);
}

void vkm_plat_modules(vkm_plat_module_fn fn, void *arg) {
  if (!exe_path[0]) {
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    exe_path[n > 0 ? n : 0] = 0;
  }
  modules_t m = {fn, arg, 1};
  dl_iterate_phdr(modules_cb, &m);
}

static int counts_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  uint64_t *c = arg;
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
    c[0] = info->dlpi_adds;
    c[1] = info->dlpi_subs;
  }
  return 1;
}

void vkm_plat_modules_counts(uint64_t *adds, uint64_t *subs) {
  uint64_t c[2] = {0, 0};
  dl_iterate_phdr(counts_cb, c);
  *adds = c[0];
  *subs = c[1];
}

/* ---------------------------------------------------------------------------
 * Process plumbing
 * ------------------------------------------------------------------------- */
extern char **environ;
char **vkm_plat_environ(void) { return environ; }
void vkm_plat_set_environ(char **env) { environ = env; }

const char *vkm_plat_preload_var(void) { return "LD_PRELOAD"; }

void vkm_plat_on_exit(void (*fn)(int code, void *arg), void *arg) { on_exit(fn, arg); }

int vkm_plat_unix_socket(void) { return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); }

/* ---------------------------------------------------------------------------
 * Link to the agent
 * ------------------------------------------------------------------------- */
int vkm_plat_self_handle(void) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, getpid(), 0);
#else
  return -1;
#endif
}

const char *vkm_plat_object_path(const void *addr) {
  object_of_t o;
  return object_of(addr, &o) ? o.name : "";
}

/* fork(2) without fork(): a raw clone with no exit signal runs none of the
 * program's pthread_atfork handlers (nor ours), and its end sends the
 * program no SIGCHLD; waitpid needs __WCLONE for such a child. Only
 * async-signal-safe system calls run in the children. */
static long raw_fork(void) { return syscall(SYS_clone, 0L /* no CLONE_*, no exit signal */, NULL, NULL, NULL, NULL); }

int vkm_plat_spawn_detached(const char *path, char *const argv[], char *const envp[], const int *fds, int n) {
  long pid = raw_fork();
  if (pid < 0) return -errno;
  if (pid == 0) {
    long pid2 = raw_fork();
    if (pid2 != 0) syscall(SYS_exit_group, pid2 < 0 ? 1 : 0);
    syscall(SYS_setsid);
    /* Move the descriptors we pass above any target number first, then
     * into place; everything else goes. */
    int moved[8];
    for (int i = 0; i < n && i < 8; i++) moved[i] = (int)syscall(SYS_fcntl, fds[i], F_DUPFD, 64);
    for (int i = 0; i < n && i < 8; i++) syscall(SYS_dup3, moved[i], 3 + i, 0);
    int null = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) syscall(SYS_dup3, null, fd, 0);
    syscall(SYS_close_range, 3 + n, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(long));
    syscall(SYS_execve, path, argv, envp);
    syscall(SYS_exit_group, 127);
  }
  int st = 0;
  while (syscall(SYS_wait4, pid, &st, __WCLONE, NULL) < 0 && errno == EINTR) {
  }
  return 0;
}

typedef struct {
  const char *lib, *sym;
  void *found;
} lookup_t;

static int lookup_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  lookup_t *l = arg;
  const char *name = info->dlpi_name ? info->dlpi_name : "";
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  if (strncmp(base, l->lib, strlen(l->lib)) != 0) return 0;
  const ElfW(Dyn) *dyn = NULL;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
  if (!dyn) return 1;
  const ElfW(Sym) *symtab = NULL;
  const char *strtab = NULL;
  for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
    /* glibc has already relocated these to addresses */
    if (d->d_tag == DT_SYMTAB) symtab = (const ElfW(Sym) *)d->d_un.d_ptr;
    if (d->d_tag == DT_STRTAB) strtab = (const char *)d->d_un.d_ptr;
  }
  /* The symbol table ends where the string table starts (the linker lays
   * them out so), which bounds the walk without a hash table. */
  if (!symtab || !strtab || (const char *)symtab >= strtab) return 1;
  size_t n = (size_t)(strtab - (const char *)symtab) / sizeof(ElfW(Sym));
  for (size_t i = 1; i < n && i < 100000; i++) {
    const ElfW(Sym) *s = &symtab[i];
    if (s->st_shndx == SHN_UNDEF || ELF64_ST_TYPE(s->st_info) != STT_FUNC) continue;
    if (strcmp(strtab + s->st_name, l->sym) == 0) {
      l->found = (void *)(info->dlpi_addr + s->st_value);
      return 1;
    }
  }
  return 1;
}

void *vkm_plat_loaded_symbol(const char *lib, const char *sym) {
  lookup_t l = {lib, sym, NULL};
  dl_iterate_phdr(lookup_cb, &l);
  return l.found;
}
