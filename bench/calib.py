#!/usr/bin/env python3
"""calib.py - bias and spread of the sites' live estimates, raw and
calibrated (agent/sites.c: a ratio estimator against the exact live heap),
over repeated runs of a program with planted sites (tests/flame_prog.c:
flat_a 24 MiB, flat_b 12 MiB, small_d 4 MiB held, in 16 KiB blocks, plus a
churning site that holds nearly nothing).

Each run starts flame_prog under LD_PRELOAD with VALKMEM_REPORT, lets it
finish its fills, ends it, and reads the report's sites: live_bytes (the
calibrated estimate), live_bytes_raw, live_err_bytes (the standard error
the agent states). Per site and sampling interval it prints, as fractions of
the planted bytes:

  bias    mean of (estimate - planted) / planted    (0 for an unbiased estimator)
  spread  standard deviation of the same            (what one run's error looks like)
  stated  mean of live_err_bytes / planted           (the stated error; should match spread)
  |z|<2   share of runs whose error is within two stated standard errors (~95 %)

A bias is significant when it exceeds about 2 spread / sqrt(runs).

  python3 bench/calib.py --build build [--runs 40] [--intervals 65536,524288]
"""
import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time

SITES = {"flat_a_alloc": 24 << 20, "flat_b_alloc": 12 << 20, "small_d_alloc": 4 << 20}


def one_run(build, interval, tmp, k):
    report = os.path.join(tmp, "r%d.json" % k)
    state = os.path.join(tmp, "s%d.json" % k)
    env = dict(os.environ, LD_PRELOAD=os.path.join(build, "libvalkmem.so"), VALKMEM_REPORT=report,
               VALKMEM_SAMPLE_BYTES=str(interval), VALKMEM_HTTP="0", VALKMEM_QUIET="1")
    # rate 0: the growing site stays empty; 1.5 s: the fills (paced) are done.
    p = subprocess.Popen([os.path.join(build, "tests", "flame_prog"), state, "1.5", "0"], env=env)
    p.wait(timeout=60)
    for _ in range(100):
        if os.path.exists(report):
            break
        time.sleep(0.05)
    with open(report) as f:
        rep = json.load(f)
    with open(state) as f:
        truth = json.load(f)["live"]
    out = {}
    for site in rep["sites"]:
        fn = site["frames"][0]["function"] if site["frames"] else ""
        if fn in SITES:
            o = out.setdefault(fn, {"cal": 0.0, "raw": 0.0, "err2": 0.0})
            o["cal"] += site["live_bytes"]
            o["raw"] += site.get("live_bytes_raw", site["live_bytes"])
            o["err2"] += site.get("live_err_bytes", 0) ** 2
    res = {}
    for fn, planted in SITES.items():
        o = out.get(fn, {"cal": 0.0, "raw": 0.0, "err2": 0.0})
        t = truth.get(fn, planted)
        res[fn] = (t, o["cal"], o["raw"], math.sqrt(o["err2"]))
    cal = rep.get("calibration", {}).get("live", {})
    os.unlink(report)
    return res, cal


def stats(xs):
    n = len(xs)
    m = sum(xs) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return m, sd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--intervals", default="65536,524288")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if not os.path.exists(os.path.join(build, "tests", "flame_prog")):
        sys.exit("no %s/tests/flame_prog: build it first (cmake --build %s --target flame_prog valkmem valkmem-cli)" % (build, build))
    figures = {}
    with tempfile.TemporaryDirectory(prefix="vkm-calib-") as tmp:
        for interval in [int(x) for x in a.intervals.split(",")]:
            rows = {fn: {"cal": [], "raw": [], "stated": [], "z": []} for fn in SITES}
            applied = 0
            t0 = time.time()
            for k in range(a.runs):
                res, cal = one_run(build, interval, tmp, k)
                applied += 1 if cal.get("applied") else 0
                for fn, (t, c, r, e) in res.items():
                    rows[fn]["cal"].append((c - t) / t)
                    rows[fn]["raw"].append((r - t) / t)
                    rows[fn]["stated"].append(e / t)
                    rows[fn]["z"].append(abs(c - t) / e if e > 0 else float("inf"))
            print("sampling interval %d B: %d runs (%.0f s), calibration applied in %d" % (interval, a.runs, time.time() - t0, applied))
            print("  %-14s %9s %9s %9s %9s %9s %7s" % ("site", "raw bias", "raw sprd", "cal bias", "cal sprd", "stated", "|z|<2"))
            figures[interval] = {}
            for fn in SITES:
                rb, rs = stats(rows[fn]["raw"])
                cb, cs = stats(rows[fn]["cal"])
                st = sum(rows[fn]["stated"]) / len(rows[fn]["stated"])
                within = sum(1 for z in rows[fn]["z"] if z < 2) / len(rows[fn]["z"])
                figures[interval][fn] = {"raw_bias": rb, "raw_spread": rs, "cal_bias": cb, "cal_spread": cs, "stated": st, "within_2se": within}
                print("  %-14s %+8.2f%% %8.2f%% %+8.2f%% %8.2f%% %8.2f%% %6.0f%%" % (fn, 100 * rb, 100 * rs, 100 * cb, 100 * cs, 100 * st, 100 * within))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
