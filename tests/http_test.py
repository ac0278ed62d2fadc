#!/usr/bin/env python3
"""http_test.py - black-box tests of valkmem's HTTP/SSE server.

    http_test.py --mode driver  [--promtool P] -- ./http_driver
    http_test.py --mode preload [--promtool P] --preload libvalkmem.so -- ./http_app

driver:  the server loop linked with stub documents (tests/http_driver.c),
         whose counters are known exactly: tick k has alloc_count 10*k.
preload: a real program under LD_PRELOAD; its counters are checked against
         what it says it did.

Every endpoint's status, content type and content; SSE framing, rate and
Last-Event-ID catch-up; hostile clients (malformed lines, huge heads,
slowloris, 200 connections, wrong Host, missing token, a reader that never
reads), each answered with the right status or closed while the server
keeps serving. Talks only to 127.0.0.1. Exit 77 = skipped.
"""
import select, argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

FAILS = []
LOCK = threading.Lock()


def check(cond, what):
    if not cond:
        with LOCK:
            FAILS.append(what)
        print("FAIL:", what, file=sys.stderr, flush=True)
    return cond


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Starting servers
# ---------------------------------------------------------------------------

class Server:
    def __init__(self, args, extra_env=None, url_file=True):
        self.tmp = tempfile.mkdtemp(prefix="vkm-http-")
        self.url_file = os.path.join(self.tmp, "url") if url_file else None
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("VALKMEM_") or k.startswith("DRV_") or k == "LD_PRELOAD":
                del env[k]
        if self.url_file:
            env["VALKMEM_URL_FILE"] = self.url_file
        if ARGS.mode == "preload":
            env["LD_PRELOAD"] = ARGS.preload
            env["VALKMEM_REPORT"] = os.path.join(self.tmp, "report.json")
        env.update(extra_env or {})
        self.env = env
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.port = None
        self.token = None

    def wait_url(self, path=None, timeout=10):
        path = path or self.url_file
        end = time.time() + timeout
        while time.time() < end:
            if os.path.exists(path):
                url = open(path).read().strip()
                m = re.match(r"^http://127\.0\.0\.1:(\d+)/(\?token=(.*))?$", url)
                check(m is not None, "URL file holds a URL: %r" % url)
                if m:
                    self.port = int(m.group(1))
                    self.token = m.group(3)
                    return url
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        check(False, "URL file %s appeared (server rc=%s)" % (path, self.proc.poll()))
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# ---------------------------------------------------------------------------
# A tiny raw HTTP client (http.client would fix up what we want to break)
# ---------------------------------------------------------------------------

def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


LEFTOVER = {}  # socket -> bytes read past the previous response (pipelining)


def read_response(s, head_only=False):
    """Reads one response: (status, headers dict, body bytes), or None on
    a close without a response."""
    buf = LEFTOVER.pop(s, b"")
    while b"\r\n\r\n" not in buf:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return None
        if not d:
            return None
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.1 (\d{3}) [^\r\n]*$", lines[0])
    if not check(m is not None, "status line: %r" % lines[0]):
        return None
    hdrs = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    n = 0 if head_only else int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    if rest[n:]:
        LEFTOVER[s] = rest[n:]
    return int(m.group(1)), hdrs, rest[:n]


def request(port, path, method="GET", headers=None, host="127.0.0.1", raw=None, token=None):
    s = connect(port)
    try:
        if raw is None:
            h = {"Host": host} if host is not None else {}
            if token:
                h["Authorization"] = "Bearer " + token
            h.update(headers or {})
            raw = "%s %s HTTP/1.1\r\n%s\r\n" % (method, path, "".join("%s: %s\r\n" % kv for kv in h.items()))
        s.sendall(raw.encode("latin-1") if isinstance(raw, str) else raw)
        return read_response(s, head_only=(method == "HEAD"))
    finally:
        s.close()


def status_of(port, raw):
    r = request(port, None, raw=raw)
    return r[0] if r else None


# ---------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------

def test_endpoints(srv):
    p, tok = srv.port, srv.token
    r = request(p, "/", token=tok)
    check(r and r[0] == 200 and r[1]["content-type"].startswith("text/html") and b"<" in r[2], "GET / serves HTML")
    n_index = len(r[2]) if r else -1
    r = request(p, "/", method="HEAD", token=tok)
    check(r and r[0] == 200 and int(r[1]["content-length"]) == n_index and r[2] == b"", "HEAD / has GET's length, no body")
    if ARGS.mode == "driver":
        r = request(p, "/app.js", token=tok)
        check(r and r[0] == 200 and r[1]["content-type"].startswith("text/javascript"), "asset /app.js")
        r = request(p, "/index.html", token=tok)
        check(r and r[0] == 200 and len(r[2]) == n_index, "/index.html is what / serves")

    r = request(p, "/api/snapshot", token=tok)
    check(r and r[0] == 200 and r[1]["content-type"] == "application/json", "snapshot is JSON")
    snap = json.loads(r[2]) if r else {}
    check(snap.get("schema") == "valkmem.snapshot/1", "snapshot schema: %r" % snap.get("schema"))
    check(isinstance(snap.get("totals"), dict), "snapshot totals")
    if ARGS.mode == "driver":
        check(snap["totals"]["alloc_count"] == 10 * snap["seq"], "driver counters follow seq")
    r = request(p, "/api/snapshot", method="HEAD", token=tok)
    check(r and r[0] == 200 and r[2] == b"" and int(r[1]["content-length"]) > 0, "HEAD snapshot")

    for rng in ("1m", "5m", "1h", "10h"):
        r = request(p, "/api/history?range=" + rng, token=tok)
        ok = r and r[0] == 200 and r[1]["content-type"] == "application/json"
        doc = json.loads(r[2]) if ok else {}
        check(ok and isinstance(doc.get("points"), list), "history %s: JSON with points" % rng)
        check(doc.get("range") == rng, "history %s names its range" % rng)
    r = request(p, "/api/history", token=tok)
    check(r and r[0] == 200, "history without range defaults to 1m")
    for bad in ("2m", "", "1m%00", "%zz", "1m1m1m1m1m"):
        r = request(p, "/api/history?range=" + bad, token=tok)
        check(r and r[0] == 400, "history range=%r -> 400 (got %s)" % (bad, r and r[0]))

    r = request(p, "/api/report", token=tok)
    check(r and r[0] == 200 and r[1]["content-type"] == "application/json", "report is JSON")
    rep = json.loads(r[2]) if r else {}
    check(rep.get("schema") == "valkmem.report/1", "report schema: %r" % rep.get("schema"))

    r = request(p, "/api/profile?type=alloc", token=tok)
    if r and r[0] == 503:
        check(b"not available" in r[2], "profile 503 says why")
    else:
        check(r and r[0] == 200 and r[1]["content-type"] == "application/octet-stream" and r[2][:2] == b"\x1f\x8b",
              "profile is gzip (got %s)" % (r and r[0]))
    if r and r[0] == 200 and ARGS.mode == "preload":
        pprof_check(r[2])
    r = request(p, "/api/profile?type=bogus", token=tok)
    check(r and r[0] == 400, "profile type=bogus -> 400")

    r = request(p, "/metrics", token=tok)
    check(r and r[0] == 200 and r[1]["content-type"].startswith("text/plain; version=0.0.4"), "metrics content type")
    text = r[2].decode() if r else ""
    promtool_check(text, "metrics")
    for name in ("process_resident_memory_bytes", "process_virtual_memory_bytes", "process_start_time_seconds",
                 "valkmem_alloc_bytes_total", "valkmem_free_bytes_total", "valkmem_allocations_total",
                 "valkmem_frees_total", "valkmem_live_heap_bytes", "valkmem_peak_live_heap_bytes",
                 "valkmem_allocator_fragmentation_ratio", "valkmem_dropped_events_total", "valkmem_self_bytes"):
        check(re.search(r"^%s [0-9.e+-]+$" % name, text, re.M), "metrics has %s" % name)
    # Labels only on histogram buckets and on the process tree's per-process
    # families (pid and program, never anything that grows with sites).
    for line in text.splitlines():
        if "{" in line and not line.startswith("#"):
            check(line.startswith("valkmem_gc_pause_seconds_bucket{le=") or
                  re.match(r'^valkmem_process_\w+\{pid="\d+",program="[^"]*"\} ', line),
                  "no labels except histogram buckets and pid/program: %r" % line)
    if ARGS.mode == "preload":
        check(re.search(r'^valkmem_process_live_heap_bytes\{pid="\d+",program="[^"]+"\} \d+$', text, re.M),
              "the tree's per-process series, labelled pid and program")
    if ARGS.mode == "driver":
        m = re.search(r"^valkmem_allocations_total (\d+)$", text, re.M)
        check(m and int(m.group(1)) % 10 == 0, "metrics counters come from the snapshot")
        check(re.search(r"^valkmem_allocator_fragmentation_ratio 0\.125$", text, re.M), "fragmentation as a ratio")
        check("valkmem_gc_pause_seconds" not in text, "no GC histogram without GC")

    for path in ("/nope", "/api", "/api/snapshot/", "/index.htm", "/%2e%2e/etc/passwd", "/../etc/passwd"):
        r = request(p, path, token=tok)
        check(r and r[0] == 404, "GET %s -> 404 (got %s)" % (path, r and r[0]))
    for m in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        r = request(p, "/api/snapshot", method=m, token=tok)
        check(r and r[0] == 405 and "GET" in r[1].get("allow", ""), "%s -> 405 with Allow" % m)
    r = request(p, "/api/events", method="HEAD", token=tok)
    check(r and r[0] == 405 and r[1].get("allow") == "GET", "HEAD /api/events -> 405 Allow: GET")
    r = request(p, "/api/snapshot", method="POST", headers={"Content-Length": "5"}, token=tok)
    check(r and r[0] == 413, "a request body -> 413")


def pprof_check(data):
    """The profile opens in a real pprof consumer (go tool pprof, offline)."""
    import shutil
    if not shutil.which("go"):
        log("go not found: profile not read back")
        return
    d = tempfile.mkdtemp(prefix="vkm-pprof-")
    f = os.path.join(d, "inuse.pb.gz")
    open(f, "wb").write(data)
    env = dict(os.environ, HOME=d, GOFLAGS="-mod=mod", GOPROXY="off", GOTOOLCHAIN="local", GOTELEMETRY="off",
               PPROF_TMPDIR=d)
    env.pop("LD_PRELOAD", None)
    pr = subprocess.run(["go", "tool", "pprof", "-raw", f], env=env, capture_output=True, timeout=120)
    check(pr.returncode == 0 and b"PeriodType" in pr.stdout,
          "go tool pprof reads /api/profile: rc %d %s" % (pr.returncode, pr.stderr.decode()[-300:]))


def promtool_check(text, what):
    if not ARGS.promtool:
        log("promtool not found: %s not linted" % what)
        return
    pr = subprocess.run([ARGS.promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    check(pr.returncode == 0, "promtool check metrics (%s): %s %s" % (what, pr.stdout.decode(), pr.stderr.decode()))


def test_keepalive(srv):
    p, tok = srv.port, srv.token
    auth = "Authorization: Bearer %s\r\n" % tok if tok else ""
    s = connect(p)
    req = "GET /api/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % auth
    for i in range(3):
        s.sendall(req.encode())
        r = read_response(s)
        check(r and r[0] == 200 and r[1]["connection"] == "keep-alive", "keep-alive request %d" % i)
    # Pipelined: three requests in one segment, three responses in order.
    s.sendall((req + req.replace("/api/snapshot", "/nope") + req).encode())
    got = [read_response(s) for _ in range(3)]
    check([g and g[0] for g in got] == [200, 404, 200], "pipelined responses in order: %s" % [g and g[0] for g in got])
    s.sendall(("GET /api/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n" % auth).encode())
    r = read_response(s)
    check(r and r[1]["connection"] == "close", "Connection: close honoured")
    s.settimeout(5)
    check(s.recv(10) == b"", "closed after Connection: close")
    s.close()


# ---------------------------------------------------------------------------
# SSE
# ---------------------------------------------------------------------------

def sse_open(port, tok, last_id=None, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    h = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n" % port
    if tok:
        h += "Authorization: Bearer %s\r\n" % tok
    if last_id is not None:
        h += "Last-Event-ID: %d\r\n" % last_id
    s.sendall((h + "\r\n").encode())
    return s


def sse_head(s, seconds=10.0):
    """Reads the response head of an SSE request byte by byte (nothing of
    the stream after it), so that sse_read(..., head_read=True) can go on
    from there. Returns the status, or None."""
    head = b""
    end = time.time() + seconds
    while not head.endswith(b"\r\n\r\n") and time.time() < end:
        s.settimeout(max(0.05, end - time.time()))
        try:
            d = s.recv(1)
        except socket.timeout:
            break
        if not d:
            break
        head += d
    try:
        return int(head.split(b"\r\n", 1)[0].split()[1])
    except (IndexError, ValueError):
        return None


def sse_read(s, seconds, max_events=None, head_read=False):
    """Reads for `seconds`: (status, headers, [events]); each event a dict
    of its fields (id, event, data) per the EventSource parsing rules.
    head_read: sse_head() has consumed the response head already (the
    status returned is then None)."""
    buf = b""
    end = time.time() + seconds
    head = b"" if head_read else None
    events = []
    while time.time() < end:
        s.settimeout(max(0.05, end - time.time()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        buf += d
        if head is None and b"\r\n\r\n" in buf:
            head, buf = buf.split(b"\r\n\r\n", 1)
        if head is not None:
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                ev = {}
                for line in block.decode().split("\n"):
                    if line.startswith(":"):
                        ev.setdefault("comments", []).append(line)
                        continue
                    k, _, v = line.partition(":")
                    ev[k] = v[1:] if v.startswith(" ") else v
                events.append(ev)
            if max_events and len([e for e in events if "data" in e]) >= max_events:
                break
    status, hdrs = None, {}
    if head:
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        for l in lines[1:]:
            k, v = l.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, events


def test_sse(srv):
    p, tok = srv.port, srv.token
    s = sse_open(p, tok)
    seconds = 3.0
    status, hdrs, events = sse_read(s, seconds)
    s.close()
    check(status == 200 and hdrs.get("content-type") == "text/event-stream", "SSE answers text/event-stream")
    check(events and events[0].get("retry") == "1000", "SSE starts with a retry hint")
    ticks = [e for e in events if e.get("event") == "tick"]
    rate = len(ticks) / seconds
    log("SSE: %d tick events in %.1f s (%.1f/s)" % (len(ticks), seconds, rate))
    # ~10/s expected; the bounds only catch "none" and "flooding".
    check(5 <= len(ticks) <= 60, "SSE tick count plausible: %d in %.0f s" % (len(ticks), seconds))
    ids = [int(e["id"]) for e in ticks if "id" in e]
    check(len(ids) == len(ticks), "every tick has an id")
    check(all(b > a for a, b in zip(ids, ids[1:])), "tick ids increase")
    if ARGS.mode == "driver":
        check(all(b == a + 1 for a, b in zip(ids, ids[1:])), "tick ids consecutive: %s" % ids)
    for e in ticks:
        try:
            d = json.loads(e["data"])
        except Exception:
            check(False, "tick data parses as JSON")
            break
        check(d.get("seq") is None or int(d["seq"]) == int(e["id"]), "tick id == data.seq")
    if not ids:
        return
    # Reconnect as EventSource does after missing some: the gap is filled
    # with catch-up events, then live ticks continue after them.
    last = ids[-1]
    time.sleep(1.0)
    s = sse_open(p, tok, last_id=last)
    status, _, events = sse_read(s, 1.5)
    s.close()
    catch = [e for e in events if e.get("event") == "catchup"]
    live = [e for e in events if e.get("event") == "tick"]
    log("SSE reconnect after id %d: %d catch-up, %d live" % (last, len(catch), len(live)))
    check(status == 200 and len(catch) >= 3, "catch-up events after Last-Event-ID (%d)" % len(catch))
    cids = [int(e["id"]) for e in catch if "id" in e]
    check(cids and cids[0] > last, "catch-up starts after Last-Event-ID")
    check(all(b > a for a, b in zip(cids, cids[1:])), "catch-up ids increase")
    if ARGS.mode == "driver" and cids:
        check(cids[0] == last + 1 and all(b == a + 1 for a, b in zip(cids, cids[1:])), "catch-up has no gap")
        if live:
            check(int(live[0]["id"]) == cids[-1] + 1, "live ticks continue right after catch-up")
    for e in catch:
        json.loads(e["data"])


def test_sse_under_attack(srv, s, status, seconds=17.0):
    """A well-behaved stream, connected before the attack starts (`s`, its
    head read: `status`), keeps its ticks, without a gap, while other
    clients misbehave, and gets a keep-alive comment every ~15 s."""
    _, _, events = sse_read(s, seconds, head_read=True)
    s.close()
    ticks = [e for e in events if e.get("event") == "tick"]
    ids = [int(e["id"]) for e in ticks]
    comments = sum(len(e.get("comments", [])) for e in events)
    log("SSE under attack: %d ticks in %.0f s (%.1f/s), %d keep-alive comment(s)"
        % (len(ticks), seconds, len(ticks) / seconds, comments))
    check(status == 200 and len(ticks) >= 3 * seconds, "ticks keep flowing under attack: %d" % len(ticks))
    check(comments >= 1, "a keep-alive comment within %.0f s" % seconds)
    if ARGS.mode == "driver":
        check(all(b == a + 1 for a, b in zip(ids, ids[1:])), "no tick lost under attack")


def test_slow_reader(srv, s):
    """A stream reader that never reads (`s`, connected before the attack)
    is dropped, not buffered forever."""
    t0 = time.time()
    # Do not read. The server queues, hits its bound or its stall timeout,
    # and closes; afterwards what was in flight drains to EOF quickly. A
    # stream still alive would instead go on delivering ticks.
    time.sleep(25)
    got, closed = 0, False
    end = time.time() + 5
    s.settimeout(5)
    try:
        while time.time() < end:
            d = s.recv(1 << 20)
            if not d:
                closed = True
                break
            got += len(d)
    except (socket.timeout, ConnectionResetError) as e:
        closed = isinstance(e, ConnectionResetError)
    s.close()
    log("slow reader: %d bytes buffered before the close, %.1f s" % (got, time.time() - t0))
    check(closed, "a reader that never reads is dropped")
    check(got < 16 << 20, "what was buffered for it is bounded (%d bytes)" % got)


# ---------------------------------------------------------------------------
# Hostile clients
# ---------------------------------------------------------------------------

def test_malformed(srv):
    p = srv.port
    cases = [
        ("GARBAGE\r\n\r\n", {400}),
        ("GET / HTTP/1.1\r\n\r\n", {400}),                # no Host
        ("GET / HTTP/3.0\r\nHost: 127.0.0.1\r\n\r\n", {505}),
        ("GET /  HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", {400}),
        ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n  folded\r\n\r\n", {400}),
        ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n", {400}),
        ("GET /" + "a" * 5000 + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", {414}),
        ("GET /" + "a" * 50000, {414}),                   # never ends
        ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + "b" * 20000 + "\r\n\r\n", {431}),
        ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "X-A: 1\r\n" * 100 + "\r\n", {431}),
        ("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", {400}),   # TLS hello
        ("\x00" * 64, {400}),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400}),
    ]
    for raw, want in cases:
        try:
            st = status_of(p, raw)
        except (BrokenPipeError, ConnectionResetError):
            st = "closed"
        check(st in want, "%r... -> %s, want %s" % (raw[:40], st, want))


def test_host(srv):
    p, tok = srv.port, srv.token
    for host, want in (("evil.example", 403), ("evil.example:%d" % p, 403), ("127.0.0.1:%d" % (p + 1 if p < 65535 else 1), 403),
                       ("localhost.evil.example", 403), ("127.0.0.1.nip.io:%d" % p, 403),
                       ("localhost:%d" % p, 200), ("127.0.0.1", 200), ("[::1]:%d" % p, 200), ("LocalHost", 200)):
        r = request(p, "/api/snapshot", host=host, token=tok)
        check(r and r[0] == want, "Host: %s -> %s (got %s)" % (host, want, r and r[0]))


def test_slowloris(srv):
    """Heads that dribble in, and connections that send nothing, are cut
    off by a deadline while the server keeps answering others."""
    p, tok = srv.port, srv.token
    results = {}

    def dribble():
        s = connect(p, timeout=30)
        t0 = time.time()
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed_by = None
        try:
            for i in range(40):
                s.sendall(b"X-%d: y\r\n" % i)
                s.settimeout(1.0)
                try:
                    d = s.recv(4096)
                    closed_by = d[:12].decode(errors="replace") if d else "eof"
                    break
                except socket.timeout:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            closed_by = "reset"
        results["dribble"] = (closed_by, time.time() - t0)
        s.close()

    def silent():
        s = connect(p, timeout=30)
        t0 = time.time()
        try:
            d = s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            d = b"timeout"
        results["silent"] = (d[:12], time.time() - t0)
        s.close()

    ts = [threading.Thread(target=dribble), threading.Thread(target=silent)]
    for t in ts:
        t.start()
    served = 0
    for _ in range(10):
        time.sleep(0.5)
        r = request(p, "/api/snapshot", token=tok)
        served += bool(r and r[0] == 200)
    for t in ts:
        t.join()
    log("slowloris: %s" % results)
    check(served == 10, "others served during slowloris: %d/10" % served)
    d = results.get("dribble")
    check(d and d[0] in ("HTTP/1.1 408", "eof", "reset") and d[1] < 30, "a dribbled head is cut off: %s" % (d,))
    s_ = results.get("silent")
    check(s_ and s_[0] == b"" and s_[1] < 30, "a silent connection is closed: %s" % (s_,))


def test_many(srv, n=200):
    """n connections at once: each gets an answer (200, or 503 beyond the
    cap) or is closed; none hangs; the server serves normally afterwards."""
    p, tok = srv.port, srv.token
    socks = []
    for _ in range(n):
        try:
            socks.append(connect(p, timeout=15))
        except OSError as e:
            check(False, "connect %d: %s" % (len(socks), e))
            break
    auth = "Authorization: Bearer %s\r\n" % tok if tok else ""
    req = ("GET /api/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n" % auth).encode()
    counts = {}
    for s in socks:
        try:
            s.sendall(req)
        except (BrokenPipeError, ConnectionResetError):
            pass
    for s in socks:
        try:
            r = read_response(s)
            k = r[0] if r else "closed"
        except OSError as e:
            k = type(e).__name__
        counts[k] = counts.get(k, 0) + 1
        s.close()
    log("%d concurrent connections: %s" % (n, counts))
    check(set(counts) <= {200, 503, "closed"}, "every connection answered 200/503 or closed: %s" % counts)
    # The cap is 64 at once; an SSE stream of another test may hold a slot.
    check(counts.get(200, 0) >= 50, "about the client cap was served: %s" % counts)
    r = request(p, "/api/snapshot", token=tok)
    check(r and r[0] == 200, "serving normally after %d connections" % n)


# ---------------------------------------------------------------------------
# Configuration: token, listen forms, URL line, fork
# ---------------------------------------------------------------------------

def test_token():
    srv = Server(CMD, {"VALKMEM_TOKEN": "s3cret-T0k"})
    srv.wait_url()
    p = srv.port
    check(srv.token == "s3cret-T0k", "the URL carries the token for the browser")
    r = request(p, "/api/snapshot")
    check(r and r[0] == 401 and "bearer" in r[1].get("www-authenticate", "").lower(), "no token -> 401")
    r = request(p, "/api/snapshot", token="wrong")
    check(r and r[0] == 401, "wrong token -> 401")
    r = request(p, "/metrics", headers={"Authorization": "Bearer s3cret-T0"})
    check(r and r[0] == 401, "token prefix -> 401")
    r = request(p, "/api/snapshot", token="s3cret-T0k")
    check(r and r[0] == 200, "Bearer token -> 200")
    r = request(p, "/?token=s3cret-T0k")
    check(r and r[0] == 200 and "valkmem_token=s3cret-T0k" in r[1].get("set-cookie", ""), "?token= -> 200 + cookie")
    r = request(p, "/api/snapshot", headers={"Cookie": "x=1; valkmem_token=s3cret-T0k"})
    check(r and r[0] == 200, "cookie token -> 200")
    s = sse_open(p, None)
    st, _, ev = sse_read(s, 0.5)
    s.close()
    check(st == 401, "SSE without token -> 401")
    r = request(p, "/api/snapshot", host="evil.example", token="s3cret-T0k")
    check(r and r[0] == 403, "token does not excuse a wrong Host")
    rc, out, err = srv.stop()
    check(rc == 0, "token server exits 0 (rc %s): %s" % (rc, err[-500:]))


def test_listen_forms():
    # Non-loopback without a token: refuses to start, says why. (Nothing is bound.)
    if ARGS.mode == "driver":
        for spec in ("0.0.0.0:0", "*:0", "[::]:0", "10.1.2.3:0"):
            srv = Server(CMD, {"VALKMEM_LISTEN": spec, "DRV_SECONDS": "2"})
            srv.proc.wait(timeout=10)
            rc, out, err = srv.stop()
            check(rc == 3 and "VALKMEM_TOKEN" in err, "LISTEN=%s without token refused: rc %s %r" % (spec, rc, err))
        for spec in ("bogus", "127.0.0.1:99999", "1.2.3.4.5:1", "[::1:1", "127.0.0.1:-1"):
            srv = Server(CMD, {"VALKMEM_LISTEN": spec, "DRV_SECONDS": "2"})
            srv.proc.wait(timeout=10)
            rc, out, err = srv.stop()
            check(rc == 3 and "VALKMEM_LISTEN" in err, "LISTEN=%s rejected: rc %s %r" % (spec, rc, err))
    for spec in (":0", "127.0.0.1:0", "localhost:0", "0"):
        srv = Server(CMD, {"VALKMEM_LISTEN": spec})
        if srv.wait_url():
            r = request(srv.port, "/api/snapshot")
            check(r and r[0] == 200, "LISTEN=%s serves" % spec)
        srv.stop()
    # IPv6 loopback when the machine has it.
    try:
        t = socket.socket(socket.AF_INET6)
        t.bind(("::1", 0))
        t.close()
        have6 = True
    except OSError:
        have6 = False
    if have6:
        srv = Server(CMD, {"VALKMEM_LISTEN": "[::1]:0"}, url_file=True)
        end = time.time() + 10
        while time.time() < end and not os.path.exists(srv.url_file):
            time.sleep(0.05)
        url = open(srv.url_file).read().strip() if os.path.exists(srv.url_file) else ""
        m = re.match(r"^http://\[::1\]:(\d+)/$", url)
        check(m, "IPv6 URL: %r" % url)
        if m:
            s = socket.create_connection(("::1", int(m.group(1))), timeout=10)
            s.sendall(b"GET /api/snapshot HTTP/1.1\r\nHost: [::1]:%s\r\n\r\n" % m.group(1).encode())
            r = read_response(s)
            s.close()
            check(r and r[0] == 200, "IPv6 loopback serves")
        srv.stop()


def test_url_line():
    srv = Server(CMD, {}, url_file=False)
    time.sleep(1.0)
    rc, out, err = srv.stop()
    lines = [l for l in err.splitlines() if "dashboard" in l]
    prog = os.path.basename(CMD[0])
    line_re = r"^valkmem: dashboard for %s \(pid %d\): http://127\.0\.0\.1:\d+/$"
    if ARGS.mode != "preload":
        check(len(lines) == 1 and re.match(line_re % (re.escape(prog), srv.proc.pid), lines[0]),
              "one URL line on stderr: %r" % lines)
        return
    # Under the shim the agent prints the line, and only on the terminal
    # the program was started from: never into the program's own stderr
    # when that is a pipe or a file.
    check(lines == [], "no URL line in the program's stderr (a pipe): %r" % lines)
    import pty
    master, slave = pty.openpty()
    env = dict(srv.env)
    p = subprocess.Popen(CMD, env=env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    text = b""
    end = time.time() + 10
    while time.time() < end and b"\n" not in text:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                text += os.read(master, 4096)
            except OSError:
                break
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
    os.close(master)
    tl = [l for l in text.decode(errors="replace").splitlines() if "dashboard" in l]
    check(len(tl) == 1 and re.match(line_re % (re.escape(prog), p.pid), tl[0].strip()),
          "one URL line on the terminal: %r" % tl)
    srv = Server(CMD, {"VALKMEM_QUIET": "1"}, url_file=False)
    time.sleep(1.0)
    rc, out, err = srv.stop()
    check("dashboard" not in err, "VALKMEM_QUIET silences the URL line: %r" % err)


def test_fork():
    srv = Server(CMD, {"DRV_FORK": "1"})
    srv.wait_url()
    # The child forks at tick 10 (1 s) and writes <url_file>.<pid>.
    end = time.time() + 10
    child = None
    while time.time() < end and not child:
        for f in os.listdir(srv.tmp):
            if f.startswith("url.") and f[4:].isdigit():
                child = f
        time.sleep(0.05)
    check(child, "a forked child writes its own URL file")
    if child:
        cpid = int(child[4:])
        m = re.match(r"^http://127\.0\.0\.1:(\d+)/$", open(os.path.join(srv.tmp, child)).read().strip())
        check(m and int(m.group(1)) != srv.port, "the child has its own port")
        if m:
            r = request(int(m.group(1)), "/api/snapshot")
            check(r and r[0] == 200 and json.loads(r[2])["pid"] == cpid, "the child serves its own snapshot")
    r = request(srv.port, "/api/snapshot")
    check(r and r[0] == 200 and json.loads(r[2])["pid"] == srv.proc.pid, "the parent still serves its own")
    srv.stop()


# ---------------------------------------------------------------------------

def main():
    global ARGS, CMD
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("driver", "preload"), required=True)
    ap.add_argument("--promtool", default="")
    ap.add_argument("--preload", default="")
    ap.add_argument("cmd", nargs="+")
    ARGS = ap.parse_args()
    CMD = ARGS.cmd

    if ARGS.mode == "preload":
        # Does the library serve at all yet? (While the agent is a stub, skip.)
        probe = Server(CMD, {"APP_SECONDS": "3"})
        url = None
        end = time.time() + 5
        while time.time() < end and not os.path.exists(probe.url_file):
            time.sleep(0.05)
        rc, out, err = probe.stop()
        if not os.path.exists(probe.url_file):
            print("http_preload: skipped: the preloaded library starts no server yet (rc %s, %s)"
                  % (rc, err.strip()[-300:]))
            return 77

    srv = Server(CMD, {"DRV_SECONDS": "240", "APP_SECONDS": "240"})
    if not srv.wait_url():
        print(srv.stop())
        return 1
    log("server pid %d port %d" % (srv.proc.pid, srv.port))
    global FIRST_SNAPSHOT
    FIRST_SNAPSHOT = json.loads(request(srv.port, "/api/snapshot")[2])
    try:
        test_endpoints(srv)
        test_keepalive(srv)
        test_sse(srv)
        test_malformed(srv)
        test_host(srv)
        # Slowloris, many connections and a reader that never reads, together.
        # The well-behaved stream connects first: once the attack fills the
        # client slots, a new connection gets 503 (that is the cap).
        slow = sse_open(srv.port, srv.token, rcvbuf=4096)
        sse = sse_open(srv.port, srv.token)
        sse_status = sse_head(sse)
        bg = [threading.Thread(target=test_slow_reader, args=(srv, slow)),
              threading.Thread(target=test_sse_under_attack, args=(srv, sse, sse_status))]
        for t in bg:
            t.start()
        test_many(srv)
        test_slowloris(srv)
        for t in bg:
            t.join()
        test_endpoints(srv)  # everything still right afterwards
    except Exception:
        rc, out, err = srv.stop()
        print("server rc %s; its stderr:\n%s" % (rc, err[-4000:]))
        raise
    check(srv.proc.poll() is None, "the server process survived")
    before = json.loads(request(srv.port, "/api/snapshot")[2])
    check(before["totals"]["alloc_count"] > FIRST_SNAPSHOT["totals"]["alloc_count"],
          "the app kept allocating (and the agent counting) through it all: %d -> %d"
          % (FIRST_SNAPSHOT["totals"]["alloc_count"], before["totals"]["alloc_count"]))
    rc, out, err = srv.stop()
    check(rc == 0, "server exit code 0 (got %s): %s" % (rc, err[-800:]))
    if ARGS.mode == "driver":
        m = re.search(r"ticks (\d+)", out)
        check(m and int(m.group(1)) >= before["seq"], "the loop kept ticking: %s" % out.strip())
    else:
        m = re.search(r"allocs (\d+) checksum (\w+)", out)
        check(m and m.group(2) == "ok", "the app's own work is right: %r" % out)
        rep_path = os.path.join(srv.tmp, "report.json")
        if check(os.path.exists(rep_path), "exit report written"):
            rep = json.load(open(rep_path))
            allocs = int(m.group(1)) if m else 0
            check(rep["totals"]["alloc_count"] >= allocs, "report counts every allocation the app made: %d >= %d"
                  % (rep["totals"]["alloc_count"], allocs))
            check(rep["live"]["bytes"] >= 100 * 1000, "the planted leak is live at exit: %d" % rep["live"]["bytes"])
            check(rep["totals"]["alloc_count"] >= before["totals"]["alloc_count"], "counters only grow")

    test_token()
    test_url_line()
    test_listen_forms()
    test_fork()
    if ARGS.mode == "driver":
        gc = Server(CMD, {"DRV_GC": "1", "DRV_PPROF": "1"})
        if gc.wait_url():
            r = request(gc.port, "/metrics")
            text = r[2].decode() if r else ""
            promtool_check(text, "metrics with GC")
            for want in ('valkmem_gc_pause_seconds_bucket{le="0.001"} 1', 'valkmem_gc_pause_seconds_bucket{le="0.005"} 3',
                         'valkmem_gc_pause_seconds_bucket{le="0.01"} 4', 'valkmem_gc_pause_seconds_bucket{le="0.0166"} 5',
                         'valkmem_gc_pause_seconds_bucket{le="+Inf"} 6', "valkmem_gc_pause_seconds_sum 0.0425",
                         "valkmem_gc_pause_seconds_count 6"):
                check(want in text, "GC histogram line %r" % want)
            r = request(gc.port, "/api/profile?type=inuse")
            check(r and r[0] == 200 and r[1]["content-type"] == "application/octet-stream"
                  and "attachment" in r[1].get("content-disposition", ""), "profile download when pprof works")
        gc.stop()

    if FAILS:
        print("http_test (%s): %d check(s) failed" % (ARGS.mode, len(FAILS)))
        return 1
    print("http_test (%s): ok" % ARGS.mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
