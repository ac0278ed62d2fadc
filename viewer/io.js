// io.js - snapshot export and import.
//
// Export writes {"schema": "valkmem.export/1", platform, exported_at,
// profile, range, snapshot, history: {"1m": [...], "5m": [...], ...},
// history_sites: {"1m": [sites named by the points' site_live], ...}}.
// Import takes that file or a valkmem report (schema "valkmem.report/1",
// whose history is {"1m": [...], "10h": [...]}) and shows it offline: the
// stream is closed and every panel, the range selector included, works from
// the file. Both are plain JSON so other tools can read them.
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.io = (function () {
  var MAX_IMPORT = 64 * 1048576;   // refuse absurd files rather than hang the tab

  function download(name, text, type) {
    var blob = new Blob([text], { type: type || 'application/json' });
    var a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  /* Build the export document (a promise: live histories are fetched). */
  function build(snapshot, profile, range) {
    return VKM.history.all().then(function (h) {
      // history stays {"1m": [points], ...}; the per-site history's site
      // lists (what each point's site_live indices name) ride alongside.
      var hist = {}, sites = {};
      Object.keys(h).forEach(function (r) { hist[r] = h[r].points || []; sites[r] = h[r].sites || []; });
      return { schema: 'valkmem.export/1', platform: snapshot ? snapshot.platform : null, exported_at: Date.now(),
               profile: profile, range: range, snapshot: snapshot, history: hist, history_sites: sites };
    });
  }

  function exportNow(snapshot, profile, range) {
    return build(snapshot, profile, range).then(function (doc) {
      var name = 'valkmem-' + ((snapshot && snapshot.program) || 'export') + '-' + ((snapshot && snapshot.pid) || 0) + '-' +
                 new Date(doc.exported_at).toISOString().replace(/[:.]/g, '-') + '.json';
      download(name, JSON.stringify(doc), 'application/json');
      return doc;
    });
  }

  /* Histories come as {"1m": [points]} or {"1m": {range, step_ms, points}}
   * (the /api/history answer kept whole), or one answer alone: make them
   * all {"1m": [points], ...}. */
  function normHistory(h) {
    var out = {};
    if (!h) return out;
    if (Array.isArray(h)) { out['1m'] = h; return out; }
    if (Array.isArray(h.points)) { out[h.range || '1m'] = h.points; return out; }
    Object.keys(h).forEach(function (r) {
      var v = h[r];
      if (Array.isArray(v)) out[r] = v;
      else if (v && Array.isArray(v.points)) {
        out[r] = v.points;
        if (Array.isArray(v.sites)) out[r].sites = v.sites;   // what the points' site_live indices name
      }
    });
    return out;
  }

  /* Parse a file's text into {snapshot, history, profile, range, kind}, or
   * throw an Error that says what is wrong with it. */
  function parse(text) {
    if (text.length > MAX_IMPORT) throw new Error('file is larger than 64 MiB');
    var d;
    try { d = JSON.parse(text); } catch (e) { throw new Error('not JSON: ' + e.message); }
    if (!d || typeof d !== 'object') throw new Error('not a JSON object');
    // An export; or an export served back by `valkmem view` (which stamps
    // the document "valkmem.snapshot/1" with "view": true).
    if (d.schema === 'valkmem.export/1' || (d.view && d.snapshot && typeof d.snapshot === 'object')) {
      if (!d.snapshot) throw new Error('export has no snapshot');
      var eh = normHistory(d.history), hs = d.history_sites || {};
      Object.keys(eh).forEach(function (r) { if (Array.isArray(hs[r])) eh[r].sites = hs[r]; });
      return { kind: 'export', snapshot: d.snapshot, history: eh, profile: d.profile, range: d.range };
    }
    if (d.schema === 'valkmem.report/1' || d.schema === 'valkmem.snapshot/1') {
      var h = normHistory(d.history);
      var snap = {};
      for (var k in d) if (k !== 'history') snap[k] = d[k];
      if (!snap.point) {
        var any = h['1m'] || h['5m'] || h['1h'] || h['10h'] || [];
        snap.point = any[any.length - 1] || null;
      }
      return { kind: d.schema === 'valkmem.report/1' || d.view ? 'report' : 'snapshot', snapshot: snap, history: h };
    }
    throw new Error('unknown schema "' + d.schema + '" (expected valkmem.export/1 or valkmem.report/1)');
  }

  function readFile(file) {
    return new Promise(function (resolve, reject) {
      if (file.size > MAX_IMPORT) { reject(new Error(file.name + ': larger than 64 MiB')); return; }
      var r = new FileReader();
      r.onload = function () { try { resolve(parse(String(r.result))); } catch (e) { reject(new Error(file.name + ': ' + e.message)); } };
      r.onerror = function () { reject(new Error(file.name + ': ' + (r.error && r.error.message))); };
      r.readAsText(file);
    });
  }

  return { download: download, build: build, exportNow: exportNow, parse: parse, readFile: readFile };
})();
