// pin.js - a pinned baseline: "pin" freezes the current sites, totals and
// runtime figures; afterwards panels show their change since the pin (+/-,
// coloured), the flame graph can draw the difference and site tables sort
// by growth. "compare to file" pins an imported report or export instead
// (the before/after comparison), and works offline. The pin is kept in
// localStorage, so it survives a reload.
//
// A pin: {v: 1, at: unix ms of the pinned state, taken: when pinned,
//         source: 'live' | 'file', name: what to call it, program, pid,
//         values: {key: number}, sites: {id: [live, alloc, name]}}
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.pin = (function () {
  var U = VKM.util, el = U.el;
  var KEY = 'valkmem.pin';
  var MAX_SITES = 5000;     // keeps the stored pin well under localStorage's 5 MB
  var pin = load(), listeners = [];

  function load() {
    try {
      var s = localStorage.getItem(KEY);
      var p = s ? JSON.parse(s) : null;
      return p && p.v === 1 && p.values ? p : null;
    } catch (e) { return null; }
  }
  function save() {
    try { if (pin) localStorage.setItem(KEY, JSON.stringify(pin)); else localStorage.removeItem(KEY); }
    catch (e) { console.warn('valkmem: cannot keep the pin in localStorage: ' + e.message); }
    listeners.forEach(function (f) { f(pin); });
  }

  /* The figures a pin keeps, and their formatters: the same function reads
   * the pinned snapshot and the current one, so the deltas compare like with
   * like. */
  var FIELDS = {
    rss:         { get: function (s) { return (s.os || {}).rss; }, fmt: U.bytes, what: 'RSS' },
    peak_rss:    { get: function (s) { return (s.os || {}).peak_rss; }, fmt: U.bytes, what: 'peak RSS' },
    live:        { get: function (s) { return (s.live || {}).bytes; }, fmt: U.bytes, what: 'live heap' },
    live_count:  { get: function (s) { return (s.live || {}).count; }, fmt: U.count, what: 'live objects' },
    peak_live:   { get: function (s) { return (s.peak || {}).live_bytes; }, fmt: U.bytes, what: 'peak live heap' },
    alloc_count: { get: function (s) { return (s.totals || {}).alloc_count; }, fmt: U.count, what: 'allocations' },
    failed:      { get: function (s) { return (s.totals || {}).failed_count; }, fmt: U.count, what: 'failed allocations' },
    alloc_bps:   { get: function (s) { return (s.rates || {}).alloc_bps; }, fmt: U.rate, what: 'allocation rate' },
    free_bps:    { get: function (s) { return (s.rates || {}).free_bps; }, fmt: U.rate, what: 'reclaim rate' },
    pressure:    { get: function (s) { return (s.rates || {}).pressure_pct; }, fmt: function (v) { return U.pct(v); }, what: 'pressure' },
    leaks:       { get: function (s) { return (s.leaks || []).length; }, fmt: U.count, what: 'leak suspects' },
    threads:     { get: function (s) { return (s.threads || {}).live; }, fmt: U.count, what: 'threads' },
    gc_cycles:   { get: function (s) { return s.gc ? s.gc.cycles : undefined; }, fmt: U.count, what: 'GC cycles' },
    gc_p95:      { get: function (s) { return s.gc ? (s.gc.pause || {}).p95_ms : undefined; }, fmt: U.ms, what: 'GC p95 pause' },
    pool_used:   { get: function (s) { return (s.pools || []).reduce(function (a, p) { return a + (p.used || 0); }, 0); }, fmt: U.bytes, what: 'pool bytes in use' },
    self:        { get: function (s) { return s.self_bytes; }, fmt: U.bytes, what: 'valkmem self' }
  };

  function fromSnapshot(s, source, name) {
    var values = {};
    Object.keys(FIELDS).forEach(function (k) { var v = FIELDS[k].get(s); if (typeof v === 'number' && isFinite(v)) values[k] = v; });
    (s.pools || []).forEach(function (p) { if (p && p.name && typeof p.used === 'number') values['pool:' + p.name] = p.used; });
    var sites = {}, n = 0;
    (s.sites || []).slice().sort(function (a, b) { return (b.live_bytes || 0) - (a.live_bytes || 0); }).forEach(function (x) {
      if (n >= MAX_SITES || !x || !x.id) return;
      sites[x.id] = [x.live_bytes || 0, x.alloc_bytes || 0, U.siteName(x)];
      n++;
    });
    return { v: 1, at: s.t_ms || Date.now(), taken: Date.now(), source: source, name: name,
             program: s.program || '?', pid: s.pid || 0, seq: s.seq || 0, values: values, sites: sites };
  }

  /* Sites from the flame graph's stacks (the live agent's /api/stacks, up to
   * thousands) complete the snapshot's top sites. */
  function addSites(list) {
    if (!pin || !list) return;
    var n = Object.keys(pin.sites).length;
    for (var i = 0; i < list.length && n < MAX_SITES; i++) {
      var x = list[i];
      if (!pin.sites[x.id]) { pin.sites[x.id] = [x.live, x.alloc, x.name]; n++; }
    }
    save();
  }

  function set(s, source, name) {
    if (!s) return null;
    pin = fromSnapshot(s, source, name);
    save();
    return pin;
  }
  function clear() { pin = null; save(); }

  function describe() {
    if (!pin) return '';
    return (pin.source === 'file' ? 'file ' + pin.name : 'pinned ' + new Date(pin.at).toLocaleTimeString()) +
      ' (' + pin.program + ', pid ' + pin.pid + ')';
  }

  /* A delta element for value `now` of field key, or null when not pinned
   * or the pin lacks the figure. */
  function delta(key, now, fmt, what) {
    if (!pin || typeof now !== 'number' || !isFinite(now)) return null;
    var was = key.indexOf('site:') === 0 ? siteWas(key.slice(5), 0) : pin.values[key];
    if (typeof was !== 'number') return null;
    var f = FIELDS[key] || {};
    return deltaEl(now - was, fmt || f.fmt || U.count, was, what || f.what || key);
  }
  function deltaEl(d, fmt, was, what) {
    var txt = (d > 0 ? '+' : d < 0 ? '−' : '±') + fmt(Math.abs(d));
    return el('span', { class: 'num delta ' + (d > 0 ? 'd-up' : d < 0 ? 'd-down' : 'd-zero'), 'data-delta': String(d),
                        title: 'Change of ' + what + ' since the pin (' + describe() + '): was ' + fmt(was) }, txt);
  }
  function siteWas(id, field) {
    if (!pin) return undefined;
    var x = pin.sites[id];
    return x ? x[field] : 0;   // a site the pin did not know held nothing then
  }

  return {
    get: function () { return pin; }, set: set, clear: clear, describe: describe, delta: delta, deltaEl: deltaEl,
    siteWas: siteWas, addSites: addSites, fromSnapshot: fromSnapshot, FIELDS: FIELDS,
    onChange: function (f) { listeners.push(f); }
  };
})();
