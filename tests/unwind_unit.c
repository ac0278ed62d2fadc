/* unwind_unit.c - the recorder's fast stack walker (interpose/unwind.c)
 * against libgcc's _Unwind_Backtrace, frame for frame.
 *
 * probe() walks the stack both ways and compares: the same number of
 * frames and the same return addresses from frames[1] on (frames[0] is the
 * return address into probe() itself, after each walker's own call), for
 * every limit on the frame count too. It runs at the bottom of many stacks:
 *   - recursion 0..50 deep through frames with frame pointers (this file,
 *     -O1) and without (unwind_unit_nofp.c, -O2 -fomit-frame-pointer),
 *     alternating; alloca and VLA frames; a 200 KB frame; functions with
 *     epilogues in the middle (remember_state / restore_state);
 *   - a qsort comparison function (frames inside libc);
 *   - a thread, one with a stack of the program's own (pthread_attr_setstack),
 *     and threads walking at once while the rule table is flushed;
 *   - each twice, so that the table both misses and hits.
 * The fast walker must not give up on any of those (it returns -1 when it
 * leaves a stack to libgcc). Where it must give up, it must: a signal
 * handler (the signal frame's CFI has 'S' and expressions), a signal
 * handler on an alternate stack, a coroutine stack (makecontext), a frame
 * over 1 MiB. A corrupt saved RBP (zero, misaligned, below the stack,
 * above it, wrapping) must end the walk, not crash it.
 */
#include "check.h"
#include "hot.h"
#include "unwind_unit.h"

#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <unwind.h>

#define MAXF 256

void vkm_self_track(int64_t delta) { (void)delta; }

enum { EXPECT_FAST, EXPECT_FALLBACK, EXPECT_ANY };
static __thread int expect = EXPECT_FAST;
static __thread const char *scenario = "";
static __thread int scenario_depth;
static uint64_t probes, fast_walks, frames_compared; /* atomic */
static __thread volatile uintptr_t sink;

typedef struct {
  void **frames;
  int n, max;
} walk_t;

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg) {
  walk_t *w = arg;
  if (w->n >= w->max) return _URC_END_OF_STACK;
  uintptr_t ip = _Unwind_GetIP(ctx);
  if (!ip) return _URC_END_OF_STACK;
  w->frames[w->n++] = (void *)ip;
  return _URC_NO_REASON;
}

static const char *name_of(void *p, char *buf, size_t cap) {
  Dl_info di;
  if (dladdr(p, &di) && di.dli_fname) {
    const char *base = strrchr(di.dli_fname, '/');
    snprintf(buf, cap, "%s(%s+%#lx)", base ? base + 1 : di.dli_fname, di.dli_sname ? di.dli_sname : "?",
             (unsigned long)((uintptr_t)p - (uintptr_t)(di.dli_sname ? di.dli_saddr : di.dli_fbase)));
  } else {
    snprintf(buf, cap, "?");
  }
  return buf;
}

static void dump(const char *what, void **f, int n) {
  char b[256];
  fprintf(stderr, "  %s (%d frames):\n", what, n);
  for (int i = 0; i < n; i++) fprintf(stderr, "    #%d %p %s\n", i, f[i], name_of(f[i], b, sizeof b));
}

/* Compares the walks; both must have been started in probe(). */
static void compare(void **a, int na, void **b, int nb, int max) {
  int want = nb;
  int same = na == want;
  for (int i = 1; same && i < na; i++) same = a[i] == b[i];
  /* frames[0]: both return addresses into probe(), a few bytes apart */
  if (same && na > 0) same = (uintptr_t)a[0] - (uintptr_t)b[0] + 256 < 512;
  if (!same) {
    fprintf(stderr, "unwind_unit: %s (depth %d, max %d): the walks differ\n", scenario, scenario_depth, max);
    dump("fast", a, na);
    dump("libgcc", b, nb);
  }
  CHECK(same);
  __atomic_add_fetch(&frames_compared, (uint64_t)(na > 0 ? na : 0), __ATOMIC_RELAXED);
}

__attribute__((noinline)) static void probe(void) {
  void *a[MAXF], *b[MAXF];
  int partial;
  int na = vkm_unwind(a, MAXF, &partial);
  walk_t w = {b, 0, MAXF};
  _Unwind_Backtrace(walk_frame, &w);
  __atomic_add_fetch(&probes, 1, __ATOMIC_RELAXED);
  /* Where it gives up, the frames it had are right (a walk without libgcc
   * keeps them): the first frames of libgcc's walk. */
  if (na < 0) compare(a, partial, b, partial < w.n ? partial : w.n, partial);
  if (na >= 0) __atomic_add_fetch(&fast_walks, 1, __ATOMIC_RELAXED);
  if (expect == EXPECT_FAST && na < 0) {
    fprintf(stderr, "unwind_unit: %s (depth %d): the fast walker gave up\n", scenario, scenario_depth);
    dump("libgcc", b, w.n);
  }
  if (expect == EXPECT_FAST) CHECK_GE(na, 0);
  if (expect == EXPECT_FALLBACK) {
    if (na >= 0) {
      fprintf(stderr, "unwind_unit: %s: the fast walker should have given up\n", scenario);
      dump("fast", a, na);
      dump("libgcc", b, w.n);
    }
    CHECK_EQ(na, -1);
  }
  if (na < 0) return;
  CHECK_GT(w.n, 3); /* probe, the scenario, main or the thread start, ... */
  compare(a, na, b, w.n, MAXF);
  /* Limits on the frame count: the first frames of the same walk. */
  static const int limits[] = {0, 1, 2, 3, 7, 13};
  for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
    int max = limits[i];
    int nl = vkm_unwind(a, max, &partial);
    walk_t wl = {b, 0, max};
    _Unwind_Backtrace(walk_frame, &wl);
    compare(a, nl, b, wl.n, max);
  }
}

/* ---------------------------------------------------------------------------
 * Frames with frame pointers (-O1 -fno-omit-frame-pointer)
 * ------------------------------------------------------------------------- */
__attribute__((noinline)) static void rec_fp(int d, uu_fn_t at_bottom) {
  volatile int local = d;
  if (d > 0) rec_fp(d - 1, at_bottom);
  else at_bottom();
  sink += (uintptr_t)local;
}

__attribute__((noinline)) void uu_rec_mix_fp(int d) {
  volatile int local = d;
  if (d > 0) uu_rec_mix_nofp(d - 1);
  else uu_mix_fn();
  sink += (uintptr_t)local;
}

static __thread int qsort_probed;
static int cmp_int(const void *x, const void *y) {
  if (!qsort_probed) {
    qsort_probed = 1;
    probe();
  }
  int a = *(const int *)x, b = *(const int *)y;
  return (a > b) - (a < b);
}

__attribute__((noinline)) static void qsort_bottom(void) {
  int v[64];
  for (int i = 0; i < 64; i++) v[i] = (i * 37) % 64;
  qsort_probed = 0;
  qsort(v, 64, sizeof *v, cmp_int);
  CHECK(qsort_probed);
  sink += (uintptr_t)v[0];
}

__attribute__((noinline)) static void multi_exit_bottom(void) {
  /* the early exits run first: their rows must not leak into the call's */
  uu_multi_exit(-1, probe);
  uu_multi_exit(-2, probe);
  probe();
}

/* Calls to functions that do not return, as compilers lay them out: the
 * return address is the first byte of another block, whose row differs
 * (uu_asm_noreturn_mid: a block entered after the frame was closed), or
 * the first byte past the function (uu_asm_noreturn_last, followed by a
 * function whose first row differs). The frame is the one of the call, at
 * the return address minus one, as libgcc takes it. */
void uu_asm_noreturn_mid(uu_fn_t fn, int take);
void uu_asm_noreturn_last(uu_fn_t fn);
void uu_asm_after_last(void);
__asm__(".text\n"
        ".globl uu_asm_noreturn_mid\n"
        ".type uu_asm_noreturn_mid, @function\n"
        "uu_asm_noreturn_mid:\n"
        "  .cfi_startproc\n"
        "  sub $40, %rsp\n"
        "  .cfi_def_cfa_offset 48\n"
        "  test %esi, %esi\n"
        "  jz 3f\n"
        "  call *%rdi\n"             /* never returns */
        "  .cfi_def_cfa_offset 8\n"  /* the row of the block below, from the return address on */
        "2:\n"
        "  ret\n"
        "3:\n"
        "  .cfi_def_cfa_offset 48\n"
        "  add $40, %rsp\n"
        "  .cfi_def_cfa_offset 8\n"
        "  jmp 2b\n"
        "  .cfi_endproc\n"
        ".size uu_asm_noreturn_mid, .-uu_asm_noreturn_mid\n"
        ".globl uu_asm_noreturn_last\n"
        ".type uu_asm_noreturn_last, @function\n"
        "uu_asm_noreturn_last:\n"
        "  .cfi_startproc\n"
        "  push %rbx\n"
        "  .cfi_def_cfa_offset 16\n"
        "  .cfi_offset rbx, -16\n"
        "  sub $16, %rsp\n"
        "  .cfi_def_cfa_offset 32\n"
        "  call *%rdi\n" /* never returns; the last instruction */
        "  .cfi_endproc\n"
        ".size uu_asm_noreturn_last, .-uu_asm_noreturn_last\n"
        ".globl uu_asm_after_last\n"
        ".type uu_asm_after_last, @function\n"
        "uu_asm_after_last:\n"
        "  .cfi_startproc\n"
        "  push %rbp\n"
        "  .cfi_def_cfa_offset 16\n"
        "  .cfi_offset rbp, -16\n"
        "  pop %rbp\n"
        "  .cfi_def_cfa_offset 8\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size uu_asm_after_last, .-uu_asm_after_last\n");

static __thread jmp_buf escape_to;
static void probe_and_escape(void) {
  probe();
  longjmp(escape_to, 1);
}

__attribute__((noinline)) static void noreturn_bottom(void) {
  if (!setjmp(escape_to)) uu_asm_noreturn_mid(probe_and_escape, 1);
  if (!setjmp(escape_to)) uu_asm_noreturn_last(probe_and_escape);
  uu_asm_noreturn_mid(probe_and_escape, 0); /* the other path returns */
  uu_asm_after_last();
}

/* ---------------------------------------------------------------------------
 * Scenarios
 * ------------------------------------------------------------------------- */
typedef void (*scen_fn_t)(int d);
static void s_fp(int d) { rec_fp(d, probe); }
static void s_nofp(int d) { uu_rec_nofp(d, probe); }
static void s_alloca(int d) { uu_rec_alloca(d, probe); }
static void s_vla(int d) { uu_rec_vla(d, probe); }
static void s_mix(int d) { uu_rec_mix(d, probe); }
static void s_multi(int d) { uu_multi_exit(d, multi_exit_bottom); }
static void s_qsort(int d) { uu_rec_nofp(d, qsort_bottom); }
static void s_noreturn(int d) { uu_rec_mix(d, noreturn_bottom); }

static void big_bottom(void) { uu_big_frame(probe); }
static void s_bigframe(int d) { uu_rec_nofp(d % 8, big_bottom); }

static const struct {
  const char *name;
  scen_fn_t fn;
} scenarios[] = {
    {"frame pointers", s_fp}, {"no frame pointers", s_nofp}, {"alloca", s_alloca}, {"VLA", s_vla},
    {"mixed", s_mix},         {"several exits", s_multi},    {"qsort callback", s_qsort}, {"200 KB frame", s_bigframe},
    {"calls that do not return", s_noreturn},
};

static void run_all(int max_depth, int step) {
  for (size_t s = 0; s < sizeof scenarios / sizeof *scenarios; s++) {
    scenario = scenarios[s].name;
    for (int d = 0; d <= max_depth; d += step) {
      scenario_depth = d;
      scenarios[s].fn(d); /* misses */
      scenarios[s].fn(d); /* hits */
    }
  }
}

/* ---------------------------------------------------------------------------
 * Where the fast walker must give up
 * ------------------------------------------------------------------------- */
static void on_signal(int sig) {
  (void)sig;
  probe();
}

static void fallback_cases(void) {
  int saved = expect;
  /* A signal frame: libgcc's (expressions, 'S'). Under TSan, the handler
   * runs from TSan's runtime rather than on a signal frame. */
#if defined(__SANITIZE_THREAD__)
  expect = EXPECT_ANY;
#else
  expect = EXPECT_FALLBACK;
#endif
  scenario = "signal handler";
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGUSR1, &sa, NULL);
  raise(SIGUSR1);
  raise(SIGUSR1);

  /* On an alternate stack, outside the thread's. */
  scenario = "signal handler on an alternate stack";
  stack_t ss = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16};
  CHECK(sigaltstack(&ss, NULL) == 0);
  sa.sa_flags = SA_ONSTACK;
  sigaction(SIGUSR1, &sa, NULL);
  raise(SIGUSR1);
  stack_t off = {.ss_flags = SS_DISABLE};
  sigaltstack(&off, NULL);
  free(ss.ss_sp);
  signal(SIGUSR1, SIG_DFL);

  /* A frame larger than a rule holds. */
  expect = EXPECT_FALLBACK;
  scenario = "1.2 MB frame";
  uu_huge_frame(probe);
  expect = saved;
}

static ucontext_t uc_main, uc_co;
static void co_entry(void) {
  scenario = "coroutine stack";
  int saved = expect;
  expect = EXPECT_FALLBACK;
  uu_rec_nofp(3, probe);
  expect = saved;
}

static void coroutine_case(void) {
  size_t sz = 256 * 1024;
  void *stk = malloc(sz);
  CHECK(getcontext(&uc_co) == 0);
  uc_co.uc_stack.ss_sp = stk;
  uc_co.uc_stack.ss_size = sz;
  uc_co.uc_link = &uc_main;
  makecontext(&uc_co, co_entry, 0);
  CHECK(swapcontext(&uc_main, &uc_co) == 0);
  free(stk);
}

/* A corrupt saved RBP under a frame whose CFA is RBP + 16: the walk ends
 * at that frame. Both frames keep frame pointers (this file). */
__attribute__((noinline)) static void corrupt_probe(int mode) {
  void **fp = __builtin_frame_address(0); /* fp[0]: the caller's saved RBP */
  void *a[MAXF], *b[MAXF];
  walk_t w = {b, 0, MAXF};
  _Unwind_Backtrace(walk_frame, &w);
  void *saved = fp[0];
  uintptr_t bad;
  switch (mode) {
    case 0: bad = 0; break;
    case 1: bad = (uintptr_t)saved + 3; break;          /* misaligned */
    case 2: bad = (uintptr_t)a - 65536; break;          /* below the stack pointer */
    case 3: bad = (uintptr_t)0x7ffffffff000ull; break;  /* above the stack */
    case 4: bad = ~(uintptr_t)0 - 8; break;              /* wraps around */
    default: bad = (uintptr_t)saved + 64; break;        /* inside the stack: wrong, readable */
  }
  *(void *volatile *)&fp[0] = (void *)bad;
  int partial;
  int na = vkm_unwind(a, MAXF, &partial);
  *(void *volatile *)&fp[0] = saved;
  if (mode <= 4) {
    /* this frame, then the caller's return address; the caller's CFA is bad */
    CHECK_EQ(na, 2);
    if (na >= 2) CHECK(a[1] == b[1]);
  } else {
    CHECK_GE(na, 2);
  }
}

__attribute__((noinline)) static void corrupt_caller(int mode) {
  volatile int local = mode;
  corrupt_probe(mode);
  sink += (uintptr_t)local;
}

/* ---------------------------------------------------------------------------
 * Threads
 * ------------------------------------------------------------------------- */
static void *thread_main(void *arg) {
  (void)arg;
  run_all(50, 7);
  return NULL;
}

static int stop_flag; /* atomic */
static void *stress_main(void *arg) {
  int id = (int)(intptr_t)arg;
  for (int i = 0; !__atomic_load_n(&stop_flag, __ATOMIC_RELAXED) || i < 50; i++) {
    int d = (i * 7 + id) % 24;
    scenario = "concurrent";
    scenario_depth = d;
    switch ((i + id) % 4) {
      case 0: uu_rec_nofp(d, probe); break;
      case 1: rec_fp(d, probe); break;
      case 2: uu_rec_alloca(d, probe); break;
      default: uu_rec_mix(d, probe); break;
    }
  }
  return NULL;
}

int main(void) {
  vkm_unwind_init();

  run_all(50, 1);

  fallback_cases();
  coroutine_case();
  for (int mode = 0; mode <= 5; mode++) corrupt_caller(mode);

  pthread_t t;
  CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0);
  pthread_join(t, NULL);

  /* A thread on a stack of the program's own: glibc puts its TCB on top. */
  size_t sz = 4u << 20;
  void *stk = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(stk != MAP_FAILED);
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setstack(&at, stk, sz);
  CHECK(pthread_create(&t, &at, thread_main, NULL) == 0);
  pthread_join(t, NULL);
  pthread_attr_destroy(&at);
  munmap(stk, sz);

  /* Threads filling and reading the table while it is flushed (past the
   * 128 epochs after which it is zeroed). */
  pthread_t ts[4];
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&ts[i], NULL, stress_main, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < 300; i++) {
    vkm_unwind_flush();
    usleep(200);
  }
  __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < 4; i++) pthread_join(ts[i], NULL);

  /* After all that, the main thread's walks still agree. */
  run_all(12, 3);

  fprintf(stderr, "unwind_unit: %" PRIu64 " probes, %" PRIu64 " walked fast, %" PRIu64 " frames compared\n", probes,
          fast_walks, frames_compared);
  CHECK_GT(fast_walks, 1000);
  CHECK_GT(frames_compared, 20000);
  return check_failures ? 1 : 0;
}
