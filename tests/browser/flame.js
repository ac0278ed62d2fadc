#!/usr/bin/env node
// flame.js - the flame graph, heap-by-site and pinned-baseline views in a
// real headless Chromium (playwright-core), against tests/flame_prog.c under
// LD_PRELOAD=libvalkmem.so: planted sites of known sizes (flat_a 24 MiB,
// flat_b 12 MiB, small_d 4 MiB held; grow_alloc growing while on; churn_alloc
// allocating and freeing at once). The program writes its truth to a state
// file every 100 ms; SIGUSR1 toggles the growth.
//
//   node flame.js --prog build/tests/flame_prog --lib build/libvalkmem.so [--artifacts DIR] [--events N]
//
// Statistics: sampling at 64 KiB means with 16 KiB blocks, flat_a gets ~340
// samples (~3.4 % standard error). A planted site's estimate must lie within
// 4 of its own reported standard errors (+ 256 KiB for the small unplanted
// sites and the growth between the truth file and the stacks), so a correct
// estimator fails about once in 15 000 runs and a biased one fails.
// Performance: with every panel open and 10 000 synthetic stacks in the
// flame graph (api/stacks answered by the test), the budgets are
// asserted: SSE event handling p95 < 16 ms, frame interval p95 <= 17 ms
// (60 fps), JS heap after a GC < 10 MB.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const SKIP = 77;
const CHROMIUM = process.env.VALKMEM_CHROMIUM || '/usr/bin/chromium';
const HERE = __dirname;
const argv = process.argv.slice(2);
function opt(name, def) { const i = argv.indexOf('--' + name); return i >= 0 ? argv[i + 1] : def; }
const ARTIFACTS = path.resolve(opt('artifacts', path.join(HERE, 'artifacts', 'flame')));
const N_EVENTS = +opt('events', 200);
const ONLY = opt('only', '') ? opt('only', '').split(',') : null;
const MiB = 1048576;

let chromium;
try { ({ chromium } = require(path.join(HERE, 'node_modules', 'playwright-core'))); }
catch (e) { console.log('SKIP: playwright-core is not installed (run `npm ci` in tests/browser): ' + e.message); process.exit(SKIP); }
if (!fs.existsSync(CHROMIUM)) { console.log('SKIP: no Chromium at ' + CHROMIUM); process.exit(SKIP); }

const tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'vkm-flame-'));
const STATE = path.join(tmpdir, 'state.json');
let prog = null;
process.on('exit', () => {
  if (prog && prog.exitCode === null && prog.signalCode === null) try { prog.kill('SIGKILL'); } catch (e) { /* gone */ }
  try { fs.rmSync(tmpdir, { recursive: true, force: true }); } catch (e) { /* ignore */ }
});
process.on('SIGTERM', () => process.exit(1));
process.on('SIGINT', () => process.exit(1));

function sleep(ms) { return new Promise(r => setTimeout(r, ms)); }
function check(cond, what) { if (!cond) throw new Error(what); }
function pctl(xs, p) { const s = xs.slice().sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))] : NaN; }
function truth() { return JSON.parse(fs.readFileSync(STATE, 'utf8')); }
function mib(x) { return (x / MiB).toFixed(2) + ' MiB'; }

async function startProg() {
  const prg = opt('prog'), lib = opt('lib');
  if (!prg || !lib) { console.error('usage: flame.js --prog FLAME_PROG --lib LIBVALKMEM'); process.exit(2); }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const urlFile = path.join(tmpdir, 'url'), log = path.join(ARTIFACTS, 'flame_prog.log');
  prog = spawn(prg, [STATE, '0', '2048'], { stdio: ['ignore', fs.openSync(log, 'w'), fs.openSync(log, 'a')],
    env: Object.assign({}, process.env, { LD_PRELOAD: lib, VALKMEM_URL_FILE: urlFile, VALKMEM_SAMPLE_BYTES: '65536' }) });
  for (let t0 = Date.now(); Date.now() - t0 < 15000; await sleep(50)) {
    if (fs.existsSync(urlFile) && fs.existsSync(STATE)) { const u = fs.readFileSync(urlFile, 'utf8').trim(); if (u) return u.endsWith('/') ? u : u + '/'; }
    if (prog.exitCode !== null) throw new Error('flame_prog exited ' + prog.exitCode + '; see ' + log);
  }
  throw new Error('flame_prog wrote no URL within 15 s; see ' + log);
}
/* Toggle the growth and wait until the program says it took effect. */
async function setGrowing(on) {
  if (truth().growing === on) return;
  prog.kill('SIGUSR1');
  for (let t0 = Date.now(); Date.now() - t0 < 3000; await sleep(50)) if (truth().growing === on) return;
  throw new Error('flame_prog did not switch growth ' + (on ? 'on' : 'off'));
}

const consoleErrors = [];
const offsite = [];
async function newPage(ctx, tag) {
  const page = await ctx.newPage();
  page.on('console', m => { if (m.type() === 'error' || (m.type() === 'warning' && /^valkmem:/.test(m.text()))) consoleErrors.push(tag + ': ' + m.text()); });
  page.on('pageerror', e => consoleErrors.push(tag + ': page error: ' + e.message));
  // Nothing may reach the network except the agent on 127.0.0.1.
  await page.route(u => !/^http:\/\/127\.0\.0\.1[:/]/.test(u.href) && !/^(data|blob):/.test(u.href), r => { offsite.push(r.request().url()); r.abort(); });
  return page;
}
async function open(ctx, url, q, tag) {
  const page = await newPage(ctx, tag);
  await page.goto(url + (q || '?profile=server'));
  await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'live', null, { timeout: 15000 });
  return page;
}
/* Wait until the flame graph has been rebuilt from stacks fetched after now. */
async function freshStacks(page) {
  const n = await page.evaluate(() => VKM.flame.stats().builds);
  await page.waitForFunction(n => VKM.flame.stats().builds > n && VKM.flame.find('flat_a_alloc').length > 0, n, { timeout: 10000 });
  await page.evaluate(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))));
}
async function frame(page, fn) {
  const f = await page.evaluate(fn => VKM.flame.find(fn), fn);
  check(f.length === 1, fn + ' drawn ' + f.length + ' times');
  return f[0];
}
/* Canvas point of a frame's centre, in page coordinates. */
async function centre(page, f) {
  const box = await page.locator('#flame-canvas').boundingBox();
  return { x: box.x + f.x + f.w / 2, y: box.y + f.depth * 17 + 8 };
}

const T = {};

/* Widths: each planted site's frame holds its planted bytes within 4 of its
 * own standard errors, and its drawn width is its share of the root. */
T.flame_widths = async (ctx, url) => {
  const page = await open(ctx, url, '?profile=server', 'widths');
  await sleep(4000);                       // the growing site grows ~8 MiB
  await setGrowing(false);
  await sleep(300);
  await freshStacks(page);
  const tr = truth();
  const W = await page.evaluate(() => VKM.flame.rootWidth());
  const root = await page.evaluate(() => VKM.flame.info(0));
  const notes = [];
  for (const fn of ['flat_a_alloc', 'flat_b_alloc', 'small_d_alloc', 'grow_alloc']) {
    const f = await frame(page, fn), want = tr.live[fn];
    const tol = 4 * f.err + 256 * 1024;
    check(Math.abs(f.bytes - want) <= tol, fn + ': ' + mib(f.bytes) + ' vs planted ' + mib(want) + ' (± ' + mib(f.err) + ' s.e.; tolerance ' + mib(tol) + ')');
    check(Math.abs(f.w - f.share * W) <= 1.5, fn + ': drawn ' + f.w.toFixed(1) + ' px, share ' + (f.share * 100).toFixed(2) + ' % of ' + W + ' px');
    check(Math.abs(f.share - want / root.bytes) <= tol / root.bytes, fn + ': share ' + (f.share * 100).toFixed(2) + ' % vs planted ' + (want / root.bytes * 100).toFixed(2) + ' %');
    notes.push(fn.replace('_alloc', '') + ' ' + (f.share * 100).toFixed(1) + ' % (planted ' + (want / root.bytes * 100).toFixed(1) + ' %)');
  }
  // An inner frame holds what is under it: handle_requests = flat_a + flat_b (+ churn, ~0 live).
  const hr = await frame(page, 'handle_requests');
  const want = tr.live.flat_a_alloc + tr.live.flat_b_alloc;
  check(Math.abs(hr.bytes - want) <= 4 * hr.err + 512 * 1024, 'handle_requests ' + mib(hr.bytes) + ' vs ' + mib(want));
  // The root adds up to the exact live heap (calibration).
  const cal = await page.evaluate(() => VKM.flame.model().cal);
  check(cal && cal.live && cal.live.applied, 'calibration applied: ' + JSON.stringify(cal));
  check(root.bytes <= cal.live.exact * 1.0001, 'root ' + root.bytes + ' <= exact live ' + cal.live.exact);
  await page.locator('#panel-flame').screenshot({ path: path.join(ARTIFACTS, 'flame.png') });
  await page.close();
  return notes.join(', ');
};

/* Zoom into a frame, then back with a click on the root; hover shows the
 * frame's details; search highlights and gives the share. */
T.flame_zoom_search_hover = async (ctx, url) => {
  const page = await open(ctx, url, '?profile=server', 'zoom');
  await freshStacks(page);
  const W = await page.evaluate(() => VKM.flame.rootWidth());
  let cf = await frame(page, 'cache_fill');
  check(cf.w < W * 0.9, 'cache_fill is not already full width');
  let p = await centre(page, cf);
  await page.mouse.click(p.x, p.y);
  await page.evaluate(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))));
  const z = await page.evaluate(() => VKM.flame.zoom());
  check(z === cf.node, 'zoomed into cache_fill: zoom ' + z + ', node ' + cf.node);
  cf = await frame(page, 'cache_fill');
  const fa = await frame(page, 'flat_a_alloc');
  check(Math.abs(cf.w - W) <= 1 && fa.w >= W * 0.95, 'zoomed: cache_fill ' + cf.w.toFixed(0) + ' px, flat_a_alloc ' + fa.w.toFixed(0) + ' px of ' + W);
  check((await page.evaluate(() => VKM.flame.find('flat_b_alloc'))).length === 0, 'a sibling subtree is not drawn while zoomed');
  await page.locator('#panel-flame').screenshot({ path: path.join(ARTIFACTS, 'flame-zoom.png') });
  const box = await page.locator('#flame-canvas').boundingBox();
  await page.mouse.click(box.x + W / 2, box.y + 8);     // the root
  await page.evaluate(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))));
  check(await page.evaluate(() => VKM.flame.zoom()) === 0, 'root click zooms out');
  check((await page.evaluate(() => VKM.flame.find('flat_b_alloc'))).length === 1, 'whole graph again');

  // Hover.
  const g = await frame(page, 'grow_alloc');
  p = await centre(page, g);
  await page.mouse.move(p.x, p.y);
  await page.waitForFunction(() => !document.getElementById('flame-tip').hidden, null, { timeout: 3000 });
  const tip = await page.evaluate(() => document.getElementById('flame-tip').innerText);
  for (const want of ['grow_alloc', 'module flame_prog', 'flame_prog.c:', ' live ± ', 'objects', '% of the live bytes'])
    check(tip.includes(want), 'tooltip has "' + want + '": ' + JSON.stringify(tip));
  const shown = /([\d.]+) %/.exec(tip);
  check(shown && Math.abs(+shown[1] - g.share * 100) < 0.06, 'tooltip share ' + (shown && shown[1]) + ' vs ' + (g.share * 100).toFixed(2));
  await page.locator('#panel-flame').screenshot({ path: path.join(ARTIFACTS, 'flame-hover.png') });
  await page.mouse.move(0, 0);

  // Search: "flat_" matches flat_a_alloc and flat_b_alloc.
  await page.fill('#flame-search', 'flat_');
  await page.waitForFunction(() => VKM.flame.search() && VKM.flame.search().frames >= 2, null, { timeout: 3000 });
  const s = await page.evaluate(() => ({ r: VKM.flame.search(), text: document.getElementById('flame-found').innerText,
    a: VKM.flame.find('flat_a_alloc')[0], b: VKM.flame.find('flat_b_alloc')[0] }));
  check(s.r.frames === 2, 'search matched ' + s.r.frames + ' frames');
  check(Math.abs(s.r.share - (s.a.share + s.b.share)) < 1e-9, 'search share ' + s.r.share + ' = flat_a + flat_b ' + (s.a.share + s.b.share));
  check(s.text.includes((s.r.share * 100).toFixed(1) + ' %'), 'share shown: ' + s.text);
  await page.locator('#panel-flame').screenshot({ path: path.join(ARTIFACTS, 'flame-search.png') });
  await page.fill('#flame-search', '');

  // The weight switch: allocated bytes, where churn_alloc dominates.
  await page.click('#panel-flame button[value="alloc"]');
  await freshStacks(page);
  const tr = truth();
  const c = await frame(page, 'churn_alloc');
  const info = await page.evaluate(n => VKM.flame.info(n), c.node);
  check(info.weight === 'alloc', 'weight alloc');
  // churn allocates 8 MiB/s: the stacks may lag the truth file by up to ~1.5 s.
  check(Math.abs(c.bytes - tr.churned) <= 4 * c.err + 12 * MiB, 'churn_alloc allocated ' + mib(c.bytes) + ' vs planted ' + mib(tr.churned));
  await page.locator('#panel-flame').screenshot({ path: path.join(ARTIFACTS, 'flame-alloc.png') });
  await page.click('#panel-flame button[value="live"]');
  await page.close();
  return 'zoom, root, hover "' + tip.split('\n')[0] + '", search ' + s.text.trim() + ', alloc churn ' + mib(c.bytes);
};

/* Heap by site over time: the growing site rises, the flat one stays flat. */
T.heap_by_site = async (ctx, url) => {
  const page = await open(ctx, url, '?profile=server', 'sitehist');
  await setGrowing(true);
  await sleep(3000);
  await setGrowing(false);
  await page.click('#ranges button[value="1m"]');
  await page.waitForFunction(() => document.querySelectorAll('#panel-sitehist .sh-row[data-fn="grow_alloc"]').length === 1 &&
    +document.querySelector('#panel-sitehist canvas').getAttribute('data-points') > 20, null, { timeout: 10000 });
  const rows = await page.evaluate(() => Array.from(document.querySelectorAll('#panel-sitehist .sh-row')).map(r => ({
    fn: r.dataset.fn, first: +r.dataset.first, last: +r.dataset.last })));
  const g = rows.find(r => r.fn === 'grow_alloc'), a = rows.find(r => r.fn === 'flat_a_alloc');
  const tr = truth();
  check(g && a, 'bands for grow_alloc and flat_a_alloc: ' + JSON.stringify(rows));
  // grow_alloc started from nothing and now holds tr.live.grow_alloc.
  check(g.last - g.first > 0.5 * tr.live.grow_alloc, 'grow_alloc rises: ' + mib(g.first) + ' -> ' + mib(g.last) + ' (planted ' + mib(tr.live.grow_alloc) + ')');
  // The series themselves, from the page's data, after the planted fills
  // (done before the program's first second is over).
  const ser = await page.evaluate(() => {
    const from = VKM.app.snapshot().started_at + 2000;
    const S = VKM.flame.siteSeries(VKM.history.points().filter(p => p.t_ms >= from), VKM.history.sites(), []);
    const pick = fn => { const j = S.sites.findIndex(x => x.name === fn); return j < 0 ? null : Array.from(S.vals[j]); };
    return { g: pick('grow_alloc'), a: pick('flat_a_alloc') };
  });
  let rises = 0, falls = 0;
  for (let i = 1; i < ser.g.length; i++) { if (ser.g[i] > ser.g[i - 1]) rises++; else if (ser.g[i] < ser.g[i - 1] - 512 * 1024) falls++; }
  check(rises > 10 && falls === 0, 'grow_alloc series: ' + rises + ' rises, ' + falls + ' falls');
  const amax = Math.max(...ser.a.filter(v => v > 0)), amin = Math.min(...ser.a.filter(v => v > 0));
  check(amax - amin < 0.1 * tr.live.flat_a_alloc, 'flat_a_alloc between ' + mib(amin) + ' and ' + mib(amax));
  await page.locator('#panel-sitehist').screenshot({ path: path.join(ARTIFACTS, 'sitehist.png') });
  await page.close();
  return 'grow_alloc ' + mib(g.first) + ' -> ' + mib(g.last) + ' (' + rises + ' rises), flat_a_alloc ' + mib(amin) + '..' + mib(amax) + ' (planted ' + mib(tr.live.flat_a_alloc) + ')';
};

/* Pin, then grow: the planted growth is the largest delta everywhere; the
 * pin survives a reload; the flame graph's diff colours the growth. */
T.pin_then_grow = async (ctx, url) => {
  const page = await open(ctx, url, '?profile=server', 'pin');
  await setGrowing(false);
  await sleep(300);
  await freshStacks(page);
  await page.click('#pin');
  await page.waitForFunction(() => document.body.getAttribute('data-pinned') === '1');
  const t0 = truth(), live0 = await page.evaluate(() => VKM.pin.get().values.live);
  await setGrowing(true);
  await sleep(4000);
  await setGrowing(false);
  await sleep(300);
  await freshStacks(page);
  await page.waitForFunction(() => VKM.app.snapshot().seq > 0);
  const t1 = truth(), grew = t1.live.grow_alloc - t0.live.grow_alloc;
  check(grew > 4 * MiB, 'planted growth ' + mib(grew));
  const got = await page.evaluate(() => {
    VKM.app.render(true);
    const heapRows = Array.from(document.querySelectorAll('#panel-heap table.sites.by-growth'))[0];
    const first = heapRows ? heapRows.querySelector('tbody tr') : null;
    return { heapFirst: first ? first.querySelector('.fn').textContent : null,
             heapDelta: first ? +first.querySelector('.delta').dataset.delta : null,
             err: (VKM.app.snapshot().sites.find(x => x.frames[0].function === 'grow_alloc') || {}).live_err_bytes,
             liveDelta: (document.querySelector('#keys .k-live .delta') || {}).dataset,
             shFirst: (document.querySelector('#panel-sitehist .sh-row') || {}).dataset };
  });
  check(got.heapFirst && got.heapFirst.startsWith('grow_alloc'), 'heap table by growth starts with grow_alloc: ' + got.heapFirst);
  // The change of an estimate: within 4 standard errors of the site's (its
  // new samples' error is part of the site's whole error).
  const tol = 4 * got.err + 256 * 1024;
  check(Math.abs(got.heapDelta - grew) <= tol, 'its delta ' + mib(got.heapDelta) + ' vs planted ' + mib(grew) + ' (tolerance ' + mib(tol) + ')');
  const liveNow = await page.evaluate(() => VKM.app.snapshot().live.bytes);
  check(got.liveDelta && Math.abs(+got.liveDelta.delta - (liveNow - live0)) < 1 && Math.abs(+got.liveDelta.delta - grew) < 1 * MiB,
        'key strip live heap delta ' + (got.liveDelta && mib(+got.liveDelta.delta)) + ' vs planted ' + mib(grew));
  check(got.shFirst && got.shFirst.fn === 'grow_alloc', 'heap-by-site legend by growth starts with grow_alloc: ' + JSON.stringify(got.shFirst));
  // Flame diff: grow_alloc grew the most of every leaf.
  await page.check('#flame-diff');
  await page.evaluate(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))));
  const d = await page.evaluate(() => {
    const t = VKM.flame.tree(), out = [];
    for (let i = 1; i < t.n; i++) if (t.end[i] === i + 1) { const o = VKM.flame.info(i); out.push({ fn: o.function, delta: o.delta }); }
    out.sort((a, b) => b.delta - a.delta);
    return out;
  });
  check(d.length && d[0].fn === 'grow_alloc', 'largest flame delta: ' + JSON.stringify(d.slice(0, 3)));
  check(Math.abs(d[0].delta - grew) <= tol, 'flame delta ' + mib(d[0].delta) + ' vs planted ' + mib(grew));
  check(d.slice(1).every(x => Math.abs(x.delta) < 0.5 * d[0].delta), 'every other leaf changed less: ' + JSON.stringify(d.slice(1, 4)));
  await page.locator('#panel-flame').screenshot({ path: path.join(ARTIFACTS, 'flame-diff.png') });
  await page.screenshot({ path: path.join(ARTIFACTS, 'pinned.png') });
  // The pin survives a reload.
  await page.reload();
  await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'live', null, { timeout: 15000 });
  await page.waitForFunction(() => document.querySelector('#keys .k-live .delta') !== null, null, { timeout: 5000 });
  const st = await page.evaluate(() => document.getElementById('pin-state').textContent);
  check(/vs pinned/.test(st), 'pin kept across a reload: ' + st);
  await page.click('#pin');   // unpin
  await page.waitForFunction(() => document.body.getAttribute('data-pinned') === '0' && !document.querySelector('#keys .delta'));
  await page.close();
  return 'grew ' + mib(grew) + '; heap table ' + mib(got.heapDelta) + ', flame diff ' + mib(d[0].delta);
};

/* Compare to file, offline: a report imported, an earlier report pinned
 * from a file; no request reaches the agent after the import. A broken file
 * gets a message. */
T.compare_to_file = async (ctx, url) => {
  const get = async p => { const r = await fetch(url + p); if (!r.ok) throw new Error(p + ': HTTP ' + r.status); return r.text(); };
  const before = path.join(tmpdir, 'before.json'), after = path.join(tmpdir, 'after.json'), broken = path.join(tmpdir, 'broken.json');
  const tb = truth();
  fs.writeFileSync(before, await get('api/report'));
  await setGrowing(true);
  await sleep(3000);
  await setGrowing(false);
  await sleep(400);
  const ta = truth();
  fs.writeFileSync(after, await get('api/report'));
  fs.writeFileSync(broken, '{"schema": "valkmem.report/1", "live": ');
  const grew = ta.live.grow_alloc - tb.live.grow_alloc;
  const afterSite = JSON.parse(fs.readFileSync(after, 'utf8')).sites.find(x => x.frames[0].function === 'grow_alloc');
  const tol = 4 * afterSite.live_err_bytes + 256 * 1024;
  const page = await open(ctx, url, '?profile=server', 'compare');
  await page.setInputFiles('#import-file', after);
  await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'offline', null, { timeout: 10000 });
  const asked = [];
  await page.route(u => /\/api\//.test(u.pathname), r => { asked.push(r.request().url()); r.abort(); });
  await page.setInputFiles('#pin-file', broken);
  await page.waitForFunction(() => /compare to file: .*broken\.json/.test(document.getElementById('banner').textContent), null, { timeout: 5000 });
  const msg = await page.evaluate(() => document.getElementById('banner').textContent);
  check(/not JSON/.test(msg), 'broken file message: ' + msg);
  check(await page.evaluate(() => document.body.getAttribute('data-pinned')) === '0', 'a broken file pins nothing');
  await page.setInputFiles('#pin-file', before);
  await page.waitForFunction(() => document.body.getAttribute('data-pinned') === '1', null, { timeout: 5000 });
  await page.waitForFunction(() => document.querySelector('#panel-heap table.by-growth tbody tr .delta') !== null, null, { timeout: 5000 });
  const got = await page.evaluate(() => {
    const tr = document.querySelector('#panel-heap table.by-growth tbody tr');
    return { fn: tr.querySelector('.fn').textContent, delta: +tr.querySelector('.delta').dataset.delta,
             state: document.getElementById('pin-state').textContent, badge: document.getElementById('conn').textContent };
  });
  check(got.fn.startsWith('grow_alloc'), 'largest growth: ' + got.fn);
  check(Math.abs(got.delta - grew) <= tol, 'delta ' + mib(got.delta) + ' vs planted ' + mib(grew) + ' (tolerance ' + mib(tol) + ')');
  check(/before\.json/.test(got.state), 'pin names the file: ' + got.state);
  await page.check('#flame-diff');
  await page.evaluate(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))));
  const g = await page.evaluate(() => { const f = VKM.flame.find('grow_alloc')[0]; return f ? VKM.flame.info(f.node) : null; });
  check(g && Math.abs(g.delta - grew) <= tol, 'offline flame diff of grow_alloc: ' + (g && mib(g.delta)));
  await page.screenshot({ path: path.join(ARTIFACTS, 'compare-to-file.png') });
  check(asked.length === 0, 'offline: requests to the agent after the import: ' + asked.slice(0, 3).join(' '));
  await page.click('#pin');
  await page.close();
  return got.badge + '; grow_alloc ' + mib(got.delta) + ' (planted ' + mib(grew) + '); broken file: "' + msg.replace('×', '').trim() + '"';
};

/* 10 000 synthetic stacks, as a live agent would send them: each new stack
 * extends part of an earlier one by one to three calls (so stacks share
 * their upper frames, as real programs' do), 3000 functions, depth up to 40. */
function synthStacks(n) {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const frames = [], fidx = new Map(), seen = new Set(), stacks = [], paths = [];
  const F = name => { if (!fidx.has(name)) { fidx.set(name, frames.length); frames.push([name, 'libsynth.so', 4096 + frames.length * 16, 'synth.c', 10 + frames.length]); } return fidx.get(name); };
  paths.push([F('main'), F('event_loop')]);
  while (stacks.length < n) {
    const base = paths[Math.floor(rnd() * paths.length)];
    const p = base.slice(0, Math.max(1, Math.ceil(base.length * (0.5 + 0.5 * rnd()))));
    for (let k = 1 + Math.floor(rnd() * 3); k > 0 && p.length < 40; k--) p.push(F('fn_' + Math.floor(rnd() * 3000)));
    const key = p.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    paths.push(p);
    const live = 4096 + Math.floor(Math.pow(rnd(), 3) * 4e6), alloc = live * 2 + Math.floor(rnd() * 4e6);
    stacks.push(['syn' + stacks.length.toString(16).padStart(13, '0'), p.slice().reverse(), live, live >> 6, alloc, alloc >> 6, Math.round(Math.sqrt(live) * 60), Math.round(Math.sqrt(alloc) * 60), 0]);
  }
  return { schema: 'valkmem.stacks/1', sample_bytes: 524288, calibration: null, frames, stacks };
}

/* Every panel open, 10 000 stacks in the flame graph: SSE event handling,
 * frame rate and JS heap against the budgets. */
T.performance_10k = async (ctx, url) => {
  // Every answer differs a little (as a live agent's do), so every refresh
  // is parsed and rebuilt: that cost is part of what is measured.
  const syn = synthStacks(10000);
  let served = 0;
  const page = await newPage(ctx, 'perf');
  await page.route('**/api/stacks', r => {
    syn.stacks[served % syn.stacks.length][2] += 65536;
    served++;
    r.fulfill({ contentType: 'application/json', body: JSON.stringify(syn) });
  });
  await page.goto(url + '?profile=all');
  await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'live', null, { timeout: 15000 });
  await page.waitForFunction(() => VKM.flame.tree() && VKM.flame.tree().stacks === 10000, null, { timeout: 20000 });
  await sleep(1500);
  const built = await page.evaluate(() => ({ s: Object.assign({}, VKM.flame.stats()), nodes: VKM.flame.tree().n }));
  const builds0 = built.s.builds;
  await page.locator('#panel-flame').screenshot({ path: path.join(ARTIFACTS, 'flame-10k.png') });
  await page.evaluate(() => {
    window.__vkmPerf.events.length = 0;
    window.__raf = []; let last = performance.now();
    (function f(t) { window.__raf.push(t - last); last = t; if (window.__raf.length < 100000) requestAnimationFrame(f); })(last);
    requestAnimationFrame(function g(t) { last = t; });
  });
  // Interaction meanwhile: hover sweeps and a search, as a user would.
  const box = await page.locator('#flame-canvas').boundingBox();
  const t0 = Date.now();
  let k = 0;
  while (await page.evaluate(() => window.__vkmPerf.events.length) < N_EVENTS) {
    if (Date.now() - t0 > N_EVENTS * 250 + 20000) throw new Error('events too slow: ' + await page.evaluate(() => window.__vkmPerf.events.length));
    await page.mouse.move(box.x + 20 + (k * 37) % (box.width - 40), box.y + 10 + (k * 17) % Math.max(20, box.height - 20));
    if (k === 10) await page.fill('#flame-search', 'fn_1');
    k++;
    await sleep(250);
  }
  const r = await page.evaluate(() => ({ ev: window.__vkmPerf.events.slice(), raf: window.__raf.slice(2), s: VKM.flame.stats(),
    mem: performance.memory ? performance.memory.usedJSHeapSize : 0 }));
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.collectGarbage');
  const heap = await cdp.send('Runtime.getHeapUsage');
  await cdp.detach();
  await page.close();
  const f = { ev_p50: pctl(r.ev, 50), ev_p95: pctl(r.ev, 95), ev_max: Math.max(...r.ev), raf_p50: pctl(r.raf, 50), raf_p95: pctl(r.raf, 95),
              fps: 1000 / (r.raf.reduce((a, b) => a + b, 0) / r.raf.length), heap_mb: heap.usedSize / MiB, mem_mb: r.mem / MiB };
  console.log('# performance (profile=all, 10 000 stacks, ' + built.nodes + ' tree nodes; ' + r.ev.length + ' SSE events, ' + r.raf.length + ' frames): ' +
              'event p50 ' + f.ev_p50.toFixed(2) + ' ms, p95 ' + f.ev_p95.toFixed(2) + ' ms, max ' + f.ev_max.toFixed(1) + ' ms; ' +
              'frame interval p50 ' + f.raf_p50.toFixed(2) + ' ms, p95 ' + f.raf_p95.toFixed(2) + ' ms (' + f.fps.toFixed(1) + ' fps mean); ' +
              'JS heap after GC ' + f.heap_mb.toFixed(2) + ' MB (performance.memory before GC ' + f.mem_mb.toFixed(2) + ' MB); ' +
              'flame rebuilt ' + (r.s.builds - builds0) + ' times, build ' + r.s.build_ms.toFixed(1) + ' ms, draw ' + r.s.draw_ms.toFixed(1) + ' ms (' + r.s.drawn + ' frames drawn); ' + (body => (body / MiB).toFixed(1))(JSON.stringify(syn).length) + ' MB per api/stacks answer');
  check(r.s.builds - builds0 >= N_EVENTS / 20, 'the flame graph was rebuilt from fresh stacks while measuring: ' + (r.s.builds - builds0) + ' times');
  check(r.ev.length >= N_EVENTS, 'events measured');
  check(f.ev_p95 < 16, 'SSE event handling p95 ' + f.ev_p95.toFixed(2) + ' ms >= 16 ms');
  check(f.raf_p95 <= 17, 'frame interval p95 ' + f.raf_p95.toFixed(2) + ' ms > 17 ms (under 60 fps)');
  check(f.heap_mb < 10, 'JS heap ' + f.heap_mb.toFixed(2) + ' MB >= 10 MB');
  return 'event p95 ' + f.ev_p95.toFixed(2) + ' ms, frame p95 ' + f.raf_p95.toFixed(2) + ' ms, heap ' + f.heap_mb.toFixed(2) + ' MB';
};

/* Leak suspects are marked: once the agent flags the growing site (it
 * needs ~20 s of steady growth), its band in heap-by-site says so and its
 * frames in the flame graph carry the mark. */
T.leak_marked = async (ctx, url) => {
  const page = await open(ctx, url, '?profile=server', 'leak');
  await setGrowing(true);
  try {
    await page.waitForFunction(() => (VKM.app.snapshot().leaks || []).some(l => l.function === 'grow_alloc'), null, { timeout: 45000, polling: 500 });
  } finally { await setGrowing(false); }
  await page.waitForFunction(() => { const r = document.querySelector('#panel-sitehist .sh-row[data-fn="grow_alloc"]'); return r && r.classList.contains('is-leak'); }, null, { timeout: 5000 });
  await freshStacks(page);
  const f = await frame(page, 'grow_alloc');
  const info = await page.evaluate(n => VKM.flame.info(n), f.node);
  check(info.leak, 'grow_alloc frame marked as a leak suspect');
  const flat = await frame(page, 'flat_a_alloc');
  check(!(await page.evaluate(n => VKM.flame.info(n), flat.node)).leak, 'flat_a_alloc not marked');
  await page.close();
  return 'grow_alloc flagged and marked in both views';
};

/* Every view, for the record (and the README's picture). */
T.screenshots = async (ctx, url) => {
  const page = await open(ctx, url, '?profile=server', 'shots');
  await freshStacks(page);
  await page.setViewportSize({ width: 1440, height: 1300 });
  await page.screenshot({ path: path.join(ARTIFACTS, 'server-profile.png') });
  await page.close();
  return 'in ' + ARTIFACTS;
};

(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  let url, ctx;
  try {
    url = await startProg();
    console.log('# target ' + url + ' (' + opt('prog') + ' under ' + opt('lib') + ')');
    const dir = fs.mkdtempSync(path.join(tmpdir, 'profile-'));
    ctx = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM, headless: true, viewport: { width: 1440, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
             '--disable-component-update', '--disable-sync', '--enable-precise-memory-info'],
    });
  } catch (e) {
    console.log('not ok 0 - setup: ' + e.message);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  const results = [];
  let i = 0;
  for (const name of Object.keys(T).filter(n => !ONLY || ONLY.includes(n))) {
    i++;
    const before = consoleErrors.length, t0 = Date.now();
    try {
      const note = await T[name](ctx, url);
      const errs = consoleErrors.slice(before);
      if (errs.length) throw new Error('console errors: ' + errs.slice(0, 5).join(' | '));
      results.push(true);
      console.log('ok ' + i + ' - ' + name + ' (' + ((Date.now() - t0) / 1000).toFixed(1) + ' s)' + (note ? ' # ' + note : ''));
    } catch (e) {
      results.push(false);
      console.log('not ok ' + i + ' - ' + name + ': ' + e.message.split('\n')[0]);
      for (const p of ctx.pages()) await p.close().catch(() => {});
    }
  }
  if (offsite.length) { results.push(false); console.log('not ok - requests off 127.0.0.1: ' + offsite.slice(0, 3).join(' ')); }
  await ctx.close().catch(() => {});
  if (prog && prog.exitCode === null) { prog.kill('SIGTERM'); await sleep(300); }
  const pass = results.filter(x => x).length, fail = results.length - pass;
  console.log('# screenshots: ' + ARTIFACTS);
  console.log(pass + ' passed, ' + fail + ' failed');
  process.exit(fail ? 1 : 0);
})();
