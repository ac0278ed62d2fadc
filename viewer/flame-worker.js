// flame-worker.js - parses /api/stacks answers off the page's thread: the
// text in, the prepared model (flame-model.js) out, its typed arrays
// transferred, not copied. An answer equal to the previous one (same hash)
// comes back as {same: true}: nothing to rebuild.
'use strict';
importScripts('flame-model.js');

var lastHash = -1, lastLen = -1;

function hash(s) {
  var h = 0x811c9dc5 | 0;
  for (var i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h;
}

onmessage = function (e) {
  var id = e.data.id, text = e.data.text;
  try {
    var h = hash(text);
    if (h === lastHash && text.length === lastLen) { postMessage({ id: id, same: true }); return; }
    lastHash = h; lastLen = text.length;
    var m = VKM_FLAME_MODEL.prepare(VKM_FLAME_MODEL.fromStacks(JSON.parse(text)));
    postMessage({ id: id, model: m }, VKM_FLAME_MODEL.transfers(m));
  } catch (err) {
    lastHash = -1;
    postMessage({ id: id, error: err.message });
  }
};
