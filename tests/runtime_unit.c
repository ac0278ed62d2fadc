/* runtime_unit.c - the runtime API (interpose/api.c) and its aggregation
 * (agent/runtime.c) compiled straight into this test, with a fake clock,
 * fake per-thread malloc counters and a vkm_emit that hands each event to
 * vkm_runtime_on_event at once. Every figure below is known exactly:
 * pauses, frame times and zone times come from the fake clock. */
#include <math.h>
#include <pthread.h>
#include <sys/mman.h>

#include "check.h"
#include "runtime_json.h"
#include "hot.h"
#include "agent.h"
#include "runtime.h"
#include "valkmem.h"

/* ---------------------------------------------------------------------------
 * Stubs for what the library's other files provide
 * ------------------------------------------------------------------------- */
__thread vkm_tls_t vkm_tls;
int vkm_ready = 1;
uint64_t vkm_state_alloc_count(const vkm_tstate_t *ts) { return ts->c.alloc_count; }
vkm_tstate_t *vkm_thread_attach(void) { return NULL; }
vkm_config_t vkm_config = {.enabled = true};

#define MS_NS_ 1000000ull
static uint64_t fake_now = 1000 * MS_NS_;
static vkm_tstate_t fake_ts[2];
static uint32_t fake_thread; /* which fake thread is "calling" */
static uint64_t emitted[VKM_EV_MAX];

uint64_t vkm_now_ns(void) { return fake_now; }
uint64_t vkm_start_ns(void) { return 1000 * MS_NS_; }
uint64_t vkm_started_at_unix_ms(void) { return 1764172800000ull; }
static int said;
void vkm_say(const char *level, const char *fmt, ...) {
  (void)level, (void)fmt;
  said++;
}
void vkm_guard_enter(void) {}
void vkm_guard_leave(void) {}
void *vkm_malloc(size_t n) { return malloc(n); }
void *vkm_calloc(size_t n, size_t m) { return calloc(n, m); }
void *vkm_realloc(void *p, size_t n) { return realloc(p, n); }
void vkm_free(void *p) { free(p); }
void vkm_self_track(int64_t delta) { (void)delta; }

/* The segment: a private mapping the size of the real one; pool handles
 * are bump-allocated in it as the recorder does, and the agent side walks
 * the same list. */
vkm_seg_hdr_t *vkm_seg;
uint64_t vkm_seg_alloc(size_t n, size_t align) {
  uint64_t start = (vkm_seg->bump + align - 1) & ~(uint64_t)(align - 1);
  vkm_seg->bump = start + n;
  return start;
}
void vkm_seg_note(const char *fmt, ...) {
  (void)fmt;
  said++;
}
valkmem_pool_t *vkm_api_pools(void) { return vkm_seg_at(__atomic_load_n(&vkm_seg->pools_off, __ATOMIC_ACQUIRE)); }
valkmem_pool_t *vkm_api_pool_next(const valkmem_pool_t *p) { return vkm_seg_at(p->next_off); }

void vkm_emit(vkm_event_t *ev, const void *extra, size_t extra_len) {
  ev->thread = fake_thread;
  ev->os_tid = 100 + fake_thread;
  if (!ev->t_ns) ev->t_ns = fake_now;
  ev->extra_len = (uint16_t)extra_len;
  emitted[ev->type]++;
  vkm_runtime_on_event(ev, extra);
}

static void use_thread(uint32_t i) {
  fake_thread = i;
  vkm_tls.ts = vkm_tls.state = &fake_ts[i];
}
static void advance_ms(double ms) { fake_now += (uint64_t)llround(ms * 1e6); }
/* The fake thread "mallocs" n requested bytes (usable u) / "frees" u. */
static void fake_malloc(uint64_t n, uint64_t u) {
  vkm_tls.ts->c.alloc_count++;
  vkm_tls.ts->c.alloc_bytes += n;
  vkm_tls.ts->c.alloc_usable += u;
}
static void fake_free(uint64_t u) {
  vkm_tls.ts->c.free_count++;
  vkm_tls.ts->c.free_usable += u;
}

static cJSON *snapshot(void) {
  cJSON *o = cJSON_CreateObject();
  vkm_runtime_json(o);
  return o;
}

/* ---------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------- */

static void test_empty(void) {
  cJSON *s = snapshot();
  CHECK(cJSON_IsNull(rj_get(s, "gc")));
  CHECK(cJSON_IsNull(rj_get(s, "frames")));
  CHECK(cJSON_IsNull(rj_get(s, "evals")));
  CHECK_EQ(cJSON_GetArraySize(rj_get(s, "pools")), 0);
  CHECK_EQ(cJSON_GetArraySize(rj_get(s, "roots")), 0);
  CHECK_EQ(vkm_runtime_gc_cycles(), 0);
  cJSON_Delete(s);
}

/* Ten cycles with known pauses, including the bucket edges. */
static void test_gc(void) {
  static const struct { uint64_t before, after; double pause_ms; } cyc[] = {
      {1000, 400, 0.5},  {2000, 1000, 1.0},  {3000, 3000, 4.999}, {4000, 1000, 5.0},
      {5000, 2500, 10.0}, {6000, 3000, 10.001}, {8000, 2000, 16.6}, {1000, 900, 25.0},
      {1000, 0, 0.25},   {0, 0, 0.0},
  };
  size_t n = sizeof cyc / sizeof cyc[0];
  double eff_sum = 0, pause_sum = 0;
  vkm_tick_t t = {.dt_s = 0.1, .alloc_bps = 12345.0};
  vkm_runtime_tick(&t); /* GC records carry the last tick's allocation rate */
  for (size_t i = 0; i < n; i++) {
    valkmem_gc_begin();
    advance_ms(cyc[i].pause_ms);
    valkmem_gc_end(cyc[i].before, cyc[i].after);
    advance_ms(100);
    if (cyc[i].before) eff_sum += (double)(cyc[i].before - cyc[i].after) / (double)cyc[i].before;
    pause_sum += cyc[i].pause_ms;
  }
  CHECK_EQ(vkm_runtime_gc_cycles(), n);
  cJSON *s = snapshot();
  CHECK_EQ(rj_num(s, "gc.cycles"), 10);
  CHECK_NEAR(rj_num(s, "gc.efficiency_last"), 0.0, 1e-9);
  CHECK_NEAR(rj_num(s, "gc.efficiency_avg"), eff_sum / 10, 1e-6);
  CHECK_EQ(rj_num(s, "gc.reclaimed_bytes"), 600 + 1000 + 0 + 3000 + 2500 + 3000 + 6000 + 100 + 1000 + 0);
  CHECK_EQ(rj_num(s, "gc.pause.count"), 10);
  CHECK_NEAR(rj_num(s, "gc.pause.total_ms"), pause_sum, 1e-6);
  CHECK_NEAR(rj_num(s, "gc.pause.max_ms"), 25.0, 1e-9);
  CHECK_NEAR(rj_num(s, "gc.pause.avg_ms"), pause_sum / 10, 1e-6);
  /* <1: 0.5 0.25 0 | 1-5: 1.0 4.999 | 5-10: 5.0 | 10-16.6: 10.0 10.001 | >=16.6: 16.6 25 */
  CHECK_EQ(rj_num(s, "gc.pause.hist[0]"), 3);
  CHECK_EQ(rj_num(s, "gc.pause.hist[1]"), 2);
  CHECK_EQ(rj_num(s, "gc.pause.hist[2]"), 1);
  CHECK_EQ(rj_num(s, "gc.pause.hist[3]"), 2);
  CHECK_EQ(rj_num(s, "gc.pause.hist[4]"), 2);
  /* strictly over 10 ms: 10.001, 16.6, 25 -> 30 % -> warning */
  CHECK_EQ(rj_num(s, "gc.pause.over10_count"), 3);
  CHECK_NEAR(rj_num(s, "gc.pause.over10_pct"), 30.0, 1e-9);
  CHECK_EQ(rj_bool(s, "gc.pause.warn"), 1);
  /* p95 by nearest rank of 10 = the 10th smallest = 25 ms */
  CHECK_NEAR(rj_num(s, "gc.pause.p95_ms"), 25.0, 1e-9);
  CHECK_EQ(cJSON_GetArraySize(rj_get(s, "gc.recent")), 10);
  CHECK_EQ(rj_num(s, "gc.recent[0].before"), 1000);
  CHECK_EQ(rj_num(s, "gc.recent[0].after"), 400);
  CHECK_NEAR(rj_num(s, "gc.recent[0].efficiency"), 0.6, 1e-9);
  CHECK_NEAR(rj_num(s, "gc.recent[0].pause_ms"), 0.5, 1e-9);
  CHECK_EQ(rj_num(s, "gc.recent[0].alloc_bps"), 12345);
  CHECK_EQ(rj_num(s, "gc.recent[0].cycle"), 1);
  CHECK_EQ(rj_num(s, "gc.recent[0].t_ms"), 1764172800001.0); /* start + 0.5 ms, rounded */
  cJSON_Delete(s);

  /* The per-tick fields are cumulative. */
  cJSON *tj = cJSON_CreateObject();
  vkm_runtime_tick_json(tj);
  CHECK_EQ(rj_num(tj, "gc_cycles"), 10);
  CHECK_NEAR(rj_num(tj, "gc_pause_ms"), pause_sum, 1e-6);
  CHECK_EQ(rj_num(tj, "frame_count"), 0);
  CHECK_EQ(rj_num(tj, "eval_count"), 0);
  cJSON_Delete(tj);

  /* An end without a begin: a cycle, but no pause. */
  valkmem_gc_end(300, 100);
  s = snapshot();
  CHECK_EQ(rj_num(s, "gc.cycles"), 11);
  CHECK_EQ(rj_num(s, "gc.pause.count"), 10);
  CHECK_NEAR(rj_num(s, "gc.pause.over10_pct"), 30.0, 1e-9);
  CHECK(cJSON_IsNull(rj_get(s, "gc.recent[10].pause_ms")));
  CHECK_NEAR(rj_num(s, "gc.efficiency_last"), 2.0 / 3.0, 1e-6);
  cJSON_Delete(s);

  /* A self-timed cycle; and 90 more short ones bring over-10 under 10 %. */
  valkmem_gc_report(100, 50, 3 * MS_NS_);
  for (int i = 0; i < 90; i++) valkmem_gc_report(100, 90, 100000);
  s = snapshot();
  CHECK_EQ(rj_num(s, "gc.cycles"), 102);
  CHECK_EQ(rj_num(s, "gc.pause.count"), 101);
  CHECK_EQ(rj_num(s, "gc.pause.hist[1]"), 3);
  CHECK_EQ(rj_num(s, "gc.pause.hist[0]"), 93);
  CHECK_EQ(rj_bool(s, "gc.pause.warn"), 0);
  CHECK_EQ(cJSON_GetArraySize(rj_get(s, "gc.recent")), 64);
  CHECK_EQ(rj_num(s, "gc.recent[63].cycle"), 102);
  CHECK_NEAR(rj_num(s, "gc.efficiency_last"), 0.1, 1e-9);
  cJSON_Delete(s);
}

static void test_pools(void) {
  valkmem_pool_t *slab = valkmem_pool_register("objects", VALKMEM_POOL_SLAB, 1000, 10);
  valkmem_pool_t *arena = valkmem_pool_register("scratch", VALKMEM_POOL_ARENA, 4096, 0);
  valkmem_pool_t *bump = valkmem_pool_register("a-very-long-pool-name-that-goes-on-and-on-past-the-sixty-three-limit", VALKMEM_POOL_BUMP, 0, 0);
  CHECK(slab && arena && bump);
  CHECK_EQ(emitted[VKM_EV_POOL_REGISTER], 3);
  for (int i = 0; i < 10; i++) valkmem_pool_alloc(slab, 8); /* 8 bytes in 10-byte slots */
  for (int i = 0; i < 3; i++) valkmem_pool_free(slab, 8);
  /* arena: two frames of 3000 and 5000 bytes, the second overflowing 4096 */
  valkmem_pool_alloc(arena, 3000);
  valkmem_pool_reset(arena);
  valkmem_pool_alloc(arena, 4000);
  valkmem_pool_alloc(arena, 1000); /* 5000 > 4096: one overflow */
  valkmem_pool_overflow(arena, 777); /* and one reported by the runtime */
  valkmem_pool_reset(arena);
  valkmem_pool_alloc(arena, 100);
  valkmem_pool_alloc(bump, 1 << 20);
  valkmem_pool_held(bump, 4 << 20);

  vkm_tick_t t = {.dt_s = 0.5};
  vkm_runtime_tick(&t);
  valkmem_pool_alloc(bump, 1 << 20);
  vkm_runtime_tick(&t);

  cJSON *s = snapshot();
  CHECK_EQ(cJSON_GetArraySize(rj_get(s, "pools")), 3);
  CHECK_STREQ(rj_str(s, "pools[0].name"), "objects"); /* registration order */
  CHECK_STREQ(rj_str(s, "pools[0].kind"), "slab");
  CHECK_EQ(rj_num(s, "pools[0].capacity"), 1000);
  CHECK_EQ(rj_num(s, "pools[0].object_size"), 10);
  CHECK_EQ(rj_num(s, "pools[0].used"), 56);
  CHECK_EQ(rj_num(s, "pools[0].high_water"), 80);
  CHECK_EQ(rj_num(s, "pools[0].alloc_count"), 10);
  CHECK_EQ(rj_num(s, "pools[0].free_count"), 3);
  CHECK_EQ(rj_num(s, "pools[0].overflow_count"), 0);
  CHECK_EQ(rj_num(s, "pools[0].reset_count"), 0);
  /* slot waste: 7 live slots x 10 = 70 bytes held for 56 used -> 20 % */
  CHECK_NEAR(rj_num(s, "pools[0].frag_pct"), 20.0, 1e-9);
  CHECK_STREQ(rj_str(s, "pools[1].kind"), "arena");
  CHECK_EQ(rj_num(s, "pools[1].used"), 100);
  CHECK_EQ(rj_num(s, "pools[1].high_water"), 5000);
  CHECK_EQ(rj_num(s, "pools[1].overflow_count"), 2);
  CHECK_EQ(rj_num(s, "pools[1].reset_count"), 2);
  CHECK_EQ(rj_num(s, "pools[1].alloc_bytes"), 8100);
  CHECK_EQ(rj_num(s, "pools[1].free_bytes"), 8000);
  CHECK_EQ(strlen(rj_str(s, "pools[2].name")), VALKMEM_NAME_MAX);
  CHECK_STREQ(rj_str(s, "pools[2].kind"), "bump");
  CHECK_EQ(rj_num(s, "pools[2].used"), 2 << 20);
  CHECK_NEAR(rj_num(s, "pools[2].frag_pct"), 50.0, 1e-9); /* held 4 MiB, used 2 */
  CHECK_EQ(rj_num(s, "pools[2].alloc_bps"), (1 << 20) / 0.5);
  /* the runtime-reported overflow is on the timeline */
  CHECK_STREQ(rj_str(s, "marks[0].name"), "overflow scratch");
  CHECK_EQ(rj_num(s, "marks[0].value"), 777);
  cJSON_Delete(s);
  cJSON *tj = cJSON_CreateObject();
  vkm_runtime_tick_json(tj);
  CHECK_EQ(rj_num(tj, "pool_used"), 56 + 100 + (2 << 20));
  cJSON_Delete(tj);
  /* NULL handles are accepted everywhere */
  valkmem_pool_alloc(NULL, 1);
  valkmem_pool_free(NULL, 1);
  valkmem_pool_reset(NULL);
  valkmem_pool_overflow(NULL, 1);
  valkmem_pool_held(NULL, 1);
}

static void *other_thread_pool_allocs(void *arg) {
  for (int i = 0; i < 10; i++) valkmem_pool_alloc(arg, 32);
  return NULL;
}

/* Frames on thread 0 with known allocations and zones, GC inside one of
 * them; a frame on thread 1 does not disturb thread 0's, nor do another
 * OS thread's pool allocations. */
static void test_frames(void) {
  use_thread(0);
  valkmem_pool_t *objs = valkmem_pool_register("frame-objs", VALKMEM_POOL_SLAB, 0, 32);
  valkmem_frame_mark(); /* starts the first frame; not a measured frame */
  /* frame 1: 16 ms, 3 mallocs of 100 requested bytes, logic 5 ms, render 8 ms (nested "draw" 2 ms) */
  for (int i = 0; i < 3; i++) fake_malloc(100, 104);
  valkmem_zone_begin("logic");
  advance_ms(5);
  valkmem_zone_end();
  valkmem_zone_begin("render");
  advance_ms(6);
  valkmem_zone_begin("draw");
  advance_ms(2);
  valkmem_zone_end();
  valkmem_zone_end();
  advance_ms(3);
  valkmem_pool_alloc(objs, 32);
  valkmem_pool_alloc(objs, 32);
  valkmem_frame_mark();
  /* thread 1 marks its own first frame meanwhile */
  use_thread(1);
  fake_malloc(999, 1000);
  valkmem_frame_mark();
  use_thread(0);
  /* frame 2: 20 ms, one 4096-byte malloc, a 7 ms GC inside, logic 1 ms */
  fake_malloc(4096, 4104);
  pthread_t other;
  pthread_create(&other, NULL, other_thread_pool_allocs, objs);
  pthread_join(other, NULL);
  valkmem_zone_begin("logic");
  advance_ms(1);
  valkmem_zone_end();
  valkmem_gc_begin();
  advance_ms(7);
  valkmem_gc_end(500, 100);
  advance_ms(12);
  valkmem_frame_mark();
  /* frame 3: 0.5 ms, nothing */
  advance_ms(0.5);
  valkmem_frame_mark();

  cJSON *s = snapshot();
  CHECK_EQ(rj_num(s, "frames.count"), 3);
  CHECK_NEAR(rj_num(s, "frames.budget_ms"), 16.6, 1e-9);
  CHECK_NEAR(rj_num(s, "frames.max_ms"), 20.0, 1e-9);
  CHECK_NEAR(rj_num(s, "frames.avg_ms"), (16 + 20 + 0.5) / 3.0, 1e-9);
  CHECK_EQ(rj_num(s, "frames.over_budget"), 1);
  CHECK_EQ(rj_num(s, "frames.hist[0]"), 1);
  CHECK_EQ(rj_num(s, "frames.hist[3]"), 1);
  CHECK_EQ(rj_num(s, "frames.hist[4]"), 1);
  CHECK_EQ(rj_num(s, "frames.alloc_count"), 4);
  CHECK_EQ(rj_num(s, "frames.alloc_bytes"), 4396);
  CHECK_EQ(rj_num(s, "frames.pool_bytes"), 64);
  CHECK_NEAR(rj_num(s, "frames.gc_ms"), 7.0, 1e-9);
  CHECK_NEAR(rj_num(s, "frames.recent[0].ms"), 16.0, 1e-9);
  CHECK_EQ(rj_num(s, "frames.recent[0].alloc_count"), 3);
  CHECK_EQ(rj_num(s, "frames.recent[0].alloc_bytes"), 300);
  CHECK_EQ(rj_num(s, "frames.recent[0].pool_count"), 2);
  CHECK_EQ(rj_num(s, "frames.recent[0].pool_bytes"), 64);
  CHECK_NEAR(rj_num(s, "frames.recent[0].zones.logic"), 5.0, 1e-9);
  CHECK_NEAR(rj_num(s, "frames.recent[0].zones.render"), 8.0, 1e-9);
  CHECK_NEAR(rj_num(s, "frames.recent[0].zones.draw"), 2.0, 1e-9);
  CHECK_NEAR(rj_num(s, "frames.recent[0].gc_ms"), 0.0, 1e-9);
  CHECK_EQ(rj_num(s, "frames.recent[1].alloc_count"), 1);
  CHECK_EQ(rj_num(s, "frames.recent[1].pool_bytes"), 0); /* the other thread's 320 bytes are not this frame's */
  CHECK_EQ(rj_num(s, "frames.recent[1].alloc_bytes"), 4096);
  CHECK_NEAR(rj_num(s, "frames.recent[1].gc_ms"), 7.0, 1e-9);
  CHECK_NEAR(rj_num(s, "frames.recent[1].zones.logic"), 1.0, 1e-9);
  CHECK(rj_get(s, "frames.recent[1].zones.render") == NULL);
  CHECK_EQ(rj_num(s, "frames.recent[2].alloc_count"), 0);
  const cJSON *logic = rj_find(s, "frames.zones", "name", "logic");
  CHECK_EQ(rj_num(logic, "frames"), 2);
  CHECK_NEAR(rj_num(logic, "avg_ms"), 3.0, 1e-9);
  CHECK_NEAR(rj_num(logic, "max_ms"), 5.0, 1e-9);
  cJSON_Delete(s);
  /* unbalanced zone ends are ignored by the API */
  valkmem_zone_end();
}

/* Evals: known allocated / freed / net, a GC inside gives "retained", the
 * warning after 5 evals in a row with net > 0, cleared by one with net <= 0. */
static void test_evals(void) {
  use_thread(0);
  valkmem_pool_t *heap = valkmem_pool_register("eval-heap", VALKMEM_POOL_SLAB, 0, 64);
  valkmem_pool_t *scratch = valkmem_pool_register("eval-scratch", VALKMEM_POOL_ARENA, 0, 0);
  valkmem_pool_alloc(scratch, 50); /* in use before the eval: the window starts here */
  valkmem_eval_begin("x = [1, 2, 3]");
  advance_ms(4);
  fake_malloc(200, 208);
  fake_free(208);
  for (int i = 0; i < 10; i++) valkmem_pool_alloc(heap, 64);
  valkmem_pool_alloc(scratch, 1000);
  valkmem_pool_reset(scratch);
  valkmem_pool_alloc(scratch, 300);
  valkmem_gc_begin();
  advance_ms(2);
  for (int i = 0; i < 4; i++) valkmem_pool_free(heap, 64);
  valkmem_gc_end(10 * 64, 6 * 64);
  valkmem_eval_end();

  cJSON *s = snapshot();
  CHECK_EQ(rj_num(s, "evals.count"), 1);
  CHECK_STREQ(rj_str(s, "evals.recent[0].label"), "x = [1, 2, 3]");
  /* allocated: 208 malloc usable + 640 heap + 1300 scratch; freed: 208 + 256 + 1050 (reset) */
  CHECK_EQ(rj_num(s, "evals.recent[0].allocated"), 208 + 640 + 1300);
  CHECK_EQ(rj_num(s, "evals.recent[0].freed"), 208 + 256 + 1050);
  CHECK_EQ(rj_num(s, "evals.recent[0].net"), 640 - 256 + 1300 - 1050);
  CHECK_EQ(rj_num(s, "evals.recent[0].retained"), 384);
  CHECK_NEAR(rj_num(s, "evals.recent[0].duration_ms"), 6.0, 1e-9);
  CHECK_NEAR(rj_num(s, "evals.recent[0].gc_ms"), 2.0, 1e-9);
  /* sum over arena/bump pools of their peak during the eval: eval-scratch
   * peaked at 50 + 1000; test_pools left "scratch" at 100 and the bump pool
   * at 2 MiB, untouched (their peak is their use) */
  CHECK_EQ(rj_num(s, "evals.recent[0].arena_high_water"), 1050 + 100 + (2 << 20));
  CHECK_EQ(rj_bool(s, "evals.warn"), 0);
  cJSON_Delete(s);

  /* growing evals without a GC inside (retained null) are not judged: the
   * garbage they made is freed by a later GC, so the run does not move */
  for (int i = 0; i < 6; i++) {
    valkmem_eval_begin("tmp = f(x)");
    valkmem_pool_alloc(heap, 64);
    valkmem_eval_end();
  }
  s = snapshot();
  CHECK_EQ(rj_num(s, "evals.count"), 7);
  CHECK_EQ(rj_num(s, "evals.net_positive_run"), 1);
  CHECK_EQ(rj_bool(s, "evals.warn"), 0);
  CHECK(cJSON_IsNull(rj_get(s, "evals.recent[6].retained")));
  CHECK_EQ(rj_bool(s, "evals.recent[6].judged"), 0);
  cJSON_Delete(s);
  /* four more growing evals, each with a GC inside -> 5 judged in a row -> warn */
  for (int i = 0; i < 4; i++) {
    valkmem_eval_begin("cache.append(x)");
    valkmem_pool_alloc(heap, 64);
    advance_ms(1);
    valkmem_gc_report(1000, 900 + (uint64_t)i, 1000);
    valkmem_eval_end();
  }
  s = snapshot();
  CHECK_EQ(rj_num(s, "evals.count"), 11);
  CHECK_EQ(rj_num(s, "evals.net_positive_run"), 5);
  CHECK_EQ(rj_bool(s, "evals.warn"), 1);
  CHECK_EQ(rj_num(s, "evals.recent[10].retained"), 903);
  CHECK_EQ(rj_num(s, "evals.recent[10].net"), 64);
  CHECK_EQ(rj_bool(s, "evals.recent[10].judged"), 1);
  cJSON_Delete(s);
  /* nested: the inner eval is recorded first; a judged one with net <= 0
   * clears the warning */
  valkmem_eval_begin("outer");
  valkmem_eval_begin("inner");
  valkmem_pool_alloc(heap, 64);
  valkmem_pool_free(heap, 64);
  valkmem_eval_end();
  valkmem_pool_free(heap, 64);
  valkmem_gc_report(1000, 800, 1000);
  valkmem_eval_end();
  s = snapshot();
  CHECK_EQ(rj_num(s, "evals.count"), 13);
  CHECK_STREQ(rj_str(s, "evals.recent[11].label"), "inner");
  CHECK_EQ(rj_num(s, "evals.recent[11].net"), 0);
  CHECK_STREQ(rj_str(s, "evals.recent[12].label"), "outer");
  CHECK_EQ(rj_num(s, "evals.recent[12].net"), -64);
  CHECK_EQ(rj_num(s, "evals.recent[12].retained"), 800);
  CHECK_EQ(rj_bool(s, "evals.warn"), 0);
  cJSON_Delete(s);
  valkmem_eval_end(); /* unbalanced: ignored */
}

static void test_roots_marks(void) {
  char name[32];
  for (int i = 0; i < 12; i++) {
    snprintf(name, sizeof name, "root%02d", i);
    valkmem_root_report(name, (uint64_t)(i + 1) * 1000, (uint64_t)i);
  }
  valkmem_root_report("root00", 50000, 7); /* newest wins */
  valkmem_mark("checkpoint", 42);
  cJSON *s = snapshot();
  CHECK_EQ(cJSON_GetArraySize(rj_get(s, "roots")), 10);
  CHECK_STREQ(rj_str(s, "roots[0].name"), "root00");
  CHECK_EQ(rj_num(s, "roots[0].retained_bytes"), 50000);
  CHECK_EQ(rj_num(s, "roots[0].objects"), 7);
  CHECK_STREQ(rj_str(s, "roots[1].name"), "root11");
  CHECK_EQ(rj_num(s, "roots[1].retained_bytes"), 12000);
  CHECK_STREQ(rj_str(s, "roots[9].name"), "root03");
  const cJSON *marks = rj_get(s, "marks");
  const cJSON *last = cJSON_GetArrayItem(marks, cJSON_GetArraySize(marks) - 1);
  CHECK_STREQ(rj_str(last, "name"), "checkpoint");
  CHECK_EQ(rj_num(last, "value"), 42);
  cJSON_Delete(s);
}

/* Pools are shared between threads: counts stay exact, used returns to 0,
 * and the high water never exceeds what the threads held at once. */
#define POOL_THREADS 4
#define POOL_ITERS 200000
static void *pool_worker(void *arg) {
  valkmem_pool_t *p = arg;
  for (int i = 0; i < POOL_ITERS; i++) {
    valkmem_pool_alloc(p, 48);
    valkmem_pool_free(p, 48);
  }
  return NULL;
}

static void test_pool_threads(void) {
  valkmem_pool_t *p = valkmem_pool_register("shared", VALKMEM_POOL_SLAB, 0, 48);
  pthread_t t[POOL_THREADS];
  for (int i = 0; i < POOL_THREADS; i++) pthread_create(&t[i], NULL, pool_worker, p);
  for (int i = 0; i < POOL_THREADS; i++) pthread_join(t[i], NULL);
  cJSON *s = snapshot();
  const cJSON *j = rj_find(s, "pools", "name", "shared");
  CHECK_EQ(rj_num(j, "alloc_count"), POOL_THREADS * POOL_ITERS);
  CHECK_EQ(rj_num(j, "free_count"), POOL_THREADS * POOL_ITERS);
  CHECK_EQ(rj_num(j, "alloc_bytes"), (double)POOL_THREADS * POOL_ITERS * 48);
  CHECK_EQ(rj_num(j, "used"), 0);
  CHECK_GE(rj_num(j, "high_water"), 48);
  CHECK_LE(rj_num(j, "high_water"), POOL_THREADS * 48);
  cJSON_Delete(s);
}

/* A registry slot reused by a new OS thread starts clean; zones nested past
 * the tracked depth are ignored without disturbing the outer ones. */
static void test_thread_reuse_and_depth(void) {
  use_thread(1);
  valkmem_frame_mark();
  valkmem_eval_begin("left open by a thread that exits");
  /* the thread exits; its state (index 1) is reused by another OS thread */
  vkm_event_t ev = {.type = VKM_EV_FRAME, .thread = 1, .os_tid = 4242, .t_ns = fake_now};
  vkm_api_snap_t snap = {0};
  ev.extra_len = sizeof snap;
  cJSON *s = snapshot();
  double frames = rj_num(s, "frames.count"), evals = rj_num(s, "evals.count");
  cJSON_Delete(s);
  vkm_runtime_on_event(&ev, &snap); /* first mark of the new thread: starts a frame */
  ev.type = VKM_EV_EVAL_END;
  vkm_runtime_on_event(&ev, &snap); /* no eval open on the new thread: ignored */
  s = snapshot();
  CHECK_EQ(rj_num(s, "frames.count"), frames);
  CHECK_EQ(rj_num(s, "evals.count"), evals);
  cJSON_Delete(s);

  use_thread(0);
  valkmem_frame_mark();
  for (int i = 0; i < 20; i++) valkmem_zone_begin(i == 0 ? "outer" : "deep");
  advance_ms(3);
  for (int i = 0; i < 20; i++) valkmem_zone_end();
  valkmem_frame_mark();
  s = snapshot();
  const cJSON *rec = rj_get(s, "frames.recent");
  const cJSON *last = cJSON_GetArrayItem(rec, cJSON_GetArraySize(rec) - 1);
  CHECK_NEAR(rj_num(last, "zones.outer"), 3.0, 1e-9);
  CHECK_NEAR(rj_num(last, "zones.deep"), 3.0 * 15, 1e-9); /* 15 tracked levels below "outer" */
  cJSON_Delete(s);
}

/* Registrations past VKM_POOLS_MAX return NULL and are said once. */
static void test_pool_cap(void) {
  unsigned n = 0;
  for (const valkmem_pool_t *p = vkm_api_pools(); p; p = vkm_api_pool_next(p)) n++;
  unsigned got = 0;
  for (unsigned i = 0; i < VKM_POOLS_MAX + 10; i++)
    if (valkmem_pool_register("per-request", VALKMEM_POOL_ARENA, 0, 0)) got++;
  CHECK_EQ(n + got, VKM_POOLS_MAX);
  CHECK_EQ(said, 1);
  cJSON *s = snapshot();
  CHECK_EQ(cJSON_GetArraySize(rj_get(s, "pools")), VKM_POOLS_MAX);
  cJSON_Delete(s);
}

int main(void) {
  vkm_seg = mmap(NULL, VKM_SEG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  CHECK(vkm_seg != MAP_FAILED);
  vkm_seg->bump = 4096;
  vkm_runtime_init();
  use_thread(0);
  CHECK_EQ(valkmem_version(), VALKMEM_VERSION);
  test_empty();
  test_gc();
  test_pools();
  test_frames();
  test_evals();
  test_roots_marks();
  test_pool_threads();
  test_thread_reuse_and_depth();
  test_pool_cap();
  /* init forgets everything but the registry (pools live as long as the process) */
  vkm_runtime_init();
  CHECK_EQ(vkm_runtime_gc_cycles(), 0);
  return check_done("runtime_unit");
}
