#!/usr/bin/env node
// fake-server.js - a stand-in for the valkmem agent, for developing the
// viewer without a running process and for fixtures the real agent cannot
// produce on this machine (a darwin snapshot).
//
// Serves viewer/* exactly like the agent (flat, "/" = /index.html) and the
// documents of agent/SCHEMA.md: /api/snapshot, /api/events (SSE "tick"),
// /api/history?range=, /api/report, /api/processes. The process it describes
// is simulated: a server that allocates in a sawtooth under a GC, a leaking
// cache site, two pools, game frames and REPL evals, so every panel has real
// numbers.
//
// The process tree (--processes):
//   tree    (default) the tree of fixtures/process-tree.json: 3 processes,
//           the simulated one the root. Every process's dashboard is also
//           served under /p/PID/ (the same pages and the same simulation,
//           with that process's pid and program), and api/processes there
//           answers with "self": PID.
//   single  a tree of one process (api/processes lists only the root)
//   none    api/processes and /p/PID/ answer 404: an older agent, or a
//           saved report under `valkmem view`
//
//   node fake-server.js [--port N] [--platform linux|darwin] [--processes tree|single|none]
//                       [--url-file PATH] [--backfill-s N] [--exit-after-s N]
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');

const args = process.argv.slice(2);
function opt(name, def) {
  const i = args.indexOf('--' + name);
  return i >= 0 ? args[i + 1] : def;
}
const PORT = +opt('port', 0);
const PLATFORM = opt('platform', 'linux');
const URL_FILE = opt('url-file', '');
const BACKFILL_S = +opt('backfill-s', 7200);
const EXIT_AFTER_S = +opt('exit-after-s', 0);
const TICK_MS = +opt('tick-ms', 100);
const PROCESSES = opt('processes', 'tree');
if (!['tree', 'single', 'none'].includes(PROCESSES)) { console.error('fake-server.js: --processes tree|single|none'); process.exit(2); }
const VIEWER = path.resolve(__dirname, '../../viewer');
const MiB = 1 << 20;

/* ---------------------------------------------------------------- model */
const t0 = Date.now() - BACKFILL_S * 1000;
const sim = {
  seq: 0, t: t0, live: 8 * MiB, liveCount: 20000, peakLive: 8 * MiB,
  allocTotal: 0, freeTotal: 0, allocOps: 0, freeOps: 0, rss: 24 * MiB, peakRss: 24 * MiB,
  minflt: 5000, majflt: 3, gcCycles: 0, gcRecent: [], pauses: [], frames: [], evals: [],
  leak: 0, lastGcT: t0, pressureHist: [], exited: false,
};
const SITE_FUNCS = [
  ['leaky_cache_put', 'demo.c', 42], ['request_buffer_new', 'demo.c', 77],
  ['json_parse_value', 'json.c', 310], ['arena_chunk_grow', 'arena.c', 55],
  ['string_dup', 'util.c', 12], ['hash_resize', 'hash.c', 140],
];
const sites = SITE_FUNCS.map(([fn, file, line], i) => ({
  id: (0x3f2a0000 + i * 0x1111).toString(16) + 'c0ffee' + i,
  frames: [{ function: fn, module: 'demo', offset: 0x1000 + i * 0x40, file, line },
           { function: 'main', module: 'demo', offset: 0x900, file: 'demo.c', line: 200 }],
  alloc_bytes: 0, alloc_count: 0, live_bytes: 0, live_count: 0, lifetimes: [0, 0, 0, 0],
}));
const pools = [
  { id: 1, name: 'objects', kind: 'slab', capacity: 4 * MiB, object_size: 64, used: 0, high_water: 0,
    alloc_count: 0, free_count: 0, overflow_count: 0, reset_count: 0, frag_pct: 0 },
  { id: 2, name: 'frame_arena', kind: 'arena', capacity: 2 * MiB, object_size: 0, used: 0, high_water: 0,
    alloc_count: 0, free_count: 0, overflow_count: 0, reset_count: 0, frag_pct: 0 },
];
const hist = { '100': [], '1000': [], '10000': [] };
const CAP = { '100': 600, '1000': 3000, '10000': 3600 };
let acc1 = null, acc10 = null;

function wave(t, period) { return (t % period) / period; }

function step() {
  const dt = TICK_MS / 1000;
  sim.seq++; sim.t += TICK_MS;
  const phase = Math.sin(sim.t / 9000);
  const allocBps = 6 * MiB + 4 * MiB * phase;
  let freeBps = allocBps * 0.97;
  const aBytes = allocBps * dt, aOps = Math.round(aBytes / 256);
  sim.leak += 3000 * dt;                      // ~3 KB/s leak at leaky_cache_put
  let gcPause = 0, gcCyc = 0;
  sim.live += aBytes - freeBps * dt;
  if (sim.t - sim.lastGcT >= 2000) {           // a GC every 2 s: sawtooth
    const before = sim.live, after = 8 * MiB + sim.leak + (sim.seq % 7) * 10000;
    gcPause = 0.6 + 3 * Math.abs(Math.sin(sim.seq)) + (sim.seq % 53 === 0 ? 12 : 0);
    freeBps += (before - after) / dt; sim.live = after; gcCyc = 1;
    sim.gcCycles++; sim.lastGcT = sim.t;
    sim.gcRecent.push({ t_ms: sim.t, before: Math.round(before), after: Math.round(after), pause_ms: +gcPause.toFixed(3),
                        efficiency: +((before - after) / before).toFixed(4), alloc_bps: Math.round(allocBps) });
    if (sim.gcRecent.length > 64) sim.gcRecent.shift();
    sim.pauses.push(gcPause); if (sim.pauses.length > 4096) sim.pauses.shift();
  }
  const fBytes = Math.max(0, freeBps * dt), fOps = Math.round(fBytes / 256);
  sim.allocTotal += aBytes; sim.freeTotal += fBytes; sim.allocOps += aOps; sim.freeOps += fOps;
  sim.liveCount = Math.round(sim.live / 400);
  sim.peakLive = Math.max(sim.peakLive, sim.live);
  sim.rss = Math.round(sim.live * 1.6 + 12 * MiB);
  sim.peakRss = Math.max(sim.peakRss, sim.rss);
  sim.minflt += Math.round(aOps / 50); if (sim.seq % 997 === 0) sim.majflt++;
  // sites: shares of the traffic; leaky_cache_put keeps what it allocates
  const share = [0.02, 0.45, 0.25, 0.15, 0.08, 0.05];
  sites.forEach((s, i) => {
    s.alloc_bytes += Math.round(aBytes * share[i]); s.alloc_count += Math.max(1, Math.round(aOps * share[i]));
    s.live_bytes = i === 0 ? Math.round(sim.leak) : Math.round((sim.live - sim.leak) * share[i] * 0.4);
    s.live_count = Math.round(s.live_bytes / (i === 0 ? 128 : 300));
    s.lifetimes[0] += Math.round(aOps * share[i] * 0.7); s.lifetimes[1] += Math.round(aOps * share[i] * 0.2);
    s.lifetimes[2] += Math.round(aOps * share[i] * 0.07); s.lifetimes[3] += i === 0 ? 0 : Math.round(aOps * share[i] * 0.03);
  });
  // pools
  const objs = pools[0], ar = pools[1];
  objs.used = Math.round(objs.capacity * (0.35 + 0.25 * wave(sim.t, 20000)));
  objs.high_water = Math.max(objs.high_water, objs.used);
  objs.alloc_count += 40; objs.free_count += 38; objs.frag_pct = +(18 + 14 * wave(sim.t, 30000)).toFixed(2);
  ar.used = Math.round(ar.capacity * (0.2 + 0.7 * Math.abs(Math.sin(sim.seq / 3))));
  ar.high_water = Math.max(ar.high_water, ar.used); ar.alloc_count += 120; ar.reset_count += 1;
  if (ar.used > ar.capacity * 0.88) ar.overflow_count++;
  // frames (game): ~60 fps, 6 per tick
  for (let k = 0; k < 6; k++) {
    const logic = 4 + 2 * Math.random(), render = 6 + 3 * Math.random();
    const gc = gcCyc && k === 0 ? gcPause : 0;
    sim.frames.push({ ms: +(logic + render + gc + 0.4).toFixed(3), alloc_count: 300, alloc_bytes: 60000,
                      gc_ms: +gc.toFixed(3), zones: { logic: +logic.toFixed(3), render: +render.toFixed(3) } });
    if (sim.frames.length > 120) sim.frames.shift();
  }
  // evals (repl): one every 3 s
  if (sim.seq % 30 === 0) {
    const allocated = 50000 + (sim.seq % 7) * 20000, retained = (sim.seq % 4) * 3000;
    sim.evals.push({ label: 'x' + sim.evals.length + ' = load(' + (sim.seq % 9) + ')', allocated, retained,
                     net: retained - 1000, duration_ms: +(2 + (sim.seq % 5)).toFixed(3), gc_ms: 0.4,
                     arena_high_water: 32768 + (sim.seq % 3) * 4096 });
    if (sim.evals.length > 64) sim.evals.shift();
  }
  const pressure = Math.max(0, (allocBps - freeBps) / allocBps * 100);
  const p = { seq: sim.seq, t_ms: sim.t, live_bytes: Math.round(sim.live), peak_live_bytes: Math.round(sim.live),
              rss: sim.rss, peak_rss: sim.rss, alloc_bytes: Math.round(aBytes), free_bytes: Math.round(fBytes),
              alloc_ops: aOps, free_ops: fOps, alloc_bps: Math.round(allocBps), free_bps: Math.round(freeBps),
              gc_cycles: gcCyc, gc_pause_ms: +gcPause.toFixed(3), frag_pct: objs.frag_pct, pressure_pct: +pressure.toFixed(2) };
  sim.point = p; sim.allocBps = allocBps; sim.freeBps = freeBps;
  sim.pressureHist.push(pressure); if (sim.pressureHist.length > 50) sim.pressureHist.shift();
  push('100', p);
  acc1 = merge(acc1, p, 1000); acc10 = merge(acc10, p, 10000);
}
function merge(acc, p, stepMs) {
  const b = Math.floor(p.t_ms / stepMs) * stepMs;
  if (acc && acc.t_ms !== b) { push(String(stepMs), fin(acc, stepMs)); acc = null; }
  if (!acc) return Object.assign({}, p, { t_ms: b });
  for (const k of ['alloc_bytes', 'free_bytes', 'alloc_ops', 'free_ops', 'gc_cycles', 'gc_pause_ms']) acc[k] += p[k];
  for (const k of ['peak_live_bytes', 'peak_rss', 'frag_pct', 'pressure_pct']) acc[k] = Math.max(acc[k], p[k]);
  acc.seq = p.seq; acc.live_bytes = p.live_bytes; acc.rss = p.rss;
  return acc;
}
function fin(acc, stepMs) {
  acc.alloc_bps = Math.round(acc.alloc_bytes / (stepMs / 1000)); acc.free_bps = Math.round(acc.free_bytes / (stepMs / 1000));
  return acc;
}
function push(k, p) { const a = hist[k]; a.push(p); if (a.length > CAP[k]) a.shift(); }

function snapshot() {
  const pauses = sim.pauses.slice().sort((a, b) => a - b);
  const hb = [0, 0, 0, 0, 0];
  for (const x of sim.pauses) hb[x < 1 ? 0 : x < 5 ? 1 : x < 10 ? 2 : x < 16.6 ? 3 : 4]++;
  const tot = pauses.reduce((a, b) => a + b, 0), over10 = pauses.filter(x => x > 10).length;
  const recentFrames = sim.frames.slice(-60);
  const byLive = sites.slice().sort((a, b) => b.live_bytes - a.live_bytes).map(s => s.id);
  const byAlloc = sites.slice().sort((a, b) => b.alloc_bytes - a.alloc_bytes).map(s => s.id);
  const freed = [0, 0, 0, 0]; sites.forEach(s => s.lifetimes.forEach((v, i) => { freed[i] += v; }));
  const pr = sim.pressureHist;
  const s = {
    schema: 'valkmem.snapshot/1', platform: PLATFORM, pid: 4242, program: 'demo',
    argv: ['./valkmem-demo', '--mode', 'server'], started_at: t0, uptime_s: +((sim.t - t0) / 1000).toFixed(1),
    seq: sim.seq, t_ms: sim.t, state: sim.exited ? 'exited' : 'running', sample_bytes: 524288,
    dropped_events: 12, self_bytes: 3 * MiB + 200000,
    totals: { alloc_count: sim.allocOps, free_count: sim.freeOps, realloc_count: Math.round(sim.allocOps / 20), failed_count: 0,
              alloc_bytes: Math.round(sim.allocTotal * 0.95), alloc_usable_bytes: Math.round(sim.allocTotal),
              free_usable_bytes: Math.round(sim.freeTotal), mmap_count: 40, munmap_count: 31, mremap_count: 2,
              mmap_bytes: 80 * MiB, munmap_bytes: 60 * MiB, size_hist: Array.from({ length: 48 }, (_, i) => i < 20 ? 1000 * (20 - i) : 0) },
    live: { bytes: Math.round(sim.live), count: sim.liveCount },
    peak: { live_bytes: Math.round(sim.peakLive), live_error_bytes: 4096, rss_bytes: sim.peakRss },
    rates: { alloc_bps: Math.round(sim.allocBps), free_bps: Math.round(sim.freeBps), alloc_ops: Math.round(sim.allocBps / 256),
             free_ops: Math.round(sim.freeBps / 256), pressure_pct: +(pr.reduce((a, b) => a + b, 0) / pr.length).toFixed(2),
             pressure_warn: pr.every(x => x > 50) },
    threads: { live: 4, max: 5, total: 9 },
    os: { rss: sim.rss, vms: PLATFORM === 'darwin' ? 420 * 1024 * MiB : 300 * MiB, peak_rss: sim.peakRss,
          minor_faults: sim.minflt, major_faults: sim.majflt, threads: 5, swap: 0,
          smaps: PLATFORM === 'darwin' ? null : { heap: Math.round(sim.rss * 0.55), anon: Math.round(sim.rss * 0.2),
            file: Math.round(sim.rss * 0.18), stack: 540672, other: Math.round(sim.rss * 0.07) - 540672, at_ms: sim.t - 3000 } },
    allocator: { source: PLATFORM === 'darwin' ? 'malloc_zone' : 'glibc', held: Math.round(sim.live * 1.3),
                 in_use: Math.round(sim.live), free_held: Math.round(sim.live * 0.3), frag_pct: 23.08, frag_warn: false },
    sites, sites_by_live: byLive, sites_by_alloc: byAlloc,
    leaks: [{ site: sites[0].id, function: 'leaky_cache_put', live_bytes: sites[0].live_bytes, growth_bytes_per_s: 3000,
              epochs: sim.gcCycles, since_s: 12.5 }],
    lifetimes: { epoch: 'gc', labels: ['first', '1-5', '6-20', '21+'], freed,
                 live: [sim.liveCount * 0.5 | 0, sim.liveCount * 0.2 | 0, sim.liveCount * 0.1 | 0, sim.liveCount * 0.2 | 0],
                 oldest_growing: true },
    gc: { cycles: sim.gcCycles, efficiency_last: sim.gcRecent.length ? sim.gcRecent[sim.gcRecent.length - 1].efficiency : 0,
          efficiency_avg: sim.gcRecent.length ? +(sim.gcRecent.reduce((a, g) => a + g.efficiency, 0) / sim.gcRecent.length).toFixed(4) : 0,
          pause: { count: pauses.length, total_ms: +tot.toFixed(3), max_ms: pauses.length ? pauses[pauses.length - 1] : 0,
                   avg_ms: pauses.length ? +(tot / pauses.length).toFixed(3) : 0,
                   p95_ms: pauses.length ? pauses[Math.floor(pauses.length * 0.95)] : 0, hist: hb,
                   over10_pct: pauses.length ? +(over10 / pauses.length * 100).toFixed(2) : 0,
                   warn: pauses.length ? over10 / pauses.length > 0.1 : false },
          recent: sim.gcRecent.slice() },
    pools,
    frames: { count: sim.seq * 6, budget_ms: 16.6,
              avg_ms: +(recentFrames.reduce((a, f) => a + f.ms, 0) / Math.max(1, recentFrames.length)).toFixed(3),
              max_ms: Math.max(0, ...recentFrames.map(f => f.ms)), over_budget: recentFrames.filter(f => f.ms > 16.6).length,
              recent: recentFrames },
    evals: sim.evals.length ? { count: sim.evals.length, warn: true, recent: sim.evals.slice() } : null,
    roots: [{ name: 'globals', retained_bytes: 2 * MiB, objects: 1200 }, { name: 'module_cache', retained_bytes: 900000, objects: 80 }],
    point: sim.point,
  };
  return s;
}

/* ------------------------------------------------------- process tree */
const TREE = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'process-tree.json'), 'utf8'));
const ROOT = TREE.root;
const treeShift = t0 - TREE.processes[0].started_at;   // the root starts with the simulation
function treeProcs() {
  const list = PROCESSES === 'tree' ? TREE.processes : TREE.processes.slice(0, 1);
  return list.map(p => {
    const q = Object.assign({}, p, { started_at: p.started_at + treeShift });
    if (p.pid === ROOT) { q.live_bytes = Math.round(sim.live); q.rss_bytes = sim.rss; }   // the last tick's values
    return q;
  });
}
/* The tree entry of a dashboard path's pid (null: not one of the tree). */
function procOf(pid) { return treeProcs().find(p => p.pid === pid) || null; }
function processes(self) { return { root: ROOT, self, processes: treeProcs(), truncated: false }; }
/* The snapshot as the dashboard of pid self shows it: the same simulation
 * under that process's pid and program. */
function snapshotOf(self) {
  const s = snapshot();
  if (self === ROOT) return s;
  const p = procOf(self);
  return Object.assign(s, { pid: p.pid, ppid: p.ppid, program: p.program, argv: [p.program], forked: true });
}

function history(range) {
  const span = { '1m': 60e3, '5m': 300e3, '1h': 3600e3, '10h': 36000e3 }[range];
  if (!span) return null;
  const k = range === '1m' ? '100' : range === '5m' ? '1000' : '10000';
  let pts = hist[k];
  if (range === '5m') pts = pts.slice(-300);
  if (range === '1h') pts = pts.slice(-360);
  return { range, step_ms: +k, points: pts.slice() };
}

/* --------------------------------------------------------------- server */
for (let i = 0; i < BACKFILL_S * 1000 / TICK_MS; i++) step();
sim.t = Date.now();
const streams = new Map();   // response -> pid of the dashboard that opened it
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
                '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  const send = (code, type, body) => { res.writeHead(code, { 'Content-Type': type, 'Cache-Control': 'no-store' }); res.end(body); };
  // /p/PID/...: the dashboard of one process of the tree (/ is the root's).
  let self = ROOT;
  const pm = /^\/p\/(\d+)(\/.*)?$/.exec(u.pathname);
  if (pm) {
    if (PROCESSES === 'none' || !procOf(+pm[1])) return send(404, 'text/plain', 'not found\n');
    if (!pm[2]) { res.writeHead(301, { Location: u.pathname + '/' + u.search }); return res.end(); }
    self = +pm[1];
    u.pathname = pm[2];
  }
  if (u.pathname === '/api/processes') {
    return PROCESSES === 'none' ? send(404, 'text/plain', 'not found\n') : send(200, 'application/json', JSON.stringify(processes(self)));
  }
  if (u.pathname === '/api/snapshot') return send(200, 'application/json', JSON.stringify(snapshotOf(self)));
  if (u.pathname === '/api/report') {
    const r = snapshotOf(self); r.schema = 'valkmem.report/1'; r.duration_s = r.uptime_s;
    r.history = { '1m': hist['100'].slice(), '10h': hist['10000'].slice() };
    return send(200, 'application/json', JSON.stringify(r));
  }
  if (u.pathname === '/api/stacks') {   // the sites' stacks, frames interned (agent/SCHEMA.md)
    const frames = [], fi = new Map();
    const F = f => { const k = f.module + ':' + f.offset; if (!fi.has(k)) { fi.set(k, frames.length); frames.push([f.function, f.module, f.offset, f.file, f.line]); } return fi.get(k); };
    const stacks = sites.map((s, i) => [s.id, s.frames.map(F), s.live_bytes, s.live_count, s.alloc_bytes, s.alloc_count,
      Math.round(Math.sqrt(s.live_bytes) * 700), Math.round(Math.sqrt(s.alloc_bytes) * 700), i === 0 ? 1 : 0]);
    return send(200, 'application/json', JSON.stringify({ schema: 'valkmem.stacks/1', sample_bytes: 524288, calibration: null, frames, stacks }));
  }
  if (u.pathname === '/api/history') {
    const h = history(u.searchParams.get('range'));
    return h ? send(200, 'application/json', JSON.stringify(h)) : send(400, 'text/plain', 'bad range\n');
  }
  if (u.pathname === '/api/events') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
    res.write('retry: 1000\n\n');
    streams.set(res, self); req.on('close', () => streams.delete(res));
    return;
  }
  const name = u.pathname === '/' ? 'index.html' : u.pathname.slice(1);
  if (!/^[\w.-]+$/.test(name) || !TYPES[path.extname(name)]) return send(404, 'text/plain', 'not found\n');
  fs.readFile(path.join(VIEWER, name), (err, data) => err ? send(404, 'text/plain', 'not found\n')
                                                         : send(200, TYPES[path.extname(name)], data));
});
server.listen(PORT, '127.0.0.1', () => {
  const url = 'http://127.0.0.1:' + server.address().port + '/';
  process.stderr.write('valkmem: fake agent at ' + url + '\n');
  if (URL_FILE) fs.writeFileSync(URL_FILE, url + '\n');
});
const started = Date.now();
setInterval(() => {
  step();
  if (EXIT_AFTER_S && Date.now() - started > EXIT_AFTER_S * 1000) sim.exited = true;
  const msgs = new Map();
  for (const [r, self] of streams) {
    if (!msgs.has(self)) { const s = snapshotOf(self); msgs.set(self, 'id: ' + s.seq + '\nevent: tick\ndata: ' + JSON.stringify(s) + '\n\n'); }
    r.write(msgs.get(self));
  }
  if (sim.exited) { for (const r of streams.keys()) r.end(); setTimeout(() => process.exit(0), 200); }
}, TICK_MS);
