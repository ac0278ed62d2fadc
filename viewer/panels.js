// panels.js - the core panels: process memory, allocation pressure, heap and
// call sites, GC, object lifetimes, pools/arenas.
//
// Each panel is {id, title, render(s, ctx)} where s is a snapshot
// (agent/SCHEMA.md) and ctx = {points, span_ms, step_ms, range}. render
// returns {body, has_data}: a freshly built subtree that app.js morphs into
// the live panel, and whether the panel had real data to show (false: the
// section was null and the panel says so instead of inventing numbers).
// Profile-specific panels live in views.js and planner.js.
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.panels = (function () {
  var U = VKM.util, C = VKM.charts, el = U.el, num = U.num, metric = U.metric;

  var SRC_OS_LINUX = '/proc/self/statm (each tick) and /proc/self/status (each second), read by the agent (os_linux.c)';
  var SRC_OS_DARWIN = 'task_info() of the process (phys_footprint), read by the agent (os_darwin.c)';
  var SRC_COUNTERS = 'exact per-thread counters of the LD_PRELOAD shim, summed by the agent each tick (agent.c)';
  var SRC_SITES = 'sampled call stacks (one sample per ~sample_bytes allocated, weighted), aggregated per site by the agent (sites.c); an estimate';
  var SRC_RUNTIME = 'the runtime API (valkmem_gc_*, valkmem_pool_*, valkmem_frame_mark, valkmem_eval_*), aggregated by the agent (runtime.c)';

  /* metric m with its change since the pin appended (pin.js). */
  function pinned(m, key, s) {
    var f = VKM.pin && VKM.pin.FIELDS[key], d = f ? VKM.pin.delta(key, f.get(s)) : null;
    if (d) m.appendChild(d);
    return m;
  }

  function osSrc(s) { return s.platform === 'darwin' ? SRC_OS_DARWIN : SRC_OS_LINUX; }
  function series(ctx, key) { return ctx.points.map(function (p) { return p[key] || 0; }); }
  function times(ctx) { return ctx.points.map(function (p) { return p.t_ms; }); }
  function nodata(what) {
    return el('div', { class: 'nodata', title: 'The ' + what + ' section of the snapshot is null: the program has not reported it' },
              'no runtime API data', el('small', { text: ' — ' + what + ' not reported by this program' }));
  }

  /* A horizontal stacked bar of parts [{label, v, cls, tip}] whose 100 % is
   * base (RSS for process memory). Parts never overflow the bar: when they add
   * up to more than the base (live heap can include pages never touched, so
   * not resident) they are scaled down and the bar says so. */
  function stacked(cls, base, parts, baseTip) {
    var sum = 0;
    parts.forEach(function (p) { sum += Math.max(0, p.v || 0); });
    var scale = base > 0 ? (sum > base ? base / sum : 1) : 0;
    var bar = el('div', { class: 'stack ' + cls, title: baseTip, 'data-base': String(base) });
    parts.forEach(function (p) {
      var w = base > 0 ? Math.max(0, p.v || 0) * scale / base * 100 : 0;
      bar.appendChild(el('div', { class: 'seg ' + p.cls, style: 'width:' + w.toFixed(3) + '%',
                                  'data-pct': w.toFixed(3), title: p.label + ': ' + U.bytes(p.v) + ' — ' + p.tip }));
    });
    var legend = el('div', { class: 'legend' });
    parts.forEach(function (p) {
      legend.appendChild(el('span', { class: 'lg' }, el('i', { class: 'sw ' + p.cls }), p.label + ' ',
                            num(U.bytes(p.v), p.label + ' — ' + p.tip)));
    });
    return el('div', { class: 'stack-wrap' }, bar, legend,
              sum > base && base > 0 ? el('small', { class: 'note', title: 'The parts add up to ' + U.bytes(sum) +
                ', more than RSS: allocated pages that were never touched are not resident. Parts are scaled to fit.' },
                'parts exceed RSS (untouched pages); scaled to fit') : null);
  }

  /* label | bar | value rows for histograms with a tooltip per bucket. */
  function hbars(cls, rows, tipBase) {
    var max = 0;
    rows.forEach(function (r) { if (r.v > max) max = r.v; });
    var box = el('div', { class: 'hbars ' + cls });
    rows.forEach(function (r) {
      var w = max > 0 ? r.v / max * 100 : 0;
      var tip = r.tip || (tipBase + ' — bucket ' + r.label + ': ' + r.text);
      box.appendChild(el('div', { class: 'hrow' + (r.warn ? ' is-warn' : ''), title: tip },
                         el('span', { class: 'hl', text: r.label }),
                         el('span', { class: 'hb' }, el('i', { style: 'width:' + w.toFixed(2) + '%', class: r.cls || '' })),
                         num(r.text, tip, 'hv')));
    });
    return box;
  }

  /* A used/capacity bar with a high-water tick and an optional threshold. */
  function meter(v, cap, hw, tip, opts) {
    opts = opts || {};
    var f = cap > 0 ? U.clamp(v / cap * 100, 0, 100) : 0;
    var m = el('div', { class: 'meter' + (opts.warn ? ' is-warn' : ''), title: tip },
               el('i', { style: 'width:' + f.toFixed(2) + '%' }));
    if (hw !== null && hw !== undefined && cap > 0)
      m.appendChild(el('b', { class: 'hw', style: 'left:' + U.clamp(hw / cap * 100, 0, 100).toFixed(2) + '%' }));
    if (opts.threshold) m.appendChild(el('b', { class: 'thr', style: 'left:' + opts.threshold + '%' }));
    return m;
  }

  /* ------------------------------------------------------------ memory */
  function memory(s, ctx) {
    var os = s.os || {}, src = osSrc(s), darwin = s.platform === 'darwin';
    var rssName = darwin ? 'Footprint' : 'RSS';
    var rssTip = (darwin ? 'Physical footprint (what macOS charges the process for)' :
                  'Resident set size: memory of the process that is in RAM now') + '. Source: ' + src;
    var live = (s.live || {}).bytes || 0, a = s.allocator || {};
    var spark = C.series('spark', rssName + ' (purple) and live heap (blue) over the selected range (' + ctx.range +
                         '). Source: /api/history points (rss, live_bytes)', times(ctx),
                         [{ values: series(ctx, 'rss'), color: '--c-rss', fill: true },
                          { values: series(ctx, 'live_bytes'), color: '--c-live' }],
                         { span_ms: ctx.span_ms, t_end: ctx.t_end });
    var trend = trendWord(ctx.points, 'rss');
    var head = el('div', { class: 'bigrow' },
      el('div', { class: 'big', title: rssTip, 'data-metric': 'rss' },
         el('div', { class: 'm-label', text: rssName }), num(U.bytes(os.rss), rssTip, 'bignum'), VKM.pin.delta('rss', os.rss),
         el('small', { class: 'trend', title: 'Direction of ' + rssName + ' over the range: a least-squares slope of the history points' }, trend)),
      spark);
    var other = Math.max(0, (os.rss || 0) - live - (a.free_held || 0) - (s.self_bytes || 0));
    var bar = stacked('rss-bar', os.rss || 0, [
      { label: 'live heap', v: live, cls: 'c-live', tip: 'bytes the program has allocated and not freed (usable size). Source: ' + SRC_COUNTERS },
      { label: 'allocator free', v: a.free_held || 0, cls: 'c-free', tip: 'freed memory the allocator (' + (a.source || '?') + ') still holds. Source: estimated from outside the process (allocstats.c): Rss of the heap and anonymous memory at the last smaps breakdown, less the exact live heap and the mmaps the program made itself: an upper bound' },
      { label: 'valkmem', v: s.self_bytes || 0, cls: 'c-self', tip: 'memory valkmem uses for itself (mimalloc, rings, history); not the program\'s' },
      { label: 'other', v: other, cls: 'c-other', tip: rssName + ' minus the parts named here: code, stacks, file mappings, mmap\'d memory the program manages itself' }
    ], 'The whole bar is ' + rssName + ' (' + U.bytes(os.rss) + '); never VMS. Source: ' + src);
    var grid = el('div', { class: 'mgrid' },
      metric('peak ' + rssName, U.bytes(os.peak_rss || (s.peak || {}).rss_bytes), 'Highest ' + rssName + ' since the process started (VmHWM). Source: ' + src),
      metric('minor faults', U.count(os.minor_faults), 'Page faults served without disk I/O since start (first touch of fresh pages: a proxy for heap growth). Source: ' + src),
      metric('major faults', U.count(os.major_faults), 'Page faults that needed disk I/O since start (swap or file pages). Source: ' + src,
             os.major_faults > 0 ? 'is-dim' : ''),
      metric('swap', U.bytes(os.swap), 'Memory of the process swapped out. Source: ' + src),
      metric('threads', U.count(os.threads), 'Threads of the process now. Source: ' + src),
      darwin ? null : metric('VMS', U.bytes(os.vms), 'Virtual size: address space reserved, mostly not memory in use. Shown for reference only. Source: ' + src, 'is-dim'));
    var sm = os.smaps;
    var smaps = null;
    if (!darwin && sm) {
      var tot = (sm.heap || 0) + (sm.anon || 0) + (sm.file || 0) + (sm.stack || 0) + (sm.other || 0);
      var age = s.t_ms && sm.at_ms ? (s.t_ms - sm.at_ms) / 1000 : null;
      var smSrc = '/proc/self/smaps, Rss by mapping kind (taken every 10 s by os_linux.c)';
      smaps = el('div', { class: 'smaps', 'data-section': 'smaps' },
        el('div', { class: 'sub', title: 'Where resident memory lives, by mapping kind. Source: ' + smSrc },
           'RSS by mapping ', age !== null ? num('(' + U.dur(Math.max(0, age)) + ' ago)', 'Age of this breakdown: smaps is read every 10 s, not every tick') : null),
        stacked('smaps-bar', tot, [
          { label: 'heap', v: sm.heap, cls: 's-heap', tip: '[heap] mapping (brk). Source: ' + smSrc },
          { label: 'anon', v: sm.anon, cls: 's-anon', tip: 'anonymous mappings (mmap\'d arenas, large allocations). Source: ' + smSrc },
          { label: 'file', v: sm.file, cls: 's-file', tip: 'file-backed mappings (code, libraries, mmap\'d files). Source: ' + smSrc },
          { label: 'stack', v: sm.stack, cls: 's-stack', tip: 'thread stacks. Source: ' + smSrc },
          { label: 'other', v: sm.other, cls: 's-other', tip: 'vdso, vvar and other mappings. Source: ' + smSrc }
        ], 'Sum of Rss over all mappings: ' + U.bytes(tot) + '. Source: ' + smSrc));
    }
    return { body: el('div', null, head, bar, grid, smaps), has_data: !!s.os && os.rss > 0 };
  }

  /* "rising" / "falling" / "flat" / "sawtooth" from the history points. */
  function trendWord(points, key) {
    var n = points.length;
    if (n < 3) return 'collecting…';
    var sx = 0, sy = 0, sxx = 0, sxy = 0, t0 = points[0].t_ms, mean = 0;
    for (var i = 0; i < n; i++) {
      var x = (points[i].t_ms - t0) / 1000, y = points[i][key] || 0;
      sx += x; sy += y; sxx += x * x; sxy += x * y;
    }
    mean = sy / n;
    var den = n * sxx - sx * sx, slope = den ? (n * sxy - sx * sy) / den : 0;
    var span = (points[n - 1].t_ms - t0) / 1000 || 1;
    var drops = 0;
    for (i = 1; i < n; i++) if ((points[i][key] || 0) < (points[i - 1][key] || 0) * 0.9) drops++;
    var rel = mean ? slope * span / mean : 0;
    if (drops >= 3 && Math.abs(rel) < 0.1) return 'sawtooth (reclaimed regularly)';
    if (rel > 0.05) return '▲ rising ' + U.rate(slope);
    if (rel < -0.05) return '▼ falling ' + U.rate(slope);
    return 'flat';
  }

  /* ---------------------------------------------------------- pressure */
  function pressure(s, ctx) {
    var r = s.rates || {};
    var tipA = 'Bytes allocated per second (usable size) over the last tick. Source: ' + SRC_COUNTERS;
    var tipR = 'Bytes freed (reclaimed) per second over the last tick. Source: ' + SRC_COUNTERS;
    var tipP = 'Allocation pressure: (allocated − reclaimed) / allocated over a 5 s window; 0 when reclaim keeps up. Source: agent.c';
    var max = Math.max(r.alloc_bps || 0, r.free_bps || 0, 1);
    var bars = el('div', { class: 'ar-bars' },
      el('div', { class: 'ar-row', title: tipA }, el('span', { class: 'hl', text: 'alloc' }),
         el('span', { class: 'hb' }, el('i', { class: 'c-alloc', style: 'width:' + ((r.alloc_bps || 0) / max * 100).toFixed(2) + '%' })),
         num(U.rate(r.alloc_bps), tipA, 'hv')),
      el('div', { class: 'ar-row', title: tipR }, el('span', { class: 'hl', text: 'reclaim' }),
         el('span', { class: 'hb' }, el('i', { class: 'c-reclaim', style: 'width:' + ((r.free_bps || 0) / max * 100).toFixed(2) + '%' })),
         num(U.rate(r.free_bps), tipR, 'hv')));
    var g = C.gauge('gauge', tipP + ' Now: ' + U.pct(r.pressure_pct), r.pressure_pct || 0, !!r.pressure_warn);
    var spark = C.series('spark', 'Allocated (orange) vs reclaimed (teal) bytes/s over the selected range (' + ctx.range +
                         '). Source: /api/history points (alloc_bps, free_bps)', times(ctx),
                         [{ values: series(ctx, 'alloc_bps'), color: '--c-alloc' }, { values: series(ctx, 'free_bps'), color: '--c-reclaim' }],
                         { span_ms: ctx.span_ms, t_end: ctx.t_end });
    var body = el('div', null,
      el('div', { class: 'gauge-row' }, g, el('div', { class: 'gauge-side' },
        el('div', { class: 'm-label', text: 'pressure' }), num(U.pct(r.pressure_pct), tipP, 'bignum'), VKM.pin.delta('pressure', r.pressure_pct),
        metric('alloc ops', U.count(r.alloc_ops) + '/s', 'malloc-family calls per second. Source: ' + SRC_COUNTERS),
        metric('free ops', U.count(r.free_ops) + '/s', 'free calls per second. Source: ' + SRC_COUNTERS))),
      bars, spark,
      r.pressure_warn ? U.warn('Allocation outruns reclaim: pressure above 50 % for 5 s or more — memory is growing',
                               'rates.pressure_warn from the agent: pressure stayed above 50 % for at least 5 s') : null);
    return { body: body, has_data: !!s.rates && ((s.totals || {}).alloc_count || 0) > 0 };
  }

  /* -------------------------------------------------------------- heap */
  function siteTable(s, ids, key, label) {
    var byId = {};
    (s.sites || []).forEach(function (x) { byId[x.id] = x; });
    var pin = VKM.pin.get(), field = key === 'live_bytes' ? 0 : 1;
    function grew(x) { return (x[key] || 0) - VKM.pin.siteWas(x.id, field); }
    // Pinned: the ranking's sites (the top ones the agent sent) by how much
    // they grew since the pin, most first.
    var ranked = (ids || []).map(function (id) { return byId[id]; }).filter(Boolean);
    var rows = pin ? ranked.sort(function (a, b) { return grew(b) - grew(a); }).slice(0, 5) : ranked.slice(0, 5);
    var t = el('table', { class: 'sites' + (pin ? ' by-growth' : '') },
      el('thead', null, el('tr', null, el('th', { text: label + (pin ? ' (by growth since the pin)' : '') }),
         el('th', { class: 'r', text: key === 'live_bytes' ? 'live' : 'allocated' }), el('th', { class: 'r', text: 'objects' }),
         pin ? el('th', { class: 'r', text: 'since pin', title: 'Change since the pinned baseline (' + VKM.pin.describe() + ')' }) : null)));
    var tb = el('tbody');
    rows.forEach(function (x) {
      var fr = x.frames || [];
      var fnTip = 'Call site ' + x.id + ': ' + fr.slice(0, 8).map(function (f) {
        return (f.function || '?') + (f.file ? ' (' + f.file + ':' + (f.line || '?') + ')' : '');
      }).join(' ← ') + (fr.length > 8 ? ' ← … (' + fr.length + ' frames)' : '') + '. Source: ' + SRC_SITES;
      var err = key === 'live_bytes' ? x.live_err_bytes : x.alloc_err_bytes;
      var bTip = (key === 'live_bytes' ? 'Bytes allocated here and not yet freed' : 'Bytes allocated here since start') +
                 ' (estimate' + (err !== undefined ? ' ± ' + U.bytes(err) + ', one standard error' : '') + '). Source: ' + SRC_SITES;
      var cTip = (key === 'live_bytes' ? 'Objects allocated here and still live' : 'Allocations made here since start') +
                 ' (estimate). Source: ' + SRC_SITES;
      tb.appendChild(el('tr', { 'data-site': x.id },
        el('td', { class: 'fn', title: fnTip }, U.siteName(x), el('small', { text: U.siteWhere(x) })),
        el('td', { class: 'r' }, num(U.bytes(x[key]), bTip)),
        el('td', { class: 'r' }, num(U.count(key === 'live_bytes' ? x.live_count : x.alloc_count), cTip)),
        pin ? el('td', { class: 'r' }, VKM.pin.deltaEl(grew(x), U.bytes, VKM.pin.siteWas(x.id, field), 'the ' + (key === 'live_bytes' ? 'live' : 'allocated') + ' bytes of this site')) : null));
    });
    t.appendChild(tb);
    return rows.length ? t : el('div', { class: 'note', title: 'No call site has been sampled yet: the program has allocated less than one sampling interval' }, 'no sampled sites yet');
  }

  function heap(s, ctx) {
    var live = s.live || {}, pk = s.peak || {};
    var exact = s.sample_bytes === 1;
    var sampTip = 'Attribution to call sites is ' + (exact ? 'exact (VALKMEM_SAMPLE_BYTES=1: every allocation)' :
      'sampled: on average one sample per ' + U.bytes(s.sample_bytes) + ' allocated, weighted to stay unbiased (VALKMEM_SAMPLE_BYTES)');
    var dropTip = 'Sampled events dropped because a per-thread ring was full (never silent). Source: the shim\'s drop counter';
    var grid = el('div', { class: 'mgrid' },
      pinned(metric('live heap', U.bytes(live.bytes), 'Bytes allocated and not yet freed, exact: allocated usable − freed usable. Source: ' + SRC_COUNTERS, 'is-key'), 'live', s),
      pinned(metric('live objects', U.count(live.count), 'Allocations not yet freed (allocs − frees), exact. Source: ' + SRC_COUNTERS), 'live_count', s),
      pinned(metric('peak live', U.bytes(pk.live_bytes), 'Highest live heap seen: never above the true peak, at most ' + U.bytes(pk.live_error_bytes) +
        ' below it (each thread checks it after every 64 KiB it frees' + (exact ? '; exact mode at every free' : '') + '). Source: ' + SRC_COUNTERS), 'peak_live', s),
      pinned(metric('allocs', U.count((s.totals || {}).alloc_count), 'malloc-family calls since start, exact. Source: ' + SRC_COUNTERS), 'alloc_count', s),
      pinned(metric('failed', U.count((s.totals || {}).failed_count), 'Allocations that returned NULL since start. Source: ' + SRC_COUNTERS), 'failed', s));
    var notes = el('div', { class: 'notes' },
      el('span', { class: 'note', title: sampTip }, exact ? 'exact attribution' : 'sampling every ~', exact ? null : num(U.bytes(s.sample_bytes), sampTip)),
      el('span', { class: 'note' + (s.dropped_events > 0 ? ' is-warnish' : ''), title: dropTip },
         ' · dropped events ', num(U.count(s.dropped_events || 0), dropTip)));
    var leaks = (s.leaks || []).slice(0, 4).map(function (l) {
      var site = (s.sites || []).filter(function (x) { return x.id === l.site; })[0];
      var where = site ? U.siteWhere(site) : '';
      var tip = 'Leak suspect: the live bytes of this site keep rising across ' + l.epochs + ' epochs while its objects age. Source: leak analysis in sites.c';
      return el('div', { class: 'warn leak', role: 'alert', title: tip, 'data-site': l.site },
        'Leak suspect: ', el('b', { text: l.function || (site ? U.siteName(site) : l.site) }), where ? ' (' + where + ')' : '',
        ' grows ', num(U.rate(l.growth_bytes_per_s), 'Growth rate of this site\'s live bytes (least squares over the epochs). Source: sites.c'),
        ', ', num(U.bytes(l.live_bytes), 'Live bytes at this site now (estimate). Source: ' + SRC_SITES), ' live, for ',
        num(U.dur(l.since_s || 0), 'How long this site has been growing. Source: sites.c'));
    });
    var roots = (s.roots || []).slice(0, 3).map(function (r) {
      var tip = 'Retained by root "' + r.name + '", as reported by the runtime (valkmem_root_report). Source: ' + SRC_RUNTIME;
      return el('div', { class: 'root', title: tip }, el('span', { text: r.name + ' ' }), num(U.bytes(r.retained_bytes), tip),
                el('small', null, ' · ', num(U.count(r.objects) + ' obj', tip)));
    });
    var body = el('div', null, grid, notes, leaks.length ? el('div', { class: 'leaks' }, leaks) : null,
      el('div', { class: 'sub', text: 'top call sites by live bytes (retained)' }), siteTable(s, s.sites_by_live, 'live_bytes', 'function'),
      el('div', { class: 'sub', text: 'top call sites by allocated bytes' }), siteTable(s, s.sites_by_alloc, 'alloc_bytes', 'function'),
      roots.length ? el('div', { class: 'roots' }, el('span', { class: 'sub', text: 'roots ' }), roots) : null);
    return { body: body, has_data: !!s.live && (s.sites || []).length > 0 };
  }

  /* ---------------------------------------------------------------- gc */
  var PAUSE_LABELS = ['<1 ms', '1–5', '5–10', '10–16.6', '≥16.6'];
  function gc(s, ctx) {
    var g = s.gc;
    if (!g) return { body: nodata('gc'), has_data: false };
    var p = g.pause || {};
    var grid = el('div', { class: 'mgrid' },
      pinned(metric('cycles', U.count(g.cycles), 'GC cycles the runtime reported (valkmem_gc_begin/end). Source: ' + SRC_RUNTIME), 'gc_cycles', s),
      metric('efficiency last', U.pct((g.efficiency_last || 0) * 100), 'Share of the heap the last cycle reclaimed: (before − after) / before. Source: ' + SRC_RUNTIME),
      metric('efficiency avg', U.pct((g.efficiency_avg || 0) * 100), 'Mean reclaimed share over all cycles. Source: ' + SRC_RUNTIME),
      pinned(metric('pause p95', U.ms(p.p95_ms), '95th percentile GC pause. Source: ' + SRC_RUNTIME, 'is-key'), 'gc_p95', s),
      metric('pause max', U.ms(p.max_ms), 'Longest GC pause. Source: ' + SRC_RUNTIME),
      metric('pause avg', U.ms(p.avg_ms), 'Mean GC pause (' + U.count(p.count) + ' pauses, ' + U.ms(p.total_ms) + ' total). Source: ' + SRC_RUNTIME));
    var rec = (g.recent || []);
    var effChart = C.bars('bars', 'Efficiency per cycle, last ' + rec.length + ' cycles (reclaimed / before; scaled to the best cycle, red below 2 %). Source: gc.recent from ' + SRC_RUNTIME,
      rec.map(function (c) { return [{ v: c.efficiency, color: c.efficiency < 0.02 ? 'var(--c-warn)' : 'var(--c-reclaim)' }]; }));
    var hist = hbars('pause-hist', (p.hist || [0, 0, 0, 0, 0]).map(function (v, i) {
      return { label: PAUSE_LABELS[i], v: v, text: U.count(v), warn: i >= 3 && v > 0 };
    }), 'GC pauses by frame-budget bucket (count). Source: ' + SRC_RUNTIME);
    var body = el('div', null, grid,
      el('div', { class: 'twocol' },
        el('div', null, el('div', { class: 'sub', text: 'efficiency per cycle' }), effChart),
        el('div', null, el('div', { class: 'sub', text: 'pauses by frame budget' }), hist)),
      el('div', { class: 'note', title: 'Share of pauses longer than 10 ms (a 60 fps frame has 16.6 ms). Warning above 10 %. Source: ' + SRC_RUNTIME },
         'pauses over 10 ms: ', num(U.pct(p.over10_pct), 'Share of GC pauses longer than 10 ms. Source: ' + SRC_RUNTIME)),
      p.warn ? U.warn('More than 10 % of GC pauses exceed 10 ms: they will cost frames', 'gc.pause.warn: over10_pct > 10') : null);
    return { body: body, has_data: g.cycles > 0 };
  }

  /* --------------------------------------------------------- lifetimes */
  function lifetimes(s, ctx) {
    var l = s.lifetimes;
    if (!l) return { body: nodata('lifetimes'), has_data: false };
    var unit = l.epoch === 'gc' ? 'GC cycles' : 'agent epochs (time)';
    var labels = l.labels || ['first', '1-5', '6-20', '21+'];
    var src = 'Sampled objects, aged in ' + unit + '. Source: ' + SRC_SITES;
    var freed = hbars('life-freed', labels.map(function (lb, i) {
      return { label: lb, v: (l.freed || [])[i] || 0, text: U.count((l.freed || [])[i] || 0),
               tip: 'Objects freed at age "' + lb + '" (' + unit + '), estimate. ' + src };
    }), '');
    var live = hbars('life-live', labels.map(function (lb, i) {
      return { label: lb, v: (l.live || [])[i] || 0, text: U.count((l.live || [])[i] || 0), warn: i === labels.length - 1 && l.oldest_growing,
               tip: 'Live objects of age "' + lb + '" (' + unit + ') now, estimate. ' + src };
    }), '');
    var body = el('div', null,
      el('div', { class: 'note', title: 'Age unit: GC cycles when the runtime reports them (valkmem_gc_end), otherwise agent epochs' }, 'age in ' + unit),
      el('div', { class: 'twocol' },
        el('div', null, el('div', { class: 'sub', text: 'freed at age' }), freed),
        el('div', null, el('div', { class: 'sub', text: 'live now, by age' }), live)),
      l.oldest_growing ? U.warn('The oldest bucket (' + labels[labels.length - 1] + ') keeps growing: objects survive and accumulate',
                                'lifetimes.oldest_growing from sites.c') : null);
    var any = (l.freed || []).concat(l.live || []).some(function (v) { return v > 0; });
    return { body: body, has_data: any };
  }

  /* ------------------------------------------------------------- pools */
  function pools(s, ctx) {
    var list = s.pools || [], a = s.allocator;
    var rows = list.map(function (p) {
      var tip = 'Pool "' + p.name + '" (' + p.kind + ', object size ' + U.bytes(p.object_size) + '). Source: ' + SRC_RUNTIME;
      var usedTip = 'Used ' + U.bytes(p.used) + ' of ' + U.bytes(p.capacity) + ' capacity; the tick marks the high water (' + U.bytes(p.high_water) + '). Source: ' + SRC_RUNTIME;
      var fragWarn = (p.frag_pct || 0) >= 25;
      var fragTip = 'Fragmentation: capacity held but unusable for the next allocation, ' + U.pct(p.frag_pct) + '; warning at 25 %. Source: ' + SRC_RUNTIME;
      return el('div', { class: 'pool', 'data-pool': p.name, title: tip },
        el('div', { class: 'pool-h' }, el('b', { text: p.name }), el('small', { text: ' ' + p.kind }),
          el('span', { class: 'r' }, num(U.bytes(p.used), 'Bytes in use in this pool now. Source: ' + SRC_RUNTIME),
             VKM.pin.delta('pool:' + p.name, p.used, U.bytes, 'the bytes in use in pool ' + p.name), ' / ',
             num(U.bytes(p.capacity), 'Capacity registered for this pool (valkmem_pool_register). Source: ' + SRC_RUNTIME))),
        el('div', { class: 'pool-m' }, meter(p.used, p.capacity, p.high_water, usedTip),
           meter(p.frag_pct || 0, 100, null, fragTip, { warn: fragWarn, threshold: 25 })),
        el('div', { class: 'pool-f' },
          el('span', null, 'high water ', num(U.bytes(p.high_water), 'High water: most bytes ever in use at once. Source: ' + SRC_RUNTIME)),
          el('span', { class: p.overflow_count > 0 ? 'is-warnish' : '' }, 'overflow ',
             num(U.count(p.overflow_count), 'Allocations that did not fit the capacity (valkmem_pool_alloc beyond capacity). Source: ' + SRC_RUNTIME)),
          p.kind === 'slab' ? null : el('span', null, 'resets ', num(U.count(p.reset_count), 'Arena resets (valkmem_pool_reset). Source: ' + SRC_RUNTIME)),
          el('span', { class: 'frag' + (fragWarn ? ' is-warnish' : '') }, 'frag ', num(U.pct(p.frag_pct), fragTip))));
    });
    var alloc = null;
    if (a) {
      var aSrc = 'allocator statistics (' + (a.source || '?') + '), read at most once a second by allocstats.c';
      var aTip = 'Allocator fragmentation: free-but-held / held = ' + U.pct(a.frag_pct) + '; warning at 25 %. Source: ' + aSrc;
      alloc = el('div', { class: 'pool alloc', 'data-pool': '(allocator)' },
        el('div', { class: 'pool-h' }, el('b', { text: 'allocator' }), el('small', { text: ' ' + (a.source || '?') }),
           el('span', { class: 'r' }, 'held ', num(U.bytes(a.held), 'Bytes the allocator holds from the OS. Source: ' + aSrc),
              ' · in use ', num(U.bytes(a.in_use), 'Bytes handed out to the program. Source: ' + aSrc),
              ' · free ', num(U.bytes(a.free_held), 'Free bytes the allocator keeps instead of returning them. Source: ' + aSrc))),
        el('div', { class: 'pool-f' }, el('span', { class: a.frag_warn ? 'is-warnish' : '' }, 'fragmentation ', num(U.pct(a.frag_pct), aTip))),
        meter(a.frag_pct || 0, 100, null, aTip, { warn: !!a.frag_warn, threshold: 25 }));
    }
    var frag = list.filter(function (p) { return (p.frag_pct || 0) >= 25; });
    var warns = frag.length ? [U.warn('Fragmented over 25 %: ' + frag.map(function (p) { return p.name + ' ' + U.pct(p.frag_pct); }).join(', '),
                                      'Pools whose fragmentation (capacity held but unusable) is at or above the 25 % warning threshold')] : [];
    if (a && a.frag_warn) warns.push(U.warn('Allocator fragmentation ' + U.pct(a.frag_pct) + ' (over 25 %): freed memory is held, not reused', 'allocator.frag_warn from allocstats.c'));
    var body = el('div', null, list.length ? rows : nodata('pools'), alloc, warns);
    return { body: body, has_data: list.length > 0 };
  }

  return {
    list: [
      { id: 'memory', title: 'Process memory', render: memory },
      { id: 'pressure', title: 'Allocation pressure', render: pressure },
      { id: 'heap', title: 'Heap and call sites', render: heap },
      { id: 'gc', title: 'Garbage collection', render: gc },
      { id: 'lifetimes', title: 'Object lifetimes', render: lifetimes },
      { id: 'pools', title: 'Pools and arenas', render: pools }
    ],
    helpers: { hbars: hbars, meter: meter, stacked: stacked, nodata: nodata, trendWord: trendWord,
               series: series, times: times, SRC_RUNTIME: SRC_RUNTIME, SRC_COUNTERS: SRC_COUNTERS }
  };
})();
