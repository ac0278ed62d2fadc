// planner.js - the embedded profile's capacity planner: pick a target memory
// limit and a headroom; get a configuration derived from the observed peaks
// (per pool high water, peak live heap, peak RSS) and export it as env vars,
// JSON or a C header.
//
// The controls are built once (setup) so the user's choices survive the
// 10 Hz re-render; render() only rebuilds the numbers and the snippet.
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.planner = (function () {
  var U = VKM.util, el = U.el, num = U.num, metric = U.metric;
  var MiB = 1048576;
  var LIMITS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
  var st = { limit: 64 * MiB, headroom: 25, format: 'env' };
  try {
    var saved = JSON.parse(localStorage.getItem('valkmem.planner') || 'null');
    if (saved && saved.limit > 0) st = { limit: +saved.limit, headroom: +saved.headroom || 0, format: saved.format || 'env' };
  } catch (e) { /* no storage: defaults */ }
  var lastPlan = null, lastSnap = null, onChange = null;

  function save() { try { localStorage.setItem('valkmem.planner', JSON.stringify(st)); } catch (e) { /* ignore */ } }

  function roundUp(x, q) { q = q > 0 ? q : 4096; return Math.ceil(x / q) * q; }
  function ident(name) { return String(name).toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '') || 'POOL'; }

  /* The plan: pure function of a snapshot and the choices. */
  function plan(s, choice) {
    var h = 1 + choice.headroom / 100;
    var pools = (s.pools || []).map(function (p) {
      // An overflowing pool's high water is capped at its capacity: the real
      // need is unknown but larger, so plan from the capacity plus headroom.
      var need = Math.max(p.high_water || 0, p.overflow_count > 0 ? p.capacity : 0);
      var cap = roundUp(need * h, p.object_size || 4096);
      return { name: p.name, kind: p.kind, object_size: p.object_size || 0, observed_high_water: p.high_water || 0,
               current_capacity: p.capacity || 0, overflow_count: p.overflow_count || 0, capacity_bytes: cap,
               objects: p.object_size ? Math.floor(cap / p.object_size) : null };
    });
    var peakRss = (s.os || {}).peak_rss || (s.peak || {}).rss_bytes || 0;
    var appPeak = Math.max(0, peakRss - (s.self_bytes || 0));
    var heap = roundUp(((s.peak || {}).live_bytes || 0) * h, 4096);
    var need = roundUp(appPeak * h, 4096);
    return { schema: 'valkmem.plan/1', program: s.program || '', platform: s.platform, target_limit_bytes: choice.limit,
             headroom_pct: choice.headroom, observed: { peak_rss_bytes: peakRss, app_peak_rss_bytes: appPeak,
             peak_live_bytes: (s.peak || {}).live_bytes || 0, self_bytes: s.self_bytes || 0 },
             heap_budget_bytes: heap, recommended_limit_bytes: need, peak_pct_of_limit: choice.limit ? appPeak / choice.limit * 100 : 0,
             fits: need <= choice.limit, pools: pools };
  }

  function snippet(p, format) {
    if (format === 'json') return JSON.stringify(p, null, 2);
    var lines = [], hdr = 'valkmem capacity plan for ' + (p.program || 'program') + ': target ' + U.bytes(p.target_limit_bytes) +
      ', headroom ' + p.headroom_pct + ' %, from observed peaks';
    var defs = [['MEMORY_LIMIT_BYTES', p.target_limit_bytes], ['HEAP_BUDGET_BYTES', p.heap_budget_bytes]];
    p.pools.forEach(function (q) {
      defs.push(['POOL_' + ident(q.name) + '_CAPACITY', q.capacity_bytes]);
      if (q.objects !== null) defs.push(['POOL_' + ident(q.name) + '_OBJECTS', q.objects]);
    });
    if (format === 'c') {
      lines.push('/* ' + hdr + ' */', '#ifndef VALKMEM_PLAN_H', '#define VALKMEM_PLAN_H');
      defs.forEach(function (d) { lines.push('#define ' + d[0] + ' ' + d[1] + 'u'); });
      lines.push('#endif');
    } else {
      lines.push('# ' + hdr);
      defs.forEach(function (d) { lines.push(d[0] + '=' + d[1]); });
    }
    return lines.join('\n') + '\n';
  }

  function setup(box, changed) {
    onChange = changed;
    var sel = el('select', { id: 'plan-limit', title: 'Target memory limit of the device or container' });
    LIMITS.forEach(function (m) { sel.appendChild(el('option', { value: String(m * MiB), text: U.bytes(m * MiB) })); });
    var slider = el('input', { id: 'plan-slider', type: 'range', min: '0', max: String(LIMITS.length - 1), step: '1',
                               title: 'Target memory limit (drag: 2 MiB … 4 GiB)' });
    var head = el('input', { id: 'plan-headroom', type: 'range', min: '0', max: '100', step: '5', value: String(st.headroom),
                             title: 'Headroom added on top of every observed peak' });
    var headOut = el('output', { id: 'plan-headroom-out', title: 'Headroom added on top of every observed peak' });
    var fmt = el('select', { id: 'plan-format', title: 'Format of the exported configuration' },
                 el('option', { value: 'env', text: 'env vars' }), el('option', { value: 'json', text: 'JSON' }),
                 el('option', { value: 'c', text: 'C header' }));
    var dl = el('button', { id: 'plan-download', type: 'button', title: 'Save the configuration below as a file' }, 'download');
    var cp = el('button', { id: 'plan-copy', type: 'button', title: 'Copy the configuration below to the clipboard' }, 'copy');
    function sync() {
      var i = LIMITS.indexOf(st.limit / MiB);
      if (i < 0) { i = 5; st.limit = LIMITS[i] * MiB; }
      sel.value = String(st.limit); slider.value = String(i); head.value = String(st.headroom);
      headOut.textContent = st.headroom + ' %'; fmt.value = st.format;
    }
    sel.addEventListener('change', function () { st.limit = +sel.value; sync(); save(); if (onChange) onChange(); });
    slider.addEventListener('input', function () { st.limit = LIMITS[+slider.value] * MiB; sync(); save(); if (onChange) onChange(); });
    head.addEventListener('input', function () { st.headroom = +head.value; sync(); save(); if (onChange) onChange(); });
    fmt.addEventListener('change', function () { st.format = fmt.value; save(); if (onChange) onChange(); });
    dl.addEventListener('click', function () {
      if (!lastPlan) return;
      var name = { env: 'valkmem-plan.env', json: 'valkmem-plan.json', c: 'valkmem_plan.h' }[st.format];
      VKM.io.download(name, snippet(lastPlan, st.format), st.format === 'json' ? 'application/json' : 'text/plain');
    });
    cp.addEventListener('click', function () {
      if (lastPlan && navigator.clipboard) navigator.clipboard.writeText(snippet(lastPlan, st.format)).catch(function () {});
    });
    sync();
    U.fill(box, el('div', { class: 'plan-controls' },
      el('label', null, 'target ', sel, slider), el('label', null, 'headroom ', head, headOut), el('label', null, 'export ', fmt, dl, cp)));
  }

  function render(s, ctx) {
    lastSnap = s;
    var p = plan(s, st);
    lastPlan = p;
    var srcPeak = 'peak RSS of the process (' + (s.platform === 'darwin' ? 'phys_footprint' : 'VmHWM') + ') minus valkmem\'s own memory';
    var pctCls = p.peak_pct_of_limit >= 100 ? 'is-warn' : p.peak_pct_of_limit * (1 + st.headroom / 100) > 100 ? 'is-warnish' : '';
    var gridTop = el('div', { class: 'mgrid' },
      metric('peak / limit', U.pct(p.peak_pct_of_limit), 'Current peak as a share of the target limit: ' + U.bytes(p.observed.app_peak_rss_bytes) +
             ' of ' + U.bytes(p.target_limit_bytes) + '. Peak = ' + srcPeak, 'is-key ' + pctCls),
      metric('app peak', U.bytes(p.observed.app_peak_rss_bytes), 'Peak = ' + srcPeak),
      metric('needs', U.bytes(p.recommended_limit_bytes), 'Peak plus ' + st.headroom + ' % headroom: the smallest limit this plan recommends'),
      metric('heap budget', U.bytes(p.heap_budget_bytes), 'Peak live heap (' + U.bytes(p.observed.peak_live_bytes) + ', exact) plus ' + st.headroom + ' % headroom'));
    var bar = VKM.panels.helpers.meter(p.observed.app_peak_rss_bytes, p.target_limit_bytes, null,
      'Peak ' + U.bytes(p.observed.app_peak_rss_bytes) + ' against the ' + U.bytes(p.target_limit_bytes) + ' limit; the tick marks peak + headroom',
      { warn: !p.fits, threshold: U.clamp(p.recommended_limit_bytes / p.target_limit_bytes * 100, 0, 100).toFixed(2) });
    var t = el('table', { class: 'sites plan' }, el('thead', null, el('tr', null, el('th', { text: 'pool' }),
      el('th', { class: 'r', text: 'peak' }), el('th', { class: 'r', text: 'now cap.' }), el('th', { class: 'r', text: 'recommended' }))));
    var tb = el('tbody');
    p.pools.forEach(function (q) {
      tb.appendChild(el('tr', null, el('td', { class: 'fn', title: 'Pool "' + q.name + '" (' + q.kind + ')', text: q.name }),
        el('td', { class: 'r' }, num(U.bytes(q.observed_high_water), 'Observed high water of this pool. Source: ' + VKM.panels.helpers.SRC_RUNTIME)),
        el('td', { class: 'r' }, num(U.bytes(q.current_capacity), 'Capacity registered now (valkmem_pool_register)')),
        el('td', { class: 'r' + (q.overflow_count ? ' is-warnish' : '') }, num(U.bytes(q.capacity_bytes),
          'High water plus ' + st.headroom + ' % headroom, rounded up to the object size' + (q.objects !== null ? ' (' + q.objects + ' objects of ' + q.object_size + ' B)' : '') +
          (q.overflow_count ? '; this pool overflowed ' + q.overflow_count +
          ' times, so the plan starts from its capacity (the real need is larger)' : '')))));
    });
    t.appendChild(tb);
    var body = el('div', null, gridTop, bar,
      p.fits ? el('div', { class: 'verdict v-stable', title: 'Peak plus headroom is within the target limit' }, 'fits in ', el('b', { text: U.bytes(p.target_limit_bytes) }))
             : U.warn('Does not fit: peak + ' + st.headroom + ' % headroom needs ' + U.bytes(p.recommended_limit_bytes) + ', limit is ' + U.bytes(p.target_limit_bytes),
                      'Recommended limit above the target'),
      p.pools.length ? t : el('div', { class: 'note', title: 'No pools were registered through the runtime API' }, 'no pools registered: only the heap and the process are planned'),
      el('pre', { class: 'snippet', id: 'plan-snippet', title: 'The configuration in the chosen format; download or copy it with the buttons above' }, snippet(p, st.format)));
    return { body: body, has_data: true };
  }

  return { list: [{ id: 'planner', title: 'Capacity planner', render: render, setup: setup }],
           plan: plan, snippet: snippet, state: function () { return st; } };
})();
