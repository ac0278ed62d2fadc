#!/usr/bin/env python3
"""fleet_test.py - valkmem scraped by the fleet tools, unchanged.

    fleet_test.py prometheus|pprof|queries --preload libvalkmem.so --prog fleet_prog --examples DIR

prometheus  a real Prometheus server (/usr/bin/prometheus) on 127.0.0.1 runs
            the job of examples/prometheus.yml (target and interval
            rewritten) against fleet_prog under the shim. At two plateaus
            (the program idle, its counters standing still) every sample
            Prometheus stored after the plateau began equals the agent's
            own /api/snapshot: counters and the live heap exactly.
pprof       go tool pprof (Debian's golang-go, offline) reads /debug/pprof/heap
            and /allocs: Go's four sample types in Go's order and units,
            period, default type, a bytes label on every sample; the planted
            site fleet_before tops -sample_index=inuse_space within 4
            standard errors of the sampling (README "Fleets"); a ?seconds=2
            delta holds fleet_during, allocated inside the window, and not
            fleet_before, allocated before it, while the agent keeps serving;
            go tool pprof -proto re-encodes the delta.
queries     malformed query strings get 400 and a one-line message, never a
            hang; profiles valkmem cannot serve get 404 and one line; ?pid=
            and /p/PID/ pick a process of the tree; a client that leaves
            during a delta does no harm; the Parca and Alloy examples
            enable only what valkmem serves and disable what it cannot.

Everything talks to 127.0.0.1 only. Exit 77 = a tool is missing (skipped).
"""
import argparse
import gzip
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

FAILS = []
SAMPLE_BYTES = 65536  # the sampling mean the programs run with


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr, flush=True)
    return cond


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def skip(why):
    print("SKIP:", why, flush=True)
    sys.exit(77)


# ---------------------------------------------------------------------------
# The program under the shim
# ---------------------------------------------------------------------------

class Prog:
    def __init__(self, tmp, sample_bytes=SAMPLE_BYTES):
        self.url_file = os.path.join(tmp, "url%d" % sample_bytes)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VALKMEM_") and k != "LD_PRELOAD"}
        env.update(LD_PRELOAD=ARGS.preload, VALKMEM_URL_FILE=self.url_file, VALKMEM_SAMPLE_BYTES=str(sample_bytes))
        self.proc = subprocess.Popen([ARGS.prog], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(tmp, "prog.err"), "wb"))
        self.pid = self.proc.pid
        end = time.time() + 15
        self.port = None
        while time.time() < end and self.port is None:
            if os.path.exists(self.url_file):
                m = re.match(r"^http://127\.0\.0\.1:(\d+)/", open(self.url_file).read())
                if m:
                    self.port = int(m.group(1))
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise SystemExit("no dashboard URL from the agent within 15 s")

    def cmd(self, line, want="ok"):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        got = self.proc.stdout.readline().decode().strip()
        check(got.startswith(want), "program answers %r to %r, got %r" % (want, line, got))
        return got

    def stop(self):
        try:
            self.proc.stdin.write(b"quit\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def get(port, path, timeout=10, host="127.0.0.1"):
    """(status, headers dict, body bytes), or (None, {}, b'') on a network error."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except (OSError, http.client.HTTPException) as e:
        log("request", path, "failed:", e)
        return None, {}, b""
    finally:
        c.close()


def snapshot(port):
    st, _, body = get(port, "/api/snapshot")
    return json.loads(body) if st == 200 else None


def plateau(port):
    """The snapshot once the program's counters stand still over three ticks."""
    prev = None
    end = time.time() + 20
    while time.time() < end:
        s = snapshot(port)
        key = s and (s["totals"]["alloc_count"], s["totals"]["free_count"], s["live"]["bytes"])
        if prev is not None and key == prev:
            return s
        prev = key
        time.sleep(0.35)
    check(False, "counters stood still within 20 s")
    return snapshot(port)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------

def prom_query(pport, q, at):
    from urllib.parse import urlencode
    st, _, body = get(pport, "/api/v1/query?" + urlencode({"query": q, "time": "%.3f" % at}))
    if st != 200:
        return None
    d = json.loads(body)
    return d["data"]["result"] if d.get("status") == "success" else None


def test_prometheus(tmp):
    prom = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
    if not prom:
        skip("prometheus is not installed (Debian package prometheus)")
    import yaml
    cfg = yaml.safe_load(open(os.path.join(ARGS.examples, "prometheus.yml")))
    jobs = [j for j in cfg["scrape_configs"] if j["job_name"] == "valkmem"]
    check(len(jobs) == 1 and jobs[0].get("metrics_path", "/metrics") == "/metrics", "example has the valkmem job")
    p = Prog(tmp)
    pport = free_port()
    job = jobs[0]
    job["static_configs"][0]["targets"] = ["127.0.0.1:%d" % p.port]
    cfg["global"]["scrape_interval"] = "1s"
    cfg["global"]["scrape_timeout"] = "1s"
    cfg_path = os.path.join(tmp, "prometheus.yml")
    with open(cfg_path, "w") as f:
        yaml.safe_dump(cfg, f)
    perr = open(os.path.join(tmp, "prometheus.err"), "wb")
    pr = subprocess.Popen([prom, "--config.file=" + cfg_path, "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
                           "--web.listen-address=127.0.0.1:%d" % pport], stdout=perr, stderr=perr)
    try:
        end = time.time() + 30
        while time.time() < end and get(pport, "/-/ready", timeout=2)[0] != 200:
            time.sleep(0.2)
        if not check(get(pport, "/-/ready")[0] == 200, "prometheus ready within 30 s"):
            return
        pid = p.pid
        series = {  # PromQL -> path into the snapshot
            "valkmem_allocations_total": ("totals", "alloc_count"),
            "valkmem_frees_total": ("totals", "free_count"),
            "valkmem_alloc_bytes_total": ("totals", "alloc_usable_bytes"),
            "valkmem_free_bytes_total": ("totals", "free_usable_bytes"),
            "valkmem_live_heap_bytes": ("live", "bytes"),
            "valkmem_live_allocations": ("live", "count"),
            'valkmem_process_allocations_total{pid="%d",program="fleet_prog"}' % pid: ("totals", "alloc_count"),
            'valkmem_process_live_heap_bytes{pid="%d",program="fleet_prog"}' % pid: ("live", "bytes"),
        }
        seen_counts = []
        for step, work in enumerate(["churn 5000", "before 3000 1000"]):
            p.cmd(work)
            snap = plateau(p.port)
            t0 = time.time()
            # Two scrapes that began after the plateau was seen.
            got = {}
            end = time.time() + 30
            while time.time() < end:
                time.sleep(0.5)
                now = time.time()
                ok = True
                for q in series:
                    res = prom_query(pport, "%s[30s]" % q, now)
                    pts = [(float(t), float(v)) for r in (res or []) for t, v in r["values"] if float(t) > t0]
                    got[q] = pts
                    ok = ok and len(pts) >= 2
                if ok:
                    break
            up = prom_query(pport, 'up{job="valkmem"}', time.time())
            check(up and up[0]["value"][1] == "1", "step %d: Prometheus says the target is up: %r" % (step, up))
            for q, (a, b) in series.items():
                want = float(snap[a][b])
                pts = got.get(q, [])
                check(len(pts) >= 2, "step %d: two scrapes of %s after the plateau (got %d)" % (step, q, len(pts)))
                for t, v in pts:
                    check(v == want, "step %d: %s at %.3f = %r, snapshot says %r" % (step, q, t, v, want))
            log("step %d: %d scrapes each, e.g. allocations %d, live heap %d bytes" %
                (step, len(got["valkmem_allocations_total"]), snap["totals"]["alloc_count"], snap["live"]["bytes"]))
            seen_counts.append(snap["totals"]["alloc_count"])
        check(len(seen_counts) == 2 and seen_counts[1] == seen_counts[0] + 3000,
              "the second plateau is the first plus the 3000 planted allocations: %r" % seen_counts)
    finally:
        pr.send_signal(signal.SIGTERM)
        try:
            pr.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pr.kill()
        p.stop()


# ---------------------------------------------------------------------------
# go tool pprof
# ---------------------------------------------------------------------------

def pprof(tmp, *args):
    env = dict(os.environ, HOME=tmp, GOFLAGS="-mod=mod", GOPROXY="off", GOTOOLCHAIN="local", GOTELEMETRY="off",
               PPROF_TMPDIR=tmp, GOCACHE=os.path.join(tmp, "gocache"))
    r = subprocess.run(["go", "tool", "pprof"] + list(args), env=env, capture_output=True, timeout=120)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def raw_samples(text):
    """The sample-type header line and the samples of `pprof -raw` output."""
    lines = text.splitlines()
    i = lines.index("Samples:") if "Samples:" in lines else -1
    return (lines[i + 1].strip() if i >= 0 else ""), lines


def top_row(text, fn):
    """flat bytes of function fn in `pprof -top -unit=B` output, or None."""
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[-1] == fn and f[0].endswith("B"):
            return float(f[0][:-1])
    return None


def first_row(text):
    seen = False
    for line in text.splitlines():
        if "flat%" in line:
            seen = True
            continue
        if seen and line.strip():
            return line.split()[-1]
    return None


def within(est, truth, what):
    se = 1 / (truth / SAMPLE_BYTES) ** 0.5  # relative standard error of Poisson byte sampling
    err = (est - truth) / truth if est is not None else float("inf")
    log("%s: estimate %s, truth %d, error %+.2f%% (4 standard errors = %.1f%%)" %
        (what, est, truth, 100 * err, 400 * se))
    return check(abs(err) <= 4 * se, "%s within 4 standard errors: %+.2f%% vs %.1f%%" % (what, 100 * err, 400 * se))


def test_pprof(tmp):
    if not shutil.which("go"):
        skip("go is not installed (Debian package golang-go)")
    p = Prog(tmp)
    try:
        before = 65536 * 1024  # 64 MiB in 1 KiB blocks, live
        p.cmd("before 65536 1024")
        snap = plateau(p.port)
        check(snap.get("dropped_events") == 0, "no sampled event dropped (the error below assumes none): %r" %
              snap.get("dropped_events"))
        want_types = {"heap": "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes",
                      "allocs": "alloc_objects/count alloc_space/bytes[dflt] inuse_objects/count inuse_space/bytes"}
        for ep in ("heap", "allocs"):
            st, hd, body = get(p.port, "/debug/pprof/" + ep)
            check(st == 200 and hd.get("content-type") == "application/octet-stream", "%s: 200 octet-stream" % ep)
            check(body[:2] == b"\x1f\x8b", "%s: gzip" % ep)
            path = os.path.join(tmp, ep + ".pb.gz")
            open(path, "wb").write(body)
            rc, out, err = pprof(tmp, "-raw", path)
            check(rc == 0, "%s: pprof -raw reads it: %s" % (ep, err))
            header, lines = raw_samples(out)
            check(header == want_types[ep], "%s: sample types in Go's order and units: %r" % (ep, header))
            check("PeriodType: space bytes" in lines, "%s: period type space/bytes" % ep)
            check("Period: %d" % SAMPLE_BYTES in lines, "%s: period = the sampling mean" % ep)
            nsamp = sum(1 for l in lines if re.match(r"^\s+-?\d+\s+-?\d+\s+-?\d+\s+-?\d+: ", l))
            nlab = sum(1 for l in lines if re.match(r"^\s+bytes:\[\d+\]$", l))
            check(nsamp > 0 and nlab == nsamp, "%s: a bytes label on each of %d samples (%d)" % (ep, nsamp, nlab))
            check(re.search(r"^\d+: 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ \S*fleet_prog [0-9a-f]{40}", out, re.M),
                  "%s: the program's mapping with its file name and build id" % ep)
            check(re.search(r"^\s+\d+: 0x[0-9a-f]+ M=\d+ fleet_before fleet_prog\.c:\d+", out, re.M),
                  "%s: a location with address, mapping, function and line" % ep)
        # The legacy text form reads back through pprof's own legacy parser,
        # which scales the raw counts by the period after "heap/" (halved).
        st, _, body = get(p.port, "/debug/pprof/heap?debug=1")
        tpath = os.path.join(tmp, "heap.txt")
        open(tpath, "wb").write(body)
        rc, out, err = pprof(tmp, "-raw", "-symbolize=none", tpath)
        check(st == 200 and rc == 0 and "Period: %d" % SAMPLE_BYTES in out.splitlines(),
              "pprof reads the ?debug=1 text with the period: %s" % err)
        legacy = sum(int(m) for m in re.findall(r"^\s+\d+\s+(\d+): ", out, re.M))
        proto = None
        rc, out, err = pprof(tmp, "-sample_index=inuse_space", "-top", "-unit=B", os.path.join(tmp, "heap.pb.gz"))
        check(rc == 0, "pprof -top: %s" % err)
        log(out)
        check(first_row(out) == "fleet_before", "inuse_space -top names fleet_before first: %r" % first_row(out))
        m = re.search(r"of (\d+)B total", out)
        proto = int(m.group(1)) if m else None
        check(proto is not None and abs(legacy - proto) <= proto * 1e-6 + 64 * 1024,
              "the legacy text scales to the same in-use total as the proto: %r vs %r" % (legacy, proto))
        within(top_row(out, "fleet_before"), before, "fleet_before inuse_space")

        # The delta: a request for the next 2 s, allocations inside the window.
        result = {}

        def fetch():
            t = time.time()
            result["r"] = get(p.port, "/debug/pprof/allocs?seconds=2", timeout=20)
            result["dt"] = time.time() - t

        th = threading.Thread(target=fetch)
        th.start()
        time.sleep(0.4)  # the baseline is taken when the request arrives
        t = time.time()
        st, _, _ = get(p.port, "/api/snapshot", timeout=5)
        check(st == 200 and time.time() - t < 2, "the agent serves others while a delta waits")
        during = 32768 * 1024
        p.cmd("during 32768 1024")
        th.join(30)
        st, hd, body = result.get("r", (None, {}, b""))
        check(st == 200 and body[:2] == b"\x1f\x8b", "delta: 200 gzip (%r)" % st)
        check(1.9 <= result.get("dt", 0) <= 6, "delta answered after its 2 s: %.2f s" % result.get("dt", 0))
        dpath = os.path.join(tmp, "delta.pb.gz")
        open(dpath, "wb").write(body)
        rc, out, err = pprof(tmp, "-raw", dpath)
        check(rc == 0, "delta: pprof -raw reads it: %s" % err)
        check("fleet_during" in out, "delta holds fleet_during, allocated in the window")
        check("fleet_before" not in out, "delta holds nothing of fleet_before, allocated before the window")
        m = re.search(r"^Duration: (\S+)", out, re.M)
        check(m is not None, "delta has a duration: %r" % (m and m.group(1)))
        check(snapshot(p.port).get("dropped_events") == 0, "no sampled event dropped in the window")
        rc, out, err = pprof(tmp, "-sample_index=alloc_space", "-top", "-unit=B", dpath)
        log(out)
        check(first_row(out) == "fleet_during", "delta's alloc_space -top names fleet_during first")
        within(top_row(out, "fleet_during"), during, "fleet_during alloc_space in the delta")
        rc, out, err = pprof(tmp, "-sample_index=inuse_space", "-top", "-unit=B", dpath)
        within(top_row(out, "fleet_during"), during, "fleet_during inuse_space in the delta")
        rpath = os.path.join(tmp, "re.pb.gz")
        rc, out, err = pprof(tmp, "-proto", "-output", rpath, dpath)
        check(rc == 0 and os.path.getsize(rpath) > 0, "go tool pprof -proto re-encodes the delta: %s" % err)
        rc, out, err = pprof(tmp, "-raw", rpath)
        check(rc == 0 and "fleet_during" in out, "the re-encoded delta reads back")
    finally:
        p.stop()
    # Exact mode: period 1, every allocation a sample, nothing scaled.
    p = Prog(tmp, sample_bytes=1)
    try:
        p.cmd("before 1000 1000")
        plateau(p.port)
        st, _, body = get(p.port, "/debug/pprof/heap")
        path = os.path.join(tmp, "exact.pb.gz")
        open(path, "wb").write(body)
        rc, out, err = pprof(tmp, "-raw", path)
        check(rc == 0 and "Period: 1" in out.splitlines(), "exact mode: period 1 (%s)" % err)
        locs = dict(re.findall(r"^\s+(\d+): 0x[0-9a-f]+ M=\d+ (\w+) ", out, re.M))
        rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+): (\d+) ", out, re.M)
        mine = [r[:4] for r in rows if locs.get(r[4]) == "fleet_before"]
        check(mine == [("1000", "1000000", "1000", "1000000")],
              "exact mode: fleet_before's sample is exactly 1000 objects of 1000 bytes: %r" % mine)
    finally:
        p.stop()


# ---------------------------------------------------------------------------
# Query strings, unservable profiles, the process tree, the examples
# ---------------------------------------------------------------------------

BAD = [  # (query after /debug/pprof/heap or /allocs, a word the message must hold)
    ("heap?seconds=-1", "seconds"), ("heap?seconds=0", "seconds"), ("heap?seconds=abc", "seconds"),
    ("heap?seconds=1.5", "seconds"), ("heap?seconds=", "seconds"), ("heap?seconds=%ZZ", "seconds"),
    ("heap?seconds=99999999999999999999999999", "seconds"), ("allocs?seconds=301", "at most"),
    ("heap?seconds=+5", "seconds"), ("heap?seconds=%20%35", "seconds"),
    ("heap?debug=x", "debug"), ("heap?debug=-1", "debug"), ("allocs?debug=1e3", "debug"),
    ("heap?seconds=2&debug=1", "incompatible"), ("heap?foo=1", "unknown parameter"),
    ("allocs?seconds=2&foo=bar", "unknown parameter"), ("heap?gc=x", "gc"),
    ("heap?pid=abc", "pid"), ("heap?pid=0", "pid"), ("heap?pid=-5", "pid"),
    ("heap?pid=4194000", "no process"), ("allocs?pid=99999999999", "pid"),
]
UNSERVABLE = ["profile", "goroutine", "mutex", "block", "threadcreate", "trace", "cmdline", "symbol",
              "delta_heap", "fgprof", "nosuch"]


def test_queries(tmp):
    p = Prog(tmp)
    try:
        p.cmd("churn 100")
        p.cmd("before 2000 1000")  # 2 MB: about 30 samples, so the legacy form has records
        child = int(p.cmd("fork", want="child").split()[1])
        for q, word in BAD:
            t = time.time()
            st, hd, body = get(p.port, "/debug/pprof/" + q, timeout=5)
            text = body.decode(errors="replace")
            check(st == 400, "%s -> 400 (got %r: %r)" % (q, st, text))
            check(word in text and text.count("\n") == 1, "%s: one line naming %r: %r" % (q, word, text))
            check(time.time() - t < 5, "%s answered at once" % q)
        for name in UNSERVABLE:
            st, _, body = get(p.port, "/debug/pprof/" + name)
            text = body.decode(errors="replace")
            check(st == 404 and "valkmem cannot serve" in text and text.count("\n") == 1,
                  "%s -> 404 with one line: %r %r" % (name, st, text))
        # Random junk never hangs or crashes the agent.
        rnd = random.Random(15)
        junk = "abc=%&+;?#/0123456789-.\x7f"
        for i in range(200):
            q = "".join(rnd.choice(junk) for _ in range(rnd.randrange(1, 24)))
            from urllib.parse import quote
            st, _, _ = get(p.port, "/debug/pprof/heap?" + quote(q, safe="=&%+"), timeout=5)
            check(st in (200, 400), "junk query %r -> %r" % (q, st))
        # A client that leaves while its delta waits.
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        s.sendall(b"GET /debug/pprof/heap?seconds=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.3)
        s.close()
        # Good requests.
        for q, ctype in [("heap", "application/octet-stream"), ("heap?debug=", "application/octet-stream"),
                         ("allocs?gc=1", "application/octet-stream"), ("heap?debug=1", "text/plain"),
                         ("allocs?debug=2", "text/plain")]:
            st, hd, body = get(p.port, "/debug/pprof/" + q)
            check(st == 200 and hd.get("content-type", "").startswith(ctype), "%s -> 200 %s" % (q, ctype))
        st, _, body = get(p.port, "/debug/pprof/heap?debug=1")
        text = body.decode(errors="replace")
        check(re.match(r"^heap profile: \d+: \d+ \[\d+: \d+\] @ heap/%d\n" % (2 * SAMPLE_BYTES), text),
              "legacy header as runtime/pprof writes it: %r" % text[:80])
        check(re.search(r"^\d+: \d+ \[\d+: \d+\] @( 0x[0-9a-f]+)+$", text, re.M), "legacy records")
        check(re.search(r"^#\t0x[0-9a-f]+\tfleet_churn\+0x[0-9a-f]+\tfleet_prog\.c:\d+$", text, re.M) or
              "fleet_churn" not in text, "legacy frames as printStackRecord writes them")
        check("fleet_child" not in text, "the root's profile is the root's")
        for path in ("/debug/pprof/heap?debug=1&pid=%d" % child, "/p/%d/debug/pprof/heap?debug=1" % child):
            st, _, body = get(p.port, path)
            check(st == 200 and b"fleet_child" in body, "%s: the child's profile (%r)" % (path, st))
        st, _, body = get(p.port, "/debug/pprof/?pid=%d" % child)
        check(st == 200 and ("process %d" % child).encode() in body and b"allocs" in body and b"heap" in body,
              "index of the child's profiles")
        st, hd, _ = get(p.port, "/debug/pprof")
        check(st == 301 and hd.get("location") == "pprof/", "/debug/pprof -> 301 pprof/")
        st, _, body = get(p.port, "/metrics")
        check(st == 200 and ('valkmem_process_live_heap_bytes{pid="%d",program="fleet_prog"}' % child).encode() in body,
              "the root's /metrics lists the child")
        promtool = shutil.which("promtool")
        if promtool:  # the tree's families, two processes in them, still pass the linter
            r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
            check(r.returncode == 0, "promtool check metrics with the tree's series: %s %s" %
                  (r.stdout.decode(), r.stderr.decode()))
        else:
            log("promtool not installed: /metrics of the tree not linted")
        check_examples(p.port)
        check(snapshot(p.port) is not None, "the agent still serves after all that")
    finally:
        p.stop()


def check_examples(port):
    """The Parca and Alloy examples: every profile they enable is served,
    every default profile they disable is one valkmem cannot serve."""
    import yaml
    parca_defaults = {"memory": "/debug/pprof/allocs", "block": "/debug/pprof/block",
                      "goroutine": "/debug/pprof/goroutine", "mutex": "/debug/pprof/mutex",
                      "process_cpu": "/debug/pprof/profile"}  # Parca's DefaultScrapeConfig
    fields = {"enabled", "path", "delta", "keep_sample_type"}  # PprofProfilingConfig's yaml names
    cfg = yaml.safe_load(open(os.path.join(ARGS.examples, "parca.yaml")))
    check(set(cfg) <= {"object_storage", "scrape_configs"}, "parca.yaml: top-level keys Parca knows")
    for job in cfg["scrape_configs"]:
        check(set(job) <= {"job_name", "params", "scrape_interval", "scrape_timeout", "scheme", "static_configs",
                           "profiling_config", "relabel_configs", "normalized_addresses"},
              "parca.yaml: job keys Parca knows: %r" % sorted(job))
        pc = job["profiling_config"]["pprof_config"]
        for name in parca_defaults:
            check(name in pc, "parca.yaml sets %s explicitly" % name)
        for name, c in pc.items():
            check(set(c) <= fields, "parca.yaml %s: fields Parca knows: %r" % (name, sorted(c)))
            path = c.get("path", parca_defaults.get(name))
            st, _, body = get(port, path)
            if c.get("enabled", True):
                check(st == 200 and body[:2] == b"\x1f\x8b", "parca.yaml enables %s (%s): served" % (name, path))
            else:
                check(st == 404, "parca.yaml disables %s (%s): valkmem answers 404" % (name, path))
    alloy = open(os.path.join(ARGS.examples, "alloy.alloy")).read()
    alloy_defaults = {"memory": "/debug/pprof/allocs", "block": "/debug/pprof/block",
                      "goroutine": "/debug/pprof/goroutine", "mutex": "/debug/pprof/mutex",
                      "process_cpu": "/debug/pprof/profile"}  # pyroscope.scrape's enabled defaults
    check(re.search(r'^pyroscope\.scrape "\w+" \{$', alloy, re.M), "alloy: a pyroscope.scrape block")
    check(re.search(r'^\s+targets\s+= \[\{"__address__" = "127\.0\.0\.1:\d+"', alloy, re.M), "alloy: targets")
    check(re.search(r'^\s+forward_to = \[pyroscope\.write\.\w+\.receiver\]$', alloy, re.M), "alloy: forward_to")
    blocks = dict(re.findall(r"profile\.(\w+) \{\n((?:\s+\w+\s+= [^\n]+\n)+)\s+\}", alloy))
    for name, path in alloy_defaults.items():
        body = blocks.get(name)
        if not check(body is not None, "alloy.alloy sets profile.%s" % name):
            continue
        attrs = dict(re.findall(r"(\w+)\s+= (\S+)", body))
        check(set(attrs) <= {"enabled", "path", "delta"}, "alloy profile.%s: known attributes %r" % (name, attrs))
        path = attrs.get("path", '"%s"' % path).strip('"')
        st, _, _ = get(port, path)
        if attrs.get("enabled") == "true":
            check(st == 200, "alloy enables profile.%s (%s): served" % (name, path))
        else:
            check(attrs.get("enabled") == "false" and st == 404, "alloy disables profile.%s: 404 here" % name)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["prometheus", "pprof", "queries"])
    ap.add_argument("--preload", required=True)
    ap.add_argument("--prog", required=True)
    ap.add_argument("--examples", required=True)
    ARGS = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vkm-fleet-")
    t = time.time()
    try:
        {"prometheus": test_prometheus, "pprof": test_pprof, "queries": test_queries}[ARGS.part](tmp)
    finally:
        if not FAILS:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("kept", tmp)
    log("fleet_%s: %.1f s, %d failures" % (ARGS.part, time.time() - t, len(FAILS)))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
