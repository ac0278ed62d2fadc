// flame.js - two panels on the sampled call stacks:
//   flame     an icicle flame graph (root at the top) of the sites' stacks,
//             weighted by live or by allocated bytes, refreshed from
//             /api/stacks while the stream is live (from the snapshot's
//             sites when a file is shown); click a frame to zoom, the root
//             to come back; search highlights frames and gives their share;
//             hover shows function, module, file:line, bytes ± error,
//             objects, share (and the change since the pin)
//   sitehist  heap by site over time: the top sites' live bytes as a
//             stacked area over the selected range, the rest as "other",
//             leak suspects marked (the history's per-site points)
//
// The flame graph is drawn on one canvas. Stacks are kept in typed arrays
// and merged into a tree by sorting them (identical prefixes become
// neighbours), so 10 000 stacks cost a few ms and a few MB; only frames at
// least half a pixel wide are drawn.
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.flame = (function () {
  var U = VKM.util, el = U.el, num = U.num;
  var SRC = 'sampled call stacks, weighted and calibrated to the exact totals by the agent (sites.c); estimates';
  var ROW = 17, MAX_ROWS = 40, REFRESH_MS = 1000;

  var M = VKM_FLAME_MODEL;

  /* ------------------------------------------------------------- tree */
  // Nodes in preorder: node 0 is the root. Arrays: frame (merged frame
  // index, -1 for the root), parent, depth, val (weight), base (the pin's
  // weight of the same stacks), err2 (sum of squared standard errors), cnt
  // (objects), leak, x (offset in weight units), end (one past the subtree).
  function build(m, weight, pinSites) {
    if (!m.order) M.prepare(m);
    var W = weight === 'alloc' ? m.alloc : m.live, E = weight === 'alloc' ? m.allocErr : m.liveErr, N = weight === 'alloc' ? m.allocN : m.liveN;
    var bf = weight === 'alloc' ? 1 : 0, order = [], i, d;
    // m.order is sorted (flame-model.js): keep that order, drop empty stacks.
    for (var j = 0; j < m.n; j++) {
      i = m.order[j];
      if (W[i] > 0 || (pinSites && pinSites[m.ids[i]] && pinSites[m.ids[i]][bf] > 0)) order.push(i);
    }
    var start = m.start, fr = m.frames, merged = m.merged;
    // First pass: how many nodes (each stack adds the frames past its common
    // prefix with the one before it), so the arrays are exactly that big.
    var cap = 1;
    for (var ci = 0; ci < order.length; ci++) {
      var cs = order[ci], c0 = start[cs], clen = start[cs + 1] - c0, cp = 0;
      if (ci > 0) {
        var q0 = start[order[ci - 1]], qlen = start[order[ci - 1] + 1] - q0;
        while (cp < clen && cp < qlen && merged[fr[q0 + cp]] === merged[fr[c0 + cp]]) cp++;
      }
      cap += clen - cp;
    }
    var t = { n: 1, frame: new Int32Array(cap), parent: new Int32Array(cap), depth: new Uint16Array(cap), val: new Float64Array(cap),
              base: pinSites ? new Float64Array(cap) : null, err2: new Float32Array(cap), cnt: new Float32Array(cap),
              leak: new Uint8Array(cap), x: new Float64Array(cap), end: new Int32Array(cap), maxDepth: 0, stacks: order.length, weight: weight };
    t.frame[0] = -1; t.parent[0] = -1;
    var path = [0], prev = -1;
    for (var oi = 0; oi < order.length; oi++) {
      var s = order[oi], s0 = start[s], len = start[s + 1] - s0, p = 0;
      if (prev >= 0) {
        var p0 = start[prev], plen = start[prev + 1] - p0;
        while (p < len && p < plen && merged[fr[p0 + p]] === merged[fr[s0 + p]]) p++;
      }
      path.length = p + 1;
      for (d = p; d < len; d++) {
        var nd = t.n++;
        t.frame[nd] = merged[fr[s0 + d]]; t.parent[nd] = path[d]; t.depth[nd] = d + 1;
        path.push(nd);
      }
      if (len > t.maxDepth) t.maxDepth = len;
      var w = W[s], e2 = E[s] * E[s], c = N[s], b = pinSites && pinSites[m.ids[s]] ? pinSites[m.ids[s]][bf] || 0 : 0, lk = m.leak[s];
      for (d = 0; d <= len; d++) {
        var q = path[d];
        t.val[q] += w; t.err2[q] += e2; t.cnt[q] += c;
        if (t.base) t.base[q] += b;
        if (lk) t.leak[q] = 1;
      }
      prev = s;
    }
    // x: siblings follow each other in preorder; end: one past the subtree.
    var cursor = new Float64Array(t.n), open = [0];
    for (i = 1; i < t.n; i++) {
      var par = t.parent[i];
      t.x[i] = cursor[par]; cursor[par] += Math.max(t.val[i], 0); cursor[i] = t.x[i];
      while (open.length && t.depth[open[open.length - 1]] >= t.depth[i]) t.end[open.pop()] = i;
      open.push(i);
    }
    while (open.length) t.end[open.pop()] = t.n;
    return t;
  }

  /* ------------------------------------------------------------ state */
  var model = null, tree = null, weight = 'live', diff = false, query = '';
  var zoom = 0, zoomPath = [];         // zoomed node, and its path of merged frame names (kept across rebuilds)
  var ui = null, drawn = null, nDrawn = 0, hover = -1, drawQueued = false, searchInfo = null;
  var fetchBusy = false, fetchAt = 0, lastSnap = null, noStacks = false, source = '', fetchError = '', worker = null, workerFailed = false, lastHash = -1;
  var stats = { builds: 0, build_ms: 0, draws: 0, draw_ms: 0, drawn: 0 };

  function pinSites() { var p = VKM.pin.get(); return diff && p ? p.sites : null; }

  function rebuild() {
    if (!model) { tree = null; return; }
    var t0 = performance.now();
    tree = build(model, weight, pinSites());
    stats.builds++; stats.build_ms = performance.now() - t0;
    zoom = resolvePath(zoomPath);
    search();
    queueDraw();
  }

  function pathOf(node) {
    var p = [];
    for (var q = node; q > 0; q = tree.parent[q]) p.unshift(model.fn[tree.frame[q]] + '\u0000' + model.mod[tree.frame[q]]);
    return p;
  }
  function resolvePath(p) {
    var node = 0;
    for (var i = 0; i < p.length; i++) {
      var found = -1;
      for (var c = node + 1; c < tree.end[node]; c = tree.end[c]) {
        if (model.fn[tree.frame[c]] + '\u0000' + model.mod[tree.frame[c]] === p[i]) { found = c; break; }
      }
      if (found < 0) break;
      node = found;
    }
    return node;
  }

  /* Search: frames whose function, module or file contains the text (case-
   * insensitive). Their share counts each byte once (a match inside a match
   * adds nothing). */
  function matches(node) {
    if (!query || node <= 0) return false;
    var f = tree.frame[node];
    return model.fn[f].toLowerCase().indexOf(query) >= 0 || model.mod[f].toLowerCase().indexOf(query) >= 0 ||
           (model.file[f] || '').toLowerCase().indexOf(query) >= 0;
  }
  function search() {
    searchInfo = null;
    if (!tree || !query) return;
    var bytes = 0, frames = 0, until = 0;
    for (var i = 1; i < tree.n; i++) {
      if (!matches(i)) continue;
      frames++;
      if (i >= until) { bytes += tree.val[i]; until = tree.end[i]; }
    }
    searchInfo = { frames: frames, bytes: bytes, share: tree.val[0] > 0 ? bytes / tree.val[0] : 0 };
  }

  /* ------------------------------------------------------------- draw */
  function hue(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) | 0;
    return h;
  }
  /* Colours: warm hues by function name (cached per frame), or in diff mode
   * red for growth and blue for shrink, in 10 steps of the relative change. */
  var colors = null, DIFF = null;
  function diffColors() {
    if (DIFF) return DIFF;
    DIFF = { up: [], down: [], upDim: [], downDim: [] };
    for (var k = 0; k <= 10; k++) {
      var a = 0.35 + 0.065 * k;
      DIFF.up.push('rgba(230,70,60,' + a.toFixed(2) + ')'); DIFF.down.push('rgba(70,130,235,' + a.toFixed(2) + ')');
      DIFF.upDim.push('rgba(230,70,60,' + (a * 0.35).toFixed(2) + ')'); DIFF.downDim.push('rgba(70,130,235,' + (a * 0.35).toFixed(2) + ')');
    }
    return DIFF;
  }
  function color(node, dim) {
    var f = tree.frame[node];
    if (diff && tree.base) {
      var v = tree.val[node], b = tree.base[node], m = Math.max(v, b, 1), r = Math.max(-1, Math.min(1, (v - b) / m));
      if (Math.abs(r) < 0.02) return dim ? '#3a3d44' : '#8a8f99';
      var D = diffColors(), k = Math.round(Math.abs(r) * 10);
      return r > 0 ? (dim ? D.upDim[k] : D.up[k]) : (dim ? D.downDim[k] : D.down[k]);
    }
    if (dim) return '#3a3d44';
    if (!colors) colors = new Array(model.fn.length);
    var c = colors[f];
    if (!c) {
      var h = hue(model.fn[f]);
      c = colors[f] = 'hsl(' + (10 + ((h >>> 0) % 40)) + ',' + (70 + ((h >>> 4) & 15)) + '%,' + (50 + ((h >>> 8) & 7)) + '%)';
    }
    return c;
  }

  function queueDraw() {
    if (drawQueued || !ui) return;
    drawQueued = true;
    requestAnimationFrame(function () { drawQueued = false; draw(); });
  }

  function draw() {
    if (!ui || ui.section.hidden) return;
    var cv = ui.canvas, t0 = performance.now();
    var rows = tree ? Math.min(MAX_ROWS, tree.maxDepth + 1) : 1;
    var cssW = Math.max(100, ui.wrap.clientWidth || 600), cssH = Math.max(3, rows) * ROW;
    var dpr = window.devicePixelRatio || 1;
    if (cv.width !== Math.round(cssW * dpr) || cv.height !== Math.round(cssH * dpr)) {
      cv.width = Math.round(cssW * dpr); cv.height = Math.round(cssH * dpr); cv.style.height = cssH + 'px';
    }
    var g = cv.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = getComputedStyle(ui.wrap).getPropertyValue('--panel-bg') || '#15171c';
    g.clearRect(0, 0, cssW, cssH);
    nDrawn = 0;
    if (!tree || tree.val[0] <= 0) {
      g.fillStyle = '#888'; g.font = '12px sans-serif';
      g.fillText(model ? 'no ' + weight + ' bytes in the sampled stacks yet' : 'waiting for stacks…', 8, 14);
      cv.setAttribute('data-drawn', '0');
      return;
    }
    var maxDrawn = Math.min(tree.n, 30000);
    if (!drawn || drawn.length < maxDrawn * 3) drawn = new Float32Array(Math.max(1024, maxDrawn * 3));
    var z = zoom, zv = tree.val[z] || 1, scale = cssW / zv, x0 = tree.x[z];
    g.font = '11px sans-serif'; g.textBaseline = 'middle';
    var dimOthers = !!query;
    function rect(node, x, w) {
      var y = tree.depth[node] * ROW;
      if (y + ROW > cssH) return;
      var match = dimOthers && matches(node);
      g.fillStyle = node === 0 ? '#596070' : match ? '#e040c8' : color(node, dimOthers);
      g.fillRect(x, y, Math.max(w - 0.5, 0.5), ROW - 1);
      if (tree.leak[node] && node !== 0 && w > 3) { g.fillStyle = '#ff5d5d'; g.fillRect(x, y + ROW - 3, Math.max(w - 0.5, 0.5), 2); }
      if (w > 28) {
        var name = node === 0 ? rootLabel() : model.fn[tree.frame[node]], chars = Math.floor((w - 6) / 6.2);
        if (chars < name.length) name = chars > 2 ? name.slice(0, chars - 1) + '…' : '';
        if (name) { g.fillStyle = node === 0 || diff ? '#fff' : '#111'; g.fillText(name, x + 3, y + ROW / 2); }
      }
      if (nDrawn < maxDrawn) { drawn[nDrawn * 3] = node; drawn[nDrawn * 3 + 1] = x; drawn[nDrawn * 3 + 2] = w; nDrawn++; }
    }
    // Ancestors of the zoomed frame span the whole width.
    for (var a = z; a >= 0; a = tree.parent[a]) rect(a, 0, cssW);
    for (var i = z + 1; i < tree.end[z];) {
      var w = tree.val[i] * scale;
      if (w < 0.5 || tree.depth[i] >= rows) { i = tree.end[i]; continue; }   // too thin to see: so is its subtree
      rect(i, (tree.x[i] - x0) * scale, w);
      i++;
    }
    stats.draws++; stats.draw_ms = performance.now() - t0; stats.drawn = nDrawn;
    cv.setAttribute('data-drawn', String(nDrawn));
    drawHover();
  }

  /* The frame under the mouse is outlined on an overlay canvas: moving the
   * mouse redraws one rectangle, not the graph. */
  function drawHover() {
    var o = ui.overlay, cv = ui.canvas, dpr = window.devicePixelRatio || 1;
    if (o.width !== cv.width || o.height !== cv.height) { o.width = cv.width; o.height = cv.height; o.style.height = cv.style.height; }
    var g = o.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, o.width, o.height);
    if (hover < 0 || !tree) return;
    for (var k = 0; k < nDrawn; k++) {
      if (drawn[k * 3] !== hover) continue;
      var x = drawn[k * 3 + 1], w = drawn[k * 3 + 2], y = tree.depth[hover] * ROW;
      g.strokeStyle = '#fff'; g.lineWidth = 1.5; g.strokeRect(x + 0.75, y + 0.75, Math.max(w - 1.5, 1), ROW - 2.5);
      return;
    }
  }

  function rootLabel() {
    var r = tree.val[0], cal = model.cal && model.cal[weight === 'alloc' ? 'alloc' : 'live'];
    return 'all: ' + U.bytes(r) + ' ' + (weight === 'alloc' ? 'allocated' : 'live') + ' in ' + U.count(tree.stacks) + ' stacks' +
      (zoom ? ' — click to zoom out' : '') + (cal && cal.applied ? ' (calibrated ×' + cal.ratio.toFixed(3) + ')' : '');
  }

  /* The frame under canvas point (x, y), or -1. */
  function hit(x, y) {
    var depth = Math.floor(y / ROW);
    for (var k = 0; k < nDrawn; k++) {
      var node = drawn[k * 3];
      if (tree.depth[node] === depth && x >= drawn[k * 3 + 1] && x < drawn[k * 3 + 1] + Math.max(drawn[k * 3 + 2], 1)) return node;
    }
    return -1;
  }

  /* What the tooltip and the tests read about one frame. */
  function info(node) {
    if (!tree || node < 0 || node >= tree.n) return null;
    var f = tree.frame[node], root = tree.val[0] || 1;
    var o = { node: node, function: node === 0 ? 'all' : model.fn[f], module: node === 0 ? '' : model.mod[f],
              file: node === 0 ? null : model.file[f], line: node === 0 ? 0 : model.line[f],
              offset: node === 0 ? 0 : model.off[f], bytes: tree.val[node], err: Math.sqrt(tree.err2[node]), objects: tree.cnt[node],
              share: tree.val[node] / root, depth: tree.depth[node], leak: !!tree.leak[node], weight: weight };
    if (tree.base) { o.base = tree.base[node]; o.delta = tree.val[node] - tree.base[node]; }
    return o;
  }

  function showTip(node, px, py) {
    var t = ui.tip, o = info(node);
    if (!o) { t.hidden = true; return; }
    var what = weight === 'alloc' ? 'allocated' : 'live';
    var where = o.file ? o.file + (o.line ? ':' + o.line : '') : o.module ? o.module + '+0x' + o.offset.toString(16) : '';
    var p = VKM.pin.get();
    U.fill(t,
      el('b', { text: o.function }),
      o.module ? el('div', { class: 'tip-m', text: 'module ' + o.module }) : null,
      where ? el('div', { class: 'tip-m', text: where }) : null,
      el('div', null, U.bytes(o.bytes) + ' ' + what + ' ± ' + U.bytes(o.err) + ' (1 s.e.)'),
      el('div', null, U.count(o.objects) + ' objects · ' + U.pct(o.share * 100) + ' of the ' + what + ' bytes shown'),
      p ? el('div', { class: o.delta === undefined ? '' : o.delta > 0 ? 'd-up' : o.delta < 0 ? 'd-down' : '' },
             o.delta === undefined ? 'tick "diff" to compare with the pin' : 'since the pin: ' + (o.delta >= 0 ? '+' : '−') + U.bytes(Math.abs(o.delta))) : null,
      o.leak ? el('div', { class: 'd-up', text: 'holds a leak suspect' }) : null);
    t.setAttribute('data-node', String(node));
    t.hidden = false;
    // Beside the mouse, inside the graph: above the mouse in its lower half.
    var wr = ui.wrap.getBoundingClientRect(), th = t.offsetHeight, tw = t.offsetWidth;
    var left = px + 14 + tw > wr.width ? px - tw - 14 : px + 14;
    var top = py > wr.height / 2 ? py - th - 10 : py + 18;
    t.style.left = Math.max(0, left) + 'px'; t.style.top = Math.max(-th, top) + 'px';
  }

  /* ------------------------------------------------------------ data */
  function setModel(m, src) {
    model = m; source = src; colors = null;
    rebuild();
    if (ui) renderInfo();
    var p = VKM.pin.get();
    if (p && p.source === 'live' && !p.stacksAdded && src === 'api/stacks') { p.stacksAdded = true; VKM.pin.addSites(sitesList()); }
  }

  /* While live: refresh from /api/stacks at most once a second, when the
   * panel is shown. The answer is parsed and prepared by a worker
   * (flame-worker.js), so thousands of stacks never hold up a frame or an
   * SSE event; an unchanged answer rebuilds nothing. Without workers the
   * page does it itself. */
  function parsed(m) {
    fetchBusy = false; fetchError = '';
    if (m) setModel(m, 'api/stacks');
    renderInfo();
  }
  function failed(msg) {
    fetchBusy = false; fetchError = msg;
    console.warn('valkmem: flame: ' + msg);
    renderInfo();
  }
  function getWorker() {
    if (worker || workerFailed || !window.Worker) return worker;
    try {
      worker = new Worker('flame-worker.js');
      worker.onmessage = function (e) {
        var d = e.data;
        if (d.error) failed('stacks: ' + d.error);
        else parsed(d.same ? null : d.model);
      };
      worker.onerror = function (e) { workerFailed = true; worker = null; failed('worker: ' + (e.message || 'failed') + '; parsing on the page'); e.preventDefault(); };
    } catch (e) { workerFailed = true; worker = null; }
    return worker;
  }
  function hashText(s) {
    var h = 0x811c9dc5 | 0;
    for (var i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
    return h;
  }
  function refresh(force) {
    if (fetchBusy || VKM.history.isImported()) return;
    var st = VKM.stream.state();
    if (!force && st !== 'live') return;
    var now = Date.now();
    if (!force && now - fetchAt < REFRESH_MS) return;
    fetchBusy = true; fetchAt = now;
    fetch('api/stacks', { cache: 'no-store' }).then(function (r) {
      // An agent without the route (older): the snapshot's sites instead.
      if (r.status === 404) { noStacks = true; fetchBusy = false; return null; }
      if (!r.ok) throw new Error('GET /api/stacks: HTTP ' + r.status);
      return r.text();
    }).then(function (text) {
      if (text === null) return;
      var w = getWorker();
      if (w) { w.postMessage({ text: text }); return; }
      var h = hashText(text);
      if (h === lastHash) { parsed(null); return; }
      lastHash = h;
      parsed(M.prepare(M.fromStacks(JSON.parse(text))));
    }).catch(function (e) { failed(e.message); });
  }

  /* The model's stacks as pin sites (for a pin taken while live). */
  function sitesList() {
    if (!model) return [];
    var out = [];
    for (var i = 0; i < model.n; i++) {
      var s = model.start[i], e = model.start[i + 1];
      out.push({ id: model.ids[i], live: model.live[i], alloc: model.alloc[i], name: e > s ? model.fn[model.frames[e - 1]] : '?' });
    }
    return out;
  }

  /* ------------------------------------------------------------ panel */
  function setup(stat, rerender) {
    var sec = stat.closest ? stat.closest('section') : null;
    var modeBtns = el('div', { class: 'seg-group', role: 'group', 'aria-label': 'Weight' },
      el('button', { type: 'button', value: 'live', 'aria-pressed': 'true', title: 'Width = live bytes (allocated and not freed), estimate' }, 'live'),
      el('button', { type: 'button', value: 'alloc', 'aria-pressed': 'false', title: 'Width = bytes allocated since start, estimate' }, 'allocated'));
    var diffBox = el('input', { type: 'checkbox', id: 'flame-diff' });
    var diffLbl = el('label', { for: 'flame-diff', class: 'chk', title: 'Colour frames by their change since the pin: red grew, blue shrank, grey unchanged (needs a pin)' }, diffBox, ' diff vs pin');
    var input = el('input', { type: 'search', id: 'flame-search', placeholder: 'search frames', 'aria-label': 'Search frames',
                              title: 'Highlight frames whose function, module or file contains this text; their share is shown next to it' });
    var found = el('span', { class: 'flame-found', id: 'flame-found', title: 'Share of the bytes shown held by the matching frames (each byte counted once)' });
    var canvas = el('canvas', { class: 'flame', id: 'flame-canvas', role: 'img', 'aria-label': 'Flame graph',
                                title: 'Flame graph of the sampled stacks (root at the top; width = bytes). Click a frame to zoom into it, the root to zoom out; hover for details. Source: ' + SRC });
    var tip = el('div', { class: 'flame-tip', id: 'flame-tip', hidden: '', role: 'tooltip', title: 'The frame under the mouse: bytes (± one standard error), objects and share. Source: ' + SRC });
    var overlay = el('canvas', { class: 'flame-over', 'aria-hidden': 'true', title: 'The frame under the mouse' });
    var wrap = el('div', { class: 'flame-wrap' }, canvas, overlay, tip);
    var note = el('div', { class: 'note flame-note', id: 'flame-note' });
    U.fill(stat, el('div', { class: 'flame-ctl' }, modeBtns, diffLbl, input, found), wrap, note);
    ui = { section: sec, canvas: canvas, overlay: overlay, tip: tip, wrap: wrap, input: input, found: found, note: note, diff: diffBox, modeBtns: modeBtns, rerender: rerender };

    modeBtns.addEventListener('click', function (e) {
      var b = e.target.closest('button');
      if (!b || b.value === weight) return;
      setWeight(b.value);
    });
    diffBox.addEventListener('change', function () { setDiff(diffBox.checked); });
    input.addEventListener('input', function () { setQuery(input.value); });
    canvas.addEventListener('mousemove', function (e) {
      var r = canvas.getBoundingClientRect(), n = hit(e.clientX - r.left, e.clientY - r.top);
      if (n !== hover) { hover = n; drawHover(); }
      if (n >= 0) showTip(n, e.clientX - r.left, e.clientY - r.top); else tip.hidden = true;
    });
    canvas.addEventListener('mouseleave', function () { hover = -1; tip.hidden = true; drawHover(); });
    canvas.addEventListener('click', function (e) {
      var r = canvas.getBoundingClientRect(), n = hit(e.clientX - r.left, e.clientY - r.top);
      if (n < 0) return;
      zoomTo(n === zoom ? tree.parent[n] : n);
    });
    if (window.ResizeObserver) new ResizeObserver(function () { queueDraw(); }).observe(wrap);
    VKM.pin.onChange(function (p) { diffBox.disabled = !p; if (!p && diff) setDiff(false); else if (diff) rebuild(); renderInfo(); });
    diffBox.disabled = !VKM.pin.get();
    renderInfo();
  }

  function setWeight(w) {
    weight = w === 'alloc' ? 'alloc' : 'live';
    if (ui) ui.modeBtns.querySelectorAll('button').forEach(function (b) { b.setAttribute('aria-pressed', b.value === weight ? 'true' : 'false'); });
    rebuild(); renderInfo();
  }
  function setDiff(on) {
    diff = !!on && !!VKM.pin.get();
    if (ui) ui.diff.checked = diff;
    rebuild(); renderInfo();
  }
  function setQuery(q) {
    query = String(q || '').trim().toLowerCase();
    if (ui && ui.input.value.trim().toLowerCase() !== query) ui.input.value = q;
    search(); renderInfo(); queueDraw();
  }
  function zoomTo(node) {
    if (!tree) return;
    zoom = node > 0 && node < tree.n ? node : 0;
    zoomPath = zoom ? pathOf(zoom) : [];
    queueDraw(); renderInfo();
  }

  function renderInfo() {
    if (!ui) return;
    if (searchInfo) {
      U.fill(ui.found, el('span', null, U.num(U.pct(searchInfo.share * 100), 'Share of the ' + (weight === 'alloc' ? 'allocated' : 'live') + ' bytes shown held by frames matching "' + query + '" (' +
               U.bytes(searchInfo.bytes) + ' in ' + searchInfo.frames + ' frames; a frame inside a matching frame is counted once)', 'flame-share'),
             ' in ' + searchInfo.frames + ' frames'));
    } else U.fill(ui.found);
    var cal = model && model.cal ? model.cal[weight === 'alloc' ? 'alloc' : 'live'] : null;
    U.fill(ui.note, model ? el('span', { title: 'Where the stacks come from and how they were scaled' },
      (source === 'api/stacks' ? 'live stacks from /api/stacks' : noStacks ? 'the snapshot\'s top sites (this agent serves no /api/stacks)' : 'stacks of the shown file\'s sites') + ' · ' +
      (cal ? (cal.applied ? 'calibrated to the exact total (×' + cal.ratio.toFixed(4) + ')' : 'raw estimates (not calibrated)') : 'estimates') +
      (zoom ? ' · zoomed into ' + model.fn[tree.frame[zoom]] : '') + (fetchError ? ' · ' + fetchError : '')) : el('span', { text: 'waiting for stacks…' }));
  }

  /* The panel's render (each tick): a summary; the canvas draws itself. */
  function render(s, ctx) {
    if (VKM.history.isImported() || noStacks || VKM.stream.state() === 'exited' && !model) {
      if (s !== lastSnap) { lastSnap = s; setModel(M.prepare(M.fromSites(s.sites, s.calibration)), 'sites'); }
    } else refresh(false);
    if (ui && tree && !ui.section.hidden && ui.canvas.width === 0) queueDraw();
    var has = !!tree && tree.val[0] > 0;
    var w = weight === 'alloc' ? 'allocated' : 'live';
    var body = el('div', { class: 'flame-sum' },
      el('span', null, 'stacks ', num(U.count(tree ? tree.stacks : 0), 'Stacks with ' + w + ' bytes in the graph (sites the agent sent: the top ones by live and by allocated bytes). Source: ' + SRC)),
      el('span', null, ' · ' + w + ' shown ', num(U.bytes(tree ? tree.val[0] : 0), 'Sum of the ' + w + ' bytes of the stacks shown: the root\'s width. Source: ' + SRC)),
      el('span', null, ' · frames ', num(U.count(tree ? tree.n - 1 : 0), 'Distinct frames (function in its calling context) in the tree')));
    return { body: body, has_data: has };
  }

  /* ------------------------------------------------------ heap by site */
  var PALETTE = ['#6aa8ff', '#e8a23b', '#4cb3a5', '#c77dff', '#ff7aa2', '#9ad04b', '#f2d14f', '#58c4f0', '#ff9b5e', '#b49cff',
                 '#5fd068', '#e06c75', '#61afef', '#d19a66', '#56b6c2', '#c678dd', '#98c379', '#e5c07b', '#be5046', '#7f8fa6'];
  var MAX_BANDS = 20;

  /* Series of the top sites over the points that carry per-site data. */
  function siteSeries(points, list, leaks) {
    var pts = points.filter(function (p) { return Array.isArray(p.site_live); });
    var n = pts.length, peak = {}, last = {}, first = {};
    pts.forEach(function (p, k) {
      var sl = p.site_live;
      for (var i = 0; i + 1 < sl.length; i += 2) {
        var li = sl[i], v = sl[i + 1];
        if (!(li in peak) || v > peak[li]) peak[li] = v;
        if (!(li in first)) first[li] = k === 0 ? v : 0;
        if (k === n - 1) last[li] = v;
      }
    });
    var chosen = Object.keys(peak).map(Number).sort(function (a, b) { return peak[b] - peak[a]; }).slice(0, MAX_BANDS);
    var pos = {};
    chosen.forEach(function (li, j) { pos[li] = j; });
    var vals = chosen.map(function () { return new Float64Array(n); }), other = new Float64Array(n), ts = new Float64Array(n);
    pts.forEach(function (p, k) {
      var sl = p.site_live, sum = 0;
      for (var i = 0; i + 1 < sl.length; i += 2) if (sl[i] in pos) { vals[pos[sl[i]]][k] = sl[i + 1]; sum += sl[i + 1]; }
      other[k] = Math.max(0, (p.live_bytes || 0) - sum);
      ts[k] = p.t_ms;
    });
    var leakIds = {};
    (leaks || []).forEach(function (l) { leakIds[l.site] = 1; });
    var sites = chosen.map(function (li, j) {
      var d = list[li] || {};
      return { li: li, id: d.id || '?', name: d.function || d.id || '?', module: d.module || '', file: d.file, line: d.line,
               leak: !!d.leak || !!leakIds[d.id], color: PALETTE[j % PALETTE.length], first: vals[j][0] || 0, last: n ? vals[j][n - 1] : 0, peak: peak[li],
               caller: d.caller || '' };
    });
    /* One function at two sites (two callers): name each by its caller too. */
    var seen = {};
    sites.forEach(function (x) { seen[x.name] = (seen[x.name] || 0) + 1; });
    sites.forEach(function (x) { if (seen[x.name] > 1 && x.caller) x.name += ' \u2190 ' + x.caller; });
    return { n: n, ts: ts, sites: sites, vals: vals, other: other };
  }

  function sitehist(s, ctx) {
    var list = VKM.history.sites() || [];
    var S = siteSeries(ctx.points, list, s.leaks);
    var tip = 'Live bytes of the top sites over the selected range (' + ctx.range + '), stacked; grey = every other site; sites marked ⚠ are leak suspects (dashed edge). Source: the history\'s per-site points (the 20 largest sites at each point, calibrated), /api/history';
    var chart = VKM.charts.canvasOf('sitehist', tip, function (cv) {
      var p = VKM.charts.prep(cv), g = p.g, w = p.w, h = p.h;
      if (S.n < 1) return;
      var tEnd = ctx.t_end || S.ts[S.n - 1], span = ctx.span_ms || 1, t0 = tEnd - span, hi = 1, k, j;
      for (k = 0; k < S.n; k++) { var tot = S.other[k]; for (j = 0; j < S.vals.length; j++) tot += S.vals[j][k]; if (tot > hi) hi = tot; }
      function X(t) { return (t - t0) / span * (w - 1); }
      function Y(v) { return h - 1 - v / hi * (h - 3); }
      var lower = new Float64Array(S.n), upper = new Float64Array(S.n);
      function band(vs, fill, dashed) {
        for (k = 0; k < S.n; k++) upper[k] = lower[k] + vs[k];
        g.beginPath();
        for (k = 0; k < S.n; k++) { var x = X(S.ts[k]); if (k === 0) g.moveTo(x, Y(upper[k])); else g.lineTo(x, Y(upper[k])); }
        for (k = S.n - 1; k >= 0; k--) g.lineTo(X(S.ts[k]), Y(lower[k]));
        g.closePath(); g.fillStyle = fill; g.globalAlpha = 0.8; g.fill(); g.globalAlpha = 1;
        if (dashed) {
          g.beginPath(); g.setLineDash([4, 3]); g.strokeStyle = '#ff5d5d'; g.lineWidth = 1.5;
          for (k = 0; k < S.n; k++) { var xx = X(S.ts[k]); if (k === 0) g.moveTo(xx, Y(upper[k])); else g.lineTo(xx, Y(upper[k])); }
          g.stroke(); g.setLineDash([]);
        }
        var t = lower; lower = upper; upper = t;
      }
      S.sites.forEach(function (x, j2) { band(S.vals[j2], x.color, x.leak); });
      band(S.other, '#555b66', false);
    });
    chart.setAttribute('data-points', String(S.n));
    var p = VKM.pin.get();
    var rows = S.sites.slice();
    if (p) rows.sort(function (a, b) { return (b.last - VKM.pin.siteWas(b.id, 0)) - (a.last - VKM.pin.siteWas(a.id, 0)); });
    else rows.sort(function (a, b) { return b.last - a.last; });
    var legend = el('div', { class: 'sh-legend' });
    rows.slice(0, 12).forEach(function (x) {
      var where = x.file ? x.file + (x.line ? ':' + x.line : '') : x.module;
      var t = 'Site ' + x.id + ' (' + x.name + (where ? ', ' + where : '') + '): live bytes now, at the start of the range ' + U.bytes(x.first) + ', peak ' + U.bytes(x.peak) + '. Source: /api/history per-site points';
      legend.appendChild(el('div', { class: 'sh-row' + (x.leak ? ' is-leak' : ''), 'data-site': x.id, 'data-fn': x.name, 'data-first': String(x.first), 'data-last': String(x.last), title: t },
        el('i', { class: 'sw', style: 'background:' + x.color }), el('span', { class: 'sh-n', text: (x.leak ? '⚠ ' : '') + x.name }),
        num(U.bytes(x.last), t, 'sh-v'), VKM.pin.delta('site:' + x.id, x.last, U.bytes, 'the live bytes of ' + x.name)));
    });
    var lastOther = S.n ? S.other[S.n - 1] : 0;
    legend.appendChild(el('div', { class: 'sh-row', 'data-site': 'other', title: 'Every site not drawn as a band: the exact live heap minus the bands' },
      el('i', { class: 'sw', style: 'background:#555b66' }), el('span', { class: 'sh-n', text: 'other' }),
      num(U.bytes(lastOther), 'Live bytes of every other site now: the exact live heap minus the top sites shown')));
    var body = el('div', null, chart, legend,
      S.n ? null : el('div', { class: 'note', title: 'The per-site history arrives with /api/history answers (once a second while live)' }, 'collecting per-site points…'));
    return { body: body, has_data: S.n > 0 && S.sites.length > 0 };
  }

  return {
    list: [
      { id: 'flame', title: 'Flame graph (sampled stacks)', render: render, setup: setup, wide: true },
      { id: 'sitehist', title: 'Heap by site over time', render: sitehist }
    ],
    // for the tests and the pin
    info: info, hit: hit, zoomTo: zoomTo, setQuery: setQuery, setWeight: setWeight, setDiff: setDiff, refresh: refresh,
    search: function () { return searchInfo; }, stats: function () { return stats; }, sitesList: sitesList,
    tree: function () { return tree; }, model: function () { return model; }, zoom: function () { return zoom; },
    build: build, siteSeries: siteSeries,
    /* Frames by function name: [{node, bytes, share, x, w (css px)}] as drawn now. */
    find: function (fn) {
      var out = [];
      for (var k = 0; k < nDrawn; k++) {
        var node = drawn[k * 3];
        if (node > 0 && model.fn[tree.frame[node]] === fn) out.push({ node: node, bytes: tree.val[node], err: Math.sqrt(tree.err2[node]), share: tree.val[node] / tree.val[0], x: drawn[k * 3 + 1], w: drawn[k * 3 + 2], depth: tree.depth[node] });
      }
      return out;
    },
    rootWidth: function () { return ui ? Math.max(100, ui.wrap.clientWidth || 600) : 0; }
  };
})();
