#!/usr/bin/env python3
"""cli_e2e.py - the `valkmem` launcher end to end, under the real shim,
against programs whose allocations are planted (tests/gate_*.c):

  * gate: a clean program passes; a planted leak fails --max-leak 0 naming
    the leaking function; a suppression makes it pass; 20 % growth against a
    baseline fails at 10 % tolerance and passes at 30 %; --max-allocs,
    --max-alloc-bytes and --max-peak trip exactly at their measured values;
    a crashed command is reported and checked from its last checkpoint;
    config files, JUnit XML, GitHub annotations and step summary, benchmark
    JSON;
  * gate over a process tree: every process is checked and the failing ones
    are named (text, JSON, JUnit); --only; baselines matched by program;
  * every usage/config error path exits 2 with a message naming the problem;
  * run: exit codes pass through (signals as 128+N), a summary is printed;
  * diff, export, view.

Usage: cli_e2e.py --cli valkmem --lib libvalkmem.so --bindir DIR --srcdir DIR --workdir DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

ap = argparse.ArgumentParser()
ap.add_argument("--cli", required=True)
ap.add_argument("--lib", required=True)
ap.add_argument("--bindir", required=True)
ap.add_argument("--srcdir", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--only", default="")
args = ap.parse_args()

CLI = os.path.abspath(args.cli)
BIN = os.path.abspath(args.bindir)
W = os.path.abspath(args.workdir)
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)

failures = []


def check(cond, what, detail=""):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}\n{detail}", file=sys.stderr)
    return cond


def base_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VALKMEM_") and not k.startswith("GITHUB_") and k != "LD_PRELOAD"}
    env["VALKMEM_LIB"] = os.path.abspath(args.lib)
    env["VALKMEM_HTTP"] = "0"
    env.update(extra)
    return env


def run(argv, env=None, timeout=60):
    p = subprocess.run([CLI] + argv, env=env or base_env(), cwd=W, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def prog(name):
    return os.path.join(BIN, name)


def write(name, text):
    path = os.path.join(W, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def load(name):
    with open(os.path.join(W, name)) as f:
        return json.load(f)


def show(rc, out, err):
    return f"exit {rc}\nstdout:\n{out}\nstderr:\n{err}"


def case(name):
    return not args.only or args.only in name


# ---------------------------------------------------------------------------
# gate: clean, leak, suppression
# ---------------------------------------------------------------------------
if case("gate-basic"):
    rc, out, err = run(["gate", "--max-leak", "0", "--", prog("gate_clean")])
    check(rc == 0, "clean program passes --max-leak 0 with exit 0", show(rc, out, err))
    check("clean" in out, "the command's stdout is passed through", show(rc, out, err))
    check("PASS" in err, "the summary says PASS", err)

    rc, out, err = run(["gate", "--max-leak", "0", "--report", "leak.json", "--", prog("gate_leak"), "7"])
    check(rc == 3, "planted leak fails --max-leak 0 with exit 3", show(rc, out, err))
    check("leaky_put" in err, "the failure names the leaking function", err)
    check("max-leak" in err and "7000 B" in err, "the failure names the limit and the measured 7000 B", err)
    rep = load("leak.json")
    check(rep.get("sample_bytes") == 1, "gate runs in exact mode (sample_bytes 1)", str(rep.get("sample_bytes")))
    g = rep.get("gate", {})
    check(g.get("result") == "fail" and g.get("leak_bytes") == 7000, "JSON report: gate fail, leak 7000", json.dumps(g)[:2000])
    stdio = [s for s in g.get("suppressions", []) if s["pattern"] == "leak:^_IO_file_doallocate$"]
    check(stdio and stdio[0]["matched_sites"] == 1 and stdio[0]["bytes"] > 0,
          "JSON report: the default stdio suppression matched with its bytes", json.dumps(g.get("suppressions"))[:2000])

    supp = write("leak.supp", "# the planted leak is intended\nleak:leaky_put\n")
    rc, out, err = run(["gate", "--max-leak", "0", "--suppressions", supp, "--report", "supp.json", "--",
                        prog("gate_leak"), "7"])
    check(rc == 0, "a suppression for the leak makes the gate pass", show(rc, out, err))
    g = load("supp.json")["gate"]
    mine = [s for s in g["suppressions"] if s["pattern"] == "leak:leaky_put"]
    check(mine and mine[0]["bytes"] == 7000 and mine[0]["matched_sites"] == 1 and mine[0]["source"].endswith("leak.supp:2"),
          "JSON report lists the user suppression, its source line and the 7000 bytes it removed", json.dumps(mine))

    rc, out, err = run(["gate", "--max-leak", "0", "--no-default-suppressions", "--", prog("gate_clean")])
    check(rc == 3 and "_IO_file_doallocate" in err,
          "--no-default-suppressions: the stdio buffer counts as a leak and is named", show(rc, out, err))

    rc, out, err = run(["gate", "--max-leak-per-site", "6999", "--", prog("gate_leak"), "7"])
    check(rc == 3 and "leaky_put" in err, "--max-leak-per-site 6999 fails on the 7000-byte site", show(rc, out, err))
    rc, out, err = run(["gate", "--max-leak-per-site", "7000", "--", prog("gate_leak"), "7"])
    check(rc == 0, "--max-leak-per-site 7000 passes", show(rc, out, err))

    rc, out, err = run(["gate", "--sampled", "--report", "sampled.json", "--", prog("gate_leak")])
    check(rc == 0 and load("sampled.json").get("sample_bytes", 1) > 1, "--sampled leaves exact mode off", show(rc, out, err))
    rc, out, err = run(["gate", "--max-leak", "0", "--error-exitcode", "42", "--", prog("gate_leak")])
    check(rc == 42, "--error-exitcode 42 is the failure status", show(rc, out, err))
    rc, out, err = run(["gate", "--max-leak", "1MB", "--", prog("gate_allocs"), "0", "0", "5"])
    check(rc == 5, "the command's own exit status passes through when the limits hold", show(rc, out, err))

# ---------------------------------------------------------------------------
# gate: every process of the tree is checked; --only; per-program baselines
# ---------------------------------------------------------------------------
if case("gate-children"):
    rc, out, err = run(["gate", "--max-leak", "0", "--report", "one.json", "--", prog("gate_leak"), "3"])
    g = load("one.json")["gate"]
    check(g.get("unchecked_processes") == 0 and "other process" not in err and "  process " not in err
          and len(g.get("processes", [])) == 1 and g["processes"][0].get("document") is True,
          "a single process: the single-process summary, one entry in gate.processes", show(rc, out, err))

    def leak_pids(report):
        """pid -> leak argument of each gate_leak process in a gate report."""
        return {p["pid"]: (p.get("report") or {}).get("argv", [None, None])[1]
                for p in report["gate"]["processes"] if p["program"] == "gate_leak"}

    # sh forks gate_leak twice; --only skips sh (dash keeps ~1.5 KiB of its own live at exit).
    tree = ["sh", "-c", prog("gate_leak") + " 3; " + prog("gate_leak") + " 4; true"]
    rc, out, err = run(["gate", "--max-leak", "0", "--only", "gate_*", "--report", "kids.json", "--junit", "kids.xml",
                        "--"] + tree)
    kids = load("kids.json")
    pids = leak_pids(kids)
    check(rc == 3 and len(pids) == 2, "both gate_leak processes of the tree fail --max-leak 0", show(rc, out, err))
    check("FAIL: 2 of 2 process(es) failed" in err and all(f"process {p} gate_leak: FAIL" in err for p in pids),
          "the verdict names each failing process with its pid", show(rc, out, err))
    check(" sh: not checked (--only gate_* does not match" in err, "sh is listed as not checked", err)
    g = kids["gate"]
    verdicts = sorted((p["program"], p["verdict"]) for p in g["processes"])
    check(verdicts == [("gate_leak", "fail"), ("gate_leak", "fail"), ("sh", "not checked")]
          and g.get("unchecked_processes") == 1 and g.get("result") == "fail",
          "JSON report: an entry per process with its verdict", json.dumps(verdicts))
    check(sorted(c["pid"] for c in g["checks"] if not c["ok"]) == sorted(pids),
          "JSON report: the failed checks carry their process's pid", json.dumps(g["checks"])[:1000])
    suite = ET.parse(os.path.join(W, "kids.xml")).getroot().find("testsuite")
    check(len(suite.findall("testcase")) == 3 and suite.get("failures") == "2" and suite.get("skipped") == "1"
          and all(f"gate_leak (pid {p})" in [c.get("name") for c in suite.findall("testcase")] for p in pids),
          "JUnit: one testcase per process, sh skipped", ET.tostring(suite, encoding="unicode")[:2000])

    rc, out, err = run(["gate", "--max-leak", "3500", "--only", "gate_leak", "--report", "kids2.json", "--"] + tree)
    big = [p for p, a in leak_pids(load("kids2.json")).items() if a == "4"]
    check(rc == 3 and big and f"1 of 2 process(es) failed (gate_leak pid {big[0]})" in err,
          "--max-leak 3500: only the process that leaked 4000 B fails, named by pid", show(rc, out, err))

    rc, out, err = run(["gate", "--max-leak", "0", "--only", "nosuch", "--"] + tree)
    check(rc == 3 and "--only matched none" in err, "--only matching no process: nothing checked is a failure",
          show(rc, out, err))

    # Baseline: a gate report of several processes is matched by program name.
    base_tree = ["sh", "-c", prog("gate_grow") + " 100; " + prog("gate_leak") + " 3; true"]
    grow_tree = ["sh", "-c", prog("gate_grow") + " 120; " + prog("gate_leak") + " 3; true"]
    rc, out, err = run(["gate", "--report", "treebase.json", "--"] + base_tree)
    check(rc == 0 and len(load("treebase.json")["gate"]["processes"]) == 3, "tree baseline run", show(rc, out, err))
    rc, out, err = run(["gate", "--baseline", "treebase.json", "--tolerance", "10", "--report", "treegrow.json",
                        "--"] + grow_tree)
    procs = {p["program"]: p for p in load("treegrow.json")["gate"]["processes"]}
    check(rc == 3 and procs.get("gate_grow", {}).get("verdict") == "fail"
          and procs.get("gate_leak", {}).get("verdict") == "pass" and procs.get("sh", {}).get("verdict") == "pass"
          and f"(gate_grow pid {procs.get('gate_grow', {}).get('pid')})" in err,
          "per-program baseline: only gate_grow grew 20 % and fails", show(rc, out, err))
    check("baseline process" in procs.get("gate_leak", {}).get("baseline", ""),
          "each process names the baseline process it was compared with", json.dumps(procs.get("gate_leak"))[:500])

    # A TMPDIR of its own: /tmp may hold other runs' directories.
    tmp = os.path.join(W, "tmp")
    os.makedirs(tmp, exist_ok=True)
    rc, out, err = run(["gate", "--max-leak", "0", "--only", "gate_leak", "--"] + tree, env=base_env(TMPDIR=tmp))
    leftovers = os.listdir(tmp)
    check(rc == 3 and not leftovers, "the gate removes its report directory (every process's report)",
          str(leftovers) + "\n" + show(rc, out, err))

# ---------------------------------------------------------------------------
# gate: exact limits at planted values
# ---------------------------------------------------------------------------
if case("gate-exact"):
    def measure(*pargs):
        rc, out, err = run(["gate", "--report", "m.json", "--", prog("gate_allocs")] + list(pargs))
        check(rc == 0, f"measuring gate_allocs {pargs}", show(rc, out, err))
        return load("m.json")

    r0, r100 = measure("0", "0"), measure("100", "0")
    check(r100["totals"]["alloc_count"] - r0["totals"]["alloc_count"] == 100,
          "exactly 100 planted mallocs are counted", f'{r0["totals"]["alloc_count"]} {r100["totals"]["alloc_count"]}')
    check(r100["totals"]["alloc_bytes"] - r0["totals"]["alloc_bytes"] == 3200,
          "exactly 100 x 32 planted bytes are counted", f'{r0["totals"]["alloc_bytes"]} {r100["totals"]["alloc_bytes"]}')
    m = r100["totals"]["alloc_count"]
    rc, out, err = run(["gate", "--max-allocs", str(m), "--", prog("gate_allocs"), "100", "0"])
    check(rc == 0, f"--max-allocs {m} (measured) passes", show(rc, out, err))
    rc, out, err = run(["gate", "--max-allocs", str(m - 1), "--", prog("gate_allocs"), "100", "0"])
    check(rc == 3 and f"{m} > limit {m - 1}" in err and "extra_allocs" in err,
          f"--max-allocs {m - 1} fails, naming measured, limit and extra_allocs", show(rc, out, err))
    b = r100["totals"]["alloc_bytes"]
    rc, out, err = run(["gate", "--max-alloc-bytes", str(b), "--", prog("gate_allocs"), "100", "0"])
    check(rc == 0, "--max-alloc-bytes at the measured value passes", show(rc, out, err))
    rc, out, err = run(["gate", "--max-alloc-bytes", str(b - 1), "--", prog("gate_allocs"), "100", "0"])
    check(rc == 3, "--max-alloc-bytes one below fails", show(rc, out, err))

    P = 3000000
    rp = measure("0", str(P))
    peak = rp["peak"]["live_bytes"]
    bound = rp["peak"].get("live_error_bytes", 0)
    check(P <= peak <= P + 4096 + bound, f"peak {peak} is the planted {P}-byte block (error bound {bound})")
    rc, out, err = run(["gate", "--max-peak", str(peak), "--", prog("gate_allocs"), "0", str(P)])
    check(rc == 0, "--max-peak at the measured peak passes", show(rc, out, err))
    rc, out, err = run(["gate", "--max-peak", str(peak - 1), "--", prog("gate_allocs"), "0", str(P)])
    check(rc == 3 and "peak_block" in err, "--max-peak one byte below fails and names peak_block", show(rc, out, err))
    rc, out, err = run(["gate", "--max-peak", "2.5 MB", "--", prog("gate_allocs"), "0", str(P)])
    check(rc == 3, "--max-peak \"2.5 MB\" (decimal) fails on a 3 MB block", show(rc, out, err))
    rc, out, err = run(["gate", "--max-peak", "3MiB", "--", prog("gate_allocs"), "0", str(P)])
    check(rc == 0, "--max-peak 3MiB (binary, 3145728) passes on a 3000000-byte block", show(rc, out, err))
    rc, out, err = run(["gate", "--max-rss", "1MB", "--", prog("gate_allocs"), "0", str(P)])
    check(rc == 3 and "max-rss" in err, "--max-rss 1MB fails (no process runs in 1 MB)", show(rc, out, err))

# ---------------------------------------------------------------------------
# gate: baseline growth
# ---------------------------------------------------------------------------
if case("gate-baseline"):
    rc, out, err = run(["gate", "--report", "base.json", "--", prog("gate_grow"), "100"])
    check(rc == 0, "baseline run", show(rc, out, err))
    rc, out, err = run(["gate", "--baseline", "base.json", "--tolerance", "10", "--report", "grow10.json", "--",
                        prog("gate_grow"), "120"])
    check(rc == 3, "20 % growth fails at 10 % tolerance", show(rc, out, err))
    failed = {c["name"] for c in load("grow10.json")["gate"]["checks"] if not c["ok"]}
    check({"baseline:alloc-bytes", "baseline:peak", "baseline:site-alloc"} <= failed,
          "the failed baseline checks are alloc-bytes, peak and the grow_work site", str(failed))
    check("baseline:allocs" not in failed, "the allocation count did not grow and does not fail", str(failed))
    check("grow_work" in err, "the grown site is named", err)
    rc, out, err = run(["gate", "--baseline", "base.json", "--tolerance", "30", "--", prog("gate_grow"), "120"])
    check(rc == 0, "20 % growth passes at 30 % tolerance", show(rc, out, err))
    rc, out, err = run(["gate", "--baseline", "base.json", "--tolerance", "10,4MB", "--", prog("gate_grow"), "120"])
    check(rc == 0, "20 % growth (about 400 kB) passes with an absolute floor of 4 MB", show(rc, out, err))

    rc, out, err = run(["diff", "base.json", "grow10.json"])
    lines = out.splitlines()
    site = [i for i, l in enumerate(lines) if l.strip().startswith("grow_work <- main")]
    check(rc == 0 and site and "allocated 1.91 MiB -> 2.29 MiB (+391 KiB, +20.0%)" in lines[site[0] + 1]
          and "live 0 B -> 0 B (0 B, 0%)" in lines[site[0] + 1],
          "diff: the grow_work site allocated exactly 20 % more, live unchanged", out)
    check(any(l.split()[:3] == ["bytes", "allocated", "1.91"] and l.rstrip().endswith("+20.0%") for l in lines),
          "diff: bytes allocated +20.0 %", out)
    rc, out, err = run(["gate", "--report", "leak20.json", "--", prog("gate_leak"), "20"])
    rc, out, err = run(["diff", "base.json", "leak20.json"])
    lines = out.splitlines()
    site = [i for i, l in enumerate(lines) if l.strip().startswith("leaky_put <- main") and l.endswith("[new]")]
    check(rc == 0 and site and "live 0 B -> 19.5 KiB (+19.5 KiB, new)" in lines[site[0] + 1],
          "diff: a new leaking site is marked [new] with its live bytes", out)

# ---------------------------------------------------------------------------
# gate: crash, config, outputs
# ---------------------------------------------------------------------------
if case("gate-baseline-rss"):
    # A baseline whose peak RSS was never measured (0: the process died
    # before the agent's first sample) is no reason to fail every later run.
    rc, out, err = run(["gate", "--report", "rss0.json", "--", prog("gate_clean")])
    doc = load("rss0.json")
    doc["peak"]["rss_bytes"] = 0
    base = write("rss0-base.json", json.dumps(doc))
    rc, out, err = run(["gate", "--baseline", base, "--", prog("gate_clean")])
    check(rc == 0 and "baseline:rss" not in err, "a baseline with peak RSS 0 is not compared on RSS", show(rc, out, err))

if case("gate-daemon"):
    # A process the command leaves running (a daemon, `cmd &`) is not
    # waited for, as a shell would not: the gate reads its last checkpoint
    # and returns; the daemon runs on (exact mode, nobody draining) and
    # ends with its own output.
    import signal, time
    for f in ("daemon.out", "daemon.pid"):
        if os.path.exists(os.path.join(W, f)):
            os.unlink(os.path.join(W, f))
    daemon = f"{prog('proc_prog')} churn 6000 300000 > daemon.out 2>&1 & echo $! > daemon.pid"
    try:
        rc, out, err = run(["gate", "--max-leak", "1MB", "--report", "daemon.json", "--", "sh", "-c", daemon], timeout=60)
    except subprocess.TimeoutExpired:
        rc, out, err = None, "", "(timed out after 60 s)"
    pid = int(open(os.path.join(W, "daemon.pid")).read())

    def running(pid):  # a zombie (not reaped by whoever adopted it) has ended
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    alive = running(pid)
    check(rc == 0 and alive, "gate returns while the daemon it left still runs", show(rc, out, err))
    check("proc_prog" in err and "checkpoint" in err, "the daemon is checked from its last checkpoint", err)
    for _ in range(600):
        if not running(pid):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    check(open(os.path.join(W, "daemon.out")).read() == "done\n", "the daemon ran to its end (limit 60 s)",
          open(os.path.join(W, "daemon.out")).read())

if case("gate-rss-unmeasured"):
    # A process that dies at once (SIGSEGV before the agent's first sample)
    # has no peak RSS: --max-rss must not pass silently on "0 B".
    rc, out, err = run(["gate", "--max-rss", "1KB", "--", prog("gate_exit"), "0", "11"])
    check("peak RSS 0 B" not in err or "not measured" in err,
          "a peak RSS of 0 B is said to be no measurement", show(rc, out, err))
    # The same without a limit: the summary does not show "0 B" as a peak.
    rc, out, err = run(["gate", "--", prog("gate_exit"), "0", "11"])
    check("peak RSS 0 B" not in err,
          "no limit: the summary says the peak RSS was not measured, not 0 B", show(rc, out, err))
    rep = os.path.join(W, "unmeasured.json")
    p = subprocess.run([CLI, "run", "--no-http", "--report", rep, "--", prog("gate_exit"), "0", "11"], env=base_env(),
                       cwd=W, capture_output=True, text=True, timeout=60)
    measured = (load("unmeasured.json").get("peak") or {}).get("rss_bytes", 0) if os.path.exists(rep) else 0
    check(measured != 0 or ("peak RSS       not measured" in p.stderr and "peak RSS       0 B" not in p.stderr),
          "run's summary: a peak RSS never read is 'not measured', not 0 B", show(p.returncode, p.stdout, p.stderr))

if case("gate-sites"):
    # Without --report or --baseline the gate's reports list every site that
    # holds memory and the top 50 by bytes and by count allocated, not every
    # site (a compiler's are megabytes). gate_sites has 62 sites: its 8-byte
    # leak in tiny_leak ranks last by live bytes and must still be
    # suppressible, and many_small, last of the 60 leaking sites by bytes,
    # must still be named first by count.
    supp = write("tiny.supp", "leak:^tiny_leak$\n")
    for extra in ([], ["--report", "all.json"]):
        rc, out, err = run(["gate", "--max-leak", "0", "--suppressions", supp] + extra + ["--", prog("gate_sites")])
        check(rc == 3 and "(600000 B)" in err and "tiny_leak" not in err.split("suppressed")[0],
              "every live site is in the report: the tiny leak is suppressed, 600000 B left (%s)" % (extra or "reduced"),
              show(rc, out, err))
        rc, out, err = run(["gate", "--max-allocs", "1"] + extra + ["--", prog("gate_sites")])
        first = err.split("#0", 1)[1].split("\n", 1)[0] if "#0" in err else ""
        check(rc == 3 and "many_small" in first, "the site with the most allocations is named first", show(rc, out, err))
    check(len(load("all.json").get("sites", [])) >= 62, "with --report, every site is listed (the report may serve as a baseline)")

if case("gate-other-user"):
    # A process of the command's tree that runs as another user (setpriv:
    # as CI running its tests unprivileged) is recorded by the gate's own
    # agent and checked; it used to start an agent of its own, which the
    # gate never heard of, and the gate checked setpriv's heap at its exec.
    # A process of another user from outside the tree is refused.
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(as_nobody + ["sh", "-c", 'test -x "$0" && test -r "$1"', prog("gate_leak"),
                                        os.path.abspath(args.lib)], capture_output=True) \
        if os.geteuid() == 0 and shutil.which("setpriv") else None
    if probe is None or probe.returncode != 0:
        print("SKIP gate-other-user: needs root, setpriv, and uid 65534 able to run the test programs")
    else:
        rc, out, err = run(["gate", "--max-leak", "0", "--report", "nobody.json", "--"] + as_nobody + [prog("gate_leak"), "5"])
        g = load("nobody.json")["gate"]
        check(rc == 3 and "5000 B" in err and "leaky_put" in err, "a leak behind setpriv is found and named", show(rc, out, err))
        check("checked: gate_leak (pid" in err, "the summary says whose numbers they are (what setpriv exec'd)", err)
        check(g.get("leak_bytes") == 5000 and load("nobody.json").get("program") == "gate_leak",
              "the report is gate_leak's (the exec'd image), with its 5000 B", json.dumps(g)[:1500])
        rc, out, err = run(["gate", "--max-leak", "0", "--"] + as_nobody + [prog("gate_clean")])
        check(rc == 0 and "PASS" in err, "a clean program behind setpriv passes (setpriv's own heap at exec is not its leak)",
              show(rc, out, err))
        tree = ["sh", "-c", prog("gate_leak") + " 2; " + prog("gate_leak") + " 3"]
        rc, out, err = run(["gate", "--max-leak", "0", "--only", "gate_leak", "--"] + as_nobody + tree)
        check(rc == 3 and "FAIL: 2 of 2 process(es) failed" in err and "2000 B" in err and "3000 B" in err,
              "the children of another user's shell are checked too", show(rc, out, err))
        # An outsider of that user, given the socket, is refused.
        sockfile = os.path.join(W, "sock.txt")
        gate = subprocess.Popen([CLI, "gate", "--report", "host.json", "--", "sh", "-c",
                                 'echo "$VALKMEM_AGENT_SOCK" > %s; sleep 4' % sockfile],
                                env=base_env(), cwd=W, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(200):
            if os.path.exists(sockfile) and open(sockfile).read().strip():
                break
            time.sleep(0.02)
        sock = open(sockfile).read().strip()
        outsider = subprocess.run(as_nobody + ["env", "LD_PRELOAD=" + os.path.abspath(args.lib), "VALKMEM_AGENT_SOCK=" + sock,
                                               prog("gate_leak"), "1"], env=base_env(), capture_output=True, text=True, timeout=30)
        gout, gerr = gate.communicate(timeout=60)
        progs = [p["program"] for p in load("host.json")["gate"]["processes"]]
        check(outsider.returncode == 0 and "was refused" in gerr and "gate_leak" not in progs,
              "an outsider of another user is refused by the gate's agent", f"{outsider}\n{gerr}\n{progs}")

if case("gate-crash"):
    rc, out, err = run(["gate", "--max-leak", "0", "--junit", "crash.xml", "--", prog("gate_crash")])
    check(rc == 3, "a crashed command with a leak in its last checkpoint fails", show(rc, out, err))
    check("crashed" in err and "SIGSEGV" in err and "crash_leak" in err,
          "the gate says it crashed and names the leak from the checkpoint", err)
    root = ET.parse(os.path.join(W, "crash.xml")).getroot()
    suite = root.find("testsuite")
    check(suite.get("errors") == "1" and suite.find("testcase/error") is not None,
          "JUnit: the crash is an <error> testcase", ET.tostring(root, encoding="unicode"))
    rc, out, err = run(["gate", "--max-leak", "1MB", "--", prog("gate_crash")])
    check(rc == 128 + 11, "a crash within the limits exits 128+SIGSEGV like a shell", show(rc, out, err))
    # Killed from outside (SIGTERM) is said as such, not as a crash.
    rc, out, err = run(["gate", "--", "sh", "-c", "kill -TERM $$"])
    check(rc == 128 + 15 and "was killed by SIGTERM" in err and "killed by SIGTERM" in err and "crashed" not in err,
          "a command killed by SIGTERM: 'was killed by SIGTERM', not a crash", show(rc, out, err))
    # An invalid free: glibc aborts, and the counts it threw off (the word
    # before the pointer taken as a size) still make a readable report.
    rc, out, err = run(["gate", "--max-leak", "1MB", "--report", "badfree.json", "--", prog("gate_crash"), "badfree"])
    check(rc == 128 + 6 and "SIGABRT" in err and "malformed" not in err and "invalid free" in err,
          "an invalid free: the abort's status passes through, the report is readable, the invalid free is said",
          show(rc, out, err))
    bad = load("badfree.json")
    check(bad.get("live", {}).get("bytes", -1) >= 0 and any("invalid free" in w for w in bad.get("warnings", [])),
          "an invalid free: live bytes not negative, the report's warnings say it", json.dumps(bad.get("live")))

if case("gate-config"):
    cfg = write("gate.json", json.dumps({"max_leak": "0", "max_allocs": 1000000,
                                         "suppressions": ["leak:^leaky_put$"], "comment": "ci budget"}))
    rc, out, err = run(["gate", "--config", cfg, "--", prog("gate_leak"), "3"])
    check(rc == 0, "config: limits and suppressions from the file, leak suppressed", show(rc, out, err))
    cfg2 = write("gate2.json", '{"max_leak": "0"}')
    rc, out, err = run(["gate", "--config", cfg2, "--", prog("gate_leak"), "3"])
    check(rc == 3, "config: max_leak 0 from the file fails the leak", show(rc, out, err))
    rc, out, err = run(["gate", "--config", cfg2, "--max-leak", "10KB", "--", prog("gate_leak"), "3"])
    check(rc == 0, "config: --max-leak on the command line overrides the file", show(rc, out, err))
    os.makedirs(os.path.join(W, "ci"), exist_ok=True)
    rc, out, err = run(["gate", "--report", "ci/base.json", "--", prog("gate_grow"), "100"])
    cfg3 = write("ci/gate.json", '{"baseline": "base.json", "tolerance": 10}')
    rc, out, err = run(["gate", "--config", cfg3, "--", prog("gate_grow"), "120"])
    check(rc == 3 and "baseline" in err, "config: baseline path relative to the config file", show(rc, out, err))

if case("gate-outputs"):
    summary = write("summary.md", "")
    env = base_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=summary,
                   GITHUB_WORKSPACE=os.path.abspath(args.srcdir))
    rc, out, err = run(["gate", "--max-leak", "0", "--max-allocs", "1000000", "--max-peak", "1",
                        "--junit", "j.xml", "--benchmark-json", "bench.json", "--report", "outputs.json", "--",
                        prog("gate_leak"), "4"], env=env)
    check(rc == 3, "outputs run fails two limits", show(rc, out, err))
    ann = [l for l in out.splitlines() if l.startswith("::error")]
    check(len(ann) == 2, "two ::error annotations on stdout", out)
    import re
    for l in ann:
        check(re.match(r"::error (file=[^,:]+,line=\d+,)?title=valkmem gate%3A max-(leak|peak)::max-", l),
              "annotation: optional file/line, title escaped (: -> %3A)", l)
        check("\r" not in l, "no raw CR in an annotation", l)
    leak_ann = [l for l in ann if "max-leak::" in l]
    srcfile = [f.get("file", "") for s in load("outputs.json")["sites"] for f in s["frames"]
               if f.get("function") == "leaky_put"]
    if srcfile and srcfile[0]:
        # The stack's file (full path or bare name) becomes a workspace-relative path.
        check(leak_ann and leak_ann[0].startswith("::error file=tests/gate_leak.c,line=10,title="),
              "the leak annotation points at leaky_put's malloc line, relative to the workspace", "\n".join(ann))
    else:
        print("note: stacks carry no source files: annotation file/line not checked", file=sys.stderr)
    check(leak_ann and "%0A" in leak_ann[0] and "leaky_put" in leak_ann[0],
          "the leak annotation carries the stack, newlines escaped as %0A", "\n".join(ann))
    md = open(summary).read()
    check("| Check | Measured | Limit | Baseline | Result |" in md and "| max-leak | 3.91 KiB (4000 B) | 0 B |  | **FAIL** |" in md,
          "step summary: a Markdown table with the failed limit", md)
    root = ET.parse(os.path.join(W, "j.xml")).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    fails = suite.findall("testcase/failure")
    check(len(cases) == 3 and len(fails) == 2 and suite.get("failures") == "2" and root.get("tests") == "3",
          "JUnit: 3 testcases, 2 failures, counted in the attributes", ET.tostring(root, encoding="unicode"))
    check({c.get("name") for c in cases} == {"max-leak", "max-allocs", "max-peak"}, "JUnit: one testcase per limit")
    leakf = [c.find("failure") for c in cases if c.get("name") == "max-leak"][0]
    check("leaky_put" in (leakf.text or "") and "4000 B" in leakf.get("message", ""),
          "JUnit: the failure message has the measured value, its text the leaking site", ET.tostring(leakf, encoding="unicode"))
    # XML specials and control characters in the command line survive as an attribute value.
    weird = '<&"\'>\x01\u00e9'
    rc, out, err = run(["gate", "--max-allocs", "0", "--junit", "weird.xml", "--", prog("gate_allocs"), "3", "0", "0", weird])
    check(rc == 3, "weird-argument run fails --max-allocs 0", show(rc, out, err))
    root = ET.parse(os.path.join(W, "weird.xml")).getroot()
    prop = root.find("testsuite/properties/property[@name='command']").get("value")
    check("'<&\"'\\''>\ufffd\u00e9'" in prop, "JUnit: XML specials in the (shell-quoted) command read back", prop)
    bench = load("bench.json")
    check(isinstance(bench, list) and all(set(b) >= {"name", "unit", "value"} for b in bench) and
          any(b["name"] == "leak at exit" and b["value"] == 4000 for b in bench),
          "benchmark JSON: customSmallerIsBetter entries, leak 4000", json.dumps(bench))

    # Escaping of data in annotations: a command path with % , : in it.
    odd = os.path.join(W, "odd%dir,a:b")
    os.makedirs(odd, exist_ok=True)
    shutil.copy(prog("gate_exit"), os.path.join(odd, "x"))
    rc, out, err = run(["gate", "--max-leak", "1GB", "--", os.path.join(odd, "x"), "0", "6"], env=env)
    # The agent reports a process however it ends, so even an immediate
    # SIGABRT is measured; within the limits its status 134 passes through.
    check(rc == 128 + 6 and "crashed" in err and "SIGABRT" in err,
          "SIGABRT at once: the crash is said, the status 134 passes through", show(rc, out, err))
    crash = [l for l in out.splitlines() if l.startswith("::error")]
    check(len(crash) == 1 and "odd%25dir,a:b/x" in crash[0] and "title=valkmem gate%3A command crashed::" in crash[0],
          "crash annotation: % escaped as %25 in data, title's : as %3A", out)

# ---------------------------------------------------------------------------
# usage and configuration errors: exit 2, message naming the problem
# ---------------------------------------------------------------------------
if case("errors"):
    badjson = write("bad.json", '{\n  "schema": "valkmem.report/1",\n  "totals": {,\n}\n')
    notreport = write("notreport.json", '{"hello": 1}')
    badsupp = write("bad.supp", "leak:ok\nrace:foo\n")
    badcfg = write("badcfg.json", '{"max_peak": "24 parsecs"}')
    typo = write("typo.json", '{"max_leek": "0"}')
    cfgsyntax = write("cfgsyntax.json", '{\n"max_peak": "1MB"\n"max_leak": "0"}')
    T = ["--", prog("gate_clean")]
    errs = [
        (["gate", "--frobnicate"] + T, ["--frobnicate"]),
        (["gate", "--max-peak", "12 XB"] + T, ["--max-peak", "12 XB", "unit"]),
        (["gate", "--max-peak", "-5MB"] + T, ["--max-peak", "-5MB", "negative"]),
        (["gate", "--max-peak", ""] + T, ["--max-peak", "empty"]),
        (["gate", "--max-leak", "99999999999999999999"] + T, ["--max-leak", "too large"]),
        (["gate", "--max-allocs", "1.5"] + T, ["--max-allocs", "1.5"]),
        (["gate", "--max-peak"], ["--max-peak", "value"]),
        (["gate", "--max-leak", "0"], ["no command"]),
        (["gate", "--tolerance", "ten", "--baseline", badjson] + T, ["--tolerance", "ten"]),
        (["gate", "--error-exitcode", "0"] + T, ["--error-exitcode"]),
        (["gate", "--error-exitcode", "300"] + T, ["--error-exitcode"]),
        (["gate", "--only", ""] + T, ["--only"]),
        (["gate", "--only"], ["--only"]),
        (["gate", "--baseline", "missing.json"] + T, ["baseline", "missing.json", "No such file"]),
        (["gate", "--baseline", badjson] + T, ["baseline", "bad.json", "line 3"]),
        (["gate", "--baseline", notreport] + T, ["baseline", "notreport.json", "schema"]),
        (["gate", "--suppressions", badsupp] + T, ["suppressions", "bad.supp", "line 2", "race"]),
        (["gate", "--suppressions", "nosuch.supp"] + T, ["suppressions", "nosuch.supp", "No such file"]),
        (["gate", "--config", badcfg] + T, ["config", "badcfg.json", "max_peak", "24 parsecs"]),
        (["gate", "--config", typo] + T, ["config", "typo.json", "max_leek"]),
        (["gate", "--config", cfgsyntax] + T, ["config", "cfgsyntax.json", "line 3"]),
        (["gate", "--config", "nosuch.json"] + T, ["config", "nosuch.json", "No such file"]),
        ([], ["no command"]),
        (["frobnicate"], ["unknown command", "frobnicate"]),
        (["run"], ["no command"]),
        (["run", "--bogus", "--", "true"], ["--bogus"]),
        (["run", "--sample-bytes", "lots", "--", "true"], ["--sample-bytes", "lots"]),
        (["diff", "base-missing.json", "x.json"], ["base-missing.json"]),
        (["diff", notreport], ["two reports"]),
        (["export", "--type", "heap", "--pprof", "o.pb.gz", notreport], ["--type", "heap"]),
        (["export", notreport], ["--pprof"]),
        (["export", "--folded", "o.txt", notreport], ["notreport.json", "schema"]),
        (["view"], ["no file"]),
        (["view", "nosuch.json"], ["nosuch.json", "No such file"]),
        (["view", badjson], ["bad.json", "line 3"]),
        (["view", notreport], ["notreport.json", "schema"]),
        (["view", notreport, "--listen", "localhost:http"], ["--listen", "localhost:http"]),
        (["view", write("ok.json", '{"schema": "valkmem.report/1", "totals": {}}'), "--listen", "999.1.1.1:8080"],
         ["--listen", "999.1.1.1:8080", "numeric"]),
        (["view", "ok.json", "--listen", "10.1.2.3:8080"], ["--listen", "10.1.2.3:8080", "VALKMEM_TOKEN"]),
        # Unwritable outputs are said before the command runs (it would
        # write "ran" into ran.txt).
        (["gate", "--report", "nodir/r.json", "--", "sh", "-c", "echo ran > ran.txt"], ["report", "nodir/r.json", "No such file"]),
        (["gate", "--junit", ".", "--", "sh", "-c", "echo ran > ran.txt"], ["JUnit", "Is a directory"]),
        (["gate", "--benchmark-json", "/nonexistent/b.json", "--", "sh", "-c", "echo ran > ran.txt"], ["benchmark", "/nonexistent/b.json"]),
        (["run", "--report", "nodir/r.json", "--", "sh", "-c", "echo ran > ran.txt"], ["report", "nodir/r.json", "No such file"]),
    ]
    # A baseline without the figures it is compared on (they would read as 0).
    full = None
    rc, out, err = run(["gate", "--report", "full.json", "--", prog("gate_clean")])
    if check(rc == 0, "gate --report full.json (for the baselines below)", show(rc, out, err)):
        full = load("full.json")
        for sec in ("peak", "live"):
            doc = {k: v for k, v in full.items() if k != sec}
            errs.append((["gate", "--baseline", write(f"no-{sec}.json", json.dumps(doc))] + T,
                         ["baseline", f"no-{sec}.json", f'"{sec}"']))
    for argv, needles in errs:
        rc, out, err = run(argv)
        ok = rc == 2 and all(n in err for n in needles) and "valkmem: error:" in err
        check(ok, f"exit 2 naming {needles}: valkmem {' '.join(argv)}", show(rc, out, err))
    check(not os.path.exists(os.path.join(W, "ran.txt")), "no command ran when an output was unwritable")
    for libval, needle in (("/nonexistent/libvalkmem.so", "No such file"), ("/etc/hostname", "not an ELF")):
        rc, out, err = run(["run", "--", "true"], env=base_env(VALKMEM_LIB=libval))
        check(rc == 2 and "VALKMEM_LIB" in err and needle in err, f"unusable VALKMEM_LIB {libval}: exit 2",
              show(rc, out, err))
        rc, out, err = run(["gate", "--", "true"], env=base_env(VALKMEM_LIB=libval))
        check(rc == 2 and "VALKMEM_LIB" in err, f"gate with unusable VALKMEM_LIB {libval}: exit 2", show(rc, out, err))
    rc, out, err = run(["--help"])
    check(rc == 0 and "gate" in out and "run" in out, "valkmem --help", show(rc, out, err))
    for c in ("run", "gate", "diff", "export", "view"):
        rc, out, err = run([c, "--help"])
        check(rc == 0 and out.startswith("usage: valkmem " + c), f"valkmem {c} --help", show(rc, out, err))

# ---------------------------------------------------------------------------
# config-env: a bad VALKMEM_* value is said once (name, value, what happens),
# under valkmem run on its stderr; the program runs unchanged
# ---------------------------------------------------------------------------
if case("config-env"):
    for var, val, needles in (("VALKMEM_SAMPLE_BYTES", "abc", ["not valid", "default"]),
                              ("VALKMEM_SAMPLE_BYTES", "99999999999999999999999", ["not valid", "default"]),
                              ("VALKMEM_SAMPLE_BYTES", "17179869184g", ["not valid", "default"]),
                              ("VALKMEM_MAX_FRAMES", "0", ["out of range", "1-256"]),
                              ("VALKMEM_MAX_FRAMES", "999", ["out of range", "1-256"]),
                              ("VALKMEM_TICK_MS", "5", ["minimum", "10"]),
                              ("VALKMEM_FOLLOW_FORK", "maybe", ["not valid"])):
        rc, out, err = run(["run", "--no-http", "--quiet", "--", prog("gate_exit"), "4"],
                           env=base_env(**{var: val}))
        check(rc == 4 and f"{var}={val}" in err and all(n in err for n in needles)
              and len([l for l in err.splitlines() if var in l]) == 1,
              f"{var}={val}: one warning naming it ({needles}), exit status unchanged", show(rc, out, err))

# ---------------------------------------------------------------------------
# run: exit status passthrough and summary
# ---------------------------------------------------------------------------
if case("run"):
    for pargs, want in ((["0"], 0), (["7"], 7), (["0", "9"], 137), (["0", "15"], 143), (["0", "11"], 139)):
        rc, out, err = run(["run", "--no-http", "--", prog("gate_exit")] + pargs)
        check(rc == want, f"run passes through {pargs} as {want}", show(rc, out, err))
    rc, out, err = run(["run", "--", "/nonexistent/prog"])
    check(rc == 127 and "/nonexistent/prog" in err, "run: a missing command exits 127 and is named", show(rc, out, err))
    rc, out, err = run(["run", "--exact", "--report", "run.json", "--", prog("gate_leak"), "5"])
    check(rc == 0, "run --exact --report", show(rc, out, err))
    for needle in ("allocations", "frees", "peak live heap", "live at exit", "peak RSS", "size classes", "leaky_put"):
        check(needle in err, f"run summary shows {needle}", err)
    rep = load("run.json")
    check(rep.get("sample_bytes") == 1, "run --exact sets VALKMEM_SAMPLE_BYTES=1", str(rep.get("sample_bytes")))
    check(rep["totals"]["alloc_count"] == 106, "run: gate_leak 5 makes exactly 100 + 5 + 1 (stdout buffer) allocations",
          str(rep["totals"]["alloc_count"]))
    rc, out, err = run(["run", "--no-http", "--report", "pre.json", "--", prog("gate_exit"), "3"],
                       env=base_env(LD_PRELOAD="libm.so.6"))
    check(rc == 3 and os.path.getsize(os.path.join(W, "pre.json")) > 0,
          "run keeps an existing LD_PRELOAD and still writes the report", show(rc, out, err))

    # --report with %p: the summary is the started process's report (the
    # agent writes one per process); %% is a '%'; another escape is said.
    import glob
    for pat, made in (("rp-%p.json", "rp-{pid}.json"), ("rpct%%p-%p.json", "rpct%p-{pid}.json"),
                      ("rq%q.json", "rq%q.json")):
        rc, out, err = run(["run", "--no-http", "--report", pat, "--", prog("gate_exit"), "5"])
        files = sorted(os.path.basename(f) for f in glob.glob(os.path.join(W, pat.split("%")[0] + "*")))
        pids = [f[len(made.split("{")[0]):-len(made.split("}")[1])] for f in files] if "{pid}" in made else []
        check(rc == 5 and "valkmem summary" in err and "no report was written" not in err
              and len(files) == 1 and (files[0] == made or (pids and pids[0].isdigit() and files[0] == made.format(pid=pids[0]))),
              f"run --report {pat}: one file {made}, and its summary", show(rc, out, err) + f"\nfiles: {files}")
        check(("not an escape" in err and "%q" in err) == (pat == "rq%q.json"),
              f"run --report {pat}: an unknown escape (only) is said", err)
        check(pat == "rq%q.json" or f"report: {made.format(pid=pids[0] if pids else '')}" in err,
              f"run --report {pat}: the summary names the file written", err)

    # An exec chain (a wrapper script, env, a pyenv-style shim): one URL
    # line, and the address stays the root's through its images - the
    # dashboard then shows the last one. A fixed VALKMEM_LISTEN is not
    # taken from the later images.
    import time
    import urllib.request
    chain = ["bash", "-c", "sleep 0.4; exec env sh -c 'exec sleep 1.2'"]
    for listen in ("127.0.0.1:0", "127.0.0.1:%d" % (20000 + os.getpid() % 20000)):
        p = subprocess.run([CLI, "run", "--"] + chain, env=base_env(VALKMEM_HTTP="1", VALKMEM_LISTEN=listen), cwd=W,
                           capture_output=True, text=True, timeout=60)
        lines = [l for l in p.stderr.splitlines() if "dashboard for" in l]
        check(p.returncode == 0 and len(lines) == 1 and "Address already in use" not in p.stderr and "dashboard off" not in p.stderr,
              f"run, VALKMEM_LISTEN={listen}, an exec chain of 4 images: one URL line, no bind error",
              show(p.returncode, p.stdout, p.stderr))
    urlf = os.path.join(W, "chain.url")
    p = subprocess.Popen([CLI, "run", "--"] + chain, env=base_env(VALKMEM_HTTP="1", VALKMEM_URL_FILE=urlf), cwd=W,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progs = []
    for at in (0.2, 1.0):
        time.sleep(at - (0.2 if at > 0.2 else 0))
        try:
            url = open(urlf).read().strip()
            with urllib.request.urlopen(url.rstrip("/") + "/api/snapshot", timeout=5) as r:
                progs.append(json.load(r).get("program"))
        except Exception as e:
            progs.append(repr(e))
    p.communicate(timeout=60)
    check(progs == ["bash", "sleep"], "the root's address shows its first image, then its last: %r" % progs)

    # A daemon (or a `cmd &` left behind) runs on after the command has
    # ended: run returns, as the shell would, instead of waiting for it.
    mark = "vkm-daemon-%d" % os.getpid()
    try:
        p = subprocess.run([CLI, "run", "--no-http", "--", "sh", "-c",
                            f"sh -c 'sleep 60; : {mark}' >/dev/null 2>&1 </dev/null & echo started"],
                           env=base_env(), cwd=W, capture_output=True, text=True, timeout=30)
        check(p.returncode == 0 and p.stdout == "started\n", "run: a command that leaves a daemon behind returns",
              show(p.returncode, p.stdout, p.stderr))
    except subprocess.TimeoutExpired:
        check(False, "run: a command that leaves a daemon behind returns (still waiting after 30 s)")
    subprocess.run(["pkill", "-f", mark], check=False)

    # Started under nohup, run and gate leave the command's SIGHUP and
    # SIGTERM ignored, as nohup alone does.
    def ignore_hup_term():
        import signal
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    show_ign = ["sh", "-c", "grep -E '^Sig(Ign|Cgt)' /proc/self/status"]
    plain = subprocess.run(show_ign, env=base_env(), cwd=W, capture_output=True, text=True, timeout=60,
                           preexec_fn=ignore_hup_term)
    for sub in ("run", "gate"):
        p = subprocess.run([CLI, sub, "--no-http" if sub == "run" else "--sampled", "--"] + show_ign, env=base_env(),
                           cwd=W, capture_output=True, text=True, timeout=60, preexec_fn=ignore_hup_term)
        check(p.returncode == 0 and p.stdout == plain.stdout,
              f"{sub}: signals ignored when valkmem started (nohup) stay ignored in the command",
              f"without valkmem:\n{plain.stdout}with valkmem {sub}:\n{p.stdout}{p.stderr}")

# ---------------------------------------------------------------------------
# run and gate pass a signal on to the command exactly once: one sent to
# valkmem alone (kill PID) is forwarded, one the command has had already (the
# terminal's Ctrl-C, a kill of the whole group) is not sent again.
# ---------------------------------------------------------------------------
if case("run-signals"):
    import pty
    import signal
    import termios
    import time
    counter = write("sigcount.py", """
import signal, sys, time
got = []
for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
    signal.signal(s, lambda n, f: got.append(signal.Signals(n).name))
open(sys.argv[1], "w").write("ready")
t = time.time()
while not got and time.time() - t < 30:
    time.sleep(0.01)
time.sleep(0.6)  # a second delivery would arrive within this
print(" ".join(got), flush=True)
""")

    def start_argv(sub, ready):
        return [CLI, sub, "--no-http" if sub == "run" else "--sampled", "--", "python3", counter, ready]

    def start(sub, ready, **kw):
        return subprocess.Popen(start_argv(sub, ready), env=base_env(), cwd=W, **kw)

    def ctrl_c_on_pty(argv, ready):
        """Runs argv on a new terminal (its controlling one), types Ctrl-C
        once ready exists, and returns (exit status, all it wrote)."""
        import select
        master, slave = pty.openpty()

        def ctty():
            import fcntl
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        p = subprocess.Popen(argv, env=base_env(), cwd=W, stdin=slave, stdout=slave, stderr=slave,
                             start_new_session=True, preexec_fn=ctty)
        os.close(slave)
        if wait_ready(ready, p):
            os.write(master, b"\x03")
        chunks = []
        t = time.time()
        while time.time() - t < 60:
            try:
                if select.select([master], [], [], 0.1)[0]:
                    chunks.append(os.read(master, 65536))
                elif p.poll() is not None:
                    break
            except OSError:
                break
        if p.poll() is None:
            p.kill()
        os.close(master)
        p.wait(timeout=60)
        return p.returncode, b"".join(chunks).decode(errors="replace")

    def wait_ready(ready, p):
        t = time.time()
        while not os.path.exists(ready) and p.poll() is None and time.time() - t < 30:
            time.sleep(0.02)
        return os.path.exists(ready)

    for sub in ("run", "gate"):
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
            ready = os.path.join(W, f"ready-{sub}-{sig.name}")
            # Its own group, as a program started from another shell is:
            # then this process is outside it.
            p = start(sub, ready, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            if wait_ready(ready, p):
                p.send_signal(sig)
            out, err = p.communicate(timeout=60)
            check(out.strip() == sig.name and p.returncode == 0,
                  f"{sub}: {sig.name} sent to valkmem alone reaches the command once", show(p.returncode, out, err))
        # The whole group, from outside it (a supervisor's killpg): the
        # command has it already, and valkmem's witness says so.
        for sig in (signal.SIGINT, signal.SIGTERM):
            ready = os.path.join(W, f"ready-{sub}-group-{sig.name}")
            p = start(sub, ready, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            if wait_ready(ready, p):
                os.killpg(p.pid, sig)
            out, err = p.communicate(timeout=60)
            check(out.strip() == sig.name, f"{sub}: {sig.name} to the whole group from outside reaches the command once",
                  show(p.returncode, out, err))
        # timeout(1) signals its child and then its whole group, valkmem's
        # command included: once, not twice.
        if shutil.which("timeout"):
            ready = os.path.join(W, f"ready-{sub}-timeout")
            argv = ["timeout", "-s", "INT", "3", CLI, sub, "--no-http" if sub == "run" else "--sampled", "--",
                    "python3", counter, ready]
            p = subprocess.run(argv, env=base_env(), cwd=W, capture_output=True, text=True, timeout=60)
            check(p.stdout.strip() == "SIGINT", f"{sub} under timeout -s INT: the command gets SIGINT once",
                  show(p.returncode, p.stdout, p.stderr))
        # Ctrl-C at a terminal: valkmem and the command in the terminal's
        # foreground group, the kernel signals both.
        ready = os.path.join(W, f"ready-{sub}-tty")
        rc, text = ctrl_c_on_pty(start_argv(sub, ready), ready)
        lines = [l.replace("^C", "").strip() for l in text.splitlines()]
        lines = [l for l in lines if l.startswith("SIG")]
        check(lines == ["SIGINT"], f"{sub}: Ctrl-C at a terminal reaches the command once, not twice",
              f"exit {rc}\n{text}")

        # Ctrl-C in a shell loop: the loop stops, as it does without valkmem.
        # bash goes on after a child that exits 130; it stops only when the
        # child itself dies of SIGINT, so valkmem must.
        loop = os.path.join(W, f"loop-{sub}.sh")
        with open(loop, "w") as f:
            f.write(f"for i in 1 2 3; do {CLI} {sub} {'--no-http' if sub == 'run' else '--sampled'} -- "
                    f"python3 -c 'import sys, time; open(sys.argv[1], \"w\"); time.sleep(20)' {ready}-loop; "
                    "echo after-iteration-$i; done; echo loop-done\n")
        rc, text = ctrl_c_on_pty(["bash", loop], ready + "-loop")
        check("after-iteration" not in text and "loop-done" not in text and rc in (-2, 130),
              f"{sub}: Ctrl-C stops the shell loop that runs it (bash exit {rc})", text)

# ---------------------------------------------------------------------------
# the library search: next to the executable, ../lib*/ (multiarch too)
# ---------------------------------------------------------------------------
if case("libsearch"):
    env = base_env()
    del env["VALKMEM_LIB"]
    for layout in ("bin", "lib", "lib/x86_64-linux-gnu"):
        pre = os.path.join(W, "prefix-" + layout.replace("/", "-"))
        os.makedirs(os.path.join(pre, "bin"))
        os.makedirs(os.path.join(pre, layout), exist_ok=True)
        shutil.copy(CLI, os.path.join(pre, "bin", "valkmem"))
        shutil.copy(os.path.abspath(args.lib), os.path.join(pre, layout, "libvalkmem.so"))
        rep = os.path.join(pre, "r.json")
        p = subprocess.run([os.path.join(pre, "bin", "valkmem"), "run", "--no-http", "--report", rep, "--",
                            prog("gate_allocs"), "10"], env=env, capture_output=True, text=True, timeout=60)
        ok = p.returncode == 0 and os.path.exists(rep) and json.load(open(rep))["totals"]["alloc_count"] == 10
        check(ok, f"run finds the library in {layout}/ of its prefix", p.stderr)
    lone = os.path.join(W, "lone")
    os.makedirs(os.path.join(lone, "bin"))
    shutil.copy(CLI, os.path.join(lone, "bin", "valkmem"))
    if not any(os.path.exists(os.path.join(d, "libvalkmem.so"))
               for d in ("/usr/local/lib", "/usr/local/lib64", "/usr/lib", "/usr/lib/x86_64-linux-gnu")):
        p = subprocess.run([os.path.join(lone, "bin", "valkmem"), "run", "--", "true"], env=env,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 2 and "cannot find libvalkmem.so" in p.stderr and "VALKMEM_LIB" in p.stderr,
              "no library anywhere: exit 2 saying where it looked", p.stderr)

# ---------------------------------------------------------------------------
# export (encoders from agent/pprof.c)
# ---------------------------------------------------------------------------
if case("export"):
    rc, out, err = run(["gate", "--report", "exp.json", "--", prog("gate_leak"), "9"])
    rc, out, err = run(["export", "--folded", "exp.folded", "--type", "inuse", "exp.json"])
    check(rc == 0, "export --folded", show(rc, out, err))
    text = open(os.path.join(W, "exp.folded")).read() if rc == 0 else ""
    check(any(l.startswith("_start;") and "main;leaky_put " in l and l.rstrip().endswith(" 9000")
              for l in text.splitlines()),
          "folded inuse stacks: root-first, leaky_put holding exactly 9000 bytes", text[:2000])
    rc, out, err = run(["export", "--pprof", "exp.pb.gz", "exp.json"])
    check(rc == 0 and open(os.path.join(W, "exp.pb.gz"), "rb").read(2) == b"\x1f\x8b",
          "export --pprof writes a gzip file", show(rc, out, err))
    # A real consumer reads it: the top in-use function is the planted leak.
    consumer = (["go", "tool", "pprof"] if shutil.which("go") else
                ["google-pprof"] if shutil.which("google-pprof") else None)
    if consumer and rc == 0:
        env = dict(os.environ, GOCACHE=os.path.join(W, "gocache"), HOME=os.environ.get("HOME", W))
        p = subprocess.run(consumer + ["-top", "-sample_index=inuse_space", os.path.join(W, "exp.pb.gz")],
                           capture_output=True, text=True, timeout=120, env=env)
        rows = [l.split() for l in p.stdout.splitlines() if l.strip().endswith("leaky_put")]
        check(p.returncode == 0 and rows and rows[0][0] in ("8.79kB", "9000B", "8.8kB"),
              f"{consumer[0]} reads the export: leaky_put holds 9000 B in use", p.stdout + p.stderr)
    else:
        print("note: no pprof consumer (go, google-pprof) found: pprof read-back skipped", file=sys.stderr)
    # A malformed site is named, not exported as zero.
    if os.path.exists(os.path.join(W, "exp.json")):
        good = load("exp.json")
        for what, edit, want in (("frames a string", lambda s: s.__setitem__("frames", "abc"), '"sites[0].frames" is not an array'),
                                 ("a frame a number", lambda s: s.__setitem__("frames", [1]), '"sites[0].frames[0]" is not an object'),
                                 ("live_bytes a string", lambda s: s.__setitem__("live_bytes", "x"), '"sites[0].live_bytes" is not a non-negative number'),
                                 ("negative alloc_bytes", lambda s: s.__setitem__("alloc_bytes", -5), '"sites[0].alloc_bytes" is not a non-negative number')):
            bad = json.loads(json.dumps(good))
            edit(bad["sites"][0])
            with open(os.path.join(W, "bad.json"), "w") as f:
                json.dump(bad, f)
            rc, out, err = run(["export", "--folded", "bad.folded", "bad.json"])
            check(rc == 2 and "malformed report" in err and want in err and "bad.json" in err,
                  "export of a report whose site has " + what + ": exit 2 naming it", show(rc, out, err))

# ---------------------------------------------------------------------------
# view: the agent serves a saved report from an idle child
# ---------------------------------------------------------------------------
if case("view"):
    import signal
    import time
    import urllib.request
    rc, out, err = run(["gate", "--report", "view.json", "--", prog("gate_leak"), "3"])
    want = load("view.json")
    urlf = os.path.join(W, "view.url")
    env = base_env(VALKMEM_URL_FILE=urlf)
    p = subprocess.Popen([CLI, "view", "view.json", "--listen", "127.0.0.1:0"], env=env, cwd=W,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = None
    for _ in range(100):
        if os.path.exists(urlf):
            url = open(urlf).read().strip()
            break
        time.sleep(0.1)
    check(url and url.startswith("http://127.0.0.1:"), "view: the agent announces a loopback URL", str(url))
    if url:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/api/report", timeout=10) as resp:
                got = json.load(resp)
            check(got.get("pid") == want["pid"] and got.get("state") == "exited" and
                  got["totals"]["alloc_count"] == want["totals"]["alloc_count"],
                  "view: /api/report serves the saved report (same pid and counts, state exited)",
                  json.dumps({k: got.get(k) for k in ("pid", "state", "program")}))
            with urllib.request.urlopen(url, timeout=10) as resp:
                check(resp.status == 200 and b"<" in resp.read(200), "view: the dashboard page is served")
        except Exception as e:  # noqa: BLE001 - any failure to fetch is a test failure
            check(False, "view: fetching from the viewer", repr(e))
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=10)
        check(p.returncode == 0, "view: stopped by SIGTERM exits 0", f"exit {p.returncode}\n{err}")
    except subprocess.TimeoutExpired:
        p.kill()
        check(False, "view: stops on SIGTERM")

print(f"cli_e2e: {len(failures)} failure(s)" if failures else "cli_e2e: ok", file=sys.stderr)
sys.exit(1 if failures else 0)
