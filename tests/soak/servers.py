#!/usr/bin/env python3
"""servers.py - real servers under load, with and without the shim.

usage: servers.py redis|nginx --lib LIB [--rounds R] [--requests N]
                  [--duration S] [--json FILE]

redis: redis-server on 127.0.0.1 (a free port, its own temp dir, no
       persistence) driven by redis-benchmark -n N.
nginx: nginx with its own prefix and config in a temp dir (1 worker,
       static files) driven by wrk -d S.
Each round runs the server once without and once with the shim (order
alternating); with the shim, the HTTP agent is on (VALKMEM_URL_FILE) and a
poller fetches /api/snapshot every 250 ms for the whole run. Checks: the
load generator reports no errors, the server exits cleanly, every dashboard
poll after the first answer succeeds with valid JSON, and the reports parse
with non-zero allocation counts. The throughput ratio (median with /
median without) is printed, never asserted (no wall-clock assertions).
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

failures = []


def fail(msg):
    failures.append(msg)
    print("servers: FAIL: " + msg, file=sys.stderr)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Poller(threading.Thread):
    """Fetches /api/snapshot from every URL the URL files name (the file, and
    FILE.<pid> written by forked children such as nginx's worker), every
    250 ms, until stopped. Counts answers, and failures after a URL's first
    success (before it the agent may still be starting)."""

    def __init__(self, url_file):
        super().__init__(daemon=True)
        self.url_file = url_file
        self.stop_ev = threading.Event()
        self.ok = 0
        self.errors = []
        self.pids = set()
        self.answered = set()
        self.last = None

    def urls(self):
        out = []
        for path in [self.url_file] + glob.glob(self.url_file + ".*"):
            try:
                with open(path) as f:
                    words = [w for w in f.read().split() if w.startswith("http")]
                if words:
                    out.append(words[-1].rstrip("/"))
            except OSError:
                pass
        return out

    def run(self):
        while not self.stop_ev.wait(0.25):
            urls = self.urls()
            if not urls and self.ok:
                self.errors.append("URL file vanished")
            for url in urls:
                self.poll(url)

    def poll(self, url):
        try:
            with urllib.request.urlopen(url + "/api/snapshot", timeout=3) as r:
                body = r.read()
                ctype = r.headers.get("Content-Type", "")
            snap = json.loads(body)
            if "json" not in ctype or "totals" not in snap:
                raise ValueError("content type %r, keys %s" % (ctype, sorted(snap)[:8]))
            self.ok += 1
            self.answered.add(url)
            self.pids.add(snap.get("pid"))
            self.last = snap
        except Exception as e:  # any failure counts; the message says which
            if url in self.answered:
                self.errors.append("%s: %s" % (url, e))

    def stop(self):
        self.stop_ev.set()
        self.join(5)


def proc_cpu(pid):
    """CPU seconds (user + system, all threads) of pid and its children:
    the server's cost per request, which unlike throughput does not depend
    on how busy the rest of the machine is."""
    total = 0
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def check_reports(pattern, label, min_allocs=1):
    files = sorted(glob.glob(pattern))
    if not files:
        fail("%s: no report written (%s)" % (label, pattern))
        return []
    reps = []
    for f in files:
        try:
            with open(f) as fh:
                r = json.load(fh)
        except (OSError, ValueError) as e:
            fail("%s: report %s: %s" % (label, f, e))
            continue
        if r.get("schema") != "valkmem.report/1":
            fail("%s: %s: schema %r" % (label, f, r.get("schema")))
        reps.append(r)
    total = sum((r.get("totals") or {}).get("alloc_count", 0) for r in reps)
    if total < min_allocs:
        fail("%s: reports show %d allocations, expected at least %d" % (label, total, min_allocs))
    return reps


# --------------------------------------------------------------------------
# redis
# --------------------------------------------------------------------------
def redis_round(args, shim, tmp):
    port = free_port()
    d = tempfile.mkdtemp(dir=tmp, prefix="redis-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALKMEM_") and k != "LD_PRELOAD"}
    poller = None
    if shim:
        env.update(LD_PRELOAD=args.lib, VALKMEM_URL_FILE=os.path.join(d, "url"),
                   VALKMEM_REPORT=os.path.join(d, "report-%p.json"))
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", d, "--daemonize", "no",
                            "--logfile", os.path.join(d, "redis.log")], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    label = "redis (%s)" % ("shim" if shim else "plain")
    try:
        if not wait_port(port, srv):
            fail("%s: server did not start: %s" % (label, srv.stderr.read().decode()[-500:] if srv.poll() is not None else ""))
            return None
        if shim:
            poller = Poller(env["VALKMEM_URL_FILE"])
            poller.start()
        tests = "set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset"
        cpu0 = proc_cpu(srv.pid)
        b = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(args.requests),
                            "-c", "20", "-q", "--csv", "-t", tests],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=args.timeout)
        if b.returncode != 0:
            fail("%s: redis-benchmark exited %d: %s" % (label, b.returncode, b.stderr.decode()[-500:]))
            return None
        rps = {}
        for line in b.stdout.decode().splitlines():
            cols = [c.strip('"') for c in line.split(",")]
            if len(cols) >= 2 and cols[0] != "test":
                try:
                    rps[cols[0]] = float(cols[1])
                except ValueError:
                    pass
        cpu = proc_cpu(srv.pid) - cpu0
        if len(rps) < 8:
            fail("%s: redis-benchmark gave %d results: %s" % (label, len(rps), b.stdout.decode()[-500:]))
            return None
        # Server still consistent: a value written under load reads back.
        c = subprocess.run(["redis-cli", "-p", str(port), "dbsize"], capture_output=True, timeout=10)
        if c.returncode != 0 or not c.stdout.strip().isdigit() or int(c.stdout) == 0:
            fail("%s: redis-cli dbsize answered %r" % (label, c.stdout))
    finally:
        if poller:
            poller.stop()
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, timeout=10)
        try:
            rc = srv.wait(timeout=20)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
            fail("%s: did not exit after SHUTDOWN" % label)
            rc = None
    if rc not in (0, None):
        fail("%s: exit code %d" % (label, rc))
    if "valkmem: error" in srv.stderr.read().decode(errors="replace"):
        fail("%s: the shim reported an error" % label)
    res = {"rps": rps, "total_rps": sum(rps.values()),
           "cpu_us_per_request": cpu * 1e6 / (args.requests * (len(rps) + 1))}  # +1: LRANGE's LPUSH fill
    if shim:
        res["polls"] = poller.ok
        res["poll_errors"] = poller.errors
        if poller.ok == 0:
            fail("%s: the dashboard never answered" % label)
        if poller.errors:
            fail("%s: %d dashboard polls failed, first: %s" % (label, len(poller.errors), poller.errors[0]))
        reps = check_reports(os.path.join(d, "report-*.json"), label)
        res["report_allocs"] = sum((r.get("totals") or {}).get("alloc_count", 0) for r in reps)
    return res


# --------------------------------------------------------------------------
# nginx
# --------------------------------------------------------------------------
NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/html;
    server {{
        listen 127.0.0.1:{port};
        root {d}/html;
        location / {{ }}
        location /gz/ {{ gzip on; gzip_min_length 0; gzip_types *; }}
    }}
}}
"""


def nginx_round(args, shim, tmp):
    port = free_port()
    d = tempfile.mkdtemp(dir=tmp, prefix="nginx-")
    # A root master's worker runs as nobody: it must read html/ and write its
    # own report (the shim says "cannot write report" otherwise).
    os.chmod(d, 0o1777)
    os.makedirs(os.path.join(d, "html", "gz"))
    page = "".join("<p>valkmem soak line %d</p>\n" % i for i in range(150))
    for rel in ("index.html", "gz/index.html"):
        with open(os.path.join(d, "html", rel), "w") as f:
            f.write(page)
    for sub in ("html", "html/gz"):
        os.chmod(os.path.join(d, sub), 0o755)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=d, port=port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALKMEM_") and k != "LD_PRELOAD"}
    if shim:
        env.update(LD_PRELOAD=args.lib, VALKMEM_URL_FILE=os.path.join(d, "url"),
                   VALKMEM_REPORT=os.path.join(d, "report-%p.json"))
    label = "nginx (%s)" % ("shim" if shim else "plain")
    srv = subprocess.Popen(["nginx", "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    poller = None
    res = None
    try:
        if not wait_port(port, srv):
            fail("%s: did not start: %s" % (label, open(os.path.join(d, "error.log")).read()[-500:]))
            return None
        if shim:
            poller = Poller(env["VALKMEM_URL_FILE"])
            poller.start()
        out = {}
        cpu0 = proc_cpu(srv.pid)
        for path in ("/index.html", "/gz/index.html"):
            w = subprocess.run(["wrk", "-t1", "-c32", "-d%ds" % args.duration,
                                "-H", "Accept-Encoding: gzip" if path.startswith("/gz") else "X-Plain: 1",
                                "http://127.0.0.1:%d%s" % (port, path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=args.duration + 30)
            text = w.stdout.decode()
            m = re.search(r"Requests/sec:\s+([\d.]+)", text)
            n = re.search(r"(\d+) requests in", text)
            if w.returncode != 0 or not m or not n:
                fail("%s: wrk failed: %s %s" % (label, text[-500:], w.stderr.decode()[-300:]))
                return None
            if "Non-2xx" in text or "Socket errors" in text:
                fail("%s: wrk saw errors on %s:\n%s" % (label, path, text))
            out[path] = (float(m.group(1)), int(n.group(1)))
        res = {"rps": {p: v[0] for p, v in out.items()}, "total_rps": sum(v[0] for v in out.values()),
               "requests": sum(v[1] for v in out.values())}
        res["cpu_us_per_request"] = (proc_cpu(srv.pid) - cpu0) * 1e6 / res["requests"]
    finally:
        if poller:
            poller.stop()
        srv.send_signal(signal.SIGQUIT)  # graceful shutdown: master and worker exit normally
        try:
            rc = srv.wait(timeout=20)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
            fail("%s: did not exit after SIGQUIT" % label)
            rc = None
    if rc not in (0, None):
        fail("%s: exit code %d" % (label, rc))
    errlog = open(os.path.join(d, "error.log"), errors="replace").read()
    for text in (srv.stderr.read().decode(errors="replace"), errlog):
        if "valkmem: error" in text:
            fail("%s: the shim reported an error: %s" % (label, text[text.index("valkmem: error"):][:300]))
    if res and shim:
        res["polls"] = poller.ok
        res["poll_pids"] = sorted(p for p in poller.pids if p)
        if len(res["poll_pids"]) < 2:
            fail("%s: the dashboard answered for pids %s: master and worker expected" % (label, res["poll_pids"]))
        if poller.ok == 0:
            fail("%s: the dashboard never answered" % label)
        if poller.errors:
            fail("%s: %d dashboard polls failed, first: %s" % (label, len(poller.errors), poller.errors[0]))
        # Every request makes nginx create a request pool (posix_memalign):
        # the worker's report must show at least one allocation per request.
        reps = check_reports(os.path.join(d, "report-*.json"), label, min_allocs=res["requests"])
        res["report_allocs"] = sum((r.get("totals") or {}).get("alloc_count", 0) for r in reps)
        res["reports"] = len(reps)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server", choices=["redis", "nginx"])
    ap.add_argument("--lib", required=True)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--requests", type=int, default=20000, help="redis-benchmark -n")
    ap.add_argument("--duration", type=int, default=3, help="wrk -d, seconds per URL")
    ap.add_argument("--timeout", type=int, default=240)
    ap.add_argument("--json")
    a = ap.parse_args()
    for tool in (["redis-server", "redis-benchmark", "redis-cli"] if a.server == "redis" else ["nginx", "wrk"]):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            print("servers: %s not installed" % tool, file=sys.stderr)
            return 1
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin"
    fn = redis_round if a.server == "redis" else nginx_round
    tmp = tempfile.mkdtemp(prefix="vkm-soak-%s-" % a.server)
    os.chmod(tmp, 0o755)
    plain, shim = [], []
    try:
        for r in range(a.rounds):
            for with_shim in ((False, True) if r % 2 == 0 else (True, False)):
                res = fn(a, with_shim, tmp)
                if res is None:
                    return 1
                (shim if with_shim else plain).append(res)
                print("  round %d %-5s: %.0f req/s, server CPU %.2f us/request%s" % (
                    r + 1, "shim" if with_shim else "plain", res["total_rps"], res["cpu_us_per_request"],
                    "  (dashboard polls ok: %d, report allocations: %d)" % (res["polls"], res["report_allocs"])
                    if with_shim else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    keys = sorted(plain[0]["rps"])
    per = {k: statistics.median(x["rps"][k] for x in shim) / statistics.median(x["rps"][k] for x in plain)
           for k in keys}
    ratio = statistics.geometric_mean(per.values())
    print("%s throughput ratio (with / without the shim; geometric mean over tests of the median of %d round(s)): %.3f"
          % (a.server, a.rounds, ratio))
    print("  per test: " + ", ".join("%s %.3f" % (k, v) for k, v in per.items()))
    cpu_ratio = (statistics.median(x["cpu_us_per_request"] for x in shim) /
                 statistics.median(x["cpu_us_per_request"] for x in plain))
    print("%s server CPU per request ratio (with / without; lower is better): %.3f" % (a.server, cpu_ratio))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"server": a.server, "ratio": ratio, "cpu_ratio": cpu_ratio, "per_test": per, "plain": plain, "shim": shim}, f, indent=1)
    if failures:
        print("%s: FAILED (%d)" % (a.server, len(failures)))
        return 1
    print("%s: ok" % a.server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
