// stream.js - the live connection: EventSource on /api/events ("tick"
// events, one per agent tick, data = a snapshot), with reconnect and the
// connection states the header shows:
//   connecting      opening (or re-opening) the stream
//   live            ticks arriving
//   paused          the user paused (space): the stream is closed
//   exited          the process said state "exited", or the agent (which
//                   lives inside the process) stopped answering after being live
//   offline         an imported file is shown; no stream
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.stream = (function () {
  var es = null, state = 'connecting', onTick = null, onState = null, retry = null;
  var failures = 0, wasLive = false, exitedSeen = false;
  var MAX_FAILURES = 6;          // about 10 s of back-off before giving up

  function set(s, why) {
    if (s === state && !why) return;
    state = s;
    if (onState) onState(s, why || '');
  }

  function open() {
    close();
    set('connecting');
    es = new EventSource('api/events');
    es.addEventListener('tick', function (ev) {
      failures = 0;
      if (state !== 'live') { wasLive = true; set('live'); }
      var t0 = performance.now();
      var snap;
      try { snap = JSON.parse(ev.data); } catch (e) { console.warn('valkmem: bad tick event: ' + e.message); return; }
      onTick(snap, t0);
      if (snap.state === 'exited') { exitedSeen = true; close(); set('exited', 'the process exited'); }
    });
    es.onerror = function () {
      if (exitedSeen || state === 'paused' || state === 'offline') return;
      // EventSource retries by itself, but gives up on some errors; own the
      // back-off so the states are exact.
      close();
      failures++;
      if (wasLive && failures >= MAX_FAILURES) { set('exited', 'the agent stopped answering'); return; }
      set('connecting', failures > 1 ? 'retry ' + failures : '');
      retry = setTimeout(open, Math.min(4000, 250 * Math.pow(2, failures)));
    };
  }

  function close() {
    if (retry) { clearTimeout(retry); retry = null; }
    if (es) { es.onerror = null; es.close(); es = null; }
  }

  return {
    start: function (tick, st) { onTick = tick; onState = st; exitedSeen = false; failures = 0; open(); },
    pause: function () { if (state === 'exited' || state === 'offline') return false; close(); set('paused'); return true; },
    resume: function () { if (state !== 'paused') return false; open(); return true; },
    offline: function (st) { close(); if (st) onState = st; set('offline', 'imported file'); },
    reconnect: function () { exitedSeen = false; failures = 0; open(); },
    state: function () { return state; }
  };
})();
