#!/usr/bin/env python3
"""servers.py - real servers under load, with and without the shim.

usage: servers.py redis|nginx --lib LIB [--rounds R] [--requests N]
                  [--duration S] [--pin] [--control] [--json FILE]
                  [--env NAME=VALUE]... [--no-poll]

redis: redis-server on 127.0.0.1 (a free port, its own temp dir, no
       persistence) driven by redis-benchmark -n N -c 20 over 10 tests.
nginx: nginx with its own prefix and config in a temp dir (1 worker,
       static files) driven by wrk -t1 -c32 -d S on a plain and a gzip URL.

Two servers are started, one without and one with the shim, and measured
in rounds of one burst each, the order alternating (ABBA...); every K
rounds (--restart-every, default 5) both are replaced by fresh instances,
so that one instance's memory layout does not bias every round.
Only one server runs at a time: the other is stopped with SIGSTOP, so
neither takes CPU from the other's burst (the shim's agent, a process of
its own, idles while its server is stopped). A warm-up burst each comes
first and is not counted. With the shim the HTTP agent is on
(VALKMEM_URL_FILE) and a poller fetches /api/snapshot every 250 ms from
every process while the server runs. --pin puts the servers on
one CPU and the load generator and poller on the others. --control runs
both servers without the shim (an A/A run): how far its ratio strays from
1 is what the method can resolve on this machine.

Checks: the load generator reports no errors, the servers exit cleanly,
every dashboard poll after the first answer succeeds with valid JSON, and
the reports parse with non-zero allocation counts (nginx: at least one per
request). The throughput ratio (per test, the median over rounds of
shim/plain; then the geometric mean over tests), a bootstrap interval, and
the server CPU per request ratio are printed, never asserted (no
wall-clock assertions).
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
        self.active = threading.Event()  # cleared while the server is stopped
        self.active.set()
        self.cycle = threading.Lock()    # held through one round of polls
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
            if not self.active.wait(0.25):
                continue
            with self.cycle:
                if not self.active.is_set():
                    continue
                urls = self.urls()
                if not urls and self.ok:
                    self.errors.append("URL file vanished")
                for url in urls:
                    self.poll(url)

    def pause(self):
        """Returns once no poll is in flight: the server may be stopped."""
        self.active.clear()
        with self.cycle:
            pass

    def resume(self):
        self.active.set()

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


def task_cpu(p):
    """CPU ticks (user + system) of every thread of process p, 0 if gone."""
    t = 0
    for task in glob.glob("/proc/%d/task/*" % p):
        try:
            with open(task + "/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return t


def agent_pids(pids):
    """The valkmem agent processes that watch any of pids: the worker that
    holds a pidfd for it (its fdinfo says "Pid: N") and that worker's parent,
    the tree's listener. The agent runs in its own session, outside the
    server's process tree, so it is found this way rather than as a child."""
    want = set(pids)
    found = set()
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/comm") as f:
                if f.read().strip() != "valkmem":
                    continue
            for info in glob.glob(d + "/fdinfo/*"):
                with open(info) as f:
                    m = re.search(r"^Pid:\s+(\d+)", f.read(), re.M)
                if m and int(m.group(1)) in want:
                    w = int(os.path.basename(d))
                    found.add(w)
                    with open(d + "/stat") as f:
                        found.add(int(f.read().rsplit(")", 1)[1].split()[1]))  # ppid
                    break
        except (OSError, IndexError, ValueError):
            continue
    return found


def proc_cpu(pid):
    """CPU seconds (user + system) of pid and its children, all threads: the
    server's cost per request, which unlike throughput does not depend on
    how busy the rest of the machine is. Returns (server, valkmem agent
    processes that watch it); the second is not part of the first."""
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    total = sum(task_cpu(p) for p in pids)
    agent = sum(task_cpu(p) for p in agent_pids(pids))
    hz = os.sysconf("SC_CLK_TCK")
    return total / hz, agent / hz


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
# Servers: started once each, measured in alternating bursts
# --------------------------------------------------------------------------
REDIS_TESTS = "set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset"

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


class Pin:
    """CPU placement (--pin): the servers on one CPU, the load generator and
    the poller on the others, so that the two never trade places from run
    to run. A child inherits the affinity of the thread that forks it, so
    the main thread holds the client CPUs and switches to the server's only
    while it starts a server (no preexec_fn, which is unsafe with threads)."""

    def __init__(self, enabled):
        cpus = sorted(os.sched_getaffinity(0))
        self.enabled = enabled and len(cpus) >= 2
        self.all = set(cpus)
        self.server = {cpus[-1]} if self.enabled else self.all
        self.client = set(cpus[:-1]) if self.enabled else self.all
        if self.enabled:
            os.sched_setaffinity(0, self.client)

    def spawn_server(self, *a, **kw):
        if self.enabled:
            os.sched_setaffinity(0, self.server)
        try:
            return subprocess.Popen(*a, **kw)
        finally:
            if self.enabled:
                os.sched_setaffinity(0, self.client)

    def describe(self):
        if not self.enabled:
            return "not pinned"
        return "server on CPU %s, load generator and poller on CPU %s" % (
            ",".join(map(str, sorted(self.server))), ",".join(map(str, sorted(self.client))))


class Server:
    """One server (redis-server, or nginx master + worker) started once, in
    its own process group, and measured in bursts. Between its bursts it is
    stopped (SIGSTOP to the group), so that it takes no CPU - its agent
    thread included - while the other server is measured. With the shim the
    HTTP agent is on (VALKMEM_URL_FILE) and a poller fetches /api/snapshot
    every 250 ms while the server runs."""

    def __init__(self, kind, args, shim, tmp, pin):
        self.kind, self.args, self.shim, self.pin = kind, args, shim, pin
        self.label = "%s (%s)" % (kind, "shim" if shim else "plain")
        self.port = free_port()
        self.d = tempfile.mkdtemp(dir=tmp, prefix="%s-%s-" % (kind, "shim" if shim else "plain"))
        self.proc = None
        self.poller = None
        self.requests = 0  # served in measured and warm-up bursts
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VALKMEM_") and k != "LD_PRELOAD"}
        if shim:
            self.env.update(LD_PRELOAD=args.lib, VALKMEM_URL_FILE=os.path.join(self.d, "url"),
                            VALKMEM_REPORT=os.path.join(self.d, "report-%p.json"))
            self.env.update(kv.split("=", 1) for kv in args.env)

    # -- start and stop ----------------------------------------------------
    def start(self):
        if self.kind == "redis":
            argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", self.d, "--daemonize", "no",
                    "--logfile", os.path.join(self.d, "redis.log")]
        else:
            # A root master's worker runs as nobody: it must read html/ and
            # write its own report (the shim says "cannot write report"
            # otherwise).
            os.chmod(self.d, 0o1777)
            os.makedirs(os.path.join(self.d, "html", "gz"))
            page = "".join("<p>valkmem soak line %d</p>\n" % i for i in range(150))
            for rel in ("index.html", "gz/index.html"):
                with open(os.path.join(self.d, "html", rel), "w") as f:
                    f.write(page)
            for sub in ("html", "html/gz"):
                os.chmod(os.path.join(self.d, sub), 0o755)
            conf = os.path.join(self.d, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(d=self.d, port=self.port))
            argv = ["nginx", "-p", self.d, "-c", conf, "-e", os.path.join(self.d, "error.log")]
        self.proc = self.pin.spawn_server(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          start_new_session=True)
        if not wait_port(self.port, self.proc):
            why = ""
            if self.kind == "nginx":
                try:
                    why = open(os.path.join(self.d, "error.log")).read()[-500:]
                except OSError:
                    pass
            elif self.proc.poll() is not None:
                why = self.proc.stderr.read().decode()[-500:]
            fail("%s: did not start: %s" % (self.label, why))
            return False
        if self.shim and not self.args.no_poll:
            self.poller = Poller(self.env["VALKMEM_URL_FILE"])
            self.poller.start()
        return True

    def pause(self):
        if self.poller:
            self.poller.pause()
        if not self.args.no_stop:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        if not self.args.no_stop:
            os.killpg(self.proc.pid, signal.SIGCONT)
        if self.poller:
            self.poller.resume()

    def shutdown(self):
        """Stops the server the way its operator would and checks it went
        cleanly; returns the checks' figures."""
        if self.proc is None:
            return {}
        try:
            os.killpg(self.proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        if self.poller:
            self.poller.stop()
        if self.kind == "redis":
            subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True, timeout=10)
        else:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: master and worker exit normally
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            fail("%s: did not exit after %s" % (self.label, "SHUTDOWN" if self.kind == "redis" else "SIGQUIT"))
            rc = None
        if rc not in (0, None):
            fail("%s: exit code %d" % (self.label, rc))
        texts = [self.proc.stderr.read().decode(errors="replace")]
        if self.kind == "nginx":
            texts.append(open(os.path.join(self.d, "error.log"), errors="replace").read())
        for text in texts:
            if "valkmem: error" in text:
                fail("%s: the shim reported an error: %s" % (self.label, text[text.index("valkmem: error"):][:300]))
        out = {}
        if self.poller:
            p = self.poller
            out["polls"] = p.ok
            if p.ok == 0:
                fail("%s: the dashboard never answered" % self.label)
            if p.errors:
                fail("%s: %d dashboard polls failed, first: %s" % (self.label, len(p.errors), p.errors[0]))
            if self.kind == "nginx":
                out["poll_pids"] = sorted(x for x in p.pids if x)
                if len(out["poll_pids"]) < 2:
                    fail("%s: the dashboard answered for pids %s: master and worker expected"
                         % (self.label, out["poll_pids"]))
        if self.shim and self.env.get("VALKMEM_DISABLE", "0") in ("0", ""):
            # nginx creates a request pool (posix_memalign) per request: the
            # worker's report must show at least one allocation per request.
            reps = check_reports(os.path.join(self.d, "report-*.json"), self.label,
                                 min_allocs=self.requests if self.kind == "nginx" else 1)
            out["report_allocs"] = sum((r.get("totals") or {}).get("alloc_count", 0) for r in reps)
            out["reports"] = len(reps)
        return out

    # -- load --------------------------------------------------------------
    def burst(self, scale=1.0):
        """One burst of load; returns {"rps": {test: req/s}, "requests": n,
        "cpu_us_per_request": server CPU (all processes and threads)}, or
        None after a failure."""
        cpu0, agent0 = proc_cpu(self.proc.pid)
        if self.kind == "redis":
            n = max(1000, int(self.args.requests * scale))
            b = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(self.port), "-n", str(n),
                                "-c", "20", "-q", "--csv", "-t", REDIS_TESTS],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=self.args.timeout)
            if b.returncode != 0:
                fail("%s: redis-benchmark exited %d: %s" % (self.label, b.returncode, b.stderr.decode()[-500:]))
                return None
            rps = {}
            for line in b.stdout.decode().splitlines():
                cols = [c.strip('"') for c in line.split(",")]
                if len(cols) >= 2 and cols[0] != "test":
                    try:
                        rps[cols[0]] = float(cols[1])
                    except ValueError:
                        pass
            if len(rps) < 8:
                fail("%s: redis-benchmark gave %d results: %s" % (self.label, len(rps), b.stdout.decode()[-500:]))
                return None
            requests = n * (len(rps) + 1)  # +1: LRANGE's LPUSH fill
            # Still consistent under load: the keys written are there.
            c = subprocess.run(["redis-cli", "-p", str(self.port), "dbsize"], capture_output=True, timeout=10)
            if c.returncode != 0 or not c.stdout.strip().isdigit() or int(c.stdout) == 0:
                fail("%s: redis-cli dbsize answered %r" % (self.label, c.stdout))
        else:
            secs = max(1, int(round(self.args.duration * scale)))
            rps, requests = {}, 0
            for path in ("/index.html", "/gz/index.html"):
                w = subprocess.run(["wrk", "-t1", "-c32", "-d%ds" % secs,
                                    "-H", "Accept-Encoding: gzip" if path.startswith("/gz") else "X-Plain: 1",
                                    "http://127.0.0.1:%d%s" % (self.port, path)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=secs + 30)
                text = w.stdout.decode()
                m = re.search(r"Requests/sec:\s+([\d.]+)", text)
                k = re.search(r"(\d+) requests in", text)
                if w.returncode != 0 or not m or not k:
                    fail("%s: wrk failed: %s %s" % (self.label, text[-500:], w.stderr.decode()[-300:]))
                    return None
                if "Non-2xx" in text or "Socket errors" in text:
                    fail("%s: wrk saw errors on %s:\n%s" % (self.label, path, text))
                rps[path] = float(m.group(1))
                requests += int(k.group(1))
        self.requests += requests
        cpu, agent = proc_cpu(self.proc.pid)
        return {"rps": rps, "total_rps": sum(rps.values()), "requests": requests,
                "cpu_us_per_request": (cpu - cpu0) * 1e6 / requests,
                "agent_us_per_request": (agent - agent0) * 1e6 / requests}


def geomean(xs):
    return statistics.geometric_mean(xs)


def bootstrap_ci(values, stat, n=2000, seed=7):
    """95 % percentile bootstrap interval of stat(values)."""
    import random
    rnd = random.Random(seed)
    k = len(values)
    if k < 3:
        return (min(values), max(values))
    sims = sorted(stat([values[rnd.randrange(k)] for _ in range(k)]) for _ in range(n))
    return (sims[int(0.025 * n)], sims[int(0.975 * n) - 1])


def measure(a, tmp, pin):
    """Runs a.rounds pairs of bursts, alternating which goes first
    (ABBA...), each server running alone while the other is stopped. Every
    a.restart_every rounds both servers are replaced by fresh ones: one
    instance's memory layout can make it a few per cent faster or slower
    than another of the same binary for its whole life, which the rounds
    of one pair of instances cannot average out.
    Returns (plain bursts, shim bursts, figures of the shutdown checks)."""
    runs = ([], [])
    checks = {"plain": [], "shim": []}
    r = 0
    while r < a.rounds:
        plain = Server(a.server, a, False, tmp, pin)
        other = Server(a.server, a, not a.control, tmp, pin)
        if a.control:
            other.label = "%s (plain B)" % a.server
        servers = [plain, other]
        try:
            # Which instance starts first alternates too (ports, layout).
            for s in (servers if (r // a.restart_every) % 2 == 0 else servers[::-1]):
                if not s.start():
                    return None
                s.pause()
            # Warm-up, not measured: first connections, allocator arenas,
            # the agent's first snapshots.
            for s in servers:
                s.resume()
                ok = s.burst(scale=0.2)
                s.pause()
                if ok is None:
                    return None
            for _ in range(min(a.restart_every, a.rounds - r)):
                order = (0, 1) if r % 2 == 0 else (1, 0)
                for i in order:
                    s = servers[i]
                    s.resume()
                    res = s.burst()
                    s.pause()
                    if res is None:
                        return None
                    runs[i].append(res)
                r += 1
                p, q = runs[0][-1], runs[1][-1]
                ratio = geomean([q["rps"][k] / p["rps"][k] for k in p["rps"]])
                print("  round %2d: plain %8.0f req/s %5.2f us CPU/request | %s %8.0f req/s %5.2f us (agent %.2f)"
                      " | ratio %.3f" % (r, p["total_rps"], p["cpu_us_per_request"], "B    " if a.control else "shim ",
                                         q["total_rps"], q["cpu_us_per_request"], q["agent_us_per_request"], ratio),
                      flush=True)
        finally:
            for s, name in ((plain, "plain"), (other, "shim")):
                try:
                    checks[name].append(s.shutdown())
                except Exception as e:  # a check must not hide the other server's shutdown
                    fail("%s: shutdown: %s" % (s.label, e))
        if other.poller:
            c = checks["shim"][-1]
            print("  shim server: %d dashboard polls answered, %d allocations in its report(s)"
                  % (c.get("polls", 0), c.get("report_allocs", 0)), flush=True)
    return runs[0], runs[1], checks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("server", choices=["redis", "nginx"])
    ap.add_argument("--lib", required=True)
    ap.add_argument("--rounds", type=int, default=1, help="pairs of bursts (plain, shim)")
    ap.add_argument("--requests", type=int, default=20000, help="redis-benchmark -n, per test and burst")
    ap.add_argument("--duration", type=int, default=3, help="wrk -d, seconds per URL and burst")
    ap.add_argument("--restart-every", type=int, default=5, metavar="K",
                    help="fresh server instances every K rounds (default 5)")
    ap.add_argument("--pin", action="store_true",
                    help="servers on the last CPU, load generator and poller on the others")
    ap.add_argument("--control", action="store_true",
                    help="A/A run: both servers without the shim, to show what the method resolves")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="set for the server under the shim (e.g. VALKMEM_HTTP=0 with --no-poll)")
    ap.add_argument("--no-stop", action="store_true", help="leave the idle server running (not SIGSTOPped)")
    ap.add_argument("--no-poll", action="store_true", help="no dashboard poller (the dashboard is not checked)")
    ap.add_argument("--timeout", type=int, default=240)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.rounds < 1 or a.requests < 1 or a.duration < 1 or a.restart_every < 1:
        ap.error("--rounds, --requests, --duration and --restart-every must be positive")
    for kv in a.env:
        if "=" not in kv or kv.startswith("="):
            ap.error("--env %r: expected NAME=VALUE" % kv)
    for tool in (["redis-server", "redis-benchmark", "redis-cli"] if a.server == "redis" else ["nginx", "wrk"]):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            print("servers: %s not installed" % tool, file=sys.stderr)
            return 1
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin"
    pin = Pin(a.pin)
    print("%s: %d round(s), %s%s" % (a.server, a.rounds, pin.describe(), ", control (A/A)" if a.control else ""))
    tmp = tempfile.mkdtemp(prefix="vkm-soak-%s-" % a.server)
    os.chmod(tmp, 0o755)
    try:
        got = measure(a, tmp, pin)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if got is None:
        print("%s: FAILED (%d)" % (a.server, len(failures)))
        return 1
    plain, shim, checks = got
    keys = sorted(plain[0]["rps"])
    per = {k: statistics.median(q["rps"][k] / p["rps"][k] for p, q in zip(plain, shim)) for k in keys}
    ratio = geomean(per.values())
    pair = [geomean([q["rps"][k] / p["rps"][k] for k in keys]) for p, q in zip(plain, shim)]
    lo, hi = bootstrap_ci(pair, statistics.median)
    what = "B / A, both without the shim" if a.control else "with / without the shim"
    print("%s throughput ratio (%s; geometric mean over tests of the median over %d paired round(s)): %.3f"
          % (a.server, what, a.rounds, ratio))
    if a.rounds >= 3:
        print("  median of the rounds' ratios %.3f, 95%% bootstrap interval %.3f..%.3f, rounds %.3f..%.3f"
              % (statistics.median(pair), lo, hi, min(pair), max(pair)))
    print("  per test: " + ", ".join("%s %.3f" % (k, v) for k, v in per.items()))
    cpu = [q["cpu_us_per_request"] / p["cpu_us_per_request"] for p, q in zip(plain, shim)]
    print("%s server CPU per request ratio (%s; median over rounds; lower is better): %.3f"
          % (a.server, what, statistics.median(cpu)))
    if not a.control:
        agent = statistics.median(q["agent_us_per_request"] for q in shim)
        print("  the valkmem agent processes, besides: %.3f us per request (%.1f %% of the plain server's CPU)"
              % (agent, 100 * agent / statistics.median(p["cpu_us_per_request"] for p in plain)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"server": a.server, "control": a.control, "pinned": pin.enabled, "ratio": ratio,
                       "round_ratios": pair, "ci95": [lo, hi], "cpu_ratio": statistics.median(cpu),
                       "per_test": per, "plain": plain, "shim": shim, "checks": checks}, f, indent=1)
    if failures:
        print("%s: FAILED (%d)" % (a.server, len(failures)))
        return 1
    print("%s: ok" % a.server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
