/* modes.c - the demo's workloads, each a few functions over the VM:
 *
 *   game      60 fps-ish frames with input/logic/physics/render zones:
 *             entities spawned and despawned, particle garbage, a render
 *             command buffer in a scratch arena reset per frame (too big now
 *             and then: an overflow), GC pauses that sometimes hitch
 *   server    a request loop: short-lived malloc'd buffers and headers, a
 *             request context in the VM, a bounded session table
 *   desktop   a document with paragraphs and a capped undo history, edited
 *             every few hundred ms; layout/paint zones with a big short-lived
 *             bitmap
 *   repl      scripted evals (valkmem_eval_begin/end) that bind and drop
 *             variables, a GC at the end of each eval
 *   lsp       didChange/completion/hover requests as evals: ASTs rebuilt in
 *             the VM, strings in a bump pool, results in a scratch arena
 *   embedded  a fixed 64-slot message pool that overflows on bursts, a
 *             sensor ring in a bump pool reset each cycle, no malloc
 *
 * Every structure that lives long is bounded (tables, rings, caps), so
 * without --leak the heap levels off after its first seconds. With --leak
 * the REPL also keeps every result in its history (IPython's Out[]), so
 * each eval's net stays above zero.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

static rng_t rng;

static double every(double *due, double now, double period) {
  if (now < *due) return 0;
  double n = 1 + (double)(long)((now - *due) / period);
  *due += n * period;
  return n;
}

/* ---------------------------------------------------------------------------
 * game
 * ------------------------------------------------------------------------- */
#define N_ENTITIES 1024
static obj_t *entities[N_ENTITIES];
static arena_t render_arena, input_arena;

static obj_t *make_entity(void) {
  obj_t *e = vm_alloc(CLS_SMALL);
  if (!e) return NULL;
  e->ref[0] = vm_alloc(CLS_SMALL); /* transform */
  e->ref[1] = vm_alloc(CLS_BIG);   /* mesh / script state */
  e->nref = 2;
  return e;
}

static void game_frame(demo_t *d) {
  valkmem_zone_begin("input");
  char *ev = arena_alloc(&input_arena, 1024);
  if (ev) memset(ev, 0, 64);
  valkmem_zone_end();

  valkmem_zone_begin("logic");
  for (int i = 0; i < 16; i++) entities[rng_below(&rng, N_ENTITIES)] = make_entity();
  obj_t *particles = vm_list(120, CLS_SMALL); /* garbage by the next frame */
  (void)particles;
  valkmem_zone_end();

  valkmem_zone_begin("physics");
  obj_t *contacts = vm_list(40, CLS_SMALL);
  (void)contacts;
  valkmem_zone_end();

  valkmem_zone_begin("render");
  size_t cmd = rng_below(&rng, 100) < 3 ? 300 * 1024 : rng_range(&rng, 24, 160) * 1024;
  char *cb = arena_alloc(&render_arena, cmd);
  if (cb) memset(cb, 0, 256);
  size_t dl = rng_range(&rng, 2048, 8192);
  char *drawlist = malloc(dl); /* the frame's draw list: dies in the frame */
  if (drawlist) memset(drawlist, 1, 128);
  free(drawlist);
  valkmem_zone_end();
  arena_reset(&render_arena);
  arena_reset(&input_arena);
  (void)d;
}

/* ---------------------------------------------------------------------------
 * server
 * ------------------------------------------------------------------------- */
#define N_SESSIONS 256
static obj_t *sessions[N_SESSIONS];
static double server_due;

static __attribute__((noinline)) char *request_buffer(size_t n) { return malloc(n); }

static void server_request(void) {
  size_t n = rng_range(&rng, 512, 16384);
  char *req = request_buffer(n);
  if (req) memset(req, 'r', 64);
  char *hdr[8];
  for (int i = 0; i < 8; i++) hdr[i] = malloc(rng_range(&rng, 24, 160));
  obj_t *ctx = vm_alloc(CLS_BIG);
  if (ctx) {
    ctx->ref[0] = vm_alloc(CLS_SMALL);
    ctx->ref[1] = vm_alloc(CLS_SMALL);
    ctx->nref = 2;
    if (rng_below(&rng, 4) == 0) sessions[rng_below(&rng, N_SESSIONS)] = ctx;
  }
  char *resp = malloc(rng_range(&rng, 256, 8192));
  if (resp) memset(resp, 's', 64);
  free(resp);
  for (int i = 0; i < 8; i++) free(hdr[i]);
  free(req);
}

static void server_tick(demo_t *d, double rate) {
  double n = every(&server_due, d->now_s, 1.0 / rate);
  if (n > 64) n = 64; /* after a stall, do not try to catch up at once */
  if (!n) return;
  valkmem_zone_begin("requests");
  for (int i = 0; i < (int)n; i++) server_request();
  valkmem_zone_end();
}

/* ---------------------------------------------------------------------------
 * desktop
 * ------------------------------------------------------------------------- */
#define DOC_PARAS 200
#define UNDO_MAX 100
static obj_t *doc[DOC_PARAS];
static obj_t *undo_ring[UNDO_MAX];
static unsigned undo_pos;
static double desktop_due;
static arena_t layout_arena;

static void desktop_edit(void) {
  unsigned p = (unsigned)rng_below(&rng, DOC_PARAS);
  obj_t *para = vm_alloc(CLS_BIG);
  if (!para) return;
  para->ref[0] = vm_list(4, CLS_SMALL); /* text runs */
  para->nref = 1;
  undo_ring[undo_pos++ % UNDO_MAX] = doc[p]; /* the undo history keeps the old version, capped */
  doc[p] = para;
}

static void desktop_tick(demo_t *d, int interactive) {
  if (every(&desktop_due, d->now_s, 0.3)) desktop_edit();
  if (!interactive) return;
  valkmem_zone_begin("layout");
  char *l = arena_alloc(&layout_arena, rng_range(&rng, 16, 64) * 1024);
  if (l) memset(l, 0, 128);
  obj_t *boxes = vm_list(50, CLS_SMALL); /* the layout tree: garbage by the next frame */
  (void)boxes;
  valkmem_zone_end();
  valkmem_zone_begin("paint");
  if (rng_below(&rng, 10) == 0) { /* a repaint: a big bitmap that dies in the frame */
    size_t n = rng_range(&rng, 64, 256) * 1024;
    char *bmp = malloc(n);
    if (bmp) memset(bmp, 0, 4096);
    free(bmp);
  }
  valkmem_zone_end();
  arena_reset(&layout_arena);
}

/* ---------------------------------------------------------------------------
 * repl
 * ------------------------------------------------------------------------- */
#define ENV_SLOTS 16
#define HISTORY_MAX 512 /* a ring: with --leak the heap stops growing once it wraps */
static obj_t *env[ENV_SLOTS];
static obj_t *history[HISTORY_MAX]; /* Out[n]: only filled with --leak */
static unsigned repl_step, history_n;
static double repl_due;

static const char *const repl_script[] = {
    "xs = list(range(2000))",
    "ys = [str(x) for x in xs[:400]]",
    "total = sum(xs)",
    "del xs",
    "d = {k: k * k for k in range(800)}",
    "del ys, d",
    "s = json.dumps(tree)",
};
#define REPL_STEPS (sizeof repl_script / sizeof repl_script[0])

static obj_t *repl_run(unsigned step) {
  switch (step) {
  case 0: return env[0] = vm_list(2000, CLS_SMALL);
  case 1: return env[1] = vm_list(400, CLS_BIG);
  case 2: {
    obj_t *tmp = vm_list(1000, CLS_SMALL); /* a generator's garbage */
    (void)tmp;
    return env[2] = vm_alloc(CLS_SMALL);
  }
  case 3: {
    obj_t *r = env[0];
    env[0] = NULL;
    return r;
  }
  case 4: return env[3] = vm_list(800, CLS_SMALL);
  case 5: {
    obj_t *r = env[1];
    env[1] = env[3] = NULL;
    return r;
  }
  default: {
    char *s = malloc(20000); /* the JSON text, printed and dropped */
    if (s) memset(s, '{', 128);
    free(s);
    return vm_list(300, CLS_BIG);
  }
  }
}

static void repl_eval(demo_t *d) {
  unsigned step = repl_step++ % REPL_STEPS;
  valkmem_eval_begin(repl_script[step]);
  obj_t *result = repl_run(step);
  if (d->leak) {
    /* IPython-style Out[] history: every result stays reachable, and its
     * printed text goes into the global cache. */
    history[history_n++ % HISTORY_MAX] = result;
    leaky_cache_put(((uint64_t)step << 32) | repl_step, 8192);
  }
  vm_gc(); /* a REPL collects after each input: "retained" is exact */
  valkmem_eval_end();
}

/* ---------------------------------------------------------------------------
 * lsp
 * ------------------------------------------------------------------------- */
#define LSP_DOCS 4
#define LSP_INDEX 512
static obj_t *lsp_ast[LSP_DOCS];
static obj_t *lsp_index[LSP_INDEX];
static arena_t lsp_scratch, lsp_strings;
static unsigned lsp_n;
static double lsp_due;

static void lsp_request(int collect) {
  static const char *const methods[] = {"lsp textDocument/didChange", "lsp textDocument/completion",
                                        "lsp textDocument/hover", "lsp textDocument/documentSymbol"};
  unsigned m = lsp_n % 4 == 0 ? 0 : (unsigned)rng_range(&rng, 1, 3);
  lsp_n++;
  valkmem_eval_begin(methods[m]);
  switch (m) {
  case 0: { /* reparse a document: a new AST, its names in the string pool */
    unsigned doc_i = (unsigned)rng_below(&rng, LSP_DOCS);
    obj_t *ast = vm_list(rng_range(&rng, 300, 800), CLS_SMALL);
    lsp_ast[doc_i] = ast;
    for (int i = 0; i < 32 && ast; i++, ast = ast->ref[0]) lsp_index[rng_below(&rng, LSP_INDEX)] = ast;
    char *names = arena_alloc(&lsp_strings, rng_range(&rng, 8, 32) * 1024);
    if (names) memset(names, 'n', 64);
    break;
  }
  case 1: { /* completion: candidates in the VM, the reply in the scratch arena */
    obj_t *cands = vm_list(200, CLS_SMALL);
    (void)cands;
    char *reply = arena_alloc(&lsp_scratch, rng_range(&rng, 16, 64) * 1024);
    if (reply) memset(reply, 'c', 64);
    break;
  }
  case 2: {
    obj_t *t = vm_list(20, CLS_SMALL);
    (void)t;
    break;
  }
  default: {
    obj_t *t = vm_list(100, CLS_BIG);
    (void)t;
    break;
  }
  }
  arena_reset(&lsp_scratch);
  if (lsp_n % 50 == 0) arena_reset(&lsp_strings); /* the string pool is rebuilt now and then */
  /* Alone, the server collects after each request (its heap is small and
   * it is idle in between), so each request's "retained" is exact; next to
   * the other workloads it leaves collection to the shared safepoint. */
  if (collect) vm_gc();
  valkmem_eval_end();
}

/* ---------------------------------------------------------------------------
 * embedded
 * ------------------------------------------------------------------------- */
#define MSG_SLOTS 64
#define MSG_SIZE 256
static unsigned char msg_mem[MSG_SLOTS][MSG_SIZE];
static uint8_t msg_used[MSG_SLOTS];
static uint8_t msg_age[MSG_SLOTS];
static valkmem_pool_t *msg_pool, *sensor_pool;
static unsigned char sensor_ring[8192];
static size_t sensor_used;
#define SENSOR_READINGS 8
static obj_t *readings[SENSOR_READINGS];

static void embedded_tick(void) {
  /* messages arrive in bursts; each lives a few ticks */
  unsigned burst = rng_below(&rng, 100) < 2 ? 80 : (unsigned)rng_below(&rng, 6);
  for (unsigned k = 0; k < burst; k++) {
    unsigned i = 0;
    while (i < MSG_SLOTS && msg_used[i]) i++;
    if (i == MSG_SLOTS) { /* pool exhausted: the message is dropped */
      valkmem_pool_overflow(msg_pool, MSG_SIZE);
      continue;
    }
    msg_used[i] = 1;
    msg_age[i] = (uint8_t)rng_range(&rng, 2, 8);
    msg_mem[i][0] = (unsigned char)k;
    valkmem_pool_alloc(msg_pool, MSG_SIZE);
  }
  for (unsigned i = 0; i < MSG_SLOTS; i++) {
    if (msg_used[i] && --msg_age[i] == 0) {
      msg_used[i] = 0;
      valkmem_pool_free(msg_pool, MSG_SIZE);
    }
  }
  /* sensor samples into a bump ring, reset when a cycle completes */
  size_t n = 64 * rng_range(&rng, 1, 4);
  if (sensor_used + n > sizeof sensor_ring) {
    sensor_used = 0;
    valkmem_pool_reset(sensor_pool);
  }
  memset(sensor_ring + sensor_used, 0, n);
  sensor_used += n;
  valkmem_pool_alloc(sensor_pool, n);
  for (int k = 0; k < 4; k++) { /* decoded readings: the newest few stay */
    obj_t *r = vm_alloc(CLS_SMALL);
    if (r) r->val = sensor_used;
    readings[rng_below(&rng, SENSOR_READINGS)] = r;
  }
}

/* ---------------------------------------------------------------------------
 * Scheduling
 * ------------------------------------------------------------------------- */

void modes_init(demo_t *d) {
  rng.s = d->seed * 0x2545F4914F6CDD1Dull + 1;
  vm_root_add("entities", entities, N_ENTITIES);
  vm_root_add("sessions", sessions, N_SESSIONS);
  vm_root_add("document", doc, DOC_PARAS);
  vm_root_add("undo", undo_ring, UNDO_MAX);
  vm_root_add("repl.env", env, ENV_SLOTS);
  vm_root_add("repl.history", history, HISTORY_MAX);
  vm_root_add("lsp.ast", lsp_ast, LSP_DOCS);
  vm_root_add("lsp.index", lsp_index, LSP_INDEX);
  vm_root_add("sensors", readings, SENSOR_READINGS);
  if (d->modes & MODE_GAME) {
    arena_init(&render_arena, "render.scratch", VALKMEM_POOL_ARENA, 256 * 1024);
    arena_init(&input_arena, "input.events", VALKMEM_POOL_BUMP, 16 * 1024);
  }
  if (d->modes & MODE_DESKTOP) arena_init(&layout_arena, "layout.scratch", VALKMEM_POOL_ARENA, 128 * 1024);
  if (d->modes & MODE_LSP) {
    arena_init(&lsp_scratch, "lsp.scratch", VALKMEM_POOL_ARENA, 128 * 1024);
    arena_init(&lsp_strings, "lsp.strings", VALKMEM_POOL_BUMP, 1024 * 1024);
  }
  if (d->modes & MODE_EMBEDDED) {
    msg_pool = valkmem_pool_register("embedded.msgbuf", VALKMEM_POOL_SLAB, MSG_SLOTS * MSG_SIZE, MSG_SIZE);
    sensor_pool = valkmem_pool_register("embedded.sensors", VALKMEM_POOL_BUMP, sizeof sensor_ring, 0);
    /* no valkmem_pool_held: both live in static memory whose free part is
     * headroom to reuse, not fragmentation */
  }
  int all = (d->modes & MODE_ALL) == MODE_ALL;
  server_due = desktop_due = d->now_s;
  repl_due = d->now_s + (all ? 3.0 : 0.5);
  lsp_due = d->now_s + 0.25;
}

void modes_tick(demo_t *d) {
  int all = (d->modes & MODE_ALL) == MODE_ALL;
  if (d->modes & MODE_GAME) game_frame(d);
  if (d->modes & MODE_SERVER) server_tick(d, all ? 100 : 400);
  if (d->modes & MODE_DESKTOP) desktop_tick(d, !(d->modes & MODE_GAME) || d->tick % 4 == 0);
  if (d->modes & MODE_EMBEDDED) embedded_tick();
  if ((d->modes & MODE_REPL) && every(&repl_due, d->now_s, all ? 6.0 : 0.7)) repl_eval(d);
  if ((d->modes & MODE_LSP) && every(&lsp_due, d->now_s, all ? 1.0 : 0.25)) lsp_request(d->modes == MODE_LSP);
}

void modes_shutdown(demo_t *d) {
  if (d->modes & MODE_GAME) {
    arena_destroy(&render_arena);
    arena_destroy(&input_arena);
  }
  if (d->modes & MODE_DESKTOP) arena_destroy(&layout_arena);
  if (d->modes & MODE_LSP) {
    arena_destroy(&lsp_scratch);
    arena_destroy(&lsp_strings);
  }
}
