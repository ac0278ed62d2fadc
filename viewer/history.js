// history.js - the time range selector's data: /api/history?range= points,
// bounded in memory.
//
// 1m has one point per agent tick, so each SSE tick's "point" is appended
// as it arrives. The coarse ranges (1 s and 10 s points) are bucketed by the
// agent on its monotonic clock, with the newest bucket marked "partial";
// rather than re-deriving the agent's buckets here, the page re-fetches a
// coarse range once per step while the stream is live. No range ever keeps
// more than its capacity, so the dashboard stays far below 10 MB whatever
// the uptime.
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.history = (function () {
  var RANGES = {
    '1m':  { span_ms: 60e3,    step_ms: 100,   cap: 600 },
    '5m':  { span_ms: 300e3,   step_ms: 1000,  cap: 300 },
    '1h':  { span_ms: 3600e3,  step_ms: 10000, cap: 3600 },
    '10h': { span_ms: 36000e3, step_ms: 10000, cap: 3600 }
  };
  var PENDING_CAP = 200;

  var range = '1m', points = [], step_ms = 100;
  var siteList = [];             // the answer's "sites": what its points' site_live indices name
  var wantSites = false;         // a panel shows the per-site history: refresh 1m once a second too
  var pending = [];              // recent tick points, replayed after a 1m load
  var imported = null;           // {range: [points]} when showing a file
  var loadToken = 0;             // a newer load makes an older answer stale
  var live = false, poll = null, polling = false;

  /* Append tick point p to pts (1m only: one point per tick). */
  function add(pts, p, cap, span) {
    var last = pts[pts.length - 1];
    if (last && p.seq <= last.seq) return;      // already there
    pts.push(p);
    trim(pts, cap, span);
  }
  function trim(pts, cap, span) {
    var end = pts.length ? pts[pts.length - 1].t_ms : 0, drop = 0;
    while (drop < pts.length && pts[drop].t_ms < end - span) drop++;
    drop = Math.max(drop, pts.length - cap);
    if (drop > 0) pts.splice(0, drop);
  }

  /* Points for range r from an imported file's histories: the exact range
   * when the file has it, otherwise the finest history that covers it,
   * cut to the range's span. */
  function fromImported(r) {
    var R = RANGES[r], best = null;
    if (imported[r]) best = imported[r];
    else {
      var order = ['1m', '5m', '1h', '10h'];
      var cands = order.filter(function (k) { return imported[k] && imported[k].length; });
      for (var i = 0; i < cands.length; i++) {
        var pts = imported[cands[i]];
        if (pts[pts.length - 1].t_ms - pts[0].t_ms >= R.span_ms * 0.9 || i === cands.length - 1) { best = pts; break; }
      }
    }
    var sites = best && best.sites;
    best = (best || []).slice();
    trim(best, Infinity, R.span_ms);
    best.sites = sites || [];
    return best;
  }
  function stepOf(pts, dflt) {
    return pts.length > 1 ? Math.max(1, Math.round((pts[pts.length - 1].t_ms - pts[0].t_ms) / (pts.length - 1))) : dflt;
  }

  /* Load range r: from the agent, or from the imported file. Resolves to
   * the number of points. */
  function load(r) {
    if (!RANGES[r]) return Promise.reject(new Error('unknown range ' + r));
    if (imported) {
      // The file's own range keeps the agent's step; a range cut from another
      // one gets that one's point spacing.
      range = r; points = fromImported(r); step_ms = imported[r] ? RANGES[r].step_ms : stepOf(points, RANGES[r].step_ms);
      siteList = points.sites || [];
      return Promise.resolve(points.length);
    }
    var token = ++loadToken;
    return fetch('api/history?range=' + encodeURIComponent(r), { cache: 'no-store' }).then(function (res) {
      if (!res.ok) throw new Error('GET /api/history?range=' + r + ': HTTP ' + res.status);
      return res.json();
    }).then(function (h) {
      if (token !== loadToken) return points.length;
      var R = RANGES[r];
      var pts = Array.isArray(h) ? h : (h.points || []);
      range = r; step_ms = h.step_ms || R.step_ms;
      points = pts.slice(-R.cap);
      siteList = Array.isArray(h.sites) ? h.sites : [];
      if (r === '1m') pending.forEach(function (p) { add(points, p, R.cap, R.span_ms); });
      schedule();
      return points.length;
    });
  }

  /* While live, refresh a coarse range once per step (see the top). */
  function schedule() {
    if (poll) { clearTimeout(poll); poll = null; }
    if (!live || imported || (range === '1m' && !wantSites)) return;
    poll = setTimeout(function () {
      poll = null;
      if (polling) return;
      polling = true;
      load(range).then(function () { polling = false; if (onRefresh) onRefresh(); },
                       function (e) { polling = false; console.warn('valkmem: history refresh: ' + e.message); schedule(); });
    }, Math.max(1000, step_ms));
  }
  var onRefresh = null;

  /* One live tick's point. */
  function push(p) {
    if (!p || !p.t_ms || imported) return;
    pending.push(p);
    if (pending.length > PENDING_CAP) pending.shift();
    if (range === '1m') add(points, p, RANGES['1m'].cap, RANGES['1m'].span_ms);
  }

  /* The stream is live (refresh coarse ranges) or not (paused, exited). */
  function setLive(on, refreshed) { live = on; if (refreshed) onRefresh = refreshed; schedule(); }

  /* Show a file's histories: {"1m": [...], "10h": [...], ...}. */
  function setImported(h) { imported = h; pending = []; setLive(false); }

  /* Every range's answer as an object, for export (live: fetch each):
   * {"1m": {range, step_ms, points, sites}, ...}. */
  function all() {
    if (imported) {
      var o = {};
      Object.keys(imported).forEach(function (r) { o[r] = { range: r, points: imported[r], sites: imported[r].sites || [] }; });
      return Promise.resolve(o);
    }
    var out = {};
    return Promise.all(Object.keys(RANGES).map(function (r) {
      return fetch('api/history?range=' + r, { cache: 'no-store' }).then(function (res) { return res.ok ? res.json() : null; })
        .then(function (h) { out[r] = h ? (Array.isArray(h) ? { range: r, points: h } : h) : { range: r, points: [] }; });
    })).then(function () { return out; });
  }

  return {
    RANGES: RANGES, load: load, push: push, all: all, setImported: setImported, setLive: setLive,
    range: function () { return range; }, points: function () { return points; },
    step_ms: function () { return step_ms; }, span_ms: function () { return RANGES[range].span_ms; },
    sites: function () { return siteList; },
    wantSites: function (on) { if (wantSites !== !!on) { wantSites = !!on; schedule(); } },
    isImported: function () { return !!imported; }
  };
})();
