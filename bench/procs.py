#!/usr/bin/env python3
"""procs.py - what the recorder costs the host, after the split into a
recorder (in the host) and an agent (a process of its own). Ratios against
the same program without the shim, in the same run; nothing here asserts
anything (a benchmark, not a test: CONTRIBUTING.md, "Benchmarks").

  instr    callgrind instruction counts of the host process alone
           (--trace-children=no: the agent is another process) for sqlite3
           and python3 workloads: base (no shim), sample (default 512 KiB
           sampling) and exact (VALKMEM_SAMPLE_BYTES=1). Instruction counts
           are repeatable on these shared machines, where wall time swings
           by +-20 % between identical runs.
  start    CPU time (user + sys, getrusage of the children) of a shell that
           starts N short processes (/bin/true), and of N fork+exit
           children of one C loop, with and without the shim: the extra
           CPU per process in the host, and, under `valkmem run` (whose
           agent is a child of ours), the agent's own on top.
  rss      peak RSS (VmHWM) of bench_selfmem in exact mode with and
           without the shim: the recorder's memory in the host.

usage: procs.py --build BUILD_DIR [--what instr,start,rss] [--rounds 5]
"""
import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def child_cpu(argv, env, stdin=None):
    """CPU seconds (user+sys) of argv and all its waited-for descendants."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALKMEM_") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


def callgrind(argv, env, stdin_path=None):
    out = tempfile.mktemp(prefix="vkm-cg-")
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=no", "--callgrind-out-file=" + out] + argv
    with open(stdin_path or os.devnull, "rb") as si:
        subprocess.run(cmd, env=env, stdin=si, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    os.unlink(out)
    return total


def instr(args, lib):
    sql = tempfile.mktemp(prefix="vkm-sql-")
    with open(sql, "w") as f:
        subprocess.run([sys.executable, os.path.join(HERE, "gen_sql.py"), str(args.sql_rows)], stdout=f, check=True)
    py = shutil.which("python3", path="/usr/bin") or "/usr/bin/python3"
    work = {
        "sqlite3": (["sqlite3", ":memory:"], sql),
        "python3": ([py, os.path.join(HERE, "alloc_heavy.py"), str(args.py_scale)], None),
    }
    modes = {
        "base": clean_env(),
        "sample": clean_env(LD_PRELOAD=lib, VALKMEM_HTTP="0"),
        "exact": clean_env(LD_PRELOAD=lib, VALKMEM_HTTP="0", VALKMEM_SAMPLE_BYTES="1"),
    }
    print("instructions of the host process (callgrind, --trace-children=no)")
    for name, (argv, stdin) in work.items():
        # Python randomises its string hashes per process, which moves its
        # instruction count by +-0.6 % between identical runs; one seed
        # for every mode makes the runs repeat exactly.
        env_of = {m: dict(env, PYTHONHASHSEED="0") if name == "python3" else env for m, env in modes.items()}
        got = {m: callgrind(argv, env_of[m], stdin) for m in modes}
        base = got["base"]
        print("  %-8s base %14d" % (name, base))
        for m in ("sample", "exact"):
            print("  %-8s %-6s %12d  %.4fx" % (name, m, got[m], got[m] / base))
    os.unlink(sql)


def start(args, lib, cli):
    n = args.procs
    loop = "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done" % n
    forker = os.path.join(args.build, "bench", "bench_forker")
    rows = []
    for what, argv in (("sh + %d x /bin/true" % n, ["/bin/sh", "-c", loop]),
                       ("%d x fork+exit" % n, [forker, str(n)] if os.path.exists(forker) else None)):
        if not argv:
            continue
        base, shim, run = [], [], []
        for _ in range(args.rounds):
            base.append(child_cpu(argv, clean_env()))
            shim.append(child_cpu(argv, clean_env(LD_PRELOAD=lib, VALKMEM_HTTP="0")))
            run.append(child_cpu([cli, "run", "--"] + argv, clean_env(VALKMEM_HTTP="0")))
            time.sleep(0.3)  # the detached agent of the previous run ends
        b, s, r = statistics.median(base), statistics.median(shim), statistics.median(run)
        rows.append((what, b, s, r))
    print("CPU per process (median of %d rounds; user+sys)" % args.rounds)
    for what, b, s, r in rows:
        print("  %-24s base %.3f s  shim %.3f s (+%.3f ms/process in the host)  valkmem run %.3f s (+%.3f ms/process, agent included)"
              % (what, b, s, (s - b) / n * 1e3, r, (r - b) / n * 1e3))


def hwm_kib(argv, env):
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    return peak


def rss(args, lib):
    prog = os.path.join(args.build, "bench", "bench_selfmem")
    argv = [prog, str(args.rss_seconds), str(args.rss_heap_mb)]
    for mode, extra in (("sample", {}), ("exact", {"VALKMEM_SAMPLE_BYTES": "1"})):
        b = statistics.median(hwm_kib(argv, clean_env()) for _ in range(3))
        s = statistics.median(hwm_kib(argv, clean_env(LD_PRELOAD=lib, VALKMEM_HTTP="0", **extra)) for _ in range(3))
        budget = 5 * 1024 + b / 100
        print("peak RSS of bench_selfmem (%d MiB heap, %s): base %.1f MiB, shim %.1f MiB: +%.2f MiB (budget 5 MiB + 1 %% = %.2f MiB)"
              % (args.rss_heap_mb, mode, b / 1024, s / 1024, (s - b) / 1024, budget / 1024))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--what", default="instr,start,rss")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--procs", type=int, default=500)
    ap.add_argument("--sql-rows", type=int, default=20000)
    ap.add_argument("--py-scale", type=float, default=0.3)
    ap.add_argument("--rss-seconds", type=float, default=5)
    ap.add_argument("--rss-heap-mb", type=int, default=64)
    args = ap.parse_args()
    lib = os.path.join(args.build, "libvalkmem.so")
    cli = os.path.join(args.build, "valkmem")
    for w in args.what.split(","):
        {"instr": lambda: instr(args, lib), "start": lambda: start(args, lib, cli), "rss": lambda: rss(args, lib)}[w]()


if __name__ == "__main__":
    main()
