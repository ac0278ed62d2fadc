// util.js - formatting and DOM helpers shared by every viewer module.
//
// Every number the dashboard shows goes through metric()/num(), which always
// attach a tooltip (the title attribute) saying what the number means and
// where it comes from; the browser tests check that no number is left
// without one.
'use strict';
var VKM = window.VKM || (window.VKM = {});

VKM.util = (function () {
  var UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

  /* 1536 -> "1.5 KiB". Negative values keep their sign. */
  function bytes(n) {
    if (n === null || n === undefined || !isFinite(n)) return '–';
    var neg = n < 0, v = Math.abs(n), i = 0;
    while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
    var s = i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
    return (neg ? '−' : '') + s + ' ' + UNITS[i];
  }
  function rate(n) { return bytes(n) + '/s'; }
  /* 1234567 -> "1.23 M" */
  function count(n) {
    if (n === null || n === undefined || !isFinite(n)) return '–';
    var a = Math.abs(n);
    if (a < 1e4) return String(Math.round(n));
    if (a < 1e6) return (n / 1e3).toFixed(1) + ' k';
    if (a < 1e9) return (n / 1e6).toFixed(2) + ' M';
    return (n / 1e9).toFixed(2) + ' G';
  }
  function pct(n, digits) {
    if (n === null || n === undefined || !isFinite(n)) return '–';
    return n.toFixed(digits === undefined ? 1 : digits) + ' %';
  }
  function ms(n) {
    if (n === null || n === undefined || !isFinite(n)) return '–';
    var a = Math.abs(n);
    if (a > 0 && a < 0.1) return (n * 1000).toFixed(a < 0.01 ? 1 : 0) + ' µs';
    return (a < 10 ? n.toFixed(2) : a < 100 ? n.toFixed(1) : Math.round(n)) + ' ms';
  }
  function dur(s) {
    if (!isFinite(s)) return '–';
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
  }

  /* Create an element: el('div', {class: 'x', title: 't'}, child...) */
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] === undefined || attrs[k] === null) continue;
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }

  /* Children may be nodes, strings, arrays of those, or null (skipped). */
  function add(e, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { for (var j = 0; j < c.length; j++) add(e, c[j]); return; }
    e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }

  /* A number with its tooltip: <span class="num" title="...">text</span> */
  function num(text, tip, cls) {
    return el('span', { class: 'num' + (cls ? ' ' + cls : ''), title: tip, text: text });
  }

  /* A labelled metric tile: label over value; both carry the tooltip. */
  function metric(label, text, tip, cls) {
    return el('div', { class: 'metric' + (cls ? ' ' + cls : ''), title: tip },
              el('div', { class: 'm-label', text: label }), el('span', { class: 'num m-value', text: text }));
  }

  /* A warning line (role=alert so it is announced). */
  function warn(text, tip) {
    return el('div', { class: 'warn', role: 'alert', title: tip || text }, text);
  }

  /* Replace the children of node with the given list. */
  function fill(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    for (var i = 1; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      if (Array.isArray(c)) c.forEach(function (x) { if (x) node.appendChild(x); });
      else node.appendChild(c);
    }
    return node;
  }

  /* The first frame of a site that names a function, for display. */
  function siteName(site) {
    if (!site || !site.frames || !site.frames.length) return '(unknown site)';
    var f = site.frames[0];
    return f.function || ((f.module || '?') + '+0x' + (f.offset || 0).toString(16));
  }
  function siteWhere(site) {
    if (!site || !site.frames || !site.frames.length) return '';
    var f = site.frames[0];
    return f.file ? f.file + (f.line ? ':' + f.line : '') : (f.module || '') + '+0x' + (f.offset || 0).toString(16);
  }

  function clamp(x, lo, hi) { return x < lo ? lo : x > hi ? hi : x; }

  return { bytes: bytes, rate: rate, count: count, pct: pct, ms: ms, dur: dur, el: el, num: num,
           metric: metric, warn: warn, fill: fill, siteName: siteName, siteWhere: siteWhere, clamp: clamp };
})();

/* morph(live, fresh): make the live DOM subtree look like the freshly built
 * one while keeping the live nodes that did not change kind. Keeping nodes
 * matters: a tooltip under the mouse, a focused element or a text selection
 * survives the 10 Hz re-render, and canvases keep their backing store. */
VKM.util.morph = function morph(live, fresh) {
  if (live.nodeType !== fresh.nodeType || live.nodeName !== fresh.nodeName) {
    live.parentNode.replaceChild(fresh, live);
    if (fresh.nodeName === 'CANVAS') fresh._dirty = true;
    var cs = fresh.querySelectorAll ? fresh.querySelectorAll('canvas') : [];
    for (var q = 0; q < cs.length; q++) cs[q]._dirty = true;
    return;
  }
  if (live.nodeType === 3) {
    if (live.nodeValue !== fresh.nodeValue) live.nodeValue = fresh.nodeValue;
    return;
  }
  var la = live.attributes, fa = fresh.attributes, i, canvas = live.nodeName === 'CANVAS';
  // Set what differs; when every fresh attribute was already there and the
  // counts match, the live node has no extra one to remove (the usual case).
  var same = 0;
  for (i = 0; i < fa.length; i++) {
    var a = fa[i], v = live.getAttribute(a.name);
    if (v === a.value) same++;
    else { if (v !== null) same++; live.setAttribute(a.name, a.value); }
  }
  if (same !== la.length) {
    for (i = la.length - 1; i >= 0; i--) {
      var an = la[i].name;
      // A canvas's width/height are its backing store, owned by charts.js:
      // removing them would clear and reallocate it on every tick.
      if (!fresh.hasAttribute(an) && !(canvas && (an === 'width' || an === 'height'))) live.removeAttribute(an);
    }
  }
  if (fresh._draw) { live._draw = fresh._draw; live._dirty = true; return; }
  var lk = live.childNodes, fk = fresh.childNodes;
  if (fk.length > lk.length) fk = Array.prototype.slice.call(fk);   // appending below moves nodes out of fresh
  for (i = 0; i < fk.length; i++) {
    if (i < lk.length) morph(lk[i], fk[i]);
    else { live.appendChild(fk[i]); var cc = fk[i].querySelectorAll ? fk[i].querySelectorAll('canvas') : [];
           for (var k = 0; k < cc.length; k++) cc[k]._dirty = true;
           if (fk[i].nodeName === 'CANVAS') fk[i]._dirty = true; }
  }
  while (lk.length > fk.length) live.removeChild(live.lastChild);
};
