#!/usr/bin/env python3
"""run.py - valkmem overhead benchmarks: ratios against the same program
without the shim, measured in the same run.

Every round runs each workload once in every mode, in an order that rotates
from round to round (so drift on a shared machine hits every mode alike);
the figure for a mode is the median over rounds, and the ratio is
median(mode) / median(base). Nothing here asserts a time: this is a
benchmark, not a test (CONTRIBUTING.md, "Benchmarks").

Modes
  base       no shim
  control    no shim again: its "ratio" is the noise floor of this run
  count      LD_PRELOAD, VALKMEM_SAMPLE_BYTES=0 (counting only), VALKMEM_HTTP=0
  sample     LD_PRELOAD, default sampling (512 KiB), VALKMEM_HTTP=0
  exact      LD_PRELOAD, VALKMEM_SAMPLE_BYTES=1, VALKMEM_HTTP=0
  http       LD_PRELOAD, default sampling, HTTP server on and a client
             streaming /api/events (curl -N) for the whole run
  heaptrack  `heaptrack -o DIR/ht ./prog` (separate pass, --heaptrack)

Workloads
  storm      bench_storm: 2 threads, malloc/free pairs of 8..512 B, live
             window 16; the figure is ns per pair (in-process loop time /
             pairs per thread), so exact mode and heaptrack run fewer pairs
  storm1k    the same with sizes 1040..1544 (glibc's bins, not its tcache)
  sqlite     sqlite3 :memory: running bench/gen_sql.py's workload
  python     python3 bench/alloc_heavy.py (default pymalloc)
  pymalloc0  the same with PYTHONMALLOC=malloc (every object through malloc)

usage: run.py --build BUILD_DIR [--rounds 7] [--workloads storm,sqlite,python]
              [--modes base,count,sample,exact,http] [--heaptrack]
              [--selfmem SECONDS] [--json FILE]
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ALL_MODES = ["base", "control", "count", "sample", "exact", "http"]


def find_python():
    # The distribution's interpreter, not a pyenv shim (a shell script that
    # would put bash and pyenv under the shim too).
    for p in ("/usr/bin/python3", shutil.which("python3")):
        if p and os.path.exists(p):
            return os.path.realpath(p)
    sys.exit("run.py: error: python3 not found")


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.lib = os.path.join(self.build, "libvalkmem.so")
        self.storm = os.path.join(self.build, "bench", "bench_storm")
        self.selfmem = os.path.join(self.build, "bench", "bench_selfmem")
        for f in (self.lib, self.storm):
            if not os.path.exists(f):
                sys.exit("run.py: error: %s: not found (build the valkmem and bench_storm targets)" % f)
        self.tmp = tempfile.mkdtemp(prefix="vkm-bench-")
        self.sql = os.path.join(self.tmp, "workload.sql")
        with open(self.sql, "w") as f:
            subprocess.run([sys.executable, os.path.join(HERE, "gen_sql.py"), str(args.sql_rows)],
                           stdout=f, check=True)
        self.python = find_python()
        self.sqlite = shutil.which("sqlite3")
        self.curl = shutil.which("curl")

    # -- workloads ----------------------------------------------------------
    def workload(self, name, heaptrack=False, mode="base"):
        """(argv, extra_env, uses_loop_ns)"""
        if name == "storm":
            # The storm's figure is ns per pair, so slow modes run fewer pairs.
            pairs = self.args.storm_pairs
            if heaptrack:
                pairs = self.args.heaptrack_storm_pairs
            elif mode == "exact":
                pairs = self.args.exact_storm_pairs
            return [self.storm, str(pairs), "2"], {}, True
        if name == "storm1k":  # sizes glibc serves from its bins, not the tcache
            pairs = self.args.exact_storm_pairs if mode == "exact" else self.args.storm_pairs // 2
            if heaptrack:
                pairs = self.args.heaptrack_storm_pairs
            return [self.storm, str(pairs), "2", "1040", "2048"], {}, True
        if name == "sqlite":
            return [self.sqlite, ":memory:", ".read " + self.sql], {}, False
        if name == "python":
            return [self.python, os.path.join(HERE, "alloc_heavy.py")], {}, False
        if name == "pymalloc0":
            return [self.python, os.path.join(HERE, "alloc_heavy.py")], {"PYTHONMALLOC": "malloc"}, False
        sys.exit("run.py: error: unknown workload %s" % name)

    def mode_env(self, mode, tag):
        env = {}
        if mode in ("count", "sample", "exact", "http"):
            env["LD_PRELOAD"] = self.lib
            env["VALKMEM_HTTP"] = "0"
        if mode == "count":
            env["VALKMEM_SAMPLE_BYTES"] = "0"
        if mode == "exact":
            env["VALKMEM_SAMPLE_BYTES"] = "1"
        if mode == "http":
            env["VALKMEM_HTTP"] = "1"
            env["VALKMEM_LISTEN"] = "127.0.0.1:0"
            env["VALKMEM_URL_FILE"] = os.path.join(self.tmp, "url-%s" % tag)
        return env

    # -- one run --------------------------------------------------------------
    def run_once(self, wl, mode, tag, report=None):
        heaptrack = mode == "heaptrack"
        argv, wenv, loop = self.workload(wl, heaptrack=heaptrack or self.args.heaptrack_base_pass, mode=mode)
        env = dict(os.environ)
        env.update(wenv)
        env.update(self.mode_env(mode, tag))
        if report:
            env["VALKMEM_REPORT"] = report
        if heaptrack:
            argv = ["heaptrack", "-o", os.path.join(self.tmp, "ht-%s" % tag)] + argv
        url_file = env.get("VALKMEM_URL_FILE")
        if url_file and os.path.exists(url_file):
            os.unlink(url_file)
        out_path = os.path.join(self.tmp, "out-%s" % tag)
        curl = None
        sse_path = os.path.join(self.tmp, "sse-%s" % tag)
        with open(out_path, "w") as out:
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.DEVNULL, preexec_fn=self.renice)
            if url_file:
                curl = self.attach_sse(p, url_file, sse_path)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
        events = None
        if curl:
            curl.send_signal(signal.SIGTERM)
            curl.wait()
            with open(sse_path, "rb") as f:
                events = sum(1 for line in f if line.startswith(b"data:"))
        if p.returncode != 0:
            sys.exit("run.py: error: %s (%s) exited %d" % (" ".join(argv), mode, p.returncode))
        r = {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss, "sse": events}
        if loop:
            with open(out_path) as f:
                kv = dict(x.split("=", 1) for x in f.read().split() if "=" in x)
            r["loop"] = float(kv["ns_per_pair"])
            r["cpu"] /= int(kv["pairs_per_thread"])  # comparable across pair counts
        return r

    def renice(self):
        if self.args.nice:
            os.nice(self.args.nice)  # negative (root only): less noise from other work on a shared machine

    def attach_sse(self, p, url_file, sse_path):
        """Waits for the URL file and starts `curl -N URL/api/events`."""
        deadline = time.monotonic() + 5
        url = None
        while time.monotonic() < deadline and p.poll() is None:
            try:
                with open(url_file) as f:
                    words = [w for w in f.read().split() if w.startswith("http")]
                if words:
                    url = words[0].rstrip("/")
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.002)
        if not url:
            print("run.py: warning: no URL in %s (HTTP server not up?)" % url_file, file=sys.stderr)
            return None
        return subprocess.Popen([self.curl, "-s", "-N", "-o", sse_path, url + "/api/events"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # -- the rounds -------------------------------------------------------------
    def measure(self, workloads, modes, rounds):
        res = {wl: {m: [] for m in modes} for wl in workloads}
        for r in range(rounds):
            for wl in workloads:
                order = modes[r % len(modes):] + modes[:r % len(modes)]
                for m in order:
                    res[wl][m].append(self.run_once(wl, m, "%s-%s-%d" % (wl, m, r)))
            print("  round %d/%d done" % (r + 1, rounds), file=sys.stderr)
        return res

    def summarize(self, res, title):
        lines = ["", "### " + title, "",
                 "| workload | mode | median | ratio | min-time ratio | per-round ratio min..max | cpu ratio | maxrss MiB | SSE events |",
                 "|---|---|---|---|---|---|---|---|---|"]
        table = {}
        for wl, by_mode in res.items():
            key = "loop" if "loop" in by_mode["base"][0] else "wall"
            base = statistics.median(x[key] for x in by_mode["base"])
            base_cpu = statistics.median(x["cpu"] for x in by_mode["base"])
            base_min = min(x[key] for x in by_mode["base"])
            for m, runs in by_mode.items():
                med = statistics.median(x[key] for x in runs)
                cpu = statistics.median(x["cpu"] for x in runs)
                per = [a[key] / b[key] for a, b in zip(runs, by_mode["base"])]
                rss = statistics.median(x["maxrss_kb"] for x in runs) / 1024
                sse = [x["sse"] for x in runs if x["sse"] is not None]
                mn = min(x[key] for x in runs)
                table.setdefault(wl, {})[m] = {"median_s": med, "ratio": med / base, "cpu_ratio": cpu / base_cpu,
                                               "min_ratio": mn / base_min,
                                               "maxrss_mib": rss, "ratio_min": min(per), "ratio_max": max(per),
                                               "sse_events": sse}
                lines.append("| %s | %s | %s | %.3fx | %.3fx | %.3f..%.3f | %.3fx | %.1f | %s |" % (
                    wl, m, "%.2f ns/pair" % med if key == "loop" else "%.3f s" % med,
                    med / base, mn / base_min, min(per), max(per),
                    cpu / base_cpu, rss, ",".join(map(str, sse)) if sse else "-"))
        print("\n".join(lines))
        sys.stdout.flush()
        return table

    # -- self memory -------------------------------------------------------------
    def measure_selfmem(self, seconds):
        """valkmem's own memory for a typical process: self_bytes from the
        report and from /api/snapshot mid-run, and the peak-RSS difference."""
        out = {}
        report = os.path.join(self.tmp, "selfmem-report.json")
        argv = [self.selfmem, str(seconds), str(self.args.selfmem_heap_mb)]
        base = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        _, _, ru_base = os.wait4(base.pid, 0)
        env = dict(os.environ, LD_PRELOAD=self.lib, VALKMEM_REPORT=report,
                   VALKMEM_URL_FILE=os.path.join(self.tmp, "selfmem-url"))
        if self.args.selfmem_tick_ms:
            env["VALKMEM_TICK_MS"] = str(self.args.selfmem_tick_ms)
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        curl = self.attach_sse(p, env["VALKMEM_URL_FILE"], os.path.join(self.tmp, "selfmem-sse"))
        mid = []
        url = None
        try:
            with open(env["VALKMEM_URL_FILE"]) as f:
                url = [w for w in f.read().split() if w.startswith("http")][0].rstrip("/")
        except (OSError, IndexError):
            pass
        t_end = time.monotonic() + seconds - 1
        while url and time.monotonic() < t_end:
            time.sleep(max(1.0, seconds / 10))
            try:
                snap = json.loads(subprocess.run([self.curl, "-s", "-m", "2", url + "/api/snapshot"],
                                                 capture_output=True, check=True).stdout)
                mid.append({"self_bytes": snap.get("self_bytes"), "rss": snap.get("os", {}).get("rss"),
                            "uptime_s": snap.get("uptime_s")})
            except (subprocess.CalledProcessError, ValueError):
                pass
        _, _, ru = os.wait4(p.pid, 0)
        if curl:
            curl.send_signal(signal.SIGTERM)
            curl.wait()
        with open(report) as f:
            rep = json.load(f)
        out = {"seconds": seconds, "heap_mb": self.args.selfmem_heap_mb,
               "maxrss_base_mib": ru_base.ru_maxrss / 1024, "maxrss_shim_mib": ru.ru_maxrss / 1024,
               "rss_diff_mib": (ru.ru_maxrss - ru_base.ru_maxrss) / 1024,
               "report_self_mib": rep.get("self_bytes", 0) / 2**20,
               "report_peak_live_mib": rep.get("peak", {}).get("live_bytes", 0) / 2**20,
               "history_points": {k: len(v.get("points", [])) if isinstance(v, dict) else len(v)
                                  for k, v in (rep.get("history") or {}).items()},
               "mid_run": mid}
        print("\n### self memory (bench_selfmem %ss, ~%d MiB heap, HTTP on, SSE client)\n" % (
            seconds, self.args.selfmem_heap_mb))
        print("| peak RSS base MiB | peak RSS shim MiB | difference MiB | report self_bytes MiB | peak live MiB | history points |")
        print("|---|---|---|---|---|---|")
        print("| %.1f | %.1f | %.1f | %.2f | %.1f | %s |" % (
            out["maxrss_base_mib"], out["maxrss_shim_mib"], out["rss_diff_mib"], out["report_self_mib"],
            out["report_peak_live_mib"], out["history_points"]))
        if mid:
            print("\nmid-run /api/snapshot self_bytes MiB: " +
                  ", ".join("%.2f@%.0fs" % ((m["self_bytes"] or 0) / 2**20, m["uptime_s"] or 0) for m in mid))
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="the CMake build directory")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--workloads", default="storm,sqlite,python")
    ap.add_argument("--modes", default=",".join(ALL_MODES))
    ap.add_argument("--storm-pairs", type=int, default=20000000, help="pairs per thread (default 20M)")
    ap.add_argument("--exact-storm-pairs", type=int, default=1000000, help="pairs per thread in exact mode")
    ap.add_argument("--sql-rows", type=int, default=60000)
    ap.add_argument("--heaptrack", action="store_true", help="also compare heaptrack (separate pass)")
    ap.add_argument("--heaptrack-rounds", type=int, default=3)
    ap.add_argument("--heaptrack-storm-pairs", type=int, default=300000)
    ap.add_argument("--selfmem", type=float, default=0, help="seconds of bench_selfmem (0 = skip)")
    ap.add_argument("--selfmem-heap-mb", type=int, default=64)
    ap.add_argument("--selfmem-tick-ms", type=int, default=0, help="VALKMEM_TICK_MS for the self-memory run")
    ap.add_argument("--json", help="write every figure here too")
    ap.add_argument("--nice", type=int, default=0, help="niceness increment for measured runs (e.g. -5 as root)")
    args = ap.parse_args()
    args.heaptrack_base_pass = False
    b = Bench(args)
    workloads = [w for w in args.workloads.split(",") if w]
    modes = [m for m in args.modes.split(",") if m]
    if "base" not in modes:
        modes.insert(0, "base")
    uname = os.uname()
    print("valkmem bench: %s, %s %s, %d cpus, %s" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                                     uname.sysname, uname.release, os.cpu_count(),
                                                     uname.machine))
    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count()}
    try:
        if workloads:
            res = b.measure(workloads, modes, args.rounds)
            results["modes"] = b.summarize(res, "overhead, %d rounds, medians" % args.rounds)
        if args.heaptrack:
            if not shutil.which("heaptrack"):
                sys.exit("run.py: error: heaptrack not installed")
            args.heaptrack_base_pass = True  # the storm at the bounded pair count for both
            res = b.measure(workloads, ["base", "heaptrack"], args.heaptrack_rounds)
            results["heaptrack"] = b.summarize(
                res, "heaptrack, %d rounds (storm bounded to %d pairs/thread)" % (
                    args.heaptrack_rounds, args.heaptrack_storm_pairs))
        if args.selfmem > 0:
            results["selfmem"] = b.measure_selfmem(args.selfmem)
    finally:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        shutil.rmtree(b.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
