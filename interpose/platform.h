/* platform.h - the platform seam of the hot path.
 *
 * One contract, implemented once per platform (linux.c, darwin.c), chosen
 * in CMakeLists.txt rather than with #ifdef walls (mimalloc's prim.h).
 * Everything here may be called from inside a malloc hook: no allocation
 * through the application's heap, no stdio, no locks of ours.
 */
#ifndef VKM_PLATFORM_H
#define VKM_PLATFORM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The allocator functions valkmem forwards to. Resolved once (RTLD_NEXT);
 * with VALKMEM_ALLOCATOR=mimalloc they point at mimalloc instead. */
typedef struct vkm_real_s {
  void *(*malloc)(size_t);
  void (*free)(void *);
  void *(*calloc)(size_t, size_t);
  void *(*realloc)(void *, size_t);
  void *(*reallocarray)(void *, size_t, size_t);
  int (*posix_memalign)(void **, size_t, size_t);
  void *(*aligned_alloc)(size_t, size_t);
  void *(*memalign)(size_t, size_t);
  void *(*valloc)(size_t);
  void *(*pvalloc)(size_t);
  size_t (*usable_size)(void *);
  void *(*mmap)(void *, size_t, int, int, int, off_t);
  int (*munmap)(void *, size_t);
  void *(*mremap)(void *, size_t, size_t, int, ...);
} vkm_real_t;

/* How the usable size of a live block is read. GLIBC reads the chunk
 * header inline (what malloc_usable_size does, without the call); NEXT
 * calls the real allocator's malloc_usable_size (jemalloc, tcmalloc,
 * mimalloc preloaded behind us). */
enum vkm_usable_mode { VKM_USABLE_NEXT = 0, VKM_USABLE_GLIBC = 1 };

/* Resolve the next definition of `name` after this library. NULL if none. */
void *vkm_plat_next(const char *name);
/* Is `fn` defined in the C library's own malloc (glibc on Linux)? */
int vkm_plat_is_libc_malloc(void *fn);
/* Are both functions defined in the same loaded object? */
int vkm_plat_same_object(void *a, void *b);
/* Kernel thread id of the caller (cached by the caller). */
uint32_t vkm_plat_tid(void);
/* Anonymous memory straight from the OS (not counted as the app's). */
void *vkm_plat_map(size_t len);
void vkm_plat_unmap(void *p, size_t len);
/* Zeroes [p, p+len) inside memory from vkm_plat_map: whole pages go back to
 * the kernel (they read as zero and cost nothing until touched again), only
 * the partial pages at the edges are cleared by hand. In a forked child this
 * avoids copying every page of a table just to clear it. */
void vkm_plat_zero(void *p, size_t len);
/* A page of private memory that every copy of this process made without
 * CLONE_VM (fork, or a raw clone/clone3 that runs no atfork handler) gets
 * zeroed (Linux: MADV_WIPEONFORK). NULL where the platform cannot. */
void *vkm_plat_map_wiped_in_copies(size_t len);
/* The process's argv, read without the app's heap into `buf`: NUL-separated
 * strings. Returns argc, or 0. */
int vkm_plat_cmdline(char *buf, size_t cap, size_t *used);
const char *vkm_plat_name(void);
/* Sleeps while *addr == val, at most timeout_ms (a futex on Linux; a short
 * nap on darwin, whose wake is a no-op). Wakes may be spurious: re-check. */
void vkm_plat_wait(int *addr, int val, int timeout_ms);
/* Wakes every thread waiting on addr. */
void vkm_plat_wake(int *addr);
/* Wakes a waiter in another process on addr, a word in shared memory (a
 * futex wake on Linux; nothing on darwin, whose agent polls the word). */
void vkm_plat_wake_shared(uint32_t *addr);

/* ---------------------------------------------------------------------------
 * The shared segment (seg.c). A shared mapping behind a descriptor that
 * can be handed to another process (a memfd on Linux; a POSIX shared
 * memory object, unlinked at once, on macOS).
 * ------------------------------------------------------------------------- */
/* Creates and maps len bytes of zeroed shared memory. 0, or -1. */
int vkm_plat_shm_create(size_t len, int *fd_out, void **map_out);
/* Unmaps map (when not NULL) and closes fd (when >= 0). */
void vkm_plat_shm_release(int fd, void *map, size_t len);
/* In a forked child: puts the len bytes mapped at `from` (shared memory
 * behind fd, or private memory from vkm_plat_map when fd is -1) at `at`,
 * replacing the mapping there, so that every pointer into `at` stays
 * valid; `from` is gone afterwards. 0, or -1 (then `from` is unmapped). */
int vkm_plat_shm_place(void *from, int fd, void *at, size_t len);

/* ---------------------------------------------------------------------------
 * Loaded objects (seg.c publishes them for the agent's symbols).
 * ------------------------------------------------------------------------- */
/* Calls fn for each loaded object with its path, the bias that turns the
 * object's own addresses into runtime ones, and the runtime extent of its
 * code [lo, hi); the main program comes first. fn returns nonzero to stop. */
typedef int (*vkm_plat_module_fn)(const char *path, uint64_t bias, uint64_t lo, uint64_t hi, void *arg);
void vkm_plat_modules(vkm_plat_module_fn fn, void *arg);
/* How many objects the loader has added and removed so far: when either
 * moved, the list is published again. Cheap; no lock of the program's. */
void vkm_plat_modules_counts(uint64_t *adds, uint64_t *subs);

/* ---------------------------------------------------------------------------
 * Process plumbing (init.c, link.c)
 * ------------------------------------------------------------------------- */
/* The process's environment (environ; a macOS shared library reaches it
 * through _NSGetEnviron). */
char **vkm_plat_environ(void);
/* Makes env the process's environment (what setenv would leave). */
void vkm_plat_set_environ(char **env);
/* The environment variable the loader preloads libraries from. */
const char *vkm_plat_preload_var(void);
/* Runs fn(code, arg) at exit() with the code exit() was given (on_exit on
 * glibc). VKM_EXIT_UNKNOWN when the platform cannot tell the code. */
#define VKM_EXIT_UNKNOWN (-2147483647 - 1)
void vkm_plat_on_exit(void (*fn)(int code, void *arg), void *arg);
/* A Unix stream socket, close-on-exec, whose writes never raise SIGPIPE
 * in the program. -1 on failure. */
int vkm_plat_unix_socket(void);

/* ---------------------------------------------------------------------------
 * The link to the agent process (link.c). None of these runs on the hot
 * path: at start-up, in a forked child, at exit.
 * ------------------------------------------------------------------------- */
/* A descriptor that stands for this process, which the agent can watch for
 * its end even after the pid is reused (a pidfd on Linux); -1 when none
 * (darwin: the agent watches the pid with kqueue instead). */
int vkm_plat_self_handle(void);
/* The address of `sym` in a loaded object whose file name starts with
 * `lib` (say "libgcc_s.so"; darwin: always NULL, its stacks are walked by
 * frame pointers), read from the object's dynamic symbol table
 * in memory: no dlopen/dlsym, so the program's dlerror() state and its
 * heap are left alone. NULL when no such object or symbol is loaded. */
void *vkm_plat_loaded_symbol(const char *lib, const char *sym);
/* Path of the loaded object that holds `addr` (our own library), or "". */
const char *vkm_plat_object_path(const void *addr);
/* Starts `path` as a grandchild in a session of its own, so that this
 * process never has a child of its own to reap: the intermediate child is
 * waited for here, and no SIGCHLD reaches the program. The new process gets
 * fds[0..n-1] as descriptors 3..3+n-1, /dev/null as 0, 1 and 2, and no
 * other descriptor of ours. 0 or -errno. */
int vkm_plat_spawn_detached(const char *path, char *const argv[], char *const envp[], const int *fds, int n);

#endif
