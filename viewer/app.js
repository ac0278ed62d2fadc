// app.js - wires the dashboard together: boot, the header controls (profile,
// range, pause, export/import), the key-metrics strip, the panel grid and
// the footer, keyboard navigation, and the per-event render.
//
// Each SSE tick is handled synchronously: parse, store, re-render the visible
// panels (morphing into the live DOM), draw the charts. The time it takes is
// kept in window.__vkmPerf so the browser tests can report it.
'use strict';
var VKM = window.VKM || (window.VKM = {});

(function () {
  var U = VKM.util, el = U.el, metric = U.metric;
  var PANELS = VKM.panels.list.concat(VKM.flame.list, VKM.views.list, VKM.planner.list, VKM.processes.list);
  var byId = {};
  PANELS.forEach(function (p) { byId[p.id] = p; });

  var snap = null, profile = VKM.profiles.initial(), importedFrom = null;
  var $ = function (id) { return document.getElementById(id); };
  var perf = window.__vkmPerf = { events: [], renders: [], count: 0, maxKeep: 2000 };

  /* ------------------------------------------------------------ panels */
  function buildPanels() {
    var grid = $('grid');
    PANELS.forEach(function (p) {
      var body = el('div', { class: 'body' });
      var stat = p.setup ? el('div', { class: 'static' }) : null;
      var sec = el('section', { class: 'panel' + (p.wide ? ' wide' : ''), id: 'panel-' + p.id, 'data-panel': p.id, tabindex: '0', 'aria-label': p.title, hidden: '' },
                   el('h2', { text: p.title }), stat, body);
      if (p.setup) p.setup(stat, function () { render(true); });
      p.section = sec; p.body = body; p.onscreen = true;
      grid.appendChild(sec);
      if (io) io.observe(sec);
      if (ro) ro.observe(sec);
    });
  }
  /* Masonry rows (style.css): a panel spans ceil((height + gap) / 4 px). */
  var ro = window.ResizeObserver ? new ResizeObserver(function (entries) {
    entries.forEach(function (en) {
      var h = en.target.getBoundingClientRect().height;
      var span = 'span ' + Math.max(1, Math.ceil((h + 10) / 4));
      if (en.target.style.gridRowEnd !== span) en.target.style.gridRowEnd = span;
    });
  }) : null;
  var io = window.IntersectionObserver ? new IntersectionObserver(function (entries) {
    var back = false;
    entries.forEach(function (en) {
      var p = byId[en.target.dataset.panel];
      if (en.isIntersecting && !p.onscreen) back = true;
      p.onscreen = en.isIntersecting;
    });
    if (back) render();
  }) : null;

  /* Render keys: a string that changes whenever what the panel shows would.
   * Long-term views (stability, idle) follow the clock at 1 s. */
  var J = JSON.stringify;
  var KEYS = {
    gc: function (s) { return J(s.gc); },
    lifetimes: function (s) { return J(s.lifetimes); },
    pools: function (s) { return J([s.pools, s.allocator]); },
    evals: function (s) { return J(s.evals); },
    stability: function (s, c) { return String(Math.floor(c.t_end / 1000)); },
    idle: function (s, c) { return Math.floor(c.t_end / 1000) + ':' + Math.round(((s.live || {}).bytes || 0) / 65536); },
    planner: function (s) { return J([s.pools, s.peak, (s.os || {}).peak_rss, s.self_bytes, VKM.planner.state()]); }
  };
  PANELS.forEach(function (p) { if (KEYS[p.id]) p.key = KEYS[p.id]; });

  /* A panel of the profile is shown unless it says it has nothing to show
   * at all (available(): the Processes panel without a tree): then it is
   * hidden and takes no space. */
  function shown(p) { return !p.available || p.available(); }

  function layout() {
    var def = VKM.profiles.defs[profile];
    PANELS.forEach(function (p) {
      var i = def.panels.indexOf(p.id);
      if (i < 0 || !shown(p)) { p.section.hidden = true; p.section.style.order = ''; }
      else { p.section.hidden = false; p.section.style.order = String(i); }
    });
    VKM.history.wantSites(def.panels.indexOf('sitehist') >= 0);
  }

  function applyProfile(name) {
    profile = name;
    var def = VKM.profiles.defs[name];
    layout();
    var btns = $('profiles').querySelectorAll('button');
    for (var i = 0; i < btns.length; i++) btns[i].setAttribute('aria-pressed', btns[i].value === name ? 'true' : 'false');
    document.body.setAttribute('data-profile', name);
    $('profiles').title = 'Profile: ' + def.about;
    render(true);
  }

  function visiblePanels() {
    return VKM.profiles.defs[profile].panels.map(function (id) { return byId[id]; }).filter(shown);
  }

  /* ------------------------------------------------------------ render */
  function ctx() {
    var pts = VKM.history.points();
    var tEnd = pts.length ? pts[pts.length - 1].t_ms : (snap ? snap.t_ms : 0);
    if (snap && !VKM.history.isImported() && snap.t_ms > tEnd) tEnd = snap.t_ms;
    return { points: pts, span_ms: VKM.history.span_ms(), step_ms: VKM.history.step_ms(), range: VKM.history.range(), t_end: tEnd };
  }

  /* A key metric with its change since the pin (pin.js), when pinned. */
  function pinned(m, key, s) {
    var f = VKM.pin.FIELDS[key], d = m && f ? VKM.pin.delta(key, f.get(s)) : null;
    if (d) m.appendChild(d);
    return m;
  }

  function keyStrip(s) {
    var os = s.os || {}, r = s.rates || {}, g = s.gc, leaks = s.leaks || [];
    var src = s.platform === 'darwin' ? 'task_info (phys_footprint)' : '/proc/self/statm';
    return el('div', { class: 'keys' },
      pinned(metric(s.platform === 'darwin' ? 'footprint' : 'RSS', U.bytes(os.rss), 'Memory of the process in RAM now. Source: ' + src + ', read by the agent each tick', 'k-rss'), 'rss', s),
      pinned(metric('live heap', U.bytes((s.live || {}).bytes), 'Bytes allocated and not freed, exact (allocated usable − freed usable). Source: the shim\'s per-thread counters', 'k-live'), 'live', s),
      pinned(metric(s.platform === 'darwin' ? 'peak footprint' : 'peak RSS', U.bytes(os.peak_rss), 'Highest ' + (s.platform === 'darwin' ? 'footprint' : 'RSS') +
             ' since start. Source: ' + (s.platform === 'darwin' ? 'task_info' : '/proc/self/status VmHWM')), 'peak_rss', s),
      pinned(metric('alloc', U.rate(r.alloc_bps), 'Bytes allocated per second over the last tick. Source: the shim\'s counters, agent.c', 'k-alloc'), 'alloc_bps', s),
      pinned(metric('reclaim', U.rate(r.free_bps), 'Bytes freed per second over the last tick. Source: the shim\'s counters, agent.c', 'k-reclaim'), 'free_bps', s),
      pinned(metric('pressure', U.pct(r.pressure_pct), '(allocated − reclaimed) / allocated over 5 s; warns when above 50 % for 5 s. Source: agent.c', r.pressure_warn ? 'is-warn' : ''), 'pressure', s),
      pinned(metric('leak suspects', String(leaks.length), leaks.length ? 'Sites whose live bytes keep rising: ' + leaks.map(function (l) { return l.function || l.site; }).join(', ') + '. Source: sites.c' :
             'No site is growing steadily. Source: leak analysis in sites.c', leaks.length ? 'is-warn' : ''), 'leaks', s),
      g ? pinned(metric('GC p95 pause', U.ms((g.pause || {}).p95_ms), '95th percentile GC pause over ' + U.count(g.cycles) + ' cycles. Source: runtime API (runtime.c)', (g.pause || {}).warn ? 'is-warn' : ''), 'gc_p95', s) : null,
      pinned(metric('threads', U.count((s.threads || {}).live), 'Threads the shim sees alive (max ' + U.count((s.threads || {}).max) + ', ' + U.count((s.threads || {}).total) + ' ever). Source: the shim\'s thread registry'), 'threads', s));
  }

  function footer(s) {
    var exact = s.sample_bytes === 1;
    var parts = [
      el('span', { title: 'Schema of the data shown (agent/SCHEMA.md)' }, s.schema || ''),
      el('span', null, 'pid ', U.num(String(s.pid), 'Process id of the program. Source: the agent')),
      el('span', null, 'up ', U.num(U.dur(s.uptime_s || 0), 'Time since valkmem was loaded into the process. Source: the agent')),
      el('span', null, 'tick ', U.num(String(s.seq), 'Agent tick number of this snapshot (one every 100 ms by default; the SSE id)')),
      el('span', null, exact ? 'exact attribution' : 'sample every ', exact ? null : U.num(U.bytes(s.sample_bytes), 'Mean sampling interval for call-site attribution (VALKMEM_SAMPLE_BYTES)')),
      el('span', null, 'valkmem self ', U.num(U.bytes(s.self_bytes), 'Memory valkmem uses for itself (mimalloc, rings, history): not counted in the program\'s heap')),
      el('span', null, 'history ', U.num(String(VKM.history.points().length) + ' pts', 'History points held by this page for the selected range (bounded: at most 3600)'))
    ];
    if (s.platform === 'darwin' && s.os) {
      parts.push(el('span', { class: 'vms', 'data-metric': 'vms' }, 'VMS ',
        U.num(U.bytes(s.os.vms), 'Virtual size: on macOS this counts the shared cache and reservations, so it is huge and says little about memory use. Source: task_info')));
    }
    parts.push(el('span', { class: 'help', title: 'Keyboard: j / k move between panels, space pauses or resumes the stream' }, 'keys: j/k panels · space pause'));
    return el('div', { class: 'foot' }, parts);
  }

  function procLine(s) {
    var argv = (s.argv || []).join(' ');
    return el('span', { class: 'proc', title: 'Command line: ' + argv + ' — platform ' + s.platform },
              el('b', { text: s.program || '?' }), ' ', VKM.processes.headerNote(s) || U.num('pid ' + s.pid, 'Process id. Source: the agent'), ' ',
              el('small', { text: s.platform || '' }));
  }

  var rendering = false;
  /* force: re-render every visible panel even if offscreen or unchanged
   * (profile or range switch, import, tests). */
  function render(force) {
    force = force === true;
    if (!snap || rendering) return;
    rendering = true;
    try {
      var t0 = performance.now();
      var c = ctx();
      U.morph($('keys').firstChild || $('keys').appendChild(el('div')), keyStrip(snap));
      U.morph($('proc').firstChild || $('proc').appendChild(el('span')), procLine(snap));
      var now = performance.now();
      visiblePanels().forEach(function (p) {
        // Panels scrolled out of view follow at 1 Hz (and at once when they
        // come back into view): with every panel open, the ones nobody can
        // see must not cost every tick.
        if (!p.onscreen && !force && p.section.hasAttribute('data-has-data') && now - (p.renderedAt || 0) < 1000) return;
        // Panels whose inputs did not change since the last render keep
        // their DOM (most ticks change no GC, pool or eval figure).
        var key = p.key ? p.key(snap, c) + '|' + c.range + '|' + c.points.length : null;
        if (!force && key !== null && key === p.lastKey && p.section.hasAttribute('data-has-data')) return;
        p.renderedAt = now;
        p.lastKey = key;
        var r;
        try { r = p.render(snap, c); }
        catch (e) { console.warn('valkmem: panel ' + p.id + ': ' + e.message); r = { body: el('div', { class: 'nodata', title: e.message }, 'cannot show: ' + e.message), has_data: false }; }
        U.morph(p.body, el('div', { class: 'body' }, r.body));
        p.section.setAttribute('data-has-data', r.has_data ? '1' : '0');
      });
      U.morph($('foot').firstChild || $('foot').appendChild(el('div')), footer(snap));
      var R = VKM.history.RANGES[c.range];
      $('span').textContent = 'span ' + c.range + ' · ' + c.points.length + ' pts · step ' + (c.step_ms >= 1000 ? c.step_ms / 1000 + ' s' : c.step_ms + ' ms');
      $('span').setAttribute('data-span-ms', String(R.span_ms));
      VKM.charts.flush();
      perf.renders.push(performance.now() - t0);
      if (perf.renders.length > perf.maxKeep) perf.renders.shift();
    } finally { rendering = false; }
  }

  /* ------------------------------------------------------------ stream */
  /* Sections a tick must carry as objects (or null). The agent's tick JSON
   * has also carried per-tick counters under the same names ("frames": 123,
   * "evals": 4), which JSON.parse resolves to the number; when that happens
   * keep the section from the last full /api/snapshot, refreshed once a
   * second, instead of blanking the panel. */
  var SECTIONS = ['gc', 'frames', 'evals', 'pools', 'roots'];
  var fullSnap = null, fullAt = 0, fullBusy = false;
  function mendTick(s) {
    var bad = SECTIONS.filter(function (k) { return k in s && s[k] !== null && typeof s[k] !== 'object'; });
    if (!bad.length) return;
    bad.forEach(function (k) { s[k] = fullSnap && k in fullSnap ? fullSnap[k] : null; });
    if (!fullBusy && Date.now() - fullAt > 1000) {
      fullBusy = true;
      fetch('api/snapshot', { cache: 'no-store' }).then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) { if (d) { fullSnap = d; fullAt = Date.now(); } fullBusy = false; }, function () { fullBusy = false; });
    }
  }

  function onTick(s, t0) {
    mendTick(s);
    snap = s;
    if (s.point) VKM.history.push(s.point);
    if (document.hidden) return;   // a background tab draws nothing; visibilitychange catches up
    render();
    perf.count++;
    perf.events.push(performance.now() - t0);
    if (perf.events.length > perf.maxKeep) perf.events.shift();
  }

  var STATE_TEXT = { connecting: 'connecting', live: 'live', paused: 'paused', exited: 'process exited', offline: 'offline' };
  function onState(st, why) {
    var b = $('conn');
    b.setAttribute('data-state', st);
    b.textContent = STATE_TEXT[st] + (st === 'offline' && importedFrom ? ': ' + importedFrom : '');
    b.title = {
      connecting: 'Opening the live stream (/api/events)' + (why ? ': ' + why : ''),
      live: 'Receiving one update per agent tick over /api/events',
      paused: 'Stream paused: press space or the button to resume',
      exited: 'The process has exited' + (why ? ' (' + why + ')' : '') + '; the last state stays on screen',
      offline: 'Showing an imported file; no live process'
    }[st];
    var p = $('pause');
    p.textContent = st === 'paused' ? 'resume' : 'pause';
    p.disabled = st === 'exited' || st === 'offline';
    p.setAttribute('aria-pressed', st === 'paused' ? 'true' : 'false');
    document.body.setAttribute('data-conn', st);
    VKM.history.setLive(st === 'live', render);
    if (st === 'live' && resumeReload) { resumeReload = false; VKM.history.load(VKM.history.range()).then(render, showError); }
  }
  var resumeReload = false;

  function togglePause() {
    if (VKM.stream.state() === 'paused') { resumeReload = true; VKM.stream.resume(); }
    else VKM.stream.pause();
  }

  /* ------------------------------------------------------------- pin */
  function showPin() {
    var p = VKM.pin.get();
    $('pin').textContent = p ? 'unpin' : 'pin';
    $('pin').setAttribute('aria-pressed', p ? 'true' : 'false');
    $('pin-state').textContent = p ? 'vs ' + VKM.pin.describe() : '';
    $('pin-state').title = p ? 'Deltas (+ red, − blue) compare with this baseline, pinned ' + new Date(p.taken).toLocaleString() +
      ' (kept in localStorage). Click "unpin" to drop it' : 'No baseline pinned';
    document.body.setAttribute('data-pinned', p ? '1' : '0');
    render(true);
  }

  /* ------------------------------------------------------------- misc */
  function showError(e) {
    var msg = e && e.message ? e.message : String(e);
    U.fill($('banner'), el('div', { class: 'warn', role: 'alert', title: msg }, msg,
      el('button', { type: 'button', class: 'x', title: 'Dismiss' }, '×')));
    $('banner').querySelector('button').addEventListener('click', function () { U.fill($('banner')); });
  }

  function setRange(r) {
    var btns = $('ranges').querySelectorAll('button');
    for (var i = 0; i < btns.length; i++) btns[i].setAttribute('aria-pressed', btns[i].value === r ? 'true' : 'false');
    return VKM.history.load(r).then(function () { render(true); }, showError);
  }

  function applyImport(doc, name, served) {
    importedFrom = name;
    VKM.stream.offline(onState);
    VKM.processes.stop();   // the live tree is not the file's
    VKM.history.setImported(doc.history || {});
    snap = doc.snapshot;
    var r = doc.range && VKM.history.RANGES[doc.range] ? doc.range : VKM.history.range();
    U.fill($('banner'), el('div', { class: 'info', title: 'Imported ' + doc.kind + ' ' + name },
      'Showing ', el('b', { text: name }), ' (' + doc.kind + ' of ' + (snap.program || '?') + ', pid ' + snap.pid + ', ' + (snap.platform || '?') + ') — offline ',
      served ? null : el('button', { type: 'button', id: 'back-live', title: 'Reload the page to return to the live process' }, 'back to live')));
    if (!served) $('back-live').addEventListener('click', function () { location.reload(); });
    return setRange(r);
  }

  function nextPanel(dir) {
    var vis = visiblePanels().map(function (p) { return p.section; });
    if (!vis.length) return;
    var cur = vis.indexOf(document.activeElement);
    if (cur < 0) cur = vis.indexOf(document.querySelector('.panel.is-current'));
    var n = cur < 0 ? (dir > 0 ? 0 : vis.length - 1) : Math.max(0, Math.min(vis.length - 1, cur + dir));
    PANELS.forEach(function (p) { p.section.classList.remove('is-current'); });
    vis[n].classList.add('is-current');
    vis[n].focus({ preventScroll: true });
    vis[n].scrollIntoView({ block: 'nearest' });
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target, tag = t && t.tagName;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || (t && t.isContentEditable)) return;
    if (e.key === 'j') { nextPanel(1); e.preventDefault(); }
    else if (e.key === 'k') { nextPanel(-1); e.preventDefault(); }
    else if (e.key === ' ' || e.code === 'Space') { e.preventDefault(); if (!e.repeat) togglePause(); }
  }

  /* ------------------------------------------------------------- boot */
  function boot() {
    var pr = $('profiles');
    VKM.profiles.order.forEach(function (n) {
      pr.appendChild(el('button', { type: 'button', value: n, title: 'Profile "' + n + '": ' + VKM.profiles.defs[n].about + ' (remembered; ?profile=' + n + ')' }, n));
    });
    pr.addEventListener('click', function (e) {
      var b = e.target.closest('button');
      if (b && VKM.profiles.choose(b.value)) applyProfile(b.value);
    });
    $('ranges').addEventListener('click', function (e) {
      var b = e.target.closest('button');
      if (b) setRange(b.value);
    });
    // Buttons must not keep the focus: space would then also click them.
    document.querySelectorAll('header button').forEach(function (b) { b.addEventListener('keydown', function (e) { if (e.key === ' ') e.preventDefault(); }); });
    $('pause').addEventListener('click', togglePause);
    $('pin').addEventListener('click', function () {
      if (VKM.pin.get()) { VKM.pin.clear(); return; }
      if (!snap) return;
      var live = !VKM.history.isImported();
      VKM.pin.set(snap, live ? 'live' : 'file', live ? 'tick ' + snap.seq : (importedFrom || 'file'));
      VKM.pin.addSites(VKM.flame.sitesList());
    });
    $('pin-file').addEventListener('change', function () {
      var f = this.files && this.files[0];
      if (!f) return;
      VKM.io.readFile(f).then(function (doc) {
        if (!doc.snapshot || typeof doc.snapshot !== 'object') throw new Error(f.name + ': no snapshot to compare with');
        VKM.pin.set(doc.snapshot, 'file', f.name);
        U.fill($('banner'));
      }).catch(function (e) { showError(new Error('compare to file: ' + e.message)); });
      this.value = '';
    });
    VKM.pin.onChange(showPin);
    showPin();
    $('export').addEventListener('click', function () {
      if (!snap) return;
      VKM.io.exportNow(snap, profile, VKM.history.range()).catch(showError);
    });
    $('import-file').addEventListener('change', function () {
      var f = this.files && this.files[0];
      if (!f) return;
      VKM.io.readFile(f).then(function (doc) { return applyImport(doc, f.name); }).catch(showError);
      this.value = '';
    });
    document.addEventListener('keydown', onKey);
    document.addEventListener('visibilitychange', function () { if (!document.hidden) render(true); });
    window.addEventListener('resize', function () {
      document.querySelectorAll('canvas.chart').forEach(function (c) { c._dirty = true; });
      VKM.charts.flush();
    });
    buildPanels();
    applyProfile(profile);
    onState('connecting', '');
    // The process tree, polled every 2 s (processes.js): a change shows or
    // hides its panel and updates it and the header.
    VKM.processes.start(function () { layout(); render(); });

    // `valkmem view file.json` serves a saved report or export as the
    // snapshot, marked "view": true: show it offline (the file's own
    // history, no stream) exactly as an import.
    fetch('api/snapshot', { cache: 'no-store' }).then(function (res) {
      if (!res.ok) throw new Error('GET /api/snapshot: HTTP ' + res.status);
      return res.text();
    }).then(function (text) {
      var d = JSON.parse(text);
      if (d.view || d.schema === 'valkmem.report/1' || d.schema === 'valkmem.export/1')
        return applyImport(VKM.io.parse(text), (d.program || (d.snapshot && d.snapshot.program) || 'saved file') + ' (valkmem view)', true);
      snap = fullSnap = d; fullAt = Date.now();
      return setRange(VKM.history.range()).then(function () { VKM.stream.start(onTick, onState); });
    }).catch(function (e) {
      showError(e);
      VKM.stream.start(onTick, onState);
    });
  }

  VKM.app = { render: render, applyImport: applyImport, setRange: setRange, profile: function () { return profile; },
              snapshot: function () { return snap; } };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();
})();
