// charts.js - canvas charts without a library: sparklines (line/area over
// time), bar series, histograms and a semicircle gauge.
//
// A chart is a <canvas> created detached with a draw function attached
// (canvas._draw). render.js morphs the fresh panel tree into the live DOM and
// then calls VKM.charts.flush(), which draws every canvas whose drawing
// changed, at its laid-out size. Drawing is cheap (one path per series), so
// a tick redraws everything it touched.
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.charts = (function () {
  var css = null;
  function colors() {
    if (css) return css;
    var s = getComputedStyle(document.documentElement);
    function v(n, d) { return (s.getPropertyValue(n) || d).trim(); }
    css = { fg: v('--fg', '#ddd'), dim: v('--dim', '#888'), grid: v('--grid', '#333'),
            a: v('--c-alloc', '#e8a23b'), r: v('--c-reclaim', '#4cb3a5'), live: v('--c-live', '#6aa8ff'),
            rss: v('--c-rss', '#c77dff'), warn: v('--c-warn', '#ff5d5d'), ok: v('--c-ok', '#5fd068') };
    return css;
  }

  /* Colours may be given as CSS custom properties ("--c-rss" or
   * "var(--c-rss)") so the palette lives in style.css only. */
  var resolved = {};
  function color(c, dflt) {
    if (!c) return dflt;
    var m = /^var\((--[\w-]+)\)$/.exec(c), name = m ? m[1] : c.indexOf('--') === 0 ? c : null;
    if (!name) return c;
    if (!(name in resolved)) resolved[name] = getComputedStyle(document.documentElement).getPropertyValue(name).trim() || dflt;
    return resolved[name];
  }

  function canvas(cls, tip, draw, key) {
    var c = document.createElement('canvas');
    c.className = 'chart ' + (cls || '');
    c.setAttribute('title', tip);
    c.setAttribute('role', 'img');
    c.setAttribute('aria-label', tip);
    if (key) c.setAttribute('data-key', key);
    c._draw = draw;
    return c;
  }

  /* Laid-out sizes come from a ResizeObserver, not from clientWidth: reading
   * layout right after the 10 Hz DOM update would force a synchronous layout
   * on every tick. Only a canvas never measured before is read directly. */
  var ro = window.ResizeObserver ? new ResizeObserver(function (entries) {
    entries.forEach(function (en) {
      var c = en.target, w = Math.round(en.contentRect.width), h = Math.round(en.contentRect.height);
      // 0 x 0: its panel was hidden (profile switch). Keep the last size, or
      // a panel shown again draws at 1 px until the observer reports back.
      if (!w && !h) return;
      if (w !== c._w || h !== c._h) { c._w = w; c._h = h; c._dirty = true; }
    });
    flush();
  }) : null;

  /* Size the backing store to the laid-out size; returns a 2D context in CSS px. */
  function prep(c) {
    var dpr = window.devicePixelRatio || 1;
    if (c._w === undefined) { c._w = c.clientWidth; c._h = c.clientHeight; if (ro) ro.observe(c); }
    var w = Math.max(1, c._w), h = Math.max(1, c._h);
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    }
    var g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    return { g: g, w: w, h: h };
  }

  /* Draw every canvas under root that has a pending draw. */
  function flush(root) {
    var list = (root || document).querySelectorAll('canvas.chart');
    for (var i = 0; i < list.length; i++) {
      var c = list[i];
      if (c._dirty && c._draw && !c.closest('[hidden]')) {
        c._dirty = false;
        try { c._draw(c); } catch (e) { console.warn('valkmem: chart: ' + e.message); }
      }
    }
  }

  /* Time series: series = [{values:[...], color, fill}], ts = [t_ms...].
   * opts.span_ms: the x axis covers [tEnd - span, tEnd] (the selected range),
   * so a short history sits at the right edge instead of being stretched.
   * opts.zero: y axis starts at 0. opts.hline: {y, color, label}. */
  function series(cls, tip, ts, list, opts) {
    opts = opts || {};
    var c = canvas(cls, tip, function (cv) {
      var p = prep(cv), g = p.g, w = p.w, h = p.h, col = colors();
      var n = ts.length;
      var tEnd = opts.t_end || (n ? ts[n - 1] : 0);
      var span = opts.span_ms || (n > 1 ? ts[n - 1] - ts[0] : 1) || 1;
      var t0 = tEnd - span;
      var lo = Infinity, hi = -Infinity;
      list.forEach(function (s) {
        for (var i = 0; i < s.values.length; i++) {
          if (ts[i] < t0) continue;
          var v = s.values[i];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      });
      if (opts.hline && isFinite(opts.hline.y)) { hi = Math.max(hi, opts.hline.y); lo = Math.min(lo, opts.hline.y); }
      if (!isFinite(lo)) { lo = 0; hi = 1; }
      if (opts.zero !== false) lo = Math.min(0, lo);
      if (hi === lo) hi = lo + 1;
      var pad = 2, H = h - pad * 2;
      function X(t) { return (t - t0) / span * (w - 1); }
      function Y(v) { return pad + H - (v - lo) / (hi - lo) * H; }
      g.strokeStyle = col.grid; g.lineWidth = 1;
      g.beginPath(); g.moveTo(0, h - 0.5); g.lineTo(w, h - 0.5); g.stroke();
      list.forEach(function (s) {
        g.beginPath();
        var started = false, firstX = 0, lastX = 0;
        for (var i = 0; i < s.values.length; i++) {
          if (ts[i] < t0) continue;
          var x = X(ts[i]), y = Y(s.values[i]);
          if (!started) { g.moveTo(x, y); firstX = x; started = true; } else g.lineTo(x, y);
          lastX = x;
        }
        if (!started) return;
        g.strokeStyle = color(s.color, col.fg); g.lineWidth = 1.5; g.stroke();
        if (s.fill) {
          g.lineTo(lastX, Y(lo)); g.lineTo(firstX, Y(lo)); g.closePath();
          g.globalAlpha = 0.18; g.fillStyle = color(s.color, col.fg); g.fill(); g.globalAlpha = 1;
        }
      });
      if (opts.hline && isFinite(opts.hline.y)) {
        var y = Math.round(Y(opts.hline.y)) + 0.5;
        g.setLineDash([4, 3]); g.strokeStyle = color(opts.hline.color, col.warn);
        g.beginPath(); g.moveTo(0, y); g.lineTo(w, y); g.stroke(); g.setLineDash([]);
        if (opts.hline.label) { g.fillStyle = color(opts.hline.color, col.warn); g.font = '10px sans-serif';
          g.fillText(opts.hline.label, 3, Math.max(10, y - 3)); }
      }
    });
    c.setAttribute('data-span-ms', String(Math.round(opts.span_ms || 0)));
    c.setAttribute('data-points', String(ts.length));
    return c;
  }

  /* Vertical bars: values (one per bar), optional stacked parts per bar:
   * stacks = [[{v, color}], ...]; opts.hline = budget line. */
  function bars(cls, tip, stacks, opts) {
    opts = opts || {};
    return canvas(cls, tip, function (cv) {
      var p = prep(cv), g = p.g, w = p.w, h = p.h, col = colors();
      var n = stacks.length; if (!n) return;
      var hi = opts.max || 0;
      stacks.forEach(function (st) { var s = 0; st.forEach(function (x) { s += Math.max(0, x.v); }); if (s > hi) hi = s; });
      if (opts.hline) hi = Math.max(hi, opts.hline.y * 1.15);
      // opts.cap: outliers (a 200 ms hitch among 16 ms frames) are clipped
      // at cap and marked with a red tick, so they do not flatten the rest.
      if (opts.cap && hi > opts.cap) hi = opts.cap;
      if (hi <= 0) hi = 1;
      var bw = w / n, gap = bw > 4 ? 1 : 0;
      stacks.forEach(function (st, i) {
        var y = h;
        st.forEach(function (x) {
          var bh = Math.min(Math.max(0, x.v) / hi * (h - 1), Math.max(0, y));
          g.fillStyle = color(x.color, col.fg);
          g.fillRect(i * bw, y - bh, Math.max(1, bw - gap), bh);
          y -= bh;
        });
        if (y <= 0.5 && opts.cap) { g.fillStyle = col.warn; g.fillRect(i * bw, 0, Math.max(1, bw - gap), 3); }
      });
      if (opts.hline) {
        var yl = Math.round(h - opts.hline.y / hi * (h - 1)) + 0.5;
        g.setLineDash([4, 3]); g.strokeStyle = color(opts.hline.color, col.warn);
        g.beginPath(); g.moveTo(0, yl); g.lineTo(w, yl); g.stroke(); g.setLineDash([]);
        if (opts.hline.label) { g.fillStyle = color(opts.hline.color, col.warn); g.font = '10px sans-serif';
          g.fillText(opts.hline.label, 3, Math.max(10, yl - 3)); }
      }
    });
  }

  /* Semicircle gauge of pct (0..100), with alloc vs reclaim needle colours. */
  function gauge(cls, tip, pct, warn) {
    return canvas(cls, tip, function (cv) {
      var p = prep(cv), g = p.g, w = p.w, h = p.h, col = colors();
      var r = Math.max(1, Math.min(w / 2, h) - 6), cx = w / 2, cy = h - 4;
      g.lineWidth = 10; g.lineCap = 'butt';
      g.strokeStyle = col.grid; g.beginPath(); g.arc(cx, cy, r, Math.PI, 2 * Math.PI); g.stroke();
      var f = Math.max(0, Math.min(100, pct || 0)) / 100;
      g.strokeStyle = warn ? col.warn : f > 0.25 ? col.a : col.ok;
      g.beginPath(); g.arc(cx, cy, r, Math.PI, Math.PI + f * Math.PI); g.stroke();
      g.fillStyle = col.fg; g.font = 'bold 15px sans-serif'; g.textAlign = 'center';
      g.fillText((pct || 0).toFixed(1) + ' %', cx, cy - 4);
    });
  }

  return { series: series, bars: bars, gauge: gauge, flush: flush, prep: prep, canvasOf: canvas,
           reset: function () { css = null; resolved = {}; } };
})();
