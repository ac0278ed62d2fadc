/* live_history.c - history rings: points per range, downsampling (sums,
 * maxima, last values) across bucket boundaries, since_seq, bounded memory.
 * Compiles agent/history.c directly with tests/live_stubs.c. */
#include "check.h"
#include "agent.h"

extern uint64_t live_stub_alloc_bytes, live_stub_alloc_calls, live_stub_gc_cycles;
extern int64_t live_stub_self_bytes;
extern double live_stub_gc_pause_ms;

#define MS 1000000ull

/* A synthetic process: cumulative counters advanced per tick. */
static vkm_tick_t tk;
static vkm_os_t os;
static vkm_allocstats_t as;

static void reset_proc(void) {
  memset(&tk, 0, sizeof tk);
  memset(&os, 0, sizeof os);
  memset(&as, 0, sizeof as);
  live_stub_gc_cycles = 0;
  live_stub_gc_pause_ms = 0;
  vkm_history_init();
}

/* Advance one tick ending at t_ns (monotonic), with these deltas. */
static void tick(uint64_t t_ns, uint64_t dt_ns, uint64_t alloc_b, uint64_t free_b, uint64_t alloc_n,
                 uint64_t free_n) {
  tk.seq++;
  tk.t_ns = t_ns;
  tk.unix_ms = 1700000000000ull + t_ns / MS;
  tk.dt_s = (double)dt_ns / 1e9;
  tk.c.alloc_usable += alloc_b;
  tk.c.free_usable += free_b;
  tk.c.alloc_count += alloc_n;
  tk.c.free_count += free_n;
  tk.live_bytes = (int64_t)(tk.c.alloc_usable - tk.c.free_usable);
  if (tk.live_bytes > tk.peak_live_bytes) tk.peak_live_bytes = tk.live_bytes;
  tk.gc_cycles = live_stub_gc_cycles;
  tk.gc_pause_ms_total = live_stub_gc_pause_ms;
  vkm_history_push(&tk, &os, &as);
}

static cJSON *points(const char *range, uint64_t since) {
  static cJSON *last;
  if (last) cJSON_Delete(last);
  last = vkm_history_json(range, since);
  return last ? cJSON_GetObjectItem(last, "points") : NULL;
}

static double num(const cJSON *p, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(p, k);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static double sum_field(const cJSON *arr, const char *k) {
  double s = 0;
  const cJSON *p;
  cJSON_ArrayForEach(p, arr) s += num(p, k);
  return s;
}

/* 25 ticks of 100 ms: tick i allocates 1000*i bytes in i calls. */
static void test_small(void) {
  reset_proc();
  for (uint64_t i = 1; i <= 25; i++) tick(i * 100 * MS, 100 * MS, 1000 * i, 10 * i, i, 1);

  cJSON *m1 = points("1m", 0);
  CHECK_EQ(cJSON_GetArraySize(m1), 25);
  CHECK_EQ(num(cJSON_GetArrayItem(m1, 0), "seq"), 1);
  CHECK_EQ(num(cJSON_GetArrayItem(m1, 24), "seq"), 25);
  CHECK_EQ(num(cJSON_GetArrayItem(m1, 6), "alloc_bytes"), 7000);
  CHECK_NEAR(num(cJSON_GetArrayItem(m1, 6), "alloc_bps"), 70000, 1e-6);
  CHECK_EQ(sum_field(m1, "alloc_ops"), 325);

  /* 1 s buckets: ticks 1..10 | 11..20 | 21..25 (open, partial). */
  cJSON *m5 = points("5m", 0);
  CHECK_EQ(cJSON_GetArraySize(m5), 3);
  const cJSON *b1 = cJSON_GetArrayItem(m5, 0), *b2 = cJSON_GetArrayItem(m5, 1), *b3 = cJSON_GetArrayItem(m5, 2);
  CHECK_EQ(num(b1, "alloc_bytes"), 55000);           /* 1000 * (1+..+10) */
  CHECK_EQ(num(b2, "alloc_bytes"), 155000);          /* 1000 * (11+..+20) */
  CHECK_EQ(num(b3, "alloc_bytes"), 115000);          /* 1000 * (21+..+25) */
  CHECK_EQ(num(b1, "free_ops"), 10);
  CHECK_EQ(num(b2, "alloc_ops"), 155);
  CHECK_EQ(num(b1, "seq"), 10);
  CHECK_EQ(num(b2, "seq"), 20);
  CHECK_NEAR(num(b2, "alloc_bps"), 155000, 1e-6);    /* over exactly 1 s */
  CHECK_NEAR(num(b3, "alloc_bps"), 115000 / 0.5, 1e-6);
  CHECK(cJSON_IsTrue(cJSON_GetObjectItem(b3, "partial")));
  CHECK(cJSON_GetObjectItem(b2, "partial") == NULL);
  /* live is a level: the value at the bucket's last tick. */
  CHECK_EQ(num(b1, "live_bytes"), 55000 - 550);
  CHECK_EQ(num(b2, "live_bytes"), 210000 - 2100);

  cJSON *h10 = points("10h", 0);
  CHECK_EQ(cJSON_GetArraySize(h10), 1);
  CHECK_EQ(num(cJSON_GetArrayItem(h10, 0), "alloc_bytes"), 325000);
  cJSON *h1 = points("1h", 0);
  CHECK_EQ(cJSON_GetArraySize(h1), 1);

  cJSON *doc = vkm_history_json("5m", 0);
  CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "range")), "5m");
  CHECK_EQ(num(doc, "step_ms"), 1000);
  cJSON_Delete(doc);
  doc = vkm_history_json("1m", 0);
  CHECK_EQ(num(doc, "step_ms"), 100);
  cJSON_Delete(doc);
  doc = vkm_history_json("10h", 0);
  CHECK_EQ(num(doc, "step_ms"), 10000);
  cJSON_Delete(doc);

  CHECK(vkm_history_json("2h", 0) == NULL);
  CHECK(vkm_history_json(NULL, 0) == NULL);

  /* since_seq: only newer points. */
  CHECK_EQ(cJSON_GetArraySize(points("1m", 20)), 5);
  CHECK_EQ(num(cJSON_GetArrayItem(points("1m", 20), 0), "seq"), 21);
  CHECK_EQ(cJSON_GetArraySize(points("1m", 25)), 0);
  CHECK_EQ(cJSON_GetArraySize(points("5m", 10)), 2);
}

/* Peaks are maxima within an interval, levels are last values, across
 * bucket boundaries. */
static void test_peaks(void) {
  reset_proc();
  for (uint64_t i = 1; i <= 30; i++) {
    /* live: 1 MB, except a spike to 9 MB at tick 14 that is freed at 15 */
    uint64_t a = (i == 1) ? 1000000 : (i == 14 ? 8000000 : 0);
    uint64_t f = (i == 15) ? 8000000 : 0;
    os.rss = (i == 17 ? 50 : 20) * 1048576ull;
    if (i == 17) os.peak_rss = 50 * 1048576ull; /* VmHWM rose */
    if (os.peak_rss < os.rss) os.peak_rss = os.rss;
    as.held = 100;
    as.frag_pct = (i == 5) ? 40.0 : (i == 25 ? 30.0 : 10.0);
    tk.pressure_pct = (i == 12) ? 80.0 : 5.0;
    live_stub_gc_cycles += (i % 3 == 0);
    live_stub_gc_pause_ms += (i % 3 == 0) ? 2.5 : 0;
    tick(i * 100 * MS, 100 * MS, a, f, a ? 1 : 0, f ? 1 : 0);
  }
  cJSON *m5 = points("5m", 0);
  CHECK_EQ(cJSON_GetArraySize(m5), 3);
  const cJSON *b1 = cJSON_GetArrayItem(m5, 0), *b2 = cJSON_GetArrayItem(m5, 1), *b3 = cJSON_GetArrayItem(m5, 2);
  CHECK_EQ(num(b1, "peak_live_bytes"), 1000000);
  CHECK_EQ(num(b2, "peak_live_bytes"), 9000000);  /* spike inside bucket 2 */
  CHECK_EQ(num(b2, "live_bytes"), 1000000);       /* ...gone by its end */
  CHECK_EQ(num(b3, "peak_live_bytes"), 1000000);  /* high-water did not rise again */
  CHECK_EQ(num(b1, "frag_pct"), 40);
  CHECK_EQ(num(b2, "frag_pct"), 10);
  CHECK_EQ(num(b3, "frag_pct"), 30);
  CHECK_EQ(num(b2, "pressure_pct"), 80);
  CHECK_EQ(num(b1, "pressure_pct"), 5);
  CHECK_EQ(num(b2, "peak_rss"), 50 * 1048576.0);
  CHECK_EQ(num(b2, "rss"), 20 * 1048576.0);
  CHECK_EQ(num(b3, "peak_rss"), 20 * 1048576.0);
  CHECK_EQ(num(b1, "gc_cycles"), 3);              /* ticks 3, 6, 9 */
  CHECK_EQ(num(b2, "gc_cycles"), 3);              /* 12, 15, 18 */
  CHECK_NEAR(num(b1, "gc_pause_ms"), 7.5, 1e-6);
  cJSON *h10 = points("10h", 0);
  CHECK_EQ(num(cJSON_GetArrayItem(h10, 0), "peak_live_bytes"), 9000000);
  CHECK_EQ(num(cJSON_GetArrayItem(h10, 0), "frag_pct"), 40);
  CHECK_EQ(num(cJSON_GetArrayItem(h10, 0), "gc_cycles"), 10);
  /* the tick ring keeps the spike at its tick */
  cJSON *m1 = points("1m", 0);
  CHECK_EQ(num(cJSON_GetArrayItem(m1, 13), "peak_live_bytes"), 9000000);
  CHECK_EQ(num(cJSON_GetArrayItem(m1, 14), "peak_live_bytes"), 1000000);
}

/* 700 s of 100 ms ticks: counts per range, and sums survive downsampling. */
static void test_counts(void) {
  reset_proc();
  for (uint64_t i = 1; i <= 7000; i++) tick(i * 100 * MS, 100 * MS, 4096 + (i % 7), 4096, 3, 2);
  CHECK_EQ(cJSON_GetArraySize(points("1m", 0)), 600);
  CHECK_EQ(num(cJSON_GetArrayItem(points("1m", 0), 0), "seq"), 6401);
  CHECK_EQ(cJSON_GetArraySize(points("5m", 0)), 300);
  /* 10 s buckets 1..69 closed, 70 open */
  CHECK_EQ(cJSON_GetArraySize(points("1h", 0)), 70);
  CHECK_EQ(cJSON_GetArraySize(points("10h", 0)), 70);
  CHECK_EQ(sum_field(points("10h", 0), "alloc_bytes"), (double)tk.c.alloc_usable);
  CHECK_EQ(sum_field(points("10h", 0), "free_ops"), (double)tk.c.free_count);
  /* the last 300 s, three ways */
  double s1 = 0;
  cJSON *m1 = points("1m", 0);
  s1 = sum_field(m1, "alloc_bytes");
  uint64_t want = 0;
  for (uint64_t i = 6401; i <= 7000; i++) want += 4096 + (i % 7);
  CHECK_EQ(s1, want);
  want = 0;
  for (uint64_t i = 4001; i <= 7000; i++) want += 4096 + (i % 7);
  CHECK_EQ(sum_field(points("5m", 0), "alloc_bytes"), want);
}

/* Irregular ticks (a slow agent): nothing lost or double-counted, buckets
 * keyed on time, gaps leave no empty points. */
static void test_jitter(void) {
  reset_proc();
  uint64_t t = 0, n = 0;
  uint32_t x = 12345;
  while (t < 95ull * 1000 * MS) {
    x = x * 1103515245u + 12345u;
    uint64_t dt = (60 + (x >> 16) % 90) * MS;          /* 60..149 ms */
    if (n % 250 == 249) dt = 3500 * MS;                /* a stall over several 1 s buckets */
    t += dt;
    tick(t, dt, 1000 + n, 500, 1, 1);
    n++;
  }
  cJSON *h10 = points("10h", 0);
  CHECK_EQ(cJSON_GetArraySize(h10), 10);  /* t in (0, 95 s]: buckets 1..10, the last partial */
  CHECK_EQ(sum_field(h10, "alloc_bytes"), (double)tk.c.alloc_usable);
  CHECK_EQ(sum_field(h10, "alloc_ops"), (double)n);
  cJSON *m5 = points("5m", 0);
  CHECK_EQ(sum_field(m5, "alloc_ops"), (double)n);
  /* every 1 s point spans at most its own second plus one stall */
  const cJSON *p;
  uint64_t prev_t = 0;
  int ordered = 1, distinct = 1;
  cJSON_ArrayForEach(p, m5) {
    uint64_t tm = (uint64_t)num(p, "t_ms");
    if (tm <= prev_t) ordered = 0;
    if (prev_t && (tm - 1700000000000ull + 999) / 1000 == (prev_t - 1700000000000ull + 999) / 1000) distinct = 0;
    prev_t = tm;
  }
  CHECK(ordered);
  CHECK(distinct);
  /* fewer 1 s points than seconds elapsed: stalled seconds have none */
  CHECK_LT(cJSON_GetArraySize(m5), 96);
}

/* 10 h of ticks pushed as fast as possible: fixed memory, full rings. */
static void test_ten_hours(void) {
  reset_proc();
  uint64_t calls0 = live_stub_alloc_calls;
  for (uint64_t i = 1; i <= 360000 + 5; i++) tick(i * 100 * MS, 100 * MS, 64, 64, 1, 1);
  CHECK_EQ(live_stub_alloc_calls, calls0); /* no allocation after init */
  CHECK_EQ(live_stub_alloc_bytes, 0);       /* nor before: the rings are mapped */
  CHECK_LE(vkm_history_bytes(), 1024 * 1024); /* 7200 points x 96 B = 675 KiB, far under 10 MB */
  CHECK_GT(vkm_history_bytes(), 0);
  CHECK_EQ(cJSON_GetArraySize(points("10h", 0)), 3600);
  CHECK_EQ(cJSON_GetArraySize(points("1h", 0)), 360);
  CHECK_EQ(cJSON_GetArraySize(points("5m", 0)), 300);
  CHECK_EQ(cJSON_GetArraySize(points("1m", 0)), 600);
  cJSON *h10 = points("10h", 0);
  CHECK_EQ(num(cJSON_GetArrayItem(h10, 3599), "seq"), 360005); /* partial, newest */
  CHECK_EQ(num(cJSON_GetArrayItem(h10, 3598), "seq"), 360000);
  CHECK_EQ(num(cJSON_GetArrayItem(h10, 0), "seq"), 360000 - 3598 * 100);
  CHECK_EQ(num(cJSON_GetArrayItem(h10, 100), "alloc_ops"), 100);
  fprintf(stderr, "history: %llu bytes for 10 h\n", (unsigned long long)vkm_history_bytes());

  /* Init again, as a worker forked from another does: every ring empty
   * (its pages were handed back, not copied), the same mapping, and ticks
   * land afresh. */
  uint64_t before = vkm_history_bytes();
  reset_proc();
  CHECK_EQ(vkm_history_bytes(), before);
  CHECK_EQ(cJSON_GetArraySize(points("10h", 0)), 0);
  CHECK_EQ(cJSON_GetArraySize(points("1h", 0)), 0);
  CHECK_EQ(cJSON_GetArraySize(points("5m", 0)), 0);
  CHECK_EQ(cJSON_GetArraySize(points("1m", 0)), 0);
  tick(100 * MS, 100 * MS, 64, 64, 1, 1);
  cJSON *m1 = points("1m", 0);
  CHECK_EQ(cJSON_GetArraySize(m1), 1);
  CHECK_EQ(num(cJSON_GetArrayItem(m1, 0), "seq"), 1);
}

int main(void) {
  vkm_history_init();
  CHECK(vkm_history_bytes() > 0);
  test_small();
  test_peaks();
  test_counts();
  test_jitter();
  test_ten_hours();
  points("1m", 0); /* frees the last document */
  return check_done("live_history");
}
