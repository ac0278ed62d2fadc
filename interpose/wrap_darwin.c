/* wrap_darwin.c - interposition on macOS: the __DATA,__interpose table, the
 * default zone's entry points, malloc_size, malloc_good_size and exit.
 *
 * dyld reads every inserted image's __DATA,__interpose section: pairs of
 * {replacement, replacee}. Each bind to a replacee in any other image
 * (the shared cache's included) is bound to the replacement instead; this
 * image's own references are left alone, so the wrappers' calls to malloc
 * & co. reach libsystem_malloc (darwin.c, vkm_plat_next). The wrappers are
 * wrap.c's, under the names VKM_FN gives them here (vkm_wrap_*, hot.h).
 *
 * Zones: Foundation and CoreFoundation allocate through
 * malloc_zone_malloc(malloc_default_zone(), ...). Those calls are counted
 * as malloc's are (the same wrapper: the default zone is where malloc
 * goes); a call on any other zone (a library's private zone) passes
 * through uncounted, as it is no malloc of the program's heap.
 * Known gap: a block of a private zone freed with free() is counted as a
 * free of its malloc_size.
 */
#include "hot.h"

#include <malloc/malloc.h>
#include <stdlib.h>

/* wrap.c */
void *VKM_FN(malloc)(size_t n);
void VKM_FN(free)(void *p);
void *VKM_FN(calloc)(size_t a, size_t b);
void *VKM_FN(realloc)(void *p, size_t n);
int VKM_FN(posix_memalign)(void **out, size_t align, size_t n);
void *VKM_FN(aligned_alloc)(size_t align, size_t n);
void *VKM_FN(valloc)(size_t n);
size_t vkm_bootstrap_size(const void *p);
extern int vkm_darwin_exit_code; /* darwin.c */

/* malloc_default_zone() is a plain getter once malloc is initialised;
 * it is asked once and kept. */
static malloc_zone_t *default_zone; /* atomic */

static inline int counted_zone(malloc_zone_t *z) {
  malloc_zone_t *d = __atomic_load_n(&default_zone, __ATOMIC_RELAXED);
  if (vkm_unlikely(!d)) {
    d = malloc_default_zone();
    __atomic_store_n(&default_zone, d, __ATOMIC_RELAXED);
  }
  return z == d;
}

static void *zone_malloc(malloc_zone_t *z, size_t n) {
  return counted_zone(z) ? VKM_FN(malloc)(n) : malloc_zone_malloc(z, n);
}

static void *zone_calloc(malloc_zone_t *z, size_t a, size_t b) {
  return counted_zone(z) ? VKM_FN(calloc)(a, b) : malloc_zone_calloc(z, a, b);
}

static void *zone_realloc(malloc_zone_t *z, void *p, size_t n) {
  return counted_zone(z) ? VKM_FN(realloc)(p, n) : malloc_zone_realloc(z, p, n);
}

static void zone_free(malloc_zone_t *z, void *p) {
  if (counted_zone(z)) VKM_FN(free)(p);
  else malloc_zone_free(z, p);
}

/* The zone's contract: NULL on failure, alignment a power of two (smaller
 * than a pointer is rounded up, as libmalloc does). */
static void *zone_memalign(malloc_zone_t *z, size_t align, size_t n) {
  if (!counted_zone(z)) return malloc_zone_memalign(z, align, n);
  void *p = NULL;
  if (align < sizeof(void *)) align = sizeof(void *);
  return VKM_FN(posix_memalign)(&p, align, n) == 0 ? p : NULL;
}

/* Usable sizes are malloc_size's (the wrappers' too); a block the
 * bootstrap buffer gave out has its own. */
static size_t wrap_malloc_size(const void *p) {
  if (p && vkm_is_bootstrap(p)) return vkm_bootstrap_size(p);
  return malloc_size(p);
}

/* Not an allocation: a program asks which size it would get. Interposed
 * so that every malloc-family name a program can bind is ours; the answer
 * is libmalloc's. */
static size_t wrap_malloc_good_size(size_t n) { return malloc_good_size(n); }

/* The code exit() was called with, for the exit handler (darwin.c):
 * atexit handlers are not told it. */
__attribute__((noreturn)) static void wrap_exit(int code) {
  vkm_darwin_exit_code = code;
  exit(code);
}

/* One {replacement, replacee} pair per interposed function, the layout
 * dyld reads (mach-o/dyld-interposing.h, DYLD_INTERPOSE). */
typedef struct {
  const void *replacement;
  const void *replacee;
} interpose_t;

#define INTERPOSE(repl, orig) {(const void *)(repl), (const void *)(orig)}

__attribute__((used, section("__DATA,__interpose"))) static interpose_t vkm_interpose[] = {
    INTERPOSE(VKM_FN(malloc), malloc),
    INTERPOSE(VKM_FN(calloc), calloc),
    INTERPOSE(VKM_FN(realloc), realloc),
    INTERPOSE(VKM_FN(free), free),
    INTERPOSE(VKM_FN(valloc), valloc),
    INTERPOSE(VKM_FN(posix_memalign), posix_memalign),
    INTERPOSE(VKM_FN(aligned_alloc), aligned_alloc),
    INTERPOSE(wrap_malloc_size, malloc_size),
    INTERPOSE(wrap_malloc_good_size, malloc_good_size),
    INTERPOSE(zone_malloc, malloc_zone_malloc),
    INTERPOSE(zone_calloc, malloc_zone_calloc),
    INTERPOSE(zone_realloc, malloc_zone_realloc),
    INTERPOSE(zone_free, malloc_zone_free),
    INTERPOSE(zone_memalign, malloc_zone_memalign),
    INTERPOSE(wrap_exit, exit),
};
