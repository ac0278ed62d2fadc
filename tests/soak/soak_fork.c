/* soak_fork.c - a fork storm from a multi-threaded parent.
 *
 * usage: soak_fork N [K [jit]]
 * The parent forks N children (at most 8 alive at once) while a second
 * thread churns malloc/free, so forks land in the middle of the shim's hot
 * path.
 *
 * With "jit" (x86-64 Linux) the churn thread also allocates through small
 * machine-code stubs in an anonymous mapping, a new stub after each fork,
 * and keeps the newest blocks live. Their call sites lead the live ranking
 * and their return addresses lie in no loaded module, so every report
 * checkpoint (run with VALKMEM_CHECKPOINT_MS=1) sends the agent into
 * dl_iterate_phdr looking for a new module - the loader lock a fork must
 * not copy while the agent holds it (agent.c, "fork"). Children unwind
 * (sampled mallocs), which takes that lock. Before each fork the parent allocates a marker-A block and frees it
 * after; each child frees its inherited copy, allocates and frees K marker-B
 * blocks, and exits: even children with exit() (destructors run), odd ones
 * with _exit() (the shim's _exit hook writes the report): both report.
 * Parent, exact: size_hist A == N and size_hist B == 0 (children's work is
 * never counted in the parent). Planted: alloc/free counts, live count.
 * Children (when VALKMEM_REPORT holds %p): every child report that says
 * "exited" shows size_hist B == K.
 */
#include "soak.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define INFLIGHT 8

static atomic_int stop;
static uint64_t churn_allocs;

/* jit: stubs `sub rsp,8; movabs rax,malloc; call rax; add rsp,8; ret`,
 * one per STUB_SLOT bytes. */
#define STUB_SLOT 32
#define NSTUBS 4096
#define JIT_SIZE 65536u /* bucket 16: no marker's */
typedef void *(*stub_fn)(size_t);
static uint8_t *stubs;
static atomic_uint forks_done;

static void make_stubs(void) {
#if defined(__x86_64__)
  size_t len = (size_t)NSTUBS * STUB_SLOT;
  uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) soak_die("mmap");
  void *(*target)(size_t) = malloc;
  for (int i = 0; i < NSTUBS; i++) {
    uint8_t *c = m + (size_t)i * STUB_SLOT;
    static const uint8_t pre[] = {0x48, 0x83, 0xec, 0x08, 0x48, 0xb8};            /* sub rsp,8; movabs rax, */
    static const uint8_t post[] = {0xff, 0xd0, 0x48, 0x83, 0xc4, 0x08, 0xc3};     /* call rax; add rsp,8; ret */
    memcpy(c, pre, sizeof pre);
    memcpy(c + sizeof pre, &target, 8);
    memcpy(c + sizeof pre + 8, post, sizeof post);
  }
  if (mprotect(m, len, PROT_READ | PROT_EXEC)) soak_die("mprotect");
  stubs = m;
#else
  soak_die("jit: x86-64 only");
#endif
}

static void *churn(void *arg) {
  (void)arg;
  uint64_t n = 0;
  void *keep[8] = {0}, *jit[4] = {0};
  unsigned last_stub = ~0u;
  while (!atomic_load(&stop)) {
    unsigned i = (unsigned)(n & 7);
    free(keep[i]);
    keep[i] = malloc(16 + (n * 37) % 900);
    if (!keep[i]) soak_die("malloc");
    n++;
    unsigned s = atomic_load(&forks_done) % NSTUBS;
    if (stubs && s != last_stub) {
      last_stub = s;
      free(jit[s & 3]);
      stub_fn f;
      void *code = stubs + (size_t)s * STUB_SLOT;
      memcpy(&f, &code, sizeof f);
      jit[s & 3] = f(JIT_SIZE);
      if (!jit[s & 3]) soak_die("malloc");
      n++;
    }
  }
  for (int i = 0; i < 8; i++) free(keep[i]);
  for (int i = 0; i < 4; i++) free(jit[i]);
  churn_allocs = n;
  return NULL;
}

static void child(uint64_t idx, uint64_t k, void *inherited) {
  free(inherited);
  for (uint64_t i = 0; i < k; i++) {
    char *p = malloc(SOAK_MARK_B);
    if (!p) _exit(3);
    p[i % SOAK_MARK_B] = 1;
    free(p);
  }
  if (idx % 2 == 0) exit(0);
  _exit(0);
}

static int reap(int *alive) {
  int status;
  pid_t pid = wait(&status);
  if (pid < 0) soak_die("wait");
  (*alive)--;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "soak_fork: child %d ended with status 0x%x\n", (int)pid, status);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  uint64_t n = soak_arg(argc, argv, 1, 1000);
  uint64_t k = soak_arg(argc, argv, 2, 20);
  if (argc > 3) {
    if (strcmp(argv[3], "jit")) soak_die("third argument: expected \"jit\"");
    make_stubs();
  }
  pthread_t t;
  if (pthread_create(&t, NULL, churn, NULL)) soak_die("pthread_create");
  int alive = 0, bad = 0;
  fflush(stdout);
  for (uint64_t i = 0; i < n; i++) {
    if (alive == INFLIGHT) bad += reap(&alive);
    char *a = malloc(SOAK_MARK_A);
    if (!a) soak_die("malloc");
    a[0] = 1;
    pid_t pid = fork();
    if (pid < 0) soak_die("fork");
    if (pid == 0) child(i, k, a);
    atomic_fetch_add(&forks_done, 1);
    alive++;
    free(a);
  }
  while (alive) bad += reap(&alive);
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  if (bad) {
    fprintf(stderr, "soak_fork: %d children failed\n", bad);
    return 1;
  }

  soak_obj_t planted = {0}, exact = {0}, kids = {0};
  soak_put(&planted, "totals.alloc_count", (int64_t)(n + churn_allocs));
  soak_put(&planted, "totals.free_count", (int64_t)(n + churn_allocs));
  soak_put(&planted, "live.count", 0);
  soak_putf(&exact, (int64_t)n, "totals.size_hist.%d", SOAK_BUCKET_A);
  soak_putf(&exact, 0, "totals.size_hist.%d", SOAK_BUCKET_B);
  soak_putf(&kids, (int64_t)k, "totals.size_hist.%d", SOAK_BUCKET_B);
  char children[9000];
  snprintf(children, sizeof children, "{\"max\": %" PRIu64 ", \"exact\": {%s}}", n, kids.buf);
  soak_print(&planted, &exact, NULL, children);
  return 0;
}
