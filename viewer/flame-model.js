// flame-model.js - the flame graph's data, shared by the page (flame.js)
// and its worker (flame-worker.js): stacks from GET /api/stacks or from a
// file's "sites", kept in typed arrays, frames merged by function and
// module, stacks sorted so that identical prefixes are neighbours (the tree
// is then built in one linear pass, flame.js). No DOM here.
'use strict';
var VKM_FLAME_MODEL = (function () {
  /* ------------------------------------------------------------ model */
  // {fn[], mod[], file[], line[], off[]  per frame;
  //  ids[], start Int32Array(n+1), frames Int32Array (root first),
  //  live, alloc, liveErr, allocErr, liveN, allocN Float64Array, leak Uint8Array}
  function newModel(nframes, n, total) {
    return { fn: new Array(nframes), mod: new Array(nframes), file: new Array(nframes), line: new Array(nframes), off: new Array(nframes),
             n: n, ids: new Array(n), start: new Int32Array(n + 1), frames: new Int32Array(total),
             live: new Float64Array(n), alloc: new Float64Array(n), liveErr: new Float64Array(n), allocErr: new Float64Array(n),
             liveN: new Float64Array(n), allocN: new Float64Array(n), leak: new Uint8Array(n), cal: null, merged: null, rank: null, order: null };
  }
  function frameName(fn, mod, off) { return fn || ((mod || '?') + '+0x' + (off || 0).toString(16)); }

  /* GET /api/stacks (agent/SCHEMA.md): frames interned, stacks leaf first. */
  function fromStacks(doc) {
    if (!doc || !Array.isArray(doc.frames) || !Array.isArray(doc.stacks)) throw new Error('not a stacks document');
    var F = doc.frames, S = doc.stacks, total = 0, i, k;
    for (i = 0; i < S.length; i++) total += (S[i][1] || []).length;
    var m = newModel(F.length, S.length, total);
    for (i = 0; i < F.length; i++) {
      var f = F[i];
      m.mod[i] = f[1] || '?'; m.off[i] = f[2] || 0; m.fn[i] = frameName(f[0], m.mod[i], m.off[i]);
      m.file[i] = f[3] || null; m.line[i] = f[4] || 0;
    }
    var pos = 0;
    for (i = 0; i < S.length; i++) {
      var s = S[i], fi = s[1] || [];
      m.ids[i] = String(s[0]); m.start[i] = pos;
      for (k = fi.length - 1; k >= 0; k--) m.frames[pos++] = fi[k] >>> 0 < F.length ? fi[k] : 0;
      m.live[i] = +s[2] || 0; m.liveN[i] = +s[3] || 0; m.alloc[i] = +s[4] || 0; m.allocN[i] = +s[5] || 0;
      m.liveErr[i] = +s[6] || 0; m.allocErr[i] = +s[7] || 0; m.leak[i] = s[8] ? 1 : 0;
    }
    m.start[S.length] = pos;
    m.cal = doc.calibration || null;
    return m;
  }

  /* A snapshot's or report's "sites" (a file shown offline). */
  function fromSites(sites, cal) {
    sites = (sites || []).filter(function (x) { return x && Array.isArray(x.frames); });
    var keys = {}, nf = 0, total = 0, i, k;
    sites.forEach(function (x) { total += x.frames.length; });
    var tmp = [];
    sites.forEach(function (x) {
      x.frames.forEach(function (f) {
        var key = (f.module || '?') + '\u0000' + (f.offset || 0) + '\u0000' + (f.function || '');
        if (!(key in keys)) { keys[key] = nf++; tmp.push(f); }
      });
    });
    var m = newModel(nf, sites.length, total);
    for (i = 0; i < nf; i++) {
      var f = tmp[i];
      m.mod[i] = f.module || '?'; m.off[i] = f.offset || 0; m.fn[i] = frameName(f.function, m.mod[i], m.off[i]);
      m.file[i] = f.file || null; m.line[i] = f.line || 0;
    }
    var pos = 0;
    for (i = 0; i < sites.length; i++) {
      var x = sites[i];
      m.ids[i] = String(x.id); m.start[i] = pos;
      for (k = x.frames.length - 1; k >= 0; k--) {
        var g = x.frames[k];
        m.frames[pos++] = keys[(g.module || '?') + '\u0000' + (g.offset || 0) + '\u0000' + (g.function || '')];
      }
      m.live[i] = x.live_bytes || 0; m.alloc[i] = x.alloc_bytes || 0; m.liveN[i] = x.live_count || 0; m.allocN[i] = x.alloc_count || 0;
      m.liveErr[i] = x.live_err_bytes || 0; m.allocErr[i] = x.alloc_err_bytes || 0; m.leak[i] = x.leak ? 1 : 0;
    }
    m.start[sites.length] = pos;
    m.cal = cal || null;
    return m;
  }

  /* Frames merge by function and module (a flame graph shows functions, not
   * call instructions): merged[frame] = the first frame of that name; rank
   * orders merged frames by name, so siblings sit alphabetically and stay in
   * place from one refresh to the next. order: every stack, sorted by its
   * frames' ranks root first (a prefix before its extensions). */
  function prepare(m) {
    var by = {}, n = m.fn.length, merged = new Int32Array(n), names = [], i;
    for (i = 0; i < n; i++) {
      var key = m.fn[i] + '\u0000' + m.mod[i];
      if (key in by) merged[i] = by[key];
      else { by[key] = i; merged[i] = i; names.push(i); }
    }
    names.sort(function (a, b) { return m.fn[a] < m.fn[b] ? -1 : m.fn[a] > m.fn[b] ? 1 : m.mod[a] < m.mod[b] ? -1 : m.mod[a] > m.mod[b] ? 1 : a - b; });
    var rank = new Int32Array(n);
    names.forEach(function (f, r) { rank[f] = r; });
    for (i = 0; i < n; i++) rank[i] = rank[merged[i]];
    // Ranks along each stack, so the sort compares plain integers.
    var fr = m.frames, rf = new Int32Array(fr.length), start = m.start;
    for (i = 0; i < fr.length; i++) rf[i] = rank[fr[i]];
    var order = new Array(m.n);
    for (i = 0; i < m.n; i++) order[i] = i;
    order.sort(function (a, b) {
      var ia = start[a], ib = start[b], la = start[a + 1] - ia, lb = start[b + 1] - ib, k = la < lb ? la : lb;
      for (var j = 0; j < k; j++) { var d = rf[ia + j] - rf[ib + j]; if (d) return d; }
      return la - lb;
    });
    m.merged = merged; m.rank = rank; m.order = Int32Array.from(order);
    return m;
  }

  /* The typed arrays a worker hands over without copying. */
  function transfers(m) {
    return [m.start, m.frames, m.live, m.alloc, m.liveErr, m.allocErr, m.liveN, m.allocN, m.leak, m.merged, m.rank, m.order]
      .filter(Boolean).map(function (a) { return a.buffer; });
  }

  return { newModel: newModel, frameName: frameName, fromStacks: fromStacks, fromSites: fromSites, prepare: prepare, transfers: transfers };
})();
