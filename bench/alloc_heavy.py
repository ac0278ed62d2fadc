"""alloc_heavy.py - a deterministic, allocation-heavy CPython workload.

Builds and drops many dicts, lists, strings, tuples, bytes and class
instances, grows containers past pymalloc's 512-byte limit (so the real
malloc/realloc is hit, not only pymalloc's arenas), round-trips JSON and
sorts. Prints a checksum that does not depend on hash randomisation.

usage: python3 alloc_heavy.py [scale]   (default 1.0, ~1 s here)
"""
import json
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0


class Node:
    __slots__ = ("key", "value", "children")

    def __init__(self, key, value):
        self.key = key
        self.value = value
        self.children = []


def build_tree(n):
    root = Node(0, "root")
    nodes = [root]
    for i in range(1, n):
        node = Node(i, "v%d" % i * (1 + i % 4))
        nodes[(i * 7919) % len(nodes)].children.append(node)
        nodes.append(node)
    return root


def walk(node):
    total, stack = 0, [node]
    while stack:
        n = stack.pop()
        total += n.key + len(n.value)
        stack.extend(n.children)
    return total


checksum = 0
rounds = max(1, int(12 * scale))
for r in range(rounds):
    # Dicts that resize several times, with string keys built on the fly.
    d = {}
    for i in range(20000):
        d["key-%d-%d" % (r, i)] = [i, str(i) * (i % 7), (i, r)]
    checksum += sum(len(v[1]) for v in d.values())
    # Big lists and strings: real malloc/realloc, not pymalloc.
    big = []
    for i in range(3000):
        big.append("x" * (600 + i % 900))
    joined = "|".join(big)
    checksum += len(joined) + joined.count("x|")
    del big, joined
    # Bytes and bytearrays growing by appends.
    ba = bytearray()
    for i in range(20000):
        ba += bytes((i % 251,)) * (1 + i % 13)
    checksum += len(ba) + ba[len(ba) // 2]
    # A tree of class instances, walked and dropped.
    checksum += walk(build_tree(15000))
    # JSON round trip of a nested document.
    doc = {"items": [{"id": i, "name": "item%d" % i, "tags": ["t%d" % (i % 5)] * 3,
                      "weight": i * 0.5} for i in range(4000)]}
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    checksum += len(text) + len(back["items"])
    # Sorting tuples and strings.
    keys = sorted(("%08x" % ((i * 2654435761) & 0xFFFFFFFF), i) for i in range(20000))
    checksum += keys[0][1] + keys[-1][1]
    del d, ba, doc, text, back, keys

print("alloc_heavy: rounds=%d checksum=%d" % (rounds, checksum))
