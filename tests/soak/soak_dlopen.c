/* soak_dlopen.c - dlopen/dlclose a library N times while allocating.
 *
 * usage: soak_dlopen N LIBRARY [M]
 * Each round dlopens LIBRARY (its constructor allocates a marker-A block),
 * calls its work function (M marker-B pairs plus one marker-B block it
 * returns), and dlcloses it (the destructor frees the marker-A block). The
 * returned blocks are kept until the end: the first half are freed after
 * their library is gone, the second half stay live (a planted leak whose
 * stacks, in exact mode, point into a module that is no longer mapped).
 * A second thread churns malloc/free meanwhile.
 * Exact: size_hist A == N, B == N*(M+1). Planted: live count and bytes of
 * the kept half; alloc and free counts are at least what we did (dlopen
 * allocates too).
 */
#include "soak.h"
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

static atomic_int stop;
static uint64_t churn_allocs;

static void *churn(void *arg) {
  (void)arg;
  uint64_t n = 0;
  while (!atomic_load(&stop)) {
    char *p = malloc(8 + n % 300);
    if (!p) soak_die("malloc");
    p[0] = 1;
    free(p);
    n++;
  }
  churn_allocs = n;
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) soak_die("usage: soak_dlopen N LIBRARY [M]");
  uint64_t n = soak_arg(argc, argv, 1, 1000);
  const char *lib = argv[2];
  unsigned m = (unsigned)soak_arg(argc, argv, 3, 5);
  /* mmap, not malloc: an array of n pointers would land in a marker size
   * class for some n (5000 x 8 B is marker A's bucket). */
  size_t kept_len = n * sizeof(void *);
  void **kept = mmap(NULL, kept_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (kept == MAP_FAILED) soak_die("mmap");
  pthread_t t;
  if (pthread_create(&t, NULL, churn, NULL)) soak_die("pthread_create");
  for (uint64_t i = 0; i < n; i++) {
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      fprintf(stderr, "soak_dlopen: dlopen %s: %s\n", lib, dlerror());
      return 1;
    }
    void *(*work)(unsigned) = (void *(*)(unsigned))dlsym(h, "soak_dlib_work");
    if (!work) soak_die("dlsym soak_dlib_work");
    kept[i] = work(m);
    if (!kept[i]) soak_die("soak_dlib_work failed");
    if (dlclose(h)) soak_die("dlclose");
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  /* Still loaded? Then dlclose did not unload and the test tests less. */
  void *probe = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
  if (probe) soak_die("the library is still loaded after dlclose");
  uint64_t live_bytes = 0, live_count = 0;
  for (uint64_t i = 0; i < n; i++) {
    if (i < n / 2) {
      free(kept[i]);
    } else {
      live_bytes += malloc_usable_size(kept[i]);
      live_count++;
    }
  }
  munmap(kept, kept_len);

  soak_obj_t planted = {0}, exact = {0}, atleast = {0};
  soak_put(&planted, "live.count", (int64_t)live_count);
  soak_put(&planted, "live.bytes", (int64_t)live_bytes);
  soak_putf(&exact, (int64_t)n, "totals.size_hist.%d", SOAK_BUCKET_A);
  soak_putf(&exact, (int64_t)(n * (m + 1)), "totals.size_hist.%d", SOAK_BUCKET_B);
  soak_put(&atleast, "totals.alloc_count", (int64_t)(churn_allocs + n * (m + 2)));
  soak_put(&atleast, "live.count", (int64_t)live_count);
  soak_print(&planted, &exact, &atleast, NULL);
  return 0;
}
