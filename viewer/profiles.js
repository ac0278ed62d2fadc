// profiles.js - which panels each kind of program gets, and which profile is
// active: ?profile= in the URL wins, then the one remembered in
// localStorage, then "server".
// Every profile ends with "processes", the process tree: shown only when
// the agent serves a tree of more than one process (processes.js).
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.profiles = (function () {
  var KEY = 'valkmem.profile';
  var DEFS = {
    server:   { label: 'server', panels: ['memory', 'pressure', 'heap', 'flame', 'sitehist', 'gc', 'lifetimes', 'pools', 'processes'],
                about: 'Long-running service: slow leaks, allocation pressure, call sites' },
    game:     { label: 'game', panels: ['frames', 'memory', 'gc', 'pressure', 'pools', 'processes'],
                about: 'Frame budget: will GC or allocation cause a hitch?' },
    desktop:  { label: 'desktop', panels: ['memory', 'idle', 'pressure', 'heap', 'flame', 'sitehist', 'lifetimes', 'processes'],
                about: 'Interactive app: does memory come back to its idle baseline?' },
    repl:     { label: 'repl', panels: ['evals', 'memory', 'heap', 'flame', 'sitehist', 'gc', 'lifetimes', 'processes'],
                about: 'REPL / notebook: what did that eval keep?' },
    lsp:      { label: 'lsp', panels: ['stability', 'memory', 'heap', 'flame', 'sitehist', 'lifetimes', 'gc', 'pressure', 'processes'],
                about: 'Language server / IDE: is memory stable over hours?' },
    embedded: { label: 'embedded', panels: ['planner', 'memory', 'pools', 'heap', 'pressure', 'processes'],
                about: 'Fixed memory budget: will it fit, and how to configure it' }
  };
  // "all" shows every panel at once (an overview, and what the performance
  // test measures); it is reached by ?profile=all and not offered as a button.
  DEFS.all = { label: 'all', panels: ['memory', 'pressure', 'heap', 'flame', 'sitehist', 'gc', 'lifetimes', 'pools', 'frames', 'evals', 'stability', 'idle', 'planner', 'processes'],
               about: 'Every panel at once' };
  var ORDER = ['server', 'game', 'desktop', 'repl', 'lsp', 'embedded'];

  function initial() {
    var q = new URLSearchParams(location.search).get('profile');
    if (q && DEFS[q]) { if (q !== 'all') remember(q); return q; }
    try { var s = localStorage.getItem(KEY); if (s && DEFS[s] && s !== 'all') return s; } catch (e) { /* no storage */ }
    return 'server';
  }
  function remember(name) { try { localStorage.setItem(KEY, name); } catch (e) { /* no storage */ } }

  /* Switch: remember it and keep the URL in step (so a reload or a shared
   * link shows the same profile) without reloading the page. */
  function choose(name) {
    if (!DEFS[name]) return false;
    if (name !== 'all') remember(name);
    var u = new URL(location.href);
    u.searchParams.set('profile', name);
    history.replaceState(null, '', u.pathname + u.search + u.hash);
    return true;
  }

  return { defs: DEFS, order: ORDER, initial: initial, choose: choose };
})();
