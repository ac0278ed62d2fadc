/* sites_unit.c - sites.c + symbols.c fed with synthetic events: exact
 * numbers in exact mode, weights in sampled mode, frees drained before
 * their allocs, lifetime buckets, symbolisation of static functions and
 * trimming of allocator frames, and leak flagging on simulated workloads
 * (a planted leak among churn and a bounded cache, sampled at 512 KiB). */
#include "agent.h"
#include "check.h"
#include "symbols.h"

#include <dlfcn.h>
#include <math.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Call sites: real code addresses inside functions of this program.
 * ------------------------------------------------------------------------- */
__attribute__((noinline)) static uintptr_t ret_addr(void) { return (uintptr_t)__builtin_return_address(0); }
static const unsigned leaky_put_line = __LINE__ + 1;
__attribute__((noinline)) static uintptr_t leaky_put(void) { uintptr_t r = ret_addr(); __asm__ volatile(""); return r; }
__attribute__((noinline)) static uintptr_t churn_request(void) { uintptr_t r = ret_addr(); __asm__ volatile(""); return r; }
__attribute__((noinline)) static uintptr_t cache_insert(void) { uintptr_t r = ret_addr(); __asm__ volatile(""); return r; }
__attribute__((noinline)) static uintptr_t outer_caller(void) { uintptr_t r = ret_addr(); __asm__ volatile(""); return r; }

static char self_name[256]; /* basename of this executable */
static uintptr_t st_leak[3], st_churn[3], st_cache[3], st_plain[2];

static void make_stacks(void) {
  /* Leaf first, as capture() gives them: an allocator frame on top. */
  uintptr_t m = (uintptr_t)&malloc + 24;
  st_leak[0] = m, st_leak[1] = leaky_put(), st_leak[2] = outer_caller();
  st_churn[0] = m, st_churn[1] = churn_request(), st_churn[2] = outer_caller();
  st_cache[0] = m, st_cache[1] = cache_insert(), st_cache[2] = outer_caller();
  st_plain[0] = cache_insert(), st_plain[1] = leaky_put();
}

/* ---------------------------------------------------------------------------
 * Event helpers
 * ------------------------------------------------------------------------- */
static uint64_t T_ns = 1000000000ull;

static void ev_alloc(uint64_t id, uint64_t size, const uintptr_t *fr, unsigned n) {
  vkm_event_t ev = {.type = VKM_EV_ALLOC, .nframes = (uint16_t)n, .extra_len = (uint16_t)(n * sizeof *fr),
                    .id = id, .a = size, .b = (size + 8 + 15) & ~15ull, .c = 0x1000 + id * 16, .t_ns = T_ns};
  vkm_sites_on_event(&ev, fr);
}

static void ev_free(uint64_t id) {
  vkm_event_t ev = {.type = VKM_EV_FREE, .id = id, .c = 0x1000 + id * 16, .t_ns = T_ns};
  vkm_sites_on_event(&ev, NULL);
}

static void tick(uint64_t ms, uint64_t gc) {
  T_ns += ms * 1000000ull;
  vkm_tick_t t = {.t_ns = T_ns};
  t.gc_cycles = gc;
  vkm_sites_tick(&t);
}

static cJSON *report(unsigned top) {
  cJSON *o = cJSON_CreateObject();
  vkm_sites_json(o, top);
  return o;
}

static const cJSON *site_named(const cJSON *rep, const char *fn) {
  const cJSON *s;
  cJSON_ArrayForEach(s, cJSON_GetObjectItem(rep, "sites")) {
    const cJSON *f0 = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "frames"), 0);
    const char *name = f0 ? cJSON_GetStringValue(cJSON_GetObjectItem(f0, "function")) : NULL;
    if (name && strcmp(name, fn) == 0) return s;
  }
  return NULL;
}

static double num(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void set_mode(uint64_t sample_bytes) {
  vkm_config.sample_bytes = sample_bytes;
  vkm_config.exact = sample_bytes == 1;
  vkm_sites_init();
  T_ns = 1000000000ull;
}

/* ---------------------------------------------------------------------------
 * Exact mode: numbers equal truth; symbols; trimming
 * ------------------------------------------------------------------------- */
static void test_exact(void) {
  set_mode(1);
  tick(100, 0);
  for (uint64_t i = 0; i < 100; i++) ev_alloc(i + 1, 1000, st_leak, 3);
  for (uint64_t i = 0; i < 50; i++) ev_alloc(1000 + i, 64, st_churn, 3);
  for (uint64_t i = 0; i < 60; i++) ev_free(i + 1);
  for (uint64_t i = 0; i < 50; i++) ev_free(1000 + i);
  ev_alloc(5000, 7, st_plain, 2);
  cJSON *rep = report(0);
  const cJSON *a = site_named(rep, "leaky_put"), *b = site_named(rep, "churn_request");
  const cJSON *c = site_named(rep, "cache_insert");
  CHECK(a && b && c);
  CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "sites")), 3);
  if (a) {
    CHECK_EQ(num(a, "alloc_bytes"), 100000);
    CHECK_EQ(num(a, "alloc_count"), 100);
    CHECK_EQ(num(a, "live_bytes"), 40000);
    CHECK_EQ(num(a, "live_count"), 40);
    CHECK_EQ(num(a, "live_usable_bytes"), 40 * 1008);
    const cJSON *fr = cJSON_GetObjectItem(a, "frames");
    CHECK_EQ(cJSON_GetArraySize(fr), 2); /* malloc trimmed */
    const cJSON *f0 = cJSON_GetArrayItem(fr, 0), *f1 = cJSON_GetArrayItem(fr, 1);
    CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(f0, "module")), self_name);
    CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(f1, "function")), "outer_caller");
    CHECK_GT(num(f0, "offset"), 0);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(a, "id"));
    CHECK(id && strlen(id) == 16);
    const cJSON *lt = cJSON_GetObjectItem(a, "lifetimes");
    CHECK_EQ(cJSON_GetArrayItem(lt, 0)->valuedouble, 60);
  }
  if (b) {
    CHECK_EQ(num(b, "alloc_bytes"), 3200);
    CHECK_EQ(num(b, "live_bytes"), 0);
    CHECK_EQ(num(b, "live_count"), 0);
  }
  if (c) { /* a stack with no allocator frame keeps its top frame */
    CHECK_EQ(num(c, "live_bytes"), 7);
    CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(c, "frames")), 2);
  }
  /* Rankings: live first is leaky_put (40000), by alloc too. */
  const char *top_live = cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(rep, "sites_by_live"), 0));
  CHECK_STREQ(top_live, a ? cJSON_GetStringValue(cJSON_GetObjectItem(a, "id")) : "?");
  /* top=1: union of top-1 by live and top-1 by alloc (the same site). */
  cJSON *r1 = report(1);
  CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r1, "sites")), 1);
  cJSON_Delete(r1);
  /* ids are stable across reports */
  cJSON *r2 = report(0);
  const cJSON *a2 = site_named(r2, "leaky_put");
  CHECK_STREQ(a2 ? cJSON_GetStringValue(cJSON_GetObjectItem(a2, "id")) : "",
              a ? cJSON_GetStringValue(cJSON_GetObjectItem(a, "id")) : "x");
  cJSON_Delete(r2);
  cJSON_Delete(rep);
}

static void test_symbols(void) {
  vkm_sym_t s;
  vkm_sym_lookup(leaky_put() - 1, &s);
  CHECK_STREQ(s.function, "leaky_put"); /* static: only in .symtab */
  CHECK_STREQ(s.module, self_name);
  CHECK_STREQ(s.file, "sites_unit.c"); /* DWARF .debug_line */
  CHECK_EQ(s.line, leaky_put_line);
  vkm_sym_lookup((uintptr_t)&labs + 1, &s);
  CHECK_STREQ(s.function, "labs");
  CHECK(strncmp(s.module, "libc.so", 7) == 0);
  CHECK(!s.alloc_frame);
  vkm_sym_lookup((uintptr_t)&malloc + 4, &s);
  CHECK(s.alloc_frame);
  CHECK_EQ(s.fn_offset, 4);
  /* C++: operator new is an allocator frame; names come back demangled once
   * libstdc++ (and so __cxa_demangle) is in the process. */
  void *cxx = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_GLOBAL);
  CHECK(cxx != NULL);
  if (cxx) {
    void *nw = dlsym(cxx, "_Znwm"), *what = dlsym(cxx, "_ZNKSt9bad_alloc4whatEv");
    CHECK(nw && what);
    vkm_sym_lookup((uintptr_t)nw + 1, &s);
    CHECK(s.alloc_frame);
    CHECK(strncmp(s.module, "libstdc++", 9) == 0);
    vkm_sym_lookup((uintptr_t)what + 1, &s);
    CHECK_STREQ(s.function, "std::bad_alloc::what() const");
    CHECK(!s.alloc_frame);
  }
}

/* A free drained before its alloc (the two came from different threads'
 * rings) must still free it: no lost frees. */
static void test_out_of_order(void) {
  set_mode(1);
  tick(100, 0);
  ev_free(42);
  ev_free(43);
  tick(100, 0);
  ev_alloc(42, 4096, st_leak, 3);
  ev_alloc(44, 100, st_leak, 3);
  ev_alloc(43, 4096, st_leak, 3);
  cJSON *rep = report(0);
  const cJSON *a = site_named(rep, "leaky_put");
  CHECK(a != NULL);
  if (a) {
    CHECK_EQ(num(a, "alloc_bytes"), 8292);
    CHECK_EQ(num(a, "alloc_count"), 3);
    CHECK_EQ(num(a, "live_bytes"), 100);
    CHECK_EQ(num(a, "live_count"), 1);
  }
  cJSON_Delete(rep);
  /* A free whose alloc never comes (dropped) is forgotten after a while and
   * never cancels a later, unrelated sample. */
  ev_free(777);
  for (int i = 0; i < 150; i++) tick(100, 0);
  ev_alloc(777, 10, st_leak, 3);
  rep = report(0);
  a = site_named(rep, "leaky_put");
  CHECK_EQ(a ? num(a, "live_bytes") : -1, 110);
  cJSON_Delete(rep);
}

static void test_lifetimes(void) {
  set_mode(1);
  tick(100, 0);
  for (uint64_t i = 1; i <= 6; i++) ev_alloc(i, 10, st_cache, 3);
  ev_free(1); /* age 0 */
  for (int e = 1; e <= 30; e++) {
    tick(1000, 0); /* one time epoch */
    if (e == 3) ev_free(2);
    if (e == 10) ev_free(3);
    if (e == 25) ev_free(4);
    if (e == 28) ev_alloc(7, 10, st_cache, 3);
  }
  cJSON *rep = report(0);
  const cJSON *s = site_named(rep, "cache_insert");
  const cJSON *lt = s ? cJSON_GetObjectItem(s, "lifetimes") : NULL;
  CHECK(lt != NULL);
  for (int b = 0; lt && b < 4; b++) CHECK_EQ(cJSON_GetArrayItem(lt, b)->valuedouble, 1);
  const cJSON *g = cJSON_GetObjectItem(rep, "lifetimes");
  CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(g, "epoch")), "time");
  const cJSON *live = cJSON_GetObjectItem(g, "live");
  /* ids 5 and 6 are 30 epochs old, id 7 is 2 epochs old */
  CHECK_EQ(cJSON_GetArrayItem(live, 0)->valuedouble, 0);
  CHECK_EQ(cJSON_GetArrayItem(live, 1)->valuedouble, 1);
  CHECK_EQ(cJSON_GetArrayItem(live, 2)->valuedouble, 0);
  CHECK_EQ(cJSON_GetArrayItem(live, 3)->valuedouble, 2);
  const cJSON *fr = cJSON_GetObjectItem(g, "freed");
  for (int b = 0; b < 4; b++) CHECK_EQ(cJSON_GetArrayItem(fr, b)->valuedouble, 1);
  cJSON_Delete(rep);
  /* GC epochs: once cycles are reported, age counts cycles. */
  tick(100, 1);
  ev_alloc(100, 10, st_churn, 3);
  tick(100, 2);
  tick(100, 4); /* two cycles in one tick */
  ev_free(100);
  rep = report(0);
  g = cJSON_GetObjectItem(rep, "lifetimes");
  CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(g, "epoch")), "gc");
  s = site_named(rep, "churn_request");
  lt = s ? cJSON_GetObjectItem(s, "lifetimes") : NULL;
  CHECK_EQ(lt ? cJSON_GetArrayItem(lt, 1)->valuedouble : -1, 1); /* age 3 cycles */
  cJSON_Delete(rep);
}

/* Sampled mode: each event weighs size / (1 - exp(-size/mean)). */
static void test_weights(void) {
  const uint64_t mean = 524288;
  set_mode(mean);
  tick(100, 0);
  ev_alloc(1, 1000, st_leak, 3);
  ev_alloc(2, 1000, st_leak, 3);
  ev_alloc(3, 64ull << 20, st_churn, 3);
  ev_free(2);
  cJSON *rep = report(0);
  const cJSON *a = site_named(rep, "leaky_put"), *b = site_named(rep, "churn_request");
  double w = 1000.0 / -expm1(-1000.0 / mean);
  CHECK(a && b);
  if (a) {
    CHECK_NEAR(num(a, "alloc_bytes"), 2 * w, 2);
    CHECK_NEAR(num(a, "alloc_count"), 2 * w / 1000, 1);
    CHECK_NEAR(num(a, "live_bytes"), w, 1);
    CHECK_NEAR(num(a, "live_count"), w / 1000, 1);
  }
  if (b) {
    CHECK_NEAR(num(b, "live_bytes"), 64 << 20, 1);
    CHECK_EQ(num(b, "live_count"), 1);
  }
  cJSON_Delete(rep);
}

/* Calibration: with the exact totals of a tick, the sites' live usable
 * bytes add up to the exact live heap and their allocated bytes to the
 * exact requested total; the raw estimates and their standard errors stay
 * in the JSON; a total the estimates cannot explain is not applied. */
static double sum_field(const cJSON *rep, const char *k) {
  double s = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, cJSON_GetObjectItem(rep, "sites")) s += num(x, k);
  return s;
}

static void test_calibration(void) {
  const uint64_t mean = 65536, size = 16384, usable = (size + 8 + 15) & ~15ull;
  set_mode(mean);
  tick(100, 0);
  uint64_t id = 1;
  for (int i = 0; i < 300; i++) ev_alloc(id++, size, st_leak, 3);   /* site A: ids 1..300 */
  for (int i = 0; i < 100; i++) ev_alloc(id++, size, st_cache, 3);  /* site B */
  for (uint64_t f = 1; f <= 50; f++) ev_free(f);                    /* A keeps 250 */
  double p = -expm1(-(double)size / mean), w = round((double)size / p), v = w * w * (1 - p);
  double est_live_usable = 350 * w * (double)usable / size, est_alloc = 400 * w;
  /* Exact totals 3 % below the estimates: within what sampling explains. */
  int64_t exact_live = (int64_t)llround(est_live_usable * 0.97);
  uint64_t exact_alloc = (uint64_t)llround(est_alloc * 1.02);
  T_ns += 100000000ull;
  vkm_tick_t t = {.t_ns = T_ns, .live_bytes = exact_live};
  t.c.alloc_bytes = exact_alloc;
  vkm_sites_tick(&t);
  cJSON *rep = report(0);
  const cJSON *cal = cJSON_GetObjectItem(rep, "calibration");
  CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(cal, "live"), "applied")));
  CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(cal, "alloc"), "applied")));
  CHECK_NEAR(sum_field(rep, "live_usable_bytes"), (double)exact_live, 3);
  CHECK_NEAR(sum_field(rep, "alloc_bytes"), (double)exact_alloc, 3);
  const cJSON *a = site_named(rep, "leaky_put"), *b = site_named(rep, "cache_insert");
  CHECK(a && b);
  if (a && b) {
    CHECK_NEAR(num(a, "live_bytes_raw"), 250 * w, 1);
    CHECK_NEAR(num(b, "alloc_bytes_raw"), 100 * w, 1);
    CHECK_NEAR(num(a, "live_bytes"), 250 * w * 0.97 * (est_live_usable / (350 * w * (double)usable / size)), 250 * w * 0.001);
    /* The ratio estimator's error, r sqrt((1 - s)^2 V_X + s^2 V_rest): for
     * A (5/7 of the live bytes) about half its raw error sqrt(250 v). */
    double r = 0.97, sa = 250.0 / 350, sb = 100.0 / 350;
    double want_a = r * sqrt((1 - sa) * (1 - sa) * 250 * v + sa * sa * 100 * v);
    double want_b = r * sqrt((1 - sb) * (1 - sb) * 100 * v + sb * sb * 250 * v);
    CHECK_NEAR(num(a, "live_err_bytes"), want_a, want_a * 0.01);
    CHECK_NEAR(num(b, "live_err_bytes"), want_b, want_b * 0.01);
    CHECK(want_a < 0.6 * sqrt(250 * v));
  }
  cJSON_Delete(rep);

  /* A total 4 standard errors (and 2 %) above the estimates: more than
   * sampling explains, so not applied - scaling would move every site. */
  {
    T_ns += 100000000ull;
    double se_live = sqrt(350 * v) * (double)usable / size;
    t.t_ns = T_ns;
    t.live_bytes = (int64_t)llround(est_live_usable * 1.02 + 4 * se_live);
    vkm_sites_tick(&t);
    cJSON *r4 = report(0);
    const cJSON *c4 = cJSON_GetObjectItem(cJSON_GetObjectItem(r4, "calibration"), "live");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(c4, "applied")));
    cJSON_Delete(r4);
    t.live_bytes = exact_live;
  }

  /* A total ten times the estimates (a forked child's inherited heap):
   * not applied, the figures are the raw estimates with their raw errors. */
  T_ns += 100000000ull;
  t.t_ns = T_ns;
  t.live_bytes = exact_live * 10;
  t.c.alloc_bytes = exact_alloc * 10;
  vkm_sites_tick(&t);
  rep = report(0);
  cal = cJSON_GetObjectItem(rep, "calibration");
  CHECK(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(cal, "live"), "applied")));
  CHECK_EQ(num(cJSON_GetObjectItem(cal, "live"), "ratio"), 1);
  a = site_named(rep, "leaky_put");
  if (a) {
    CHECK_EQ(num(a, "live_bytes"), num(a, "live_bytes_raw"));
    CHECK_NEAR(num(a, "live_err_bytes"), sqrt(250 * v), 1);
  }
  cJSON_Delete(rep);

  /* Exact mode: never scaled, no error. */
  set_mode(1);
  tick(100, 0);
  ev_alloc(1, 1000, st_leak, 3);
  T_ns += 100000000ull;
  vkm_tick_t te = {.t_ns = T_ns, .live_bytes = 5000};
  vkm_sites_tick(&te);
  rep = report(0);
  a = site_named(rep, "leaky_put");
  CHECK(a && num(a, "live_bytes") == 1000 && num(a, "live_err_bytes") == 0);
  CHECK(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "calibration"), "live"), "applied")));
  cJSON_Delete(rep);
}

/* GET /api/stacks: each site once, its frames as indices into one table
 * where a frame shared by several stacks (outer_caller) appears once; the
 * figures those of the snapshot's sites. */
static void test_stacks(void) {
  set_mode(1);
  tick(100, 0);
  ev_alloc(1, 1000, st_leak, 3);
  ev_alloc(2, 3000, st_cache, 3);
  ev_alloc(3, 500, st_churn, 3);
  ev_free(3);
  cJSON *st = vkm_stacks_json();
  const cJSON *frames = cJSON_GetObjectItem(st, "frames"), *stacks = cJSON_GetObjectItem(st, "stacks");
  CHECK_EQ(cJSON_GetArraySize(stacks), 3); /* churn: nothing live, but it allocated */
  int outer = 0, n = cJSON_GetArraySize(frames);
  for (int i = 0; i < n; i++) {
    const char *fn = cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetArrayItem(frames, i), 0));
    if (fn && strcmp(fn, "outer_caller") == 0) outer++;
  }
  CHECK_EQ(outer, 1);
  const cJSON *s;
  int seen = 0;
  cJSON_ArrayForEach(s, stacks) {
    const cJSON *fi = cJSON_GetArrayItem(s, 1);
    const char *leaf = cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetArrayItem(frames, (int)cJSON_GetArrayItem(fi, 0)->valuedouble), 0));
    double live = cJSON_GetArrayItem(s, 2)->valuedouble, alloc = cJSON_GetArrayItem(s, 4)->valuedouble;
    CHECK_EQ(cJSON_GetArraySize(fi), 2); /* the allocator frame trimmed, as in sites[].frames */
    if (leaf && strcmp(leaf, "leaky_put") == 0) {
      seen++;
      CHECK(live == 1000 && alloc == 1000);
    }
    if (leaf && strcmp(leaf, "cache_insert") == 0) {
      seen++;
      CHECK(live == 3000 && alloc == 3000);
    }
    if (leaf && strcmp(leaf, "churn_request") == 0) {
      seen++;
      CHECK(live == 0 && alloc == 500);
    }
  }
  CHECK_EQ(seen, 3);
  cJSON_Delete(st);
}

/* Rankings with many sites: top N by live and by alloc, in order, and the
 * union in "sites"; every id distinct. */
static void test_top_n(void) {
  set_mode(1);
  tick(100, 0);
  const unsigned n = 500;
  for (unsigned i = 0; i < n; i++) {
    uintptr_t fr[2] = {leaky_put(), 0x10000 + i * 64}; /* distinct stacks */
    /* live grows with i, alloc shrinks with i */
    ev_alloc(10 * i + 1, 1000 + i, fr, 2);
    ev_alloc(10 * i + 2, 100000 - 100 * i, fr, 2);
    ev_free(10 * i + 2);
  }
  cJSON *rep = report(10);
  const cJSON *bl = cJSON_GetObjectItem(rep, "sites_by_live"), *ba = cJSON_GetObjectItem(rep, "sites_by_alloc");
  CHECK_EQ(cJSON_GetArraySize(bl), 10);
  CHECK_EQ(cJSON_GetArraySize(ba), 10);
  CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "sites")), 20);
  /* sites_by_live[k] must be the site with live 1000 + (n-1-k) */
  for (int k = 0; k < 10; k++) {
    const char *id = cJSON_GetStringValue(cJSON_GetArrayItem(bl, k));
    const cJSON *s;
    double live = -1;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(rep, "sites"))
      if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "id")), id) == 0) live = num(s, "live_bytes");
    CHECK_EQ(live, 1000 + (n - 1 - k));
  }
  cJSON_Delete(rep);
  rep = report(0);
  const cJSON *all = cJSON_GetObjectItem(rep, "sites"), *s, *t;
  CHECK_EQ(cJSON_GetArraySize(all), n);
  int dup = 0;
  cJSON_ArrayForEach(s, all) cJSON_ArrayForEach(t, all) if (s != t && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "id")), cJSON_GetStringValue(cJSON_GetObjectItem(t, "id"))) == 0) dup++;
  CHECK_EQ(dup, 0);
  /* the first by alloc is site 0 */
  const cJSON *first = cJSON_GetArrayItem(all, 0);
  (void)first;
  const char *top_alloc = cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(rep, "sites_by_alloc"), 0));
  cJSON_ArrayForEach(s, all) if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "id")), top_alloc) == 0)
      CHECK_EQ(num(s, "alloc_bytes"), 1000 + 100000);
  cJSON_Delete(rep);
}

/* ---------------------------------------------------------------------------
 * Leak detection on a simulated process: per 100 ms tick, churn of 20 MiB/s
 * in 4 KiB objects freed within the tick, a bounded FIFO cache of 8 MiB in
 * 16 KiB entries replaced at 1 MiB/s, and a leak of 250 KiB/s in 1 KiB
 * objects. A Poisson byte sampler (mean 512 KiB) picks the events.
 * ------------------------------------------------------------------------- */
static uint64_t rng;
static double urand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return ((rng >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

typedef struct sim_s {
  double countdown;
  uint64_t next_id;
  uint64_t cache_ids[512]; /* 0: not sampled */
  unsigned cache_head;
} sim_t;

/* Returns the sample id if the sampler picks this allocation, else 0. */
static uint64_t sim_alloc(sim_t *s, uint64_t size, const uintptr_t *st, double mean) {
  s->countdown -= (double)size;
  uint64_t id = ++s->next_id;
  if (s->countdown > 0) return 0;
  s->countdown = -log(urand()) * mean;
  ev_alloc(id, size, st, 3);
  return id;
}

static bool leak_flagged(const cJSON *rep, const char *fn, int *others) {
  bool found = false;
  const cJSON *l;
  cJSON_ArrayForEach(l, cJSON_GetObjectItem(rep, "leaks")) {
    const char *f = cJSON_GetStringValue(cJSON_GetObjectItem(l, "function"));
    if (f && strcmp(f, fn) == 0) found = true;
    else {
      (*others)++;
      fprintf(stderr, "false flag: %s live %.0f rate %.0f\n", f ? f : "?", num(l, "live_bytes"), num(l, "growth_bytes_per_s"));
    }
  }
  return found;
}

/* Runs until the leak is flagged or `limit_s` passes. gc_every_ticks > 0
 * reports a GC cycle that often. Returns seconds (or cycles) to flag, -1. */
static double sim_run(uint64_t seed, double limit_s, unsigned gc_every_ticks, int leak_objs, int *false_flags,
                      double *rate) {
  const double mean = 524288;
  set_mode((uint64_t)mean);
  rng = seed * 0x9e3779b97f4a7c15ull + 1;
  sim_t s = {.countdown = -log(urand()) * mean};
  uint64_t gc = 0;
  for (unsigned t = 1; t <= limit_s * 10; t++) {
    uint64_t churn[512];
    for (int i = 0; i < 512; i++) churn[i] = sim_alloc(&s, 4096, st_churn, mean);
    for (int i = 0; i < 512; i++)
      if (churn[i]) ev_free(churn[i]);
    unsigned puts = t <= 5 ? 103 : (t % 5 == 0 ? 7 : 6); /* fill in 0.5 s, then ~1 MiB/s */
    for (unsigned i = 0; i < puts; i++) {
      uint64_t *slot = &s.cache_ids[s.cache_head++ % 512];
      if (*slot) ev_free(*slot);
      *slot = sim_alloc(&s, 16384, st_cache, mean);
    }
    for (int i = 0; i < leak_objs; i++) sim_alloc(&s, 1024, st_leak, mean);
    if (gc_every_ticks && t % gc_every_ticks == 0) gc++;
    tick(100, gc);
    if (t % 10 == 0 || (gc_every_ticks && t % gc_every_ticks == 0)) {
      cJSON *rep = report(50);
      int others = 0;
      bool hit = leak_flagged(rep, "leaky_put", &others);
      *false_flags += others;
      if (hit) {
        const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(rep, "leaks"), 0);
        *rate = num(l, "growth_bytes_per_s");
      }
      cJSON_Delete(rep);
      if (hit) return gc_every_ticks ? (double)gc : t / 10.0;
    }
  }
  return -1;
}

static void test_leaks(void) {
  double worst = 0, sum_rate = 0;
  int false_flags = 0, misses = 0;
  const int runs = getenv("SITES_RUNS") ? atoi(getenv("SITES_RUNS")) : 20; /* more for measuring */
  for (int seed = 1; seed <= runs; seed++) {
    double rate = 0;
    double at = sim_run((uint64_t)seed, 60, 0, 25, &false_flags, &rate);
    if (at < 0) misses++;
    if (at > worst) worst = at;
    sum_rate += rate;
  }
  fprintf(stderr, "time epochs: %d runs, worst %.1f s to flag, mean rate %.0f B/s, %d misses, %d false flags\n",
          runs, worst, sum_rate / runs, misses, false_flags);
  CHECK_EQ(misses, 0);
  CHECK_EQ(false_flags, 0);
  CHECK_NEAR(sum_rate / runs, 256000, 256000 * 0.3);

  /* GC reported every 5 s: flagged within 5 cycles. */
  double worst_gc = 0;
  int misses_gc = 0, false_gc = 0;
  for (int seed = 1; seed <= runs; seed++) {
    double rate = 0;
    double at = sim_run((uint64_t)seed + 1000, 25.0, 50, 25, &false_gc, &rate);
    if (at < 0) misses_gc++;
    if (at > worst_gc) worst_gc = at;
  }
  fprintf(stderr, "gc epochs: %d runs, worst %.0f cycles to flag, %d misses, %d false flags\n", runs, worst_gc,
          misses_gc, false_gc);
  CHECK_EQ(misses_gc, 0);
  CHECK_EQ(false_gc, 0);

  /* A slow leak, 20 KiB/s (one sample every 26 s at 512 KiB): invisible in
   * a 30 s window, flagged by the coarser ones within 10 minutes. */
  double worst_slow = 0;
  int misses_slow = 0, false_slow = 0;
  const int slow_runs = getenv("SITES_SLOW_RUNS") ? atoi(getenv("SITES_SLOW_RUNS")) : 5;
  for (int seed = 1; seed <= slow_runs; seed++) {
    double rate = 0;
    double at = sim_run((uint64_t)seed + 5000, 600, 0, 2, &false_slow, &rate);
    if (at < 0) misses_slow++;
    if (at > worst_slow) worst_slow = at;
  }
  fprintf(stderr, "slow leak: worst %.0f s to flag, %d misses, %d false flags\n", worst_slow, misses_slow, false_slow);
  CHECK_EQ(misses_slow, 0);
  CHECK_EQ(false_slow, 0);

  /* Nothing leaks: the cache and the churn stay unflagged for 40 minutes
   * (every window level full), with and without GC. */
  int false_long = 0;
  const int long_runs = getenv("SITES_LONG_RUNS") ? atoi(getenv("SITES_LONG_RUNS")) : 2;
  for (int seed = 1; seed <= long_runs; seed++) {
    double rate = 0;
    CHECK_EQ(sim_run((uint64_t)seed + 2000, 2400, 0, 0, &false_long, &rate), -1);
    CHECK_EQ(sim_run((uint64_t)seed + 3000, 2400, 50, 0, &false_long, &rate), -1);
  }
  CHECK_EQ(false_long, 0);
}

/* Exact mode: a steady leak's rate converges to the truth as it runs, and a
 * leak that gives its memory back is no longer a suspect. */
static void test_leak_exact(void) {
  set_mode(1);
  uint64_t id = 1;
  for (int t = 1; t <= 1200; t++) { /* 120 s: 10 x 1000 B per 100 ms = 100000 B/s */
    for (int i = 0; i < 10; i++) ev_alloc(id++, 1000, st_leak, 3);
    for (int i = 0; i < 50; i++) ev_alloc(1000000 + t * 100 + i, 100, st_churn, 3), ev_free(1000000 + t * 100 + i);
    tick(100, 0);
  }
  cJSON *rep = report(10);
  const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(rep, "leaks"), 0);
  CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "leaks")), 1);
  CHECK_STREQ(l ? cJSON_GetStringValue(cJSON_GetObjectItem(l, "function")) : "", "leaky_put");
  CHECK_NEAR(l ? num(l, "growth_bytes_per_s") : 0, 100000, 1000);
  CHECK_EQ(l ? num(l, "live_bytes") : 0, 1200 * 10 * 1000);
  CHECK_GE(l ? num(l, "since_s") : 0, 90);
  CHECK_GE(l ? num(l, "epochs") : 0, 90);
  const cJSON *g = cJSON_GetObjectItem(rep, "lifetimes");
  CHECK(cJSON_IsTrue(cJSON_GetObjectItem(g, "oldest_growing")));
  cJSON_Delete(rep);
  for (uint64_t k = 1; k < id; k++) ev_free(k);
  tick(1000, 0);
  rep = report(10);
  CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "leaks")), 0);
  cJSON_Delete(rep);
}

int main(void) {
  char exe[256] = "";
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[len > 0 ? len : 0] = 0;
  snprintf(self_name, sizeof self_name, "%s", strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe);
  make_stacks();
  test_symbols();
  test_exact();
  test_out_of_order();
  test_lifetimes();
  test_weights();
  test_calibration();
  test_stacks();
  test_top_n();
  test_leak_exact();
  test_leaks();
  return check_done("sites_unit");
}
