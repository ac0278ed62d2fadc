"""realprog_threads.py - CPython with threads, allocating: each thread
builds and drops containers; results are printed in thread order so the
output is deterministic (PYTHONHASHSEED is fixed by the harness)."""
import json
import threading

results = [None] * 4


def work(idx):
    acc = 0
    for r in range(30):
        d = {("k%d_%d" % (idx, i)): [i] * (i % 17) for i in range(2000 + 100 * idx)}
        blob = "".join("%d," % v for v in range(1500 + r))
        acc += sum(len(v) for v in d.values()) + len(blob)
        doc = json.loads(json.dumps({"r": r, "xs": list(range(300)), "s": blob[:500]}))
        acc += len(doc["xs"])
        buf = bytearray()
        for i in range(500):
            buf += b"ab" * (i % 9)
        acc += len(buf)
    results[idx] = acc


threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for i, r in enumerate(results):
    print("thread %d: %d" % (i, r))
print("sorted:", sorted(["%x" % (i * 2654435761 % 4096) for i in range(12)]))
print("total:", sum(results))
