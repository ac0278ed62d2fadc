/* demo.c - valkmem-demo: a small interpreter-like runtime that exercises
 * every panel of the valkmem dashboard through the public header only.
 *
 *   valkmem-demo [--mode server|game|desktop|repl|lsp|embedded|all]
 *                [--seconds N] [--leak] [--leak-kib-per-s N] [--seed N]
 *                [--gc-limit N] [--gc-kib N]
 *
 *   valkmem run -- valkmem-demo            (dashboard URL printed on stderr)
 *   LD_PRELOAD=libvalkmem.so valkmem-demo --mode game --seconds 30
 *
 * The main thread runs a paced loop (a 16 ms tick): each selected mode does
 * one tick of work, then the VM collects at a safepoint when its budget is
 * spent, then the frame is marked. In server and all modes two I/O threads
 * churn short-lived buffers and a shared pool. Everything is seeded, so a
 * run's work is the same each time (only timing differs).
 *
 * --leak plants a leak: leaky_cache_put keeps a 4 KiB entry in a global
 * cache that only grows, at --leak-kib-per-s (default 256) until 256 MiB;
 * in repl mode each eval's result also stays in the history.
 *
 * --seconds 0 (the default) runs until SIGINT or SIGTERM. --gc-limit N
 * stops after the N-th collection (tests).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"

#define TICK_NS 15000000ull /* 66.7 ticks/s: a frame fits the 16.6 ms budget with room for timer jitter, unless something hitches */
#define LEAK_ENTRY 4096

/* Set by SIGINT/SIGTERM and read by every thread: a lock-free atomic is
 * both async-signal-safe and race-free. */
static int stop_flag;
static void on_signal(int sig) {
  (void)sig;
  __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
}
static int stopping(void) { return __atomic_load_n(&stop_flag, __ATOMIC_RELAXED); }

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t_ns) {
  struct timespec ts = {(time_t)(t_ns / 1000000000ull), (long)(t_ns % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stopping()) {
  }
}

/* ---------------------------------------------------------------------------
 * The planted leak
 * ------------------------------------------------------------------------- */

typedef struct cache_entry_s {
  struct cache_entry_s *next;
  uint64_t key;
  size_t len;
  unsigned char data[];
} cache_entry_t;

static cache_entry_t *leaky_cache; /* never pruned: that is the bug */
static size_t leaky_bytes;

/* Caches `bytes` under `key` forever. The allocation site the leak report
 * must name. */
__attribute__((noinline)) void leaky_cache_put(uint64_t key, size_t bytes) {
  cache_entry_t *e = malloc(sizeof *e + bytes);
  if (!e) return;
  e->key = key;
  e->len = bytes;
  memset(e->data, (int)(key & 0xff), bytes < 64 ? bytes : 64);
  e->next = leaky_cache;
  leaky_cache = e;
  leaky_bytes += bytes;
}

size_t leaky_cache_bytes(void) { return leaky_bytes; }

/* ---------------------------------------------------------------------------
 * I/O threads (server, all): short-lived buffers from any thread, and a
 * pool shared between threads (the API is thread-safe).
 * ------------------------------------------------------------------------- */

static valkmem_pool_t *io_pool;

static __attribute__((noinline)) void *io_buffer(size_t n) { return malloc(n); }

static void *io_thread(void *arg) {
  rng_t r = {(uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 3};
  while (!stopping()) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    for (int k = 0; k < 3; k++) {
      size_t n = rng_range(&r, 1024, 32 * 1024);
      char *b = io_buffer(n);
      valkmem_pool_alloc(io_pool, 4096);
      if (b) memset(b, 0, 256);
      valkmem_pool_free(io_pool, 4096);
      free(b);
    }
  }
  return NULL;
}

/* ---------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------- */

static void usage(FILE *f) {
  fputs("usage: valkmem-demo [--mode server|game|desktop|repl|lsp|embedded|all] [--seconds N]\n"
        "                    [--leak] [--leak-kib-per-s N] [--seed N] [--gc-limit N] [--gc-kib N]\n",
        f);
}

static int parse_mode(const char *s) {
  static const struct {
    const char *name;
    int bits;
  } t[] = {{"game", MODE_GAME}, {"server", MODE_SERVER}, {"desktop", MODE_DESKTOP}, {"repl", MODE_REPL},
           {"lsp", MODE_LSP},   {"embedded", MODE_EMBEDDED}, {"all", MODE_ALL}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp(s, t[i].name) == 0) return t[i].bits;
  return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-') return -1;
  *out = v;
  return 0;
}

/* The VM's shape per mode: heap size, collection budget, pause profile. */
static void vm_config_for(int modes, vm_config_t *c) {
  c->heap_initial = 4u << 20;
  c->heap_max = 64u << 20;
  c->gc_budget = 2u << 20;
  c->pause_profile = PAUSE_GAME;
  switch (modes) {
  case MODE_SERVER: c->gc_budget = 512u << 10, c->pause_profile = PAUSE_SERVER; break;
  case MODE_DESKTOP: c->gc_budget = 512u << 10, c->pause_profile = PAUSE_DESKTOP; break;
  case MODE_REPL:
  case MODE_LSP: c->gc_budget = 1u << 20, c->pause_profile = PAUSE_INTERACTIVE; break;
  case MODE_EMBEDDED:
    c->heap_initial = 128u << 10, c->heap_max = 256u << 10;
    c->gc_budget = 16u << 10, c->pause_profile = PAUSE_NONE;
    break;
  default: break;
  }
}

int main(int argc, char **argv) {
  demo_t d;
  memset(&d, 0, sizeof d);
  d.modes = MODE_ALL;
  d.seed = 1;
  d.leak_bps = 256 * 1024;
  d.leak_max = 256u << 20;
  uint64_t seconds = 0, gc_limit = 0, gc_kib = 0;
  const char *mode_name = "all";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t x;
    if (strcmp(a, "--leak") == 0) {
      d.leak = 1;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--mode") == 0 && v && parse_mode(v)) {
      d.modes = parse_mode(v), mode_name = v, i++;
    } else if (strcmp(a, "--seconds") == 0 && v && !parse_u64(v, &x)) {
      seconds = x, i++;
    } else if (strcmp(a, "--leak-kib-per-s") == 0 && v && !parse_u64(v, &x)) {
      d.leak_bps = x * 1024, i++;
    } else if (strcmp(a, "--seed") == 0 && v && !parse_u64(v, &x)) {
      d.seed = x, i++;
    } else if (strcmp(a, "--gc-limit") == 0 && v && !parse_u64(v, &x)) {
      gc_limit = x, i++;
    } else if (strcmp(a, "--gc-kib") == 0 && v && !parse_u64(v, &x) && x > 0) {
      gc_kib = x, i++;
    } else {
      fprintf(stderr, "valkmem-demo: error: bad argument: %s%s%s\n", a, v ? " " : "", v ? v : "");
      usage(stderr);
      return 2;
    }
  }
  if (!valkmem_version())
    fputs("valkmem-demo: valkmem is not loaded (use `valkmem run -- valkmem-demo` or "
          "LD_PRELOAD=libvalkmem.so); the runtime API calls are no-ops\n",
          stderr);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  vm_config_t vc;
  vm_config_for(d.modes, &vc);
  if (gc_kib) vc.gc_budget = gc_kib * 1024;
  vm_init(&vc, d.seed);
  modes_init(&d);
  d.frames_owner = d.modes & (MODE_GAME | MODE_DESKTOP);

  pthread_t io[2];
  int nio = 0;
  if (d.modes & MODE_SERVER) {
    io_pool = valkmem_pool_register("io.buffers", VALKMEM_POOL_SLAB, 64 * 4096, 4096);
    for (; nio < 2; nio++)
      if (pthread_create(&io[nio], NULL, io_thread, (void *)(uintptr_t)(d.seed + (uint64_t)nio + 1)) != 0) break;
  }

  uint64_t t0 = mono_ns(), next = t0, last = t0;
  double leak_due = 0;
  uint64_t leak_key = 0, frames = 0;
  valkmem_mark("demo start", d.modes);
  while (!stopping()) {
    uint64_t now = mono_ns();
    d.now_s = (double)(now - t0) / 1e9;
    d.dt_s = (double)(now - last) / 1e9;
    last = now;
    if (seconds && d.now_s >= (double)seconds) break;
    if (gc_limit && vm_gc_count() >= gc_limit) break;

    modes_tick(&d);
    if (d.leak) {
      leak_due += (double)d.leak_bps * d.dt_s;
      while (leak_due >= LEAK_ENTRY && leaky_cache_bytes() < d.leak_max) {
        leaky_cache_put(leak_key++, LEAK_ENTRY);
        leak_due -= LEAK_ENTRY;
      }
    }
    vm_safepoint(); /* GC inside the frame, as in an engine */
    if (d.frames_owner) {
      valkmem_frame_mark();
      frames++;
    }
    d.tick++;
    next += TICK_NS;
    now = mono_ns();
    if (now > next + 100 * TICK_NS) next = now; /* far behind (stopped, swapped): resync */
    sleep_until(next);
  }

  __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < nio; i++) pthread_join(io[i], NULL);
  valkmem_mark("demo stop", vm_gc_count());
  double secs = (double)(mono_ns() - t0) / 1e9;
  fprintf(stderr, "valkmem-demo: mode %s, %.1f s, %llu frames, %llu GC cycles, leaked %zu KiB\n", mode_name, secs,
          (unsigned long long)frames, (unsigned long long)vm_gc_count(), leaky_cache_bytes() / 1024);
  modes_shutdown(&d);
  vm_shutdown();
  /* the leaky cache is left as it is: the exit report should show it live */
  return 0;
}
