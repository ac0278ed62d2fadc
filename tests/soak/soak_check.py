#!/usr/bin/env python3
"""soak_check.py - runs a soak program under the shim and checks its report
against the truth the program prints (see soak.h).

usage: soak_check.py --lib LIB [--mode sampled|exact] [--scale-arg I]
                     [--timeout S] [--child-reports] [--control]
                     [--env NAME=VALUE]...
                     -- PROG ARGS...

1. PROG ARGS without the shim: must exit 0 (the program itself works).
2. PROG under the shim at scale N (ARGS[I]) and 2N, VALKMEM_HTTP=0,
   VALKMEM_REPORT set: both exit 0 and print a SOAK line; in each run every
   "exact" field equals the report's value and every "atleast" field is a
   lower bound; the report difference equals the "planted" difference.
3. --child-reports: VALKMEM_REPORT holds %p; every other report that says
   "exited" must meet "children.exact", and there are at most
   "children.max" of them.
Every run has a timeout: a hang is a failure, never a stuck suite.
Prints both operands of every failed check; exits 1 on any failure.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("soak: FAIL: " + msg, file=sys.stderr)


def field(report, path):
    cur = report
    for part in path.split("."):
        if isinstance(cur, list):
            try:
                cur = cur[int(part)]
            except (ValueError, IndexError):
                return None
        elif isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
        if cur is None:
            return None
    return cur


def run(argv, env, timeout, label):
    t0 = time.monotonic()
    # A session of its own, so that a timeout kills the whole tree: a hung
    # fork child must not outlive the test.
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        outb, errb = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        outb, errb = p.communicate()
        fail("%s: timed out after %ss (hang?)" % (label, timeout))
        sys.stderr.write(errb.decode(errors="replace")[-2000:])
        return None, None
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # stragglers (children still running)
        except OSError:
            pass
    dt = time.monotonic() - t0
    out = outb.decode(errors="replace")
    err = errb.decode(errors="replace")
    if p.returncode != 0:
        fail("%s: exit code %d (%s)" % (label, p.returncode,
                                         "signal %d" % -p.returncode if p.returncode < 0 else "error"))
        sys.stderr.write(err[-3000:])
        return None, None
    if "valkmem: error" in err:
        fail("%s: the shim reported an error:\n%s" % (label, err[-2000:]))
    truth = None
    for line in out.splitlines():
        if line.startswith("SOAK "):
            truth = json.loads(line[5:])
    if truth is None:
        fail("%s: no SOAK line in the output" % label)
    print("  %s: %.2fs" % (label, dt))
    return truth, err


def load_report(path, label):
    try:
        with open(path) as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: report %s: %s" % (label, path, e))
        return None
    if r.get("schema") != "valkmem.report/1":
        fail("%s: report schema %r" % (label, r.get("schema")))
    return r


def check_abs(report, truth, label):
    for path, want in (truth.get("exact") or {}).items():
        got = field(report, path)
        if got != want:
            fail("%s: %s = %r, expected exactly %r" % (label, path, got, want))
        else:
            print("    ok %s == %d" % (path, want))
    for path, want in (truth.get("atleast") or {}).items():
        got = field(report, path)
        if not isinstance(got, (int, float)) or got < want:
            fail("%s: %s = %r, expected at least %r" % (label, path, got, want))
        else:
            print("    ok %s = %d >= %d" % (path, got, want))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--mode", default="sampled", choices=["sampled", "exact"])
    ap.add_argument("--scale-arg", type=int, default=0, help="index into ARGS of N (doubled for run 2)")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--child-reports", action="store_true")
    ap.add_argument("--no-delta", action="store_true", help="one shim run, absolute checks only")
    ap.add_argument("--slack-blocks", type=int, default=0,
                    help="planted deltas of live/alloc/free counts may be off by this many blocks (and "
                         "their bytes by 1 KiB each); size-class markers stay exact. For TSan builds "
                         "only (tests/soak.cmake says why)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="set in the runs under the shim (e.g. VALKMEM_ALLOCATOR=mimalloc)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    for kv in a.env:
        if "=" not in kv or kv.startswith("="):
            ap.error("--env %r: expected NAME=VALUE" % kv)

    def slack_ok(path, off):
        """Within --slack-blocks: only live/alloc/free counts and bytes."""
        if not a.slack_blocks or path.startswith("totals.size_hist"):
            return False
        if path.endswith("bytes"):
            return abs(off) <= 1024 * a.slack_blocks
        return path.endswith("count") and abs(off) <= a.slack_blocks
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no program")
    name = os.path.basename(cmd[0])
    work = tempfile.mkdtemp(prefix="vkm-soak-")
    try:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("VALKMEM_") and k != "LD_PRELOAD"}
        print("%s (%s): %s" % (name, a.mode, " ".join(cmd)))
        if run(cmd, base_env, a.timeout, "without the shim")[0] is None:
            return 1
        scales = [1] if a.no_delta else [1, 2]
        reports, truths = [], []
        for s in scales:
            argv = list(cmd)
            if s != 1:
                i = a.scale_arg + 1
                argv[i] = str(int(argv[i]) * s)
            rdir = os.path.join(work, "r%d" % s)
            os.mkdir(rdir)
            env = dict(base_env, LD_PRELOAD=a.lib, VALKMEM_HTTP="0")
            env.update(kv.split("=", 1) for kv in a.env)
            env["VALKMEM_REPORT"] = os.path.join(rdir, "r-%p.json" if a.child_reports else "report.json")
            if a.mode == "exact":
                env["VALKMEM_SAMPLE_BYTES"] = "1"
            label = "shim x%d" % s
            truth, _ = run(argv, env, a.timeout, label)
            if truth is None:
                return 1
            # The report is out when the process has ended; a worker may
            # still be rewriting it (tmp + rename) with counts that moved
            # after the exit handshake (destructors that run after ours).
            # A rewrite that never completes is a failure.
            deadline = time.monotonic() + 5
            while True:
                files = sorted(glob.glob(os.path.join(rdir, "*")))
                stray = [f for f in files if not f.endswith(".json")]
                if not stray or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
            if stray:
                fail("%s: unfinished report files %s" % (label, stray))
            if a.child_reports:
                by_pid = {}
                for f in files:
                    if f.endswith(".json"):
                        r = load_report(f, label)
                        if r:
                            by_pid[r.get("pid")] = r
                # The parent is the earliest process started.
                if not by_pid:
                    fail("%s: no report" % label)
                    return 1
                parent = min(by_pid.values(), key=lambda r: (r.get("started_at", 0), r.get("pid", 0)))
                report = parent
                kids = [r for r in by_pid.values() if r is not parent]
                ch = truth.get("children") or {}
                print("    %d child report(s)" % len(kids))
                if len(kids) > ch.get("max", 0):
                    fail("%s: %d child reports, at most %d children could write one" % (label, len(kids),
                                                                                     ch.get("max", 0)))
                for r in kids:
                    if r.get("state", "exited") != "exited":
                        continue
                    for path, want in (ch.get("exact") or {}).items():
                        got = field(r, path)
                        if got != want:
                            fail("%s: child pid %s: %s = %r, expected exactly %r" % (label, r.get("pid"), path,
                                                                                   got, want))
            else:
                report = load_report(os.path.join(rdir, "report.json"), label)
                if report is None:
                    return 1
            if field(report, "totals.alloc_count") in (None, 0):
                fail("%s: totals.alloc_count = %r" % (label, field(report, "totals.alloc_count")))
            check_abs(report, truth, label)
            reports.append(report)
            truths.append(truth)
        if len(reports) == 2:
            planted = set(truths[0].get("planted", {})) | set(truths[1].get("planted", {}))
            for path in sorted(planted):
                want = truths[1]["planted"].get(path, 0) - truths[0]["planted"].get(path, 0)
                g0, g1 = field(reports[0], path), field(reports[1], path)
                if not isinstance(g0, int) or not isinstance(g1, int):
                    fail("%s: %s missing from a report (%r, %r)" % (name, path, g0, g1))
                elif g1 - g0 != want and not slack_ok(path, g1 - g0 - want):
                    fail("%s: %s grew by %d between the runs (%d -> %d); the program planted %d" % (
                        name, path, g1 - g0, g0, g1, want))
                elif g1 - g0 != want:
                    print("    ok delta %s == %d (planted %d, within --slack-blocks %d)" % (
                        path, g1 - g0, want, a.slack_blocks))
                else:
                    print("    ok delta %s == %d" % (path, want))
        print("%s (%s): %s" % (name, a.mode, "FAILED (%d)" % failures if failures else "ok"))
        return 1 if failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
