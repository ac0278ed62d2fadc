// views.js - the panels a profile adds on top of the core ones:
//   game     frame budget overlay (zones, GC, slack against 16.6 ms)
//   repl     last eval delta and the eval history
//   lsp      long-term stability trend (slope of live heap and RSS)
//   desktop  idle baseline vs working set
// (embedded's capacity planner is planner.js.) Same contract as panels.js.
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.views = (function () {
  var U = VKM.util, C = VKM.charts, H = VKM.panels.helpers, el = U.el, num = U.num, metric = U.metric;
  var SRC_RUNTIME = H.SRC_RUNTIME;
  var ZONE_COLORS = ['--c-z0', '--c-z1', '--c-z2', '--c-z3', '--c-z4', '--c-z5', '--c-z6', '--c-z7'];
  var MAX_ZONES = 12;   // past 8 the colours repeat; past 12 zones the rest show as the grey remainder

  /* ------------------------------------------------------ frame budget */
  function frames(s, ctx) {
    var f = s.frames;
    if (!f || !f.count) return { body: H.nodata('frames'), has_data: false };
    var budget = f.budget_ms || 16.6, rec = (f.recent || []).slice(-90);
    var zoneNames = [];
    rec.forEach(function (fr) { Object.keys(fr.zones || {}).forEach(function (z) { if (zoneNames.indexOf(z) < 0) zoneNames.push(z); }); });
    zoneNames = zoneNames.slice(0, MAX_ZONES);
    var stacks = rec.map(function (fr) {
      var parts = [], used = 0;
      zoneNames.forEach(function (z, i) { var v = (fr.zones || {})[z] || 0; used += v; parts.push({ v: v, color: ZONE_COLORS[i % ZONE_COLORS.length] }); });
      parts.push({ v: fr.gc_ms || 0, color: '--c-warn' }); used += fr.gc_ms || 0;
      parts.push({ v: Math.max(0, (fr.ms || 0) - used), color: '--c-other' });
      return parts;
    });
    var chart = C.bars('bars tall', 'Last ' + rec.length + ' frames: zone times (valkmem_zone_begin/end), GC time inside the frame (red), rest of the frame (grey); dashed line = ' +
                       budget + ' ms budget; frames over ' + (3 * budget).toFixed(1) + ' ms are clipped (red tick). Source: frames.recent from ' + SRC_RUNTIME,
                       stacks, { hline: { y: budget, label: budget + ' ms' }, cap: 3 * budget });
    var last = rec[rec.length - 1] || { ms: 0, zones: {} };
    var legend = el('div', { class: 'legend' });
    zoneNames.forEach(function (z, i) {
      var tip = 'Time in zone "' + z + '" in the last frame. Source: valkmem_zone_begin/end via ' + SRC_RUNTIME;
      legend.appendChild(el('span', { class: 'lg' }, el('i', { class: 'sw', style: 'background:var(' + ZONE_COLORS[i % ZONE_COLORS.length] + ')' }), z + ' ',
                            num(U.ms((last.zones || {})[z] || 0), tip)));
    });
    legend.appendChild(el('span', { class: 'lg' }, el('i', { class: 'sw c-warnbg' }), 'GC ',
                          num(U.ms(last.gc_ms || 0), 'GC pause time inside the last frame. Source: ' + SRC_RUNTIME)));
    var slack = budget - (last.ms || 0);
    legend.appendChild(el('span', { class: 'lg' + (slack < 0 ? ' is-warnish' : '') }, 'slack ',
                          num(U.ms(slack), 'Budget (' + budget + ' ms) minus the last frame\'s time; negative = the frame was late')));
    var overPct = rec.length ? (rec.filter(function (x) { return x.ms > budget; }).length / rec.length * 100) : 0;
    var grid = el('div', { class: 'mgrid' },
      metric('frames', U.count(f.count), 'Frames marked so far (valkmem_frame_mark). Source: ' + SRC_RUNTIME),
      metric('avg frame', U.ms(f.avg_ms), 'Mean frame time (time between frame marks). Source: ' + SRC_RUNTIME, 'is-key'),
      metric('max frame', U.ms(f.max_ms), 'Longest frame. Source: ' + SRC_RUNTIME),
      metric('over budget', U.count(f.over_budget), 'Frames longer than ' + budget + ' ms. Source: ' + SRC_RUNTIME, f.over_budget ? 'is-warnish' : ''),
      metric('alloc/frame', U.bytes(last.alloc_bytes), 'Bytes allocated during the last frame (' + U.count(last.alloc_count) + ' calls). Source: ' + SRC_RUNTIME));
    var body = el('div', null, grid, chart, legend,
      overPct > 10 ? U.warn(U.pct(overPct) + ' of the recent frames missed the ' + budget + ' ms budget', 'Share of frames.recent over budget_ms') : null);
    return { body: body, has_data: true };
  }

  /* -------------------------------------------------------------- evals */
  function evals(s, ctx) {
    var e = s.evals;
    if (!e || !e.count) return { body: H.nodata('evals'), has_data: false };
    var rec = e.recent || [], last = rec[rec.length - 1] || {};
    var src = 'valkmem_eval_begin/end around each evaluation. Source: ' + SRC_RUNTIME;
    var lastBox = el('div', { class: 'eval-last' },
      el('div', { class: 'sub', title: 'The label the runtime passed to valkmem_eval_begin' }, 'last eval: ', el('code', { text: last.label || '' })),
      el('div', { class: 'mgrid' },
        metric('allocated', U.bytes(last.allocated), 'Bytes allocated during the last eval. ' + src),
        metric('retained', last.retained === null || last.retained === undefined ? 'n/a' : U.bytes(last.retained),
               'Bytes still live after the eval and its GC: what the eval kept' + (last.retained === null || last.retained === undefined ?
               ' — not known yet: no GC has run since this eval (net shows the heap change instead). ' : '. ') + src, 'is-key'),
        metric('net', U.bytes(last.net), 'Change of the live heap across the eval (after − before). ' + src, last.net > 0 ? 'is-warnish' : ''),
        metric('duration', U.ms(last.duration_ms), 'Wall time of the eval. ' + src),
        metric('GC time', U.ms(last.gc_ms), 'GC pause time during the eval. ' + src),
        metric('arena high water', U.bytes(last.arena_high_water), 'Most arena bytes in use during the eval. ' + src)));
    var chart = C.bars('bars', 'Net bytes per eval, oldest to newest (red = grew the heap). Source: evals.recent from ' + SRC_RUNTIME,
      rec.map(function (x) { return [{ v: Math.abs(x.net || 0), color: x.net > 0 ? '--c-warn' : '--c-reclaim' }]; }));
    var t = el('table', { class: 'sites evals' }, el('thead', null, el('tr', null,
      el('th', { text: 'eval' }), el('th', { class: 'r', text: 'allocated' }), el('th', { class: 'r', text: 'retained' }),
      el('th', { class: 'r', text: 'net' }), el('th', { class: 'r', text: 'time' }))));
    var tb = el('tbody');
    rec.slice(-6).reverse().forEach(function (x) {
      tb.appendChild(el('tr', null, el('td', { class: 'fn', title: 'Eval label: ' + x.label, text: x.label }),
        el('td', { class: 'r' }, num(U.bytes(x.allocated), 'Bytes allocated during this eval. ' + src)),
        el('td', { class: 'r' }, num(x.retained === null || x.retained === undefined ? 'n/a' : U.bytes(x.retained),
          'Bytes this eval kept alive' + (x.retained === null || x.retained === undefined ? ' — not known: no GC ran after it yet. ' : '. ') + src)),
        el('td', { class: 'r' }, num(U.bytes(x.net), 'Live-heap change across this eval. ' + src)),
        el('td', { class: 'r' }, num(U.ms(x.duration_ms), 'Duration of this eval. ' + src))));
    });
    t.appendChild(tb);
    var body = el('div', null, lastBox,
      el('div', { class: 'sub' }, 'history (', num(U.count(e.count), 'Evals reported so far. ' + src), ' evals)'), chart, t,
      e.warn ? U.warn('The heap grew across the recent evals: something keeps what they allocate', 'evals.warn: net > 0 across the last evals') : null);
    return { body: body, has_data: true };
  }

  /* Least-squares slope of points[key] per second, and the fit's mean. */
  function slope(points, key) {
    var n = points.length;
    if (n < 2) return { slope: 0, mean: n ? points[0][key] || 0 : 0, n: n, span_s: 0 };
    var t0 = points[0].t_ms, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (var i = 0; i < n; i++) {
      var x = (points[i].t_ms - t0) / 1000, y = points[i][key] || 0;
      sx += x; sy += y; sxx += x * x; sxy += x * y;
    }
    var den = n * sxx - sx * sx;
    return { slope: den ? (n * sxy - sx * sy) / den : 0, mean: sy / n, n: n, span_s: (points[n - 1].t_ms - t0) / 1000 };
  }

  /* ---------------------------------------------------------- stability */
  function stability(s, ctx) {
    var pts = ctx.points;
    if (pts.length < 2) return { body: el('div', { class: 'note', title: 'Needs at least two history points' }, 'collecting history…'), has_data: false };
    var lv = slope(pts, 'live_bytes'), rs = slope(pts, 'rss');
    // A trend per hour from a few seconds of start-up says nothing: judge
    // only once the range holds a minute of data.
    var enough = lv.span_s >= 60;
    var perH = function (x) { return x * 3600; };
    var growthPct = lv.mean ? perH(lv.slope) / lv.mean * 100 : 0;
    var verdict = !enough ? 'not judged yet' : Math.abs(perH(lv.slope)) < Math.max(1 << 20, lv.mean * 0.05) ? 'stable' : lv.slope > 0 ? 'growing' : 'shrinking';
    var src = 'least-squares fit over the ' + pts.length + ' history points of the selected range (' + ctx.range + ', ' + U.dur(lv.span_s) + ' of data). Source: /api/history';
    var lo = Infinity, hi = -Infinity;
    pts.forEach(function (p) { if (p.live_bytes < lo) lo = p.live_bytes; if (p.live_bytes > hi) hi = p.live_bytes; });
    var chart = C.series('spark tall', 'Live heap (blue) and RSS (purple) over the selected range (' + ctx.range + '). Source: /api/history',
      H.times(ctx), [{ values: H.series(ctx, 'rss'), color: '--c-rss' }, { values: H.series(ctx, 'live_bytes'), color: '--c-live', fill: true }],
      { span_ms: ctx.span_ms, t_end: ctx.t_end });
    var body = el('div', null,
      el('div', { class: 'verdict v-' + verdict.split(' ')[0], title: 'Stable when the live heap moves less than max(1 MiB, 5 % of its mean) per hour; judged once the range holds 60 s of data. ' + src },
         'live heap is ', el('b', { text: verdict }), enough ? null : el('small', { class: 'note' }, ' (', U.num(U.dur(lv.span_s), 'Data in the range so far; a verdict needs 60 s'), ' of 60 s)')),
      el('div', { class: 'mgrid' },
        metric('live trend', U.bytes(perH(lv.slope)) + '/h', 'Slope of the live heap, bytes per hour; ' + src, 'is-key'),
        metric('trend vs mean', U.pct(growthPct) + '/h', 'Slope per hour as a share of the mean live heap; ' + src),
        metric('RSS trend', U.bytes(perH(rs.slope)) + '/h', 'Slope of RSS, bytes per hour; ' + src),
        metric('live min', U.bytes(lo), 'Lowest live heap in the range. Source: /api/history'),
        metric('live max', U.bytes(hi), 'Highest live heap in the range. Source: /api/history')),
      chart,
      el('div', { class: 'note', title: 'Long ranges use 1 s and 10 s points from the agent\'s downsampled history' }, 'choose 1h or 10h for a long-term view'),
      verdict === 'growing' ? U.warn('Live heap grows ' + U.bytes(perH(lv.slope)) + ' per hour over this range', 'Slope of live_bytes over the range') : null);
    return { body: body, has_data: true };
  }

  /* --------------------------------------------------------------- idle */
  function idle(s, ctx) {
    var pts = ctx.points;
    if (pts.length < 2) return { body: el('div', { class: 'note', title: 'Needs at least two history points' }, 'collecting history…'), has_data: false };
    // Idle points: allocation rate in the lowest quartile of the range. The
    // baseline is the live heap at those points; the working set is the most
    // the program held in the last 10 s.
    var rates = pts.map(function (p) { return p.alloc_bps || 0; }).sort(function (a, b) { return a - b; });
    var q1 = rates[Math.floor(rates.length / 4)];
    var idlePts = pts.filter(function (p) { return (p.alloc_bps || 0) <= q1; });
    var base = Infinity, baseRss = Infinity;
    idlePts.forEach(function (p) { if (p.live_bytes < base) base = p.live_bytes; if (p.rss < baseRss) baseRss = p.rss; });
    var tEnd = pts[pts.length - 1].t_ms, ws = 0, wsRss = 0;
    pts.forEach(function (p) { if (p.t_ms >= tEnd - 10000) { ws = Math.max(ws, p.peak_live_bytes || p.live_bytes); wsRss = Math.max(wsRss, p.peak_rss || p.rss); } });
    var cur = (s.live || {}).bytes || 0;
    var ratio = base > 0 ? ws / base : 0;
    var back = base > 0 ? cur <= base * 1.1 : false;
    var src = 'history points of the selected range (' + ctx.range + '); idle = the quarter of points with the lowest allocation rate. Source: /api/history';
    var chart = C.series('spark tall', 'Live heap over the range (blue) with the idle baseline (dashed). Source: /api/history', H.times(ctx),
      [{ values: H.series(ctx, 'live_bytes'), color: '--c-live', fill: true }],
      { span_ms: ctx.span_ms, t_end: ctx.t_end, hline: { y: base, color: '--c-reclaim', label: 'idle baseline' } });
    var body = el('div', null,
      el('div', { class: 'mgrid' },
        metric('idle baseline', U.bytes(base), 'Lowest live heap while idle; ' + src, 'is-key'),
        metric('working set (10 s)', U.bytes(ws), 'Most live heap held in the last 10 s. Source: /api/history (peak_live_bytes)'),
        metric('now', U.bytes(cur), 'Live heap now, exact. Source: ' + H.SRC_COUNTERS),
        metric('working / idle', ratio ? ratio.toFixed(2) + '×' : '–', 'Working set divided by the idle baseline'),
        metric('idle RSS', U.bytes(baseRss), 'Lowest RSS while idle; ' + src),
        metric('RSS (10 s)', U.bytes(wsRss), 'Highest RSS in the last 10 s. Source: /api/history (peak_rss)')),
      chart,
      el('div', { class: 'note' + (back ? '' : ' is-warnish'), title: 'Whether the live heap is within 10 % of the idle baseline now: a desktop app should give memory back when idle' },
         back ? 'back at the idle baseline' : 'above the idle baseline by ', back ? null : num(U.bytes(cur - base), 'Live heap now minus the idle baseline')));
    return { body: body, has_data: isFinite(base) };
  }

  return {
    list: [
      { id: 'frames', title: 'Frame budget', render: frames },
      { id: 'evals', title: 'Evals', render: evals },
      { id: 'stability', title: 'Long-term stability', render: stability },
      { id: 'idle', title: 'Idle baseline vs working set', render: idle }
    ],
    slope: slope
  };
})();
