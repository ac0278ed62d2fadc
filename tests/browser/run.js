#!/usr/bin/env node
// run.js - the dashboard in a real headless Chromium, driven by playwright-core.
//
// Target (one of):
//   --demo PROG --lib LIBVALKMEM [-- ARGS...]   start PROG under LD_PRELOAD=LIB with
//                                               VALKMEM_URL_FILE and test the real agent
//   --url URL                                   an agent (or fake-server.js) already running
//   --fake                                      start fake-server.js (development only)
// With --cli VALKMEM (the launcher), `valkmem view` of a saved report is tested too.
// Options: --artifacts DIR (screenshots; default ./artifacts), --events N
// (SSE events for the performance figures, default 300), --only NAME[,NAME].
//
// Prints one "ok"/"not ok" line per test, the performance figures, and a last
// line "N passed, N failed". Exit 0 when all pass, 1 when one fails, 77 when
// Chromium or playwright-core is not there (ctest SKIP_RETURN_CODE).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const SKIP = 77;
const CHROMIUM = process.env.VALKMEM_CHROMIUM || '/usr/bin/chromium';
const HERE = __dirname;

/* ----------------------------------------------------------- arguments */
const argv = process.argv.slice(2);
const dd = argv.indexOf('--');
const progArgs = dd >= 0 ? argv.slice(dd + 1) : [];
const opts = dd >= 0 ? argv.slice(0, dd) : argv;
function opt(name, def) { const i = opts.indexOf('--' + name); return i >= 0 ? opts[i + 1] : def; }
function flag(name) { return opts.includes('--' + name); }
const ARTIFACTS = path.resolve(opt('artifacts', path.join(HERE, 'artifacts')));
const N_EVENTS = +opt('events', 300);
const ONLY = opt('only', '') ? opt('only', '').split(',') : null;

let chromium;
try { ({ chromium } = require(path.join(HERE, 'node_modules', 'playwright-core'))); }
catch (e) { console.log('SKIP: playwright-core is not installed (run `npm ci` in tests/browser): ' + e.message); process.exit(SKIP); }
if (!fs.existsSync(CHROMIUM)) { console.log('SKIP: no Chromium at ' + CHROMIUM); process.exit(SKIP); }

/* The profiles and the panels each must show (the contract of profiles.js,
 * restated here so a change there has to be deliberate). */
const PROFILES = {
  server: ['memory', 'pressure', 'heap', 'flame', 'sitehist', 'gc', 'lifetimes', 'pools', 'processes'],
  game: ['frames', 'memory', 'gc', 'pressure', 'pools', 'processes'],
  desktop: ['memory', 'idle', 'pressure', 'heap', 'flame', 'sitehist', 'lifetimes', 'processes'],
  repl: ['evals', 'memory', 'heap', 'flame', 'sitehist', 'gc', 'lifetimes', 'processes'],
  lsp: ['stability', 'memory', 'heap', 'flame', 'sitehist', 'lifetimes', 'gc', 'pressure', 'processes'],
  embedded: ['planner', 'memory', 'pools', 'heap', 'pressure', 'processes'],
};
/* "processes" (the process tree) shows only when the target serves a tree
 * of more than one process: the panels a profile shows on that target. */
function profilePanels(name, tree) { return PROFILES[name].filter(id => tree > 1 || id !== 'processes'); }
const ALL_PANELS = ['memory', 'pressure', 'heap', 'flame', 'sitehist', 'gc', 'lifetimes', 'pools', 'frames', 'evals', 'stability', 'idle', 'planner'];
/* Which snapshot section feeds each runtime-API panel: a null section means
 * the program did not report it, and the panel must say so, not invent. */
const SECTION = { gc: 'gc', pools: 'pools', frames: 'frames', evals: 'evals' };

/* -------------------------------------------------------------- target */
let demo = null, fake = null, tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'vkm-browser-'));
const fakes = [];   // fake-server.js instances some tests start for themselves
function cleanup() {
  for (const p of [demo, fake].concat(fakes)) if (p && p.exitCode === null && p.signalCode === null) { try { p.kill('SIGKILL'); } catch (e) { /* gone */ } }
  try { fs.rmSync(tmpdir, { recursive: true, force: true }); } catch (e) { /* ignore */ }
}
process.on('exit', cleanup);
process.on('SIGTERM', () => process.exit(1));
process.on('SIGINT', () => process.exit(1));

function sleep(ms) { return new Promise(r => setTimeout(r, ms)); }
async function waitUrl(file, proc, what) {
  const t0 = Date.now();
  while (Date.now() - t0 < 15000) {
    if (fs.existsSync(file)) { const u = fs.readFileSync(file, 'utf8').trim(); if (u) return u.endsWith('/') ? u : u + '/'; }
    if (proc.exitCode !== null) throw new Error(what + ' exited (' + proc.exitCode + ') before writing its URL; see ' + proc._log);
    await sleep(50);
  }
  throw new Error(what + ' wrote no URL to ' + file + ' within 15 s; see ' + proc._log);
}
/* One more fake-server.js with these options (killed at exit): its URL. */
async function startFake(args, tag) {
  const urlFile = path.join(tmpdir, 'url-' + tag), log = path.join(tmpdir, 'fake-' + tag + '.log');
  const p = spawn(process.execPath, [path.join(HERE, 'fake-server.js'), '--url-file', urlFile].concat(args),
                  { stdio: ['ignore', fs.openSync(log, 'w'), fs.openSync(log, 'a')] });
  p._log = log;
  fakes.push(p);
  return waitUrl(urlFile, p, 'fake-server.js ' + args.join(' '));
}
async function startTarget() {
  if (opt('url')) return opt('url');
  const urlFile = path.join(tmpdir, 'url');
  if (flag('fake')) {
    const log = path.join(tmpdir, 'fake.log');
    fake = spawn(process.execPath, [path.join(HERE, 'fake-server.js'), '--url-file', urlFile],
                 { stdio: ['ignore', fs.openSync(log, 'w'), fs.openSync(log, 'a')] });
    fake._log = log;
    return waitUrl(urlFile, fake, 'fake-server.js');
  }
  const prog = opt('demo'), lib = opt('lib');
  if (!prog || !lib) { console.error('usage: run.js --demo PROG --lib LIB | --url URL | --fake'); process.exit(2); }
  const log = path.join(ARTIFACTS, 'demo.log');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  demo = spawn(prog, progArgs, { stdio: ['ignore', fs.openSync(log, 'w'), fs.openSync(log, 'a')],
    env: Object.assign({}, process.env, { LD_PRELOAD: lib, VALKMEM_URL_FILE: urlFile }) });
  demo._log = log;
  return waitUrl(urlFile, demo, path.basename(prog));
}

/* ------------------------------------------------------------- harness */
const results = [];
const consoleErrors = [];
let figures = [];
function check(cond, what) { if (!cond) throw new Error(what); }
function eq(a, b, what) { if (a !== b) throw new Error(what + ': got ' + JSON.stringify(a) + ', want ' + JSON.stringify(b)); }
function pctl(xs, p) { const s = xs.slice().sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))] : NaN; }
function mean(xs) { return xs.reduce((a, b) => a + b, 0) / (xs.length || 1); }

async function launch() {
  const dir = fs.mkdtempSync(path.join(tmpdir, 'profile-'));
  return chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1440, height: 900 }, acceptDownloads: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
}
function watch(page, tag) {
  page.on('console', m => {
    // An agent without a process tree answers api/processes with 404: the
    // dashboard expects that (and stops asking), Chromium logs it anyway.
    if (m.type() === 'error' && /status of 404/.test(m.text()) && /\/api\/processes$/.test((m.location() || {}).url || '')) return;
    if (m.type() === 'error' || (m.type() === 'warning' && /^valkmem:/.test(m.text()))) consoleErrors.push(tag + ': console.' + m.type() + ': ' + m.text());
  });
  page.on('pageerror', e => consoleErrors.push(tag + ': page error: ' + e.message));
}
async function api(url, p) {
  const res = await fetch(url + p);
  if (!res.ok) throw new Error('GET ' + p + ': HTTP ' + res.status);
  return res.json();
}
/* How many processes the target's api/processes lists (0: 404, no tree). */
async function treeSize(url) {
  const res = await fetch(url + 'api/processes');
  if (res.status === 404) return 0;
  if (!res.ok) throw new Error('GET api/processes: HTTP ' + res.status);
  return (await res.json()).processes.length;
}
async function ticks(page) { return page.evaluate(() => window.__vkmPerf.count); }
async function waitTicks(page, n, ms) {
  const start = await ticks(page), t0 = Date.now();
  while (Date.now() - t0 < (ms || 10000)) { if (await ticks(page) >= start + n) return; await sleep(50); }
  throw new Error('fewer than ' + n + ' SSE ticks in ' + (ms || 10000) + ' ms (state: ' +
                  await page.evaluate(() => document.getElementById('conn').textContent) + ')');
}
async function openAt(ctx, url, q, tag) {
  const page = await ctx.newPage();
  watch(page, tag || q || '/');
  await page.goto(url + (q || ''));
  await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'live', null, { timeout: 15000 });
  await waitTicks(page, 3);
  return page;
}
/* The panels a page shows, in screen order. */
async function visible(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll('#grid .panel'))
    .filter(s => !s.hidden).sort((a, b) => (+a.style.order) - (+b.style.order)).map(s => s.dataset.panel));
}

/* -------------------------------------------------------------- tests */
const T = {};

/* Every panel of every profile renders the snapshot's values; a panel whose
 * section is null says "no runtime API data" instead. */
T.panels_real_values = async (ctx, url) => {
  const page = await openAt(ctx, url, '?profile=all', 'panels');
  await waitTicks(page, 5);
  const api_snap = await api(url, 'api/snapshot');
  // The DOM and the snapshot it shows, read together (render(true) brings
  // panels that are offscreen, and so updated at 1 Hz, up to date first).
  const got = await page.evaluate(() => {
    VKM.app.render(true);
    const out = { snap: VKM.app.snapshot() };
    document.querySelectorAll('#grid .panel').forEach(s => {
      out[s.dataset.panel] = { has: s.dataset.hasData, text: s.querySelector('.body').innerText,
                               nums: Array.from(s.querySelectorAll('.body .num')).map(n => n.textContent) };
    });
    out.proc = document.getElementById('proc').innerText;
    return out;
  });
  const snap = got.snap;
  // The page shows the agent's data: the same process, a tick of now.
  eq(snap.pid, api_snap.pid, 'pid of the page\'s snapshot');
  check(Math.abs(snap.seq - api_snap.seq) <= 20, 'page tick ' + snap.seq + ' vs agent tick ' + api_snap.seq);
  check(got.proc.includes(snap.program) && got.proc.includes(String(snap.pid)), 'header names ' + snap.program + ' pid ' + snap.pid + ': ' + got.proc);
  const missing = [];
  for (const id of ALL_PANELS) {
    const g = got[id];
    check(g, 'panel ' + id + ' exists');
    const sec = SECTION[id];
    const absent = sec && (snap[sec] === null || (Array.isArray(snap[sec]) && !snap[sec].length));
    if (absent) {
      check(/no runtime API data/.test(g.text), 'panel ' + id + ': section ' + sec + ' is empty and the panel must say "no runtime API data"');
      missing.push(id);
      continue;
    }
    eq(g.has, '1', 'panel ' + id + ' data-has-data');
    // Every number is a number ("n/a" only where the agent says null = not
    // known, and the tooltip says why); never NaN, undefined or a dash.
    check(g.nums.length > 0 && g.nums.some(t => /\d/.test(t)) &&
          g.nums.every(t => (/\d/.test(t) || t === 'n/a') && !/NaN|undefined|Infinity|null/.test(t)),
          'panel ' + id + ' numbers: ' + JSON.stringify(g.nums.filter(t => !/\d/.test(t) || /NaN|undefined|Infinity|null/.test(t)).slice(0, 10)));
  }
  // Values from the snapshot appear where they belong.
  const byId = {}; (snap.sites || []).forEach(s => { byId[s.id] = s; });
  const topLive = byId[(snap.sites_by_live || [])[0]];
  if (topLive && topLive.frames[0].function) check(got.heap.text.includes(topLive.frames[0].function), 'heap panel names the top live site ' + topLive.frames[0].function);
  for (const p of snap.pools || []) check(got.pools.text.includes(p.name), 'pools panel names pool ' + p.name);
  if (snap.gc) {
    const shown = +(got.gc.nums[0] || '').replace(/[^\d.]/g, '');
    check(shown >= snap.gc.cycles, 'GC cycles shown (' + got.gc.nums[0] + ') >= snapshot cycles ' + snap.gc.cycles);
  }
  if (snap.evals && snap.evals.recent.length) {
    const labels = snap.evals.recent.map(e => e.label);
    check(labels.some(l => got.evals.text.includes(l)), 'evals panel shows one of ' + JSON.stringify(labels.slice(-3)));
  }
  if (snap.frames && snap.frames.recent.length) {
    const z = Object.keys(snap.frames.recent[snap.frames.recent.length - 1].zones || {});
    for (const name of z) check(got.frames.text.includes(name), 'frame budget shows zone ' + name);
  }
  await page.close();
  return missing.length ? 'sections not reported by the program: ' + missing.join(', ') : 'all ' + ALL_PANELS.length + ' panels have data';
};

/* Profiles: the switch hides/shows the right panels, key metrics sit above
 * the fold at 1440x900, the choice survives a reload (URL and localStorage),
 * and a screenshot of each is saved. */
T.profiles = async (ctx, url) => {
  const tree = await treeSize(url);
  const page = await openAt(ctx, url, '', 'profiles');
  // A tree's panel appears with the first api/processes answer.
  const treeShown = () => tree > 1 ? page.waitForFunction(() => VKM.processes.available(), null, { timeout: 5000 }) : null;
  await treeShown();
  eq((await visible(page)).join(), profilePanels('server', tree).join(), 'default profile panels');
  for (const name of Object.keys(PROFILES)) {
    await page.click('#profiles button[value="' + name + '"]');
    eq((await visible(page)).join(), profilePanels(name, tree).join(), name + ': visible panels');
    eq(await page.getAttribute('#profiles button[value="' + name + '"]', 'aria-pressed'), 'true', name + ': button pressed');
    await page.reload();
    await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'live', null, { timeout: 15000 });
    await waitTicks(page, 3);
    await treeShown();
    eq(await page.getAttribute('body', 'data-profile'), name, name + ': survives a reload');
    eq((await visible(page)).join(), profilePanels(name, tree).join(), name + ': panels after reload');
    // Key metrics and the first panel's headline numbers without scrolling.
    const fold = await page.evaluate(() => {
      const keys = document.querySelector('#keys .keys').getBoundingClientRect();
      const first = Array.from(document.querySelectorAll('#grid .panel')).filter(s => !s.hidden)
        .sort((a, b) => (+a.style.order) - (+b.style.order))[0];
      const m = first.querySelector('.metric, .big, .m-value').getBoundingClientRect();
      return { keys: keys.bottom, first: m.bottom, sy: window.scrollY, h: window.innerHeight };
    });
    check(fold.sy === 0 && fold.keys <= fold.h && fold.first <= fold.h, name + ': key metrics above the fold ' + JSON.stringify(fold));
    await waitTicks(page, 3);
    await page.screenshot({ path: path.join(ARTIFACTS, 'profile-' + name + '.png') });
  }
  // localStorage alone (no ?profile=) brings the last choice back.
  await page.click('#profiles button[value="game"]');
  await page.goto(url);
  await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'live', null, { timeout: 15000 });
  eq(await page.getAttribute('body', 'data-profile'), 'game', 'remembered in localStorage');
  await treeShown();
  eq((await visible(page)).join(), profilePanels('game', tree).join(), 'remembered profile panels');
  await page.click('#profiles button[value="server"]');
  await page.close();
  return 'six profiles, screenshots in ' + ARTIFACTS;
};

/* The range selector asks the agent for that range and changes the span. */
T.range_selector = async (ctx, url) => {
  const page = await openAt(ctx, url, '?profile=server', 'range');
  const SPAN = { '1m': 60e3, '5m': 300e3, '1h': 3600e3, '10h': 36000e3 };
  const seen = [];
  for (const r of ['5m', '1h', '10h', '1m']) {
    const req = page.waitForRequest(q => q.url().includes('api/history?range=' + r), { timeout: 5000 });
    await page.click('#ranges button[value="' + r + '"]');
    await req;
    await page.waitForFunction(r => document.getElementById('span').textContent.startsWith('span ' + r), r, { timeout: 5000 });
    const got = await page.evaluate(() => ({
      span: +document.getElementById('span').dataset.spanMs,
      chart: +document.querySelector('#panel-memory canvas.spark').dataset.spanMs,
      pressed: document.querySelector('#ranges button[aria-pressed="true"]').value,
      pts: VKM.history.points().length, range: VKM.history.range(),
    }));
    eq(got.span, SPAN[r], r + ': span'); eq(got.chart, SPAN[r], r + ': chart x span'); eq(got.pressed, r, r + ': pressed');
    eq(got.range, r, r + ': history range');
    check(got.pts > 0, r + ': has points');
    seen.push(r + '=' + got.pts + 'pts');
    if (r === '5m') {
      // A coarse range follows the agent by re-fetching once per step.
      const last = () => page.evaluate(() => { const p = VKM.history.points(); return p[p.length - 1].t_ms; });
      const t1 = await last();
      await page.waitForFunction(t => { const p = VKM.history.points(); return p[p.length - 1].t_ms > t; }, t1, { timeout: 5000 });
      seen.push('(5m follows: +' + ((await last()) - t1) + ' ms)');
    }
  }
  // Dashboard state stays bounded (issue: < 10 MB).
  const size = await page.evaluate(() => JSON.stringify({ s: VKM.app.snapshot(), h: VKM.history.points() }).length);
  check(size < 10 * 1048576, 'state size ' + size);
  await page.close();
  return seen.join(' ') + '; state ' + (size / 1024).toFixed(0) + ' KiB';
};

/* Every number on screen has a tooltip that is not just the panel's. */
T.tooltips = async (ctx, url) => {
  const page = await openAt(ctx, url, '?profile=all', 'tooltips');
  await page.click('#ranges button[value="1m"]');
  const bad = await page.evaluate(() => {
    const out = [];
    let n = 0;
    const roots = document.querySelectorAll('#keys, #grid .panel:not([hidden]) .body, #grid .panel:not([hidden]) .static, #foot, #top');
    roots.forEach(root => {
      const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
      for (let t = walk.nextNode(); t; t = walk.nextNode()) {
        if (!/\d/.test(t.nodeValue)) continue;
        const e = t.parentElement;
        if (e.closest('option, button, select, code')) continue;   // control labels, eval source text
        n++;
        const tipEl = e.closest('[title]');
        if (!tipEl || !root.contains(tipEl) && root.id !== 'top' || tipEl.getAttribute('title').trim().length < 12 || tipEl.classList.contains('panel'))
          out.push((e.closest('.panel') || root).id + ': "' + t.nodeValue.trim() + '"');
      }
    });
    document.querySelectorAll('#grid .panel:not([hidden]) canvas').forEach(c => { n++; if (!c.title) out.push('canvas without title in ' + c.closest('.panel').id); });
    return { n, out };
  });
  await page.close();
  check(bad.out.length === 0, bad.out.length + ' numbers without a tooltip: ' + bad.out.slice(0, 8).join('; '));
  check(bad.n > 50, 'found only ' + bad.n + ' numbers');
  return bad.n + ' numbers and charts, each with a tooltip';
};

/* j/k move between panels; space pauses and resumes the stream. */
T.keyboard = async (ctx, url) => {
  const page = await openAt(ctx, url, '?profile=server', 'keyboard');
  const act = () => page.evaluate(() => document.activeElement && document.activeElement.dataset.panel);
  await page.keyboard.press('j'); eq(await act(), PROFILES.server[0], 'j -> first panel');
  await page.keyboard.press('j'); eq(await act(), PROFILES.server[1], 'j -> second panel');
  await page.keyboard.press('j'); eq(await act(), PROFILES.server[2], 'j -> third panel');
  await page.keyboard.press('k'); eq(await act(), PROFILES.server[1], 'k -> back to second');
  await page.keyboard.press('Space');
  eq(await page.getAttribute('#conn', 'data-state'), 'paused', 'space pauses');
  const n0 = await ticks(page); await sleep(800); const n1 = await ticks(page);
  eq(n1, n0, 'no ticks while paused');
  eq(await page.evaluate(() => window.scrollY), 0, 'space does not scroll the page');
  await page.keyboard.press('Space');
  await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'live', null, { timeout: 10000 });
  await waitTicks(page, 3);
  // The pause button and space agree (space on the focused button toggles once).
  await page.focus('#pause'); await page.keyboard.press('Space');
  eq(await page.getAttribute('#conn', 'data-state'), 'paused', 'space on the focused pause button pauses once');
  await page.click('#pause');
  await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'live', null, { timeout: 10000 });
  await page.close();
  return 'j/k focus panels in order; space pauses (0 ticks in 0.8 s) and resumes';
};

/* Export, then import into a fresh page: the same view offline. Then a
 * valkmem report (GET /api/report) imports the same way. */
T.export_import = async (ctx, url) => {
  const page = await openAt(ctx, url, '?profile=server', 'export');
  const dl = page.waitForEvent('download', { timeout: 15000 });
  await page.click('#export');
  const file = path.join(tmpdir, 'export.json');
  await (await dl).saveAs(file);
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  eq(doc.schema, 'valkmem.export/1', 'export schema');
  eq(doc.platform, doc.snapshot.platform, 'export platform');
  for (const r of ['1m', '5m', '1h', '10h']) check(Array.isArray(doc.history[r]) && doc.history[r].length > 0, 'export history ' + r);
  await page.close();

  const imp = await openAt(ctx, url, '?profile=server', 'import');
  await imp.setInputFiles('#import-file', file);
  await imp.waitForFunction(() => document.body.getAttribute('data-conn') === 'offline', null, { timeout: 10000 });
  await imp.waitForFunction(() => VKM.history.points().length > 0, null, { timeout: 5000 });
  // Offline now: the view must come from the file, not from the agent.
  const apiCalls = [];
  imp.on('request', q => { if (q.url().includes('/api/')) apiCalls.push(q.url()); });
  const view = await imp.evaluate(() => ({ proc: document.getElementById('proc').innerText, pts: VKM.history.points().length,
    rss: document.querySelector('#keys .k-rss .m-value').textContent, live: document.querySelector('#keys .k-live .m-value').textContent,
    seq: VKM.app.snapshot().seq, has: Array.from(document.querySelectorAll('#grid .panel:not([hidden])')).map(s => s.dataset.panel + '=' + s.dataset.hasData) }));
  const fmt = await imp.evaluate(s => [VKM.util.bytes(s.os.rss), VKM.util.bytes(s.live.bytes)], doc.snapshot);
  check(view.proc.includes(String(doc.snapshot.pid)), 'imported pid shown');
  eq(view.seq, doc.snapshot.seq, 'imported snapshot');
  eq(view.rss, fmt[0], 'imported RSS'); eq(view.live, fmt[1], 'imported live heap');
  check(view.pts === doc.history['1m'].filter(p => p.t_ms >= doc.history['1m'][doc.history['1m'].length - 1].t_ms - 60000).length,
        'imported 1m points ' + view.pts + ' vs file');
  await imp.click('#ranges button[value="10h"]');
  await imp.waitForFunction(() => VKM.history.range() === '10h');
  eq(await imp.evaluate(() => VKM.history.points().length), doc.history['10h'].length, 'imported 10h points');
  await imp.screenshot({ path: path.join(ARTIFACTS, 'imported-export.png') });
  eq(apiCalls.length, 0, 'requests to the agent after import: ' + apiCalls.join(' '));

  // A valkmem report file (schema valkmem.report/1).
  const rep = await api(url, 'api/report');
  eq(rep.schema, 'valkmem.report/1', 'report schema');
  const rfile = path.join(tmpdir, 'report.json');
  fs.writeFileSync(rfile, JSON.stringify(rep));
  await imp.setInputFiles('#import-file', rfile);
  await imp.waitForFunction(seq => VKM.app.snapshot().seq === seq, rep.seq, { timeout: 5000 });
  await imp.click('#ranges button[value="1m"]');
  await imp.waitForFunction(() => VKM.history.range() === '1m' && VKM.history.points().length > 0, null, { timeout: 5000 });
  const rv = await imp.evaluate(() => ({ banner: document.getElementById('banner').innerText, pts: VKM.history.points().length }));
  check(/report/.test(rv.banner), 'banner says report: ' + rv.banner);
  await imp.close();
  return 'export ' + (fs.statSync(file).size / 1024).toFixed(0) + ' KiB (' + Object.keys(doc.history).map(r => r + ':' + doc.history[r].length).join(' ') +
         ') restored offline; report import shows ' + rv.pts + ' points';
};

/* The embedded profile's planner: the limit moves "peak / limit", the plan
 * covers every pool with its headroom, and the three export formats agree. */
T.capacity_planner = async (ctx, url) => {
  const page = await openAt(ctx, url, '?profile=embedded', 'planner');
  await page.selectOption('#plan-limit', String(16 * 1048576));
  await page.fill('#plan-headroom', '50');
  await page.selectOption('#plan-format', 'json');
  await waitTicks(page, 2);
  // Read the snippet, the figure shown and the snapshot in one go: the
  // next tick may change them.
  const one = await page.evaluate(() => ({ text: document.getElementById('plan-snippet').textContent, snap: VKM.app.snapshot(),
    shown: document.querySelector('#panel-planner .metric.is-key .m-value').textContent }));
  const plan = JSON.parse(one.text), snap = one.snap;
  eq(plan.schema, 'valkmem.plan/1', 'plan schema');
  eq(plan.target_limit_bytes, 16 * 1048576, 'target limit');
  eq(plan.headroom_pct, 50, 'headroom');
  eq(plan.pools.length, (snap.pools || []).length, 'one entry per pool');
  for (const q of plan.pools) {
    const need = Math.max(q.observed_high_water, q.overflow_count > 0 ? q.current_capacity : 0) * 1.5;
    check(q.capacity_bytes >= need && q.capacity_bytes < need + Math.max(4096, q.object_size) + 1,
          q.name + ': capacity ' + q.capacity_bytes + ' for need ' + need);
  }
  const want = await page.evaluate(p => VKM.util.pct(p.peak_pct_of_limit), plan);
  eq(one.shown, want, 'peak / limit shown');
  check(Math.abs(plan.peak_pct_of_limit - plan.observed.app_peak_rss_bytes / (16 * 1048576) * 100) < 1e-6, 'peak % of the limit');
  await page.selectOption('#plan-format', 'c');
  await page.waitForFunction(() => document.getElementById('plan-snippet').textContent.includes('#define'));
  const c = await page.textContent('#plan-snippet');
  await page.selectOption('#plan-format', 'env');
  await page.waitForFunction(() => /^MEMORY_LIMIT_BYTES=/m.test(document.getElementById('plan-snippet').textContent));
  const env = await page.textContent('#plan-snippet');
  for (const q of plan.pools) {
    const id = 'POOL_' + q.name.toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '') + '_CAPACITY';
    check(c.includes('#define ' + id + ' '), 'C header defines ' + id);
    check(env.includes(id + '='), 'env defines ' + id);
  }
  const dl = page.waitForEvent('download', { timeout: 10000 });
  await page.click('#plan-download');
  eq((await dl).suggestedFilename(), 'valkmem-plan.env', 'download name');
  await page.screenshot({ path: path.join(ARTIFACTS, 'planner-16MiB.png') });
  await page.close();
  return plan.pools.length + ' pools; peak ' + plan.peak_pct_of_limit.toFixed(1) + ' % of 16 MiB; fits: ' + plan.fits;
};

/* A darwin snapshot: no smaps section, VMS only in the footer, no broken bars. */
T.darwin_fixture = async (ctx, url) => {
  const snap = JSON.parse(fs.readFileSync(path.join(HERE, 'fixtures', 'darwin-snapshot.json'), 'utf8'));
  const pts = [];
  for (let i = 0; i < 600; i++) {
    const live = 10 * 1048576 + i * 3500, rss = 30 * 1048576 + i * 10000;
    pts.push({ seq: snap.seq - 599 + i, t_ms: snap.t_ms - (599 - i) * 100, live_bytes: live, peak_live_bytes: live, rss, peak_rss: rss,
               alloc_bytes: 209715, free_bytes: 199229, alloc_ops: 200, free_ops: 190, alloc_bps: 2097150, free_bps: 1992290,
               gc_cycles: 0, gc_pause_ms: 0, frag_pct: 20, pressure_pct: 5 });
  }
  const page = await ctx.newPage();
  watch(page, 'darwin');
  await page.route('**/api/snapshot', r => r.fulfill({ contentType: 'application/json', body: JSON.stringify(snap) }));
  await page.route('**/api/history*', r => r.fulfill({ contentType: 'application/json', body: JSON.stringify({ range: '1m', step_ms: 100, points: pts }) }));
  await page.route('**/api/events', r => r.fulfill({ contentType: 'text/event-stream',
    body: 'retry: 60000\n\nid: ' + snap.seq + '\nevent: tick\ndata: ' + JSON.stringify(snap) + '\n\n' }));
  await page.goto(url + '?profile=server');
  await page.waitForFunction(() => window.__vkmPerf.count > 0, null, { timeout: 10000 });
  const got = await page.evaluate(() => {
    const vmsOutside = Array.from(document.querySelectorAll('body *')).filter(e => !e.closest('#foot') && e.children.length === 0 &&
      /\bVMS\b/.test(e.textContent)).map(e => e.outerHTML.slice(0, 80));
    const bars = Array.from(document.querySelectorAll('#grid .panel:not([hidden]) .stack')).map(b => {
      const segs = Array.from(b.querySelectorAll('.seg')).map(s => parseFloat(s.dataset.pct));
      return { cls: b.className, base: +b.dataset.base, segs, sum: segs.reduce((a, x) => a + x, 0),
               w: b.getBoundingClientRect().width, sw: Array.from(b.querySelectorAll('.seg')).reduce((a, s) => a + s.getBoundingClientRect().width, 0) };
    });
    return { smaps: document.querySelectorAll('[data-section="smaps"]').length, vmsFoot: document.querySelectorAll('#foot [data-metric="vms"]').length,
             vmsOutside, bars, label: document.querySelector('#panel-memory .big .m-label').textContent,
             foot: document.getElementById('foot').innerText };
  });
  eq(got.smaps, 0, 'no smaps section on darwin');
  eq(got.vmsFoot, 1, 'VMS in the footer');
  eq(got.vmsOutside.length, 0, 'VMS outside the footer: ' + got.vmsOutside.join(' '));
  check(got.bars.length >= 1, 'a stacked bar');
  for (const b of got.bars) {
    check(b.segs.every(x => isFinite(x) && x >= 0), 'bar segments finite: ' + JSON.stringify(b.segs));
    check(b.sum <= 100.001 && b.sum > 0, 'bar segments within the bar: ' + b.sum);
    check(b.sw <= b.w + 1, 'segments fit the bar in pixels: ' + b.sw + ' > ' + b.w);
  }
  eq(got.bars[0].base, snap.os.rss, 'bar baseline is RSS (footprint), not VMS');
  await page.screenshot({ path: path.join(ARTIFACTS, 'darwin-fixture.png') });
  await page.close();
  return 'memory label "' + got.label + '", ' + got.bars.length + ' bar(s), footer: ' + got.foot.split('\n').join(' ').slice(0, 120);
};

/* The process tree, on fake-server.js started three ways (--processes tree:
 * the 3 processes of fixtures/process-tree.json; single; none = 404) and on
 * the target itself: the Processes panel lists the planted processes in tree
 * order with their numbers, highlights this page's process, links the
 * others to /p/PID/ (and following one opens that process's dashboard),
 * polls every 2 s rather than per tick, belongs to every profile, and is
 * absent (no space taken) for a single process and on 404. */
T.process_tree = async (ctx, url) => {
  const planted = JSON.parse(fs.readFileSync(path.join(HERE, 'fixtures', 'process-tree.json'), 'utf8'));
  const [treeUrl, singleUrl, noneUrl] = await Promise.all([
    startFake(['--processes', 'tree', '--backfill-s', '120'], 'tree'),
    startFake(['--processes', 'single', '--backfill-s', '60'], 'single'),
    startFake(['--processes', 'none', '--backfill-s', '60'], 'none')]);
  // The panel, the header and the answer they were drawn from, read together.
  const read = page => page.evaluate(() => {
    const sec = document.getElementById('panel-processes'), tree = VKM.processes.tree(), U = VKM.util;
    const byPid = {}; ((tree || {}).processes || []).forEach(p => { byPid[p.pid] = p; });
    const href = e => e ? e.getAttribute('href') : null;
    return {
      hidden: sec.hidden, height: sec.getBoundingClientRect().height, has: sec.dataset.hasData, tree,
      rows: Array.from(sec.querySelectorAll('tbody tr')).map(tr => {
        const p = byPid[tr.dataset.pid] || {};
        return { pid: +tr.dataset.pid, depth: +tr.dataset.depth, self: tr.classList.contains('is-self'), current: tr.getAttribute('aria-current'),
                 href: href(tr.querySelector('a')), cells: Array.from(tr.cells).map(td => td.innerText.trim()),
                 tips: Array.from(tr.querySelectorAll('[title]')).map(n => n.title),
                 want: [U.bytes(p.live_bytes), U.bytes(p.rss_bytes), VKM.processes.endText(p)[0]] };
      }),
      heads: Array.from(sec.querySelectorAll('thead th')).map(th => ({ text: th.textContent, tip: th.title })),
      note: (document.querySelector('#proc .tree-note') || {}).innerText || null, noteHref: href(document.querySelector('#proc .tree-note a')),
      proc: document.getElementById('proc').innerText,
    };
  });
  const notes = [];

  // A tree of three.
  const page = await openAt(ctx, treeUrl, '?profile=server', 'tree');
  await page.waitForFunction(() => document.querySelectorAll('#panel-processes:not([hidden]) tbody tr').length === 3, null, { timeout: 6000 });
  let g = await read(page);
  eq(g.has, '1', 'panel data-has-data');
  eq(g.tree.self, planted.root, 'self of the root\'s dashboard');
  eq(g.rows.map(r => r.pid + '@' + r.depth).join(), '4242@0,4250@1,4251@2', 'rows in tree order, children indented');
  for (const r of g.rows) {
    const want = planted.processes.find(p => p.pid === r.pid), got = g.tree.processes.find(p => p.pid === r.pid);
    for (const k of ['ppid', 'program', 'state', 'url']) eq(got[k], want[k], r.pid + ' ' + k + ' served');
    eq(JSON.stringify(got.end), JSON.stringify(want.end), r.pid + ' end served');
    // The root is the simulated process: its figures are its last tick's.
    if (r.pid !== planted.root) { eq(got.live_bytes, want.live_bytes, r.pid + ' live heap served'); eq(got.rss_bytes, want.rss_bytes, r.pid + ' RSS served'); }
    else check(got.live_bytes > 0 && got.rss_bytes > got.live_bytes, 'root figures from the simulation: ' + got.live_bytes + ' / ' + got.rss_bytes);
    eq(r.cells[0], String(r.pid), r.pid + ' pid cell');
    check(r.cells[1].includes(want.program), r.pid + ' program cell: ' + r.cells[1]);
    eq(r.cells[2], r.want[2], r.pid + ' state cell'); eq(r.cells[3], r.want[0], r.pid + ' live heap cell'); eq(r.cells[4], r.want[1], r.pid + ' RSS cell');
    check(/^\+\d/.test(r.cells[5]), r.pid + ' started cell: ' + r.cells[5]);
    check(r.tips.length >= 6 && r.tips.every(t => t.length > 20), r.pid + ': a tooltip on every figure: ' + JSON.stringify(r.tips));
  }
  eq(g.rows[2].cells[2], 'SIGKILL', 'how 4251 ended');
  eq(g.rows[0].cells[5], '+0.0 s', 'the root started first');
  const wantRows = await page.evaluate(t => t.processes.map(p => '+' + VKM.util.dur((p.started_at - t.processes[0].started_at) / 1000)), g.tree);
  eq(g.rows.map(r => r.cells[5]).join(), wantRows.join(), 'started after the root');
  eq(g.rows.map(r => r.self).join(), 'true,false,false', 'self highlighted');
  eq(g.rows[0].current, 'page', 'self row aria-current');
  eq(g.rows.map(r => r.href).join(), ',/p/4250/,/p/4251/', 'links to the other processes\' dashboards');
  eq(g.heads.map(h => h.text).join(), 'pid,program,state,live heap,RSS,started', 'columns');
  check(g.heads.every(h => h.tip.length > 40 && /api\/processes/.test(h.tip)), 'every column header says what and where from');
  check(/statm/.test(g.heads[4].tip) && /last agent tick/.test(g.heads[3].tip), 'RSS and live heap headers name their sources');
  eq(g.note, 'pid 4242 of a tree of 3', 'header note');
  eq(g.noteHref, null, 'no link to the root from the root');
  // How ends read, and tree order with an exec'd pid (two images of pid 2).
  const misc = await page.evaluate(() => ({
    ends: [{ state: 'running', end: null }, { state: 'exited', end: { kind: 'exit', code: 0 } }, { state: 'exited', end: { kind: 'exit', code: 3 } },
           { state: 'exited', end: { kind: 'signal', signal: 11, name: 'SIGSEGV' } }, { state: 'exited', end: { kind: 'exec' } },
           { state: 'exited', end: { kind: 'unknown' } }].map(p => VKM.processes.endText(p)[0]),
    order: VKM.processes.ordered([{ pid: 1, ppid: 0, started_at: 1 }, { pid: 2, ppid: 1, started_at: 2, state: 'exited', end: { kind: 'exec' } },
      { pid: 2, ppid: 1, started_at: 3 }, { pid: 3, ppid: 2, started_at: 4 }, { pid: 9, ppid: 7, started_at: 5 }]).map(r => r.p.pid + '@' + r.depth + ':' + r.p.started_at),
  }));
  eq(misc.ends.join(), "running,exit 0,exit 3,SIGSEGV,exec'd,ended (?)", 'ends');
  eq(misc.order.join(), '1@0:1,2@1:2,2@1:3,3@2:4,9@0:5', 'tree order');
  // Polled every 2 s, not on every SSE tick.
  let polls = 0;
  const onReq = q => { if (/\/api\/processes$/.test(q.url())) polls++; };
  page.on('request', onReq);
  const n0 = await ticks(page); await sleep(5000); const nt = await ticks(page) - n0;
  page.off('request', onReq);
  check(polls >= 2 && polls <= 3, polls + ' api/processes requests in 5 s (' + nt + ' ticks): want one per 2 s');
  notes.push(polls + ' polls / ' + nt + ' ticks in 5 s');
  // Part of every profile, last.
  for (const name of Object.keys(PROFILES)) {
    await page.click('#profiles button[value="' + name + '"]');
    eq((await visible(page)).join(), PROFILES[name].join(), name + ': panels with a tree');
  }
  await page.click('#profiles button[value="server"]');
  await page.locator('#panel-processes').scrollIntoViewIfNeeded();
  await page.locator('#panel-processes').screenshot({ path: path.join(ARTIFACTS, 'processes-panel.png') });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(ARTIFACTS, 'processes-tree.png'), fullPage: true });

  // Follow a link: the worker's dashboard, under /p/4250/.
  const asked = [];
  page.on('request', q => { if (/api\/processes$/.test(q.url())) asked.push(new URL(q.url()).pathname); });
  await page.click('#panel-processes tr[data-pid="4250"] a');
  await page.waitForURL(u => new URL(u).pathname === '/p/4250/', { timeout: 5000 });
  await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'live', null, { timeout: 15000 });
  await page.waitForFunction(() => (VKM.processes.tree() || {}).self === 4250 && document.querySelector('#panel-processes tr.is-self'), null, { timeout: 6000 });
  g = await read(page);
  eq(g.rows.filter(r => r.self).map(r => r.pid).join(), '4250', 'the worker\'s row highlighted on its dashboard');
  eq(g.rows.map(r => r.href).join(), '/p/4242/,,/p/4251/', 'links from the worker\'s dashboard');
  eq(g.note, 'pid 4250 of a tree of 3', 'header note on the worker\'s dashboard');
  eq(g.noteHref, '/p/4242/', 'header links to the root\'s dashboard');
  check(/worker/.test(g.proc), 'header names the worker: ' + g.proc);
  check(asked.length > 0 && asked.every(p => p === '/p/4250/api/processes'), 'asks its own process: ' + asked.join(' '));
  await page.screenshot({ path: path.join(ARTIFACTS, 'processes-child.png') });
  await page.close();

  // One process, and no endpoint (404): no panel, no space, no header note.
  for (const [u, tag, code] of [[singleUrl, 'single', 200], [noneUrl, 'none (404)', 404], [url, 'target', 0]]) {
    const n = await treeSize(u);
    const p = await ctx.newPage();
    watch(p, 'tree ' + tag);
    const first = p.waitForResponse(r => /\/api\/processes$/.test(r.url()), { timeout: 10000 });
    await p.goto(u + '?profile=server');
    const res = await first;
    if (code) eq(res.status(), code, tag + ': api/processes status');
    await p.waitForFunction(() => document.body.getAttribute('data-conn') === 'live', null, { timeout: 15000 });
    await waitTicks(p, 3);
    const h = await read(p);
    if (n > 1) {   // the target may one day serve a tree: then it must show
      eq(h.hidden, false, tag + ': a tree of ' + n + ' shows'); eq(h.rows.length, n, tag + ': rows');
    } else {
      eq(h.hidden, true, tag + ': panel hidden'); eq(h.height, 0, tag + ': panel takes no space'); eq(h.note, null, tag + ': no "tree of" in the header');
      check(!(await visible(p)).includes('processes'), tag + ': not among the visible panels');
    }
    if (res.status() === 404) {   // the answer will not change: it stops asking
      let again = 0;
      p.on('request', q => { if (/\/api\/processes$/.test(q.url())) again++; });
      await sleep(2500);
      eq(again, 0, tag + ': api/processes asked again after a 404');
    }
    notes.push(tag + ': ' + (res.status() === 404 ? '404' : n + ' process' + (n === 1 ? '' : 'es')) + (n > 1 ? ', shown' : ', hidden'));
    await p.close();
  }
  return notes.join('; ') + '; screenshot processes-panel.png';
};

/* Performance with every panel open: time to handle one SSE event (parse,
 * store, re-render, draw) over >= N events, and rAF deltas meanwhile. */
T.performance = async (ctx, url) => {
  const page = await openAt(ctx, url, '?profile=all', 'perf');
  await page.evaluate(() => {
    window.__vkmPerf.events.length = 0; window.__vkmPerf.renders.length = 0;
    window.__raf = []; let last = performance.now();
    (function f(t) { window.__raf.push(t - last); last = t; if (window.__raf.length < 100000) requestAnimationFrame(f); })(last);
    requestAnimationFrame(function g(t) { last = t; });
  });
  const t0 = Date.now();
  while (await page.evaluate(() => window.__vkmPerf.events.length) < N_EVENTS) {
    if (Date.now() - t0 > N_EVENTS * 250 + 20000) throw new Error('events too slow: ' + await page.evaluate(() => window.__vkmPerf.events.length));
    await sleep(500);
  }
  const r = await page.evaluate(() => ({ ev: window.__vkmPerf.events.slice(), raf: window.__raf.slice(2),
    heap: performance.memory ? performance.memory.usedJSHeapSize : 0 }));
  await page.close();
  const f = {
    events: r.ev.length, ev_mean: mean(r.ev), ev_p50: pctl(r.ev, 50), ev_p95: pctl(r.ev, 95), ev_max: Math.max(...r.ev),
    frames: r.raf.length, raf_p50: pctl(r.raf, 50), raf_p95: pctl(r.raf, 95), raf_max: Math.max(...r.raf), heap_mb: r.heap / 1048576,
  };
  figures.push(f);
  console.log('# performance (profile=all, ' + f.events + ' SSE events): handle one event mean ' + f.ev_mean.toFixed(2) + ' ms, p50 ' +
              f.ev_p50.toFixed(2) + ', p95 ' + f.ev_p95.toFixed(2) + ', max ' + f.ev_max.toFixed(2) + ' ms  [issue: < 16 ms: ' +
              (f.ev_p95 < 16 ? 'met at p95' : f.ev_p50 < 16 ? 'met at p50, not p95' : 'MISSED') + ']');
  console.log('# performance: rAF deltas over ' + f.frames + ' frames: p50 ' + f.raf_p50.toFixed(2) + ' ms, p95 ' + f.raf_p95.toFixed(2) +
              ' ms, max ' + f.raf_max.toFixed(1) + ' ms  [issue: p95 <= 17 ms: ' + (f.raf_p95 <= 17 ? 'met' : 'MISSED') + ']; JS heap ' + f.heap_mb.toFixed(1) + ' MB');
  // Asserted with generous bounds (a shared 2-core machine is noisy); the
  // figures above are what the issue asks for.
  // Bounds: twice the budgets at the median, and a ceiling at p95
  // that only a real regression (not a busy neighbour) reaches.
  check(f.events >= N_EVENTS, 'events measured');
  check(f.ev_p50 < 32, 'median event handling ' + f.ev_p50.toFixed(2) + ' ms >= 32 ms');
  check(f.ev_p95 < 150, 'p95 event handling ' + f.ev_p95.toFixed(2) + ' ms >= 150 ms');
  check(f.raf_p50 < 34, 'median frame interval ' + f.raf_p50.toFixed(2) + ' ms >= 34 ms (under 30 fps)');
  check(f.raf_p95 < 150, 'p95 frame interval ' + f.raf_p95.toFixed(2) + ' ms >= 150 ms');
  check(f.heap_mb === 0 || f.heap_mb < 64, 'JS heap ' + f.heap_mb.toFixed(1) + ' MB');
  return 'ev p50 ' + f.ev_p50.toFixed(2) + ' / p95 ' + f.ev_p95.toFixed(2) + ' ms; rAF p95 ' + f.raf_p95.toFixed(2) + ' ms';
};

/* `valkmem view report.json`: the dashboard for a saved report, with no
 * running program: offline, the report's own state and history. */
T.valkmem_view = async (ctx, url) => {
  const cli = opt('cli');
  if (!cli) return 'skipped: no --cli given';
  const rep = await api(url, 'api/report');
  const file = path.join(tmpdir, 'view-report.json');
  fs.writeFileSync(file, JSON.stringify(rep));
  const log = path.join(tmpdir, 'view.log');
  const view = spawn(cli, ['view', file, '--listen', '127.0.0.1:0'], { stdio: ['ignore', fs.openSync(log, 'w'), fs.openSync(log, 'a')] });
  try {
    let vurl = null;
    for (let t0 = Date.now(); !vurl && Date.now() - t0 < 10000; await sleep(50)) {
      const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(fs.readFileSync(log, 'utf8'));
      if (m) vurl = m[0];
      if (view.exitCode !== null) throw new Error('valkmem view exited ' + view.exitCode + ': ' + fs.readFileSync(log, 'utf8'));
    }
    check(vurl, 'valkmem view printed no URL: ' + fs.readFileSync(log, 'utf8'));
    const page = await ctx.newPage();
    watch(page, 'view');
    const streams = [];
    page.on('request', q => { if (q.url().includes('api/events')) streams.push(q.url()); });
    await page.goto(vurl + '?profile=server');
    await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'offline', null, { timeout: 10000 });
    await page.waitForFunction(() => VKM.history.points().length > 0, null, { timeout: 5000 });
    const got = await page.evaluate(() => ({ proc: document.getElementById('proc').innerText, seq: VKM.app.snapshot().seq,
      pts: VKM.history.points().length, badge: document.getElementById('conn').textContent,
      has: Array.from(document.querySelectorAll('#grid .panel:not([hidden])')).map(s => s.dataset.panel + '=' + s.dataset.hasData) }));
    check(got.proc.includes(String(rep.pid)), 'report pid ' + rep.pid + ' shown: ' + got.proc);
    eq(got.seq, rep.seq, 'report snapshot');
    const h1 = (rep.history['1m'].points || rep.history['1m']);
    check(got.pts > 0 && got.pts <= h1.length, 'points from the report: ' + got.pts + ' of ' + h1.length);
    eq(streams.length, 0, 'no live stream opened');
    check(got.has.every(x => x.endsWith('=1')), 'panels with data: ' + got.has.join(' '));
    // A saved report has no process tree: no Processes panel, no "tree of".
    check(got.has.every(x => !x.startsWith('processes=')), 'no Processes panel in a saved view: ' + got.has.join(' '));
    check(!/tree of/.test(got.proc), 'no "tree of" in the header of a saved view: ' + got.proc);
    await page.screenshot({ path: path.join(ARTIFACTS, 'valkmem-view.png') });
    await page.close();
    return 'offline "' + got.badge + '", ' + got.pts + ' points';
  } finally {
    view.kill('SIGTERM');
  }
};

/* Last: the program ends; the dashboard says "process exited" and keeps the
 * last state. Only when this run started the program. */
T.process_exit = async (ctx, url) => {
  const proc = demo || fake;
  if (!proc) return 'skipped: target not started by this run';
  const page = await openAt(ctx, url, '?profile=server', 'exit');
  const seq = await page.evaluate(() => VKM.app.snapshot().seq);
  proc.kill('SIGTERM');
  await page.waitForFunction(() => document.body.getAttribute('data-conn') === 'exited', null, { timeout: 20000 });
  const st = await page.evaluate(() => ({ text: document.getElementById('conn').textContent, seq: VKM.app.snapshot().seq,
    rss: document.querySelector('#keys .k-rss .m-value').textContent }));
  eq(st.text, 'process exited', 'badge');
  check(st.seq >= seq && /\d/.test(st.rss), 'last state kept: seq ' + st.seq + ', RSS ' + st.rss);
  await page.screenshot({ path: path.join(ARTIFACTS, 'process-exited.png') });
  await page.close();
  // Connection failures while the agent is gone are expected: drop them.
  for (let i = consoleErrors.length - 1; i >= 0; i--) if (/^exit: .*(ERR_CONNECTION_REFUSED|ERR_INCOMPLETE_CHUNKED_ENCODING|api\/events)/.test(consoleErrors[i])) consoleErrors.splice(i, 1);
  return 'badge "' + st.text + '" after SIGTERM, last tick ' + st.seq;
};

/* ---------------------------------------------------------------- main */
(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  let url, ctx;
  try {
    url = await startTarget();
    console.log('# target ' + url + (demo ? ' (' + opt('demo') + ' under ' + opt('lib') + ')' : fake ? ' (fake-server.js)' : ''));
    ctx = await launch();
  } catch (e) {
    console.log('not ok 0 - setup: ' + e.message);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  const names = Object.keys(T).filter(n => !ONLY || ONLY.includes(n));
  let i = 0;
  for (const name of names) {
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
  await ctx.close().catch(() => {});
  if (demo && demo.exitCode === null) { demo.kill('SIGTERM'); await sleep(300); }
  const pass = results.filter(x => x).length, fail = results.length - pass;
  console.log('# screenshots: ' + ARTIFACTS);
  console.log(pass + ' passed, ' + fail + ' failed');
  process.exit(fail ? 1 : 0);
})();
