// realprog_node.js - node under the shim: V8's heap, Buffers and zlib (which
// allocate through malloc), a worker thread and a child process. Prints
// only what is deterministic.
'use strict';
const zlib = require('zlib');
const crypto = require('crypto');
const { Worker } = require('worker_threads');
const { execFileSync } = require('child_process');

const rows = [];
for (let i = 0; i < 100000; i++) rows.push({ id: i, name: 'row' + i, tags: [i % 7, i % 11] });
const text = JSON.stringify(rows);
console.log('json', text.length, JSON.parse(text).length);

const big = Buffer.alloc(8 << 20, 'valkmem');
const packed = zlib.gzipSync(big);
console.log('gzip', big.length, zlib.gunzipSync(packed).equals(big));
console.log('sha256', crypto.createHash('sha256').update(text).digest('hex'));

const child = execFileSync(process.execPath, ['-e', 'console.log([..."child"].reverse().join(""))']);
console.log('child', child.toString().trim());

const w = new Worker('const { parentPort } = require("worker_threads");' +
                     'let s = 0; for (let i = 0; i < 1e6; i++) s += i % 13;' +
                     'parentPort.postMessage(s);', { eval: true });
w.on('message', (s) => {
  console.log('worker', s);
  process.exitCode = 3;
});
