// processes.js - the process tree. valkmem's agent serves a program and
// everything it forks or execs; each process has its own dashboard under
// /p/PID/ (the root's is also at /), and every dashboard answers
// GET api/processes (relative: the process whose dashboard this is) with
//   {root, self, processes: [{pid, ppid, program, state, live_bytes,
//    rss_bytes, started_at, end, url}, ...] (start order), truncated}.
// This module polls it every 2 s (not on SSE ticks) and gives:
//   - the "Processes" panel, a table of the tree (children indented under
//     their parent), available only when the tree has more than one process;
//   - the header's "pid N of a tree of M" (a link to the root's dashboard
//     when this is not the root).
// A 404 (an older agent, or a saved report under `valkmem view`) and an
// imported file turn both off for good, silently. Same panel contract as
// panels.js, plus available() (app.js hides the panel when it says false).
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.processes = (function () {
  var U = VKM.util, el = U.el, num = U.num;
  var POLL_MS = 2000;
  var SRC = 'GET api/processes: the agent\'s table of the process tree';
  var tree = null;          // the last good answer, or null
  var text = '';            // its JSON text: the panel's render key
  var off = false;          // 404 or an import: no tree here, no more polling
  var timer = null, onChange = null;

  /* ------------------------------------------------------------ polling */
  function schedule() { if (!off && !timer) timer = setTimeout(poll, POLL_MS); }

  function poll() {
    timer = null;
    var st = VKM.stream.state();
    // A paused view stays as it is, a background tab asks for nothing.
    if (off || st === 'paused' || document.hidden) { schedule(); return; }
    var answered = false;
    fetch('api/processes', { cache: 'no-store' }).then(function (r) {
      answered = true;
      if (r.status === 404) { stop(); return null; }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.text();
    }).then(function (t) {
      if (t === null || off) return;
      var d = JSON.parse(t);
      if (!d || !Array.isArray(d.processes)) throw new Error('no "processes" list');
      if (t !== text) { tree = d; text = t; if (onChange) onChange(); }
      schedule();
    }).catch(function (e) {
      // Keep the last table. No answer at all: the agent is gone or going
      // (the connection badge says so); once the process has exited, stop.
      if (answered) console.warn('valkmem: api/processes: ' + e.message);
      if (VKM.stream.state() !== 'exited') schedule();
    });
  }

  function start(cb) { onChange = cb; if (!off && !timer) poll(); }

  /* No tree from now on (404, or an imported file is shown). */
  function stop() {
    off = true;
    if (timer) { clearTimeout(timer); timer = null; }
    var had = tree !== null;
    tree = null; text = '';
    if (had && onChange) onChange();
  }

  function available() { return !off && !!tree && tree.processes.length > 1; }

  /* ------------------------------------------------------------ helpers */
  /* A same-origin path only ("/p/1234/"): never a scheme in an href. */
  function safeUrl(u) { return typeof u === 'string' && /^\/[\w\/.-]*$/.test(u) ? u : null; }

  function rootEntry() {
    var r = null;
    tree.processes.forEach(function (p) { if (p.pid === tree.root) r = p; });
    return r;
  }

  /* How a process ended: [short text, tooltip, class]. */
  function endText(p) {
    var e = p.end;
    var src = ' Source: "end" in ' + SRC;
    if (p.state !== 'exited' && !e) return ['running', 'The process is running.' + ' Source: "state" in ' + SRC, 'st-run'];
    if (!e) return ['exited', 'The process has exited; how it ended is not known (yet).' + src, 'is-dim'];
    if (e.kind === 'exit') return ['exit ' + e.code, 'Exited with status ' + e.code + ' (exit() or a return from main, as the recorder\'s on_exit handler saw it, or _exit() from the kernel\'s wait status).' + src,
                                   e.code === 0 ? 'is-dim' : 'is-warnish'];
    if (e.kind === 'signal') return [e.name || 'signal ' + e.signal, 'Killed by signal ' + e.signal + (e.name ? ' (' + e.name + ')' : '') +
                                     ', read from the zombie\'s /proc/PID/stat or PIDFD_GET_INFO.' + src, 'is-warn'];
    if (e.kind === 'exec') return ['exec\'d', 'The image was replaced by exec: the new image (same pid) has a row and a dashboard of its own.' + src, 'is-dim'];
    return ['ended (?)', 'The process ended but the agent could not learn how (reaped before it could read the exit status).' + src, 'is-dim'];
  }

  /* Rows in tree order: each process under its parent (the latest image of
   * that pid started before it), siblings in start order. Entries whose
   * parent is not in the list (the root; pids reused; a truncated list)
   * start a tree of their own. */
  function ordered(list) {
    var byPid = {}, kids = new Map(), tops = [];
    list.forEach(function (p) { (byPid[p.pid] = byPid[p.pid] || []).push(p); });
    list.forEach(function (p) {
      var cands = byPid[p.ppid], par = null;
      if (cands && p.ppid !== p.pid) cands.forEach(function (c) { if (c !== p && (c.started_at || 0) <= (p.started_at || 0)) par = c; });
      if (par) { if (!kids.has(par)) kids.set(par, []); kids.get(par).push(p); } else tops.push(p);
    });
    var out = [], seen = new Set();
    function walk(p, depth) {
      if (seen.has(p)) return;
      seen.add(p); out.push({ p: p, depth: depth });
      (kids.get(p) || []).forEach(function (c) { walk(c, depth + 1); });
    }
    tops.forEach(function (p) { walk(p, 0); });
    list.forEach(function (p) { walk(p, 0); });   // anything a cycle of reused pids hid
    return out;
  }

  /* -------------------------------------------------------------- panel */
  var MAX_ROWS = 300;   // a big build's tree: the table scrolls; past this, a note

  function render() {
    if (!tree) return { body: el('div', { class: 'note', title: 'No answer from ' + SRC + ' yet' }, 'no process tree'), has_data: false };
    var list = tree.processes, self = tree.self;
    var t0 = list.reduce(function (m, p) { return p.started_at && p.started_at < m ? p.started_at : m; }, Infinity);
    var selfIdx = -1;
    list.forEach(function (p, i) { if (p.pid === self) selfIdx = i; });   // an exec'd pid has two rows: the newest is this page
    var th = function (label, tip, cls) { return el('th', { class: cls || null, title: tip, text: label }); };
    var table = el('table', { class: 'sites procs' }, el('thead', null, el('tr', null,
      th('pid', 'Process id, as the agent sees it; children are indented under their parent (ppid). Source: ' + SRC),
      th('program', 'Program name of the process (its image: after an exec, the new one). Each other row links to that process\'s dashboard (/p/PID/). Source: ' + SRC),
      th('state', 'running, or how the process ended: exit status, the signal that killed it, replaced by exec, or unknown. Source: "state" and "end" in ' + SRC),
      th('live heap', 'Exact live heap of each process (bytes allocated and not freed) at its last agent tick; for an ended process, the final value. Source: ' + SRC, 'r'),
      th('RSS', 'Resident memory of each process, from /proc/PID/statm at its last agent tick; for an ended process, the final value. Source: ' + SRC, 'r'),
      th('started', 'When each process started (the image was loaded, or the process was forked), after the first process of the tree. Source: "started_at" in ' + SRC, 'r'))));
    var tb = el('tbody');
    var rows = ordered(list);
    rows.slice(0, MAX_ROWS).forEach(function (r) {
      var p = r.p, isSelf = list.indexOf(p) === selfIdx, url = safeUrl(p.url);
      var who = 'pid ' + p.pid + ' (' + (p.program || '?') + ')';
      var fin = p.state === 'exited' ? '; the final value, when it ended' : '';
      var end = endText(p);
      var started = p.started_at ? new Date(p.started_at) : null;
      var name = isSelf || !url || p.pid === self
        ? el('span', { class: 'pname', title: 'Program of ' + who + (isSelf ? ': the process this dashboard shows' : '') + '; parent pid ' + p.ppid + '. Source: ' + SRC }, p.program || '?')
        : el('a', { href: url, class: 'pname', title: 'Open the dashboard of ' + who + ' (' + url + '); parent pid ' + p.ppid + '. Source: ' + SRC }, p.program || '?');
      tb.appendChild(el('tr', { 'data-pid': String(p.pid), 'data-depth': String(r.depth), class: isSelf ? 'is-self' : null, 'aria-current': isSelf ? 'page' : null },
        el('td', null, num(String(p.pid), 'Process id ' + p.pid + ' (parent ' + p.ppid + ')' + (isSelf ? ': this dashboard' : '') + '. Source: ' + SRC)),
        el('td', { class: 'fn', style: r.depth ? 'padding-left:' + (3 + 14 * Math.min(r.depth, 8)) + 'px' : null },
           r.depth ? el('i', { class: 'tree-branch', 'aria-hidden': 'true' }, '└ ') : null, name,
           isSelf ? el('small', { title: 'The process whose dashboard this is (api/processes "self")' }, 'this page') : null),
        el('td', { class: end[2] }, el('span', { title: end[1] + ' (' + who + ')' }, end[0])),
        el('td', { class: 'r' }, num(U.bytes(p.live_bytes), 'Exact live heap of ' + who + ' at its last agent tick' + fin + '. Source: ' + SRC)),
        el('td', { class: 'r' }, num(U.bytes(p.rss_bytes), 'RSS of ' + who + ', from /proc/' + p.pid + '/statm at its last agent tick' + fin + '. Source: ' + SRC)),
        el('td', { class: 'r' }, num(started && isFinite(t0) ? '+' + U.dur(Math.max(0, p.started_at - t0) / 1000) : '–',
           'Started ' + (started ? started.toLocaleString() + ' (started_at ' + p.started_at + ', unix ms)' : 'at an unknown time') +
           ', after the first process of the tree by this much. Source: ' + SRC))));
    });
    table.appendChild(tb);
    var running = list.filter(function (p) { return p.state !== 'exited'; });
    var live = 0, rss = 0;
    running.forEach(function (p) { live += p.live_bytes || 0; rss += p.rss_bytes || 0; });
    var foot = el('div', { class: 'note procs-sum' },
      num(String(list.length), 'Processes of the tree the agent lists (' + (tree.truncated ? 'truncated: the agent\'s table is full' : 'all of them') + '). Source: ' + SRC),
      ' processes, ', num(String(running.length), 'Processes still running. Source: "state" in ' + SRC), ' running · their live heap ',
      num(U.bytes(live), 'Sum of the exact live heaps of the running processes at their last agent ticks. Source: ' + SRC),
      ', RSS ', num(U.bytes(rss), 'Sum of the RSS of the running processes (/proc/PID/statm at their last ticks); pages they share (after a fork, shared libraries) count once per process, so this overstates the RAM they use together. Source: ' + SRC));
    var body = el('div', null, el('div', { class: 'procs-wrap' }, table),
      rows.length > MAX_ROWS ? el('div', { class: 'note', title: 'Rows past ' + MAX_ROWS + ' are not drawn' }, 'and ', num(String(rows.length - MAX_ROWS), 'Processes not drawn in the table'), ' more') : null,
      foot,
      tree.truncated ? U.warn('The agent\'s process table is full: later processes of the tree are not listed', '"truncated": true in ' + SRC) : null);
    return { body: body, has_data: true };
  }

  /* ------------------------------------------------------------- header */
  /* "pid N of a tree of M", or null when there is no tree of more than one. */
  function headerNote(s) {
    if (!available()) return null;
    var n = tree.processes.length, pid = tree.self, m = n + (tree.truncated ? '+' : '');
    var root = rootEntry(), rootUrl = safeUrl(root && root.url) || '/';
    var tip = 'This dashboard shows pid ' + pid + ', one of the ' + m + ' processes of the tree valkmem records (a program and what it forks or execs)' +
              (tree.truncated ? ', a list the agent truncated' : '') + '. Source: ' + SRC;
    if (pid === tree.root) return el('span', { class: 'tree-note', title: tip + '. This is the root.' }, 'pid ' + pid + ' of a tree of ' + m);
    return el('span', { class: 'tree-note', title: tip }, 'pid ' + pid + ' of a ',
              el('a', { href: rootUrl, title: tip + '. Open the root\'s dashboard: pid ' + tree.root + (root ? ' (' + root.program + ')' : '') + ', ' + rootUrl },
                 'tree of ' + m));
  }

  return {
    list: [{ id: 'processes', title: 'Processes', render: render, available: available,
             key: function () { return text; } }],
    start: start, stop: stop, available: available, headerNote: headerNote, endText: endText, ordered: ordered,
    tree: function () { return tree; }
  };
})();
