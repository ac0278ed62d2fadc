#!/usr/bin/env python3
"""proc_test.py - the shim must leave the host process as it found it.

Each case runs a program with and without LD_PRELOAD and compares what the
program sees and does (stdout, stderr, files it writes, exit status), byte
for byte; where the shim must add something (a report), it is compared with
a run that differs only by a planted amount.

  single_thread      one entry in /proc/self/task; unshare(CLONE_NEWUSER) works
  pthread_exit_main  main's pthread_exit + a last thread ending: the process ends
  setxid_caps        setresgid after capset on one thread (root only)
  signals_default    SIGINT/SIGTERM stay SIG_DFL (C program and python3)
  cjson_host         a program using cJSON with its default hooks
  stderr_clean       nothing added to the program's stdout or stderr
  fd_reuse           descriptor numbers and contents are the program's own
  sigkill_report     a SIGKILLed process still gets a full report, with "end"
  gate_tree          `valkmem gate` checks every process of the tree; --only
  chromium           chromium --dump-dom, every process reported (realprog)

usage: proc_test.py LIB CLI BINDIR CASE
Prints "FAIL: ..." with both operands and exits 1 on failure; "SKIP: why"
and exit 0 only where the case cannot run on this machine.
"""
import json, os, re, select, shutil, signal, subprocess, sys, tempfile, time

LIB, CLI, BINDIR, CASE = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
LIB, CLI, BINDIR = os.path.abspath(LIB), os.path.abspath(CLI), os.path.abspath(BINDIR)
PROG = os.path.join(BINDIR, "proc_prog")
TMP = tempfile.mkdtemp(prefix="vk-proc-")
# The distribution's python3 (a pyenv shim is a shell script in between).
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
REPORT_WAIT_S = 20  # _exit and signals: the report may follow the process's end
failures = 0


def fail(what):
    global failures
    failures += 1
    print("FAIL:", what, file=sys.stderr)


def check(cond, what):
    if not cond:
        fail(what)
    return cond


def check_eq(a, b, what):
    return check(a == b, "%s: %r != %r" % (what, a, b))


def skip(why):
    print("SKIP:", why)
    sys.exit(0)


def base_env(**extra):
    """The caller's environment without any valkmem setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALKMEM_") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


def shim_env(**extra):
    """Default settings (dashboard on) unless extra says otherwise."""
    return base_env(LD_PRELOAD=LIB, **extra)


def default_signals():
    """Child side, before exec: SIGINT/SIGTERM at SIG_DFL whatever this
    driver inherited (a background job starts with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Result:
    def __init__(self, rc, out, err, timed_out):
        self.rc, self.out, self.err, self.timed_out = rc, out, err, timed_out

    def __repr__(self):
        return "exit %r%s\nstdout: %r\nstderr: %r" % (self.rc, " (TIMED OUT, killed)" if self.timed_out else "",
                                                      self.out[-2000:], self.err[-2000:])


def finish(p, timeout):
    """Waits for a Popen started in a session of its own: a Result."""
    try:
        out, err = p.communicate(timeout=timeout)
        return Result(p.returncode, out, err, False)
    except subprocess.TimeoutExpired:
        killpg(p.pid)
        out, err = p.communicate()
        return Result(p.returncode, out, err, True)


def run(argv, env, timeout=30, cwd=None, preexec=default_signals, stdin=subprocess.DEVNULL):
    """Runs argv in a process group of its own; on timeout the whole group is
    killed. stdout and stderr are pipes (bytes)."""
    p = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec)
    return finish(p, timeout)


def killpg(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def same(plain, shim, what, files=()):
    """The shimmed run did exactly what the plain one did."""
    ok = check(not shim.timed_out, "%s: under the shim it did not end in time:\n  with shim: %r" % (what, shim))
    ok &= check(plain.rc == shim.rc, "%s: exit status %r without the shim != %r with it\n  without: %r\n  with: %r"
                % (what, plain.rc, shim.rc, plain, shim))
    ok &= check(plain.out == shim.out, "%s: stdout differs\n  without: %r\n  with:    %r" % (what, plain.out[-2000:], shim.out[-2000:]))
    ok &= check(plain.err == shim.err, "%s: stderr differs\n  without: %r\n  with:    %r" % (what, plain.err[-2000:], shim.err[-2000:]))
    for a, b in files:
        da, db = read_bytes(a), read_bytes(b)
        ok &= check(da == db, "%s: %s differs from the plain run's %s (without: %s bytes, with: %s bytes); %s"
                    % (what, b, a, none_len(da), none_len(db), where(da, db)))
    return ok


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def none_len(d):
    return "no file" if d is None else len(d)


def where(a, b):
    """Where two byte strings first differ, with 80 bytes of each from there."""
    if a is None or b is None:
        return "one of them is missing"
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return "first difference at byte %d:\n    without: %r\n    with:    %r" % (i, a[i:i + 80], b[i:i + 80])


def load(path):
    with open(path) as f:
        return json.load(f)


def final_report(path, wait_s):
    """The process's final report: parsed, and no longer a checkpoint
    ("end" present, or state "exited"). Polls up to wait_s seconds; returns
    (report or None, what was found)."""
    deadline = time.monotonic() + wait_s
    found = "no file"
    while True:
        if os.path.exists(path):
            try:
                r = load(path)
                if "end" in r or r.get("state") == "exited":
                    return r, "final report"
                found = "a checkpoint (state %r, no \"end\")" % r.get("state")
            except (OSError, ValueError) as e:
                found = "unparsable (%s)" % e
        if time.monotonic() >= deadline:
            return None, found
        time.sleep(0.1)


def mkdir(*parts):
    d = os.path.join(TMP, *parts)
    os.makedirs(d, exist_ok=True)
    return d


# ---------------------------------------------------------------------------
def case_single_thread():
    rep = os.path.join(mkdir("st"), "r-%p.json")
    plain = run([PROG, "tasks"], base_env())
    check_eq(plain.out, b"tasks 1\n", "without the shim main sees one task (test program sanity)")
    shim = run([PROG, "tasks"], shim_env(VALKMEM_REPORT=rep))
    same(plain, shim, "tasks in /proc/self/task at main (dashboard on, VALKMEM_REPORT set)")

    plain = run([PROG, "userns"], base_env())
    if plain.rc != 0:
        print("SKIP (unshare half): unshare(CLONE_NEWUSER) fails even without the shim here: %r" % plain.out)
        return
    shim = run([PROG, "userns"], shim_env(VALKMEM_REPORT=rep))
    same(plain, shim, "unshare(CLONE_NEWUSER) (the kernel refuses it to a multithreaded process)")


def case_pthread_exit_main():
    rep = os.path.join(mkdir("pe"), "r-%p.json")
    plain = run([PROG, "pthread_exit"], base_env(), timeout=20)
    check(not plain.timed_out and plain.rc == 0, "without the shim the process ends with 0 (sanity): %r" % plain)
    shim = run([PROG, "pthread_exit"], shim_env(VALKMEM_REPORT=rep), timeout=20)
    same(plain, shim, "main calls pthread_exit, its last thread ends 100 ms later (timeout 20 s)")


def case_setxid_caps():
    if os.geteuid() != 0:
        skip("needs root (setresuid to 65534 with PR_SET_KEEPCAPS, then capset)")
    plain = run([PROG, "setxid"], base_env())
    if plain.rc != 0:
        skip("the setxid sequence fails even without the shim on this machine (no CAP_SETUID/CAP_SETGID here?): %r"
             % plain)
    check_eq(plain.out, b"uid 65534 gid 65534\n", "without the shim (sanity)")
    rep = os.path.join(mkdir("sx"), "r-%p.json")
    os.chmod(os.path.dirname(rep), 0o777)  # the process ends as nobody
    shim = run([PROG, "setxid"], shim_env(VALKMEM_REPORT=rep))
    same(plain, shim, "KEEPCAPS + setresuid(65534) + capset(CAP_SETGID, this thread) + setresgid(65534)")


PY_SIGNALS = r"""
import os, signal, time
print(signal.getsignal(signal.SIGINT))
print(signal.getsignal(signal.SIGTERM))
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
    print('not interrupted')
except KeyboardInterrupt:
    print('caught')
"""


def case_signals_default():
    rep = os.path.join(mkdir("sig"), "r-%p.json")
    plain = run([PROG, "sigdisp"], base_env())
    check_eq(plain.out, b"SIGINT SIG_DFL\nSIGTERM SIG_DFL\n", "without the shim (sanity)")
    shim = run([PROG, "sigdisp"], shim_env(VALKMEM_REPORT=rep))
    same(plain, shim, "SIGINT/SIGTERM dispositions at main with VALKMEM_REPORT set")

    plain = run([PY, "-c", PY_SIGNALS], base_env())
    check(plain.rc == 0 and plain.out.endswith(b"caught\n"), "python3 without the shim (sanity): %r" % plain)
    shim = run([PY, "-c", PY_SIGNALS], shim_env(VALKMEM_REPORT=rep))
    same(plain, shim, "python3: getsignal(SIGINT/SIGTERM), then SIGINT to itself -> KeyboardInterrupt")


def case_cjson_host():
    n = 1000
    cj = os.path.join(BINDIR, "proc_cjson")
    d = mkdir("cj")
    counts = {}
    for k in (0, n):
        rep = os.path.join(d, "r%d.json" % k)
        plain = run([cj, k], base_env())
        check(plain.rc == 0, "proc_cjson %d without the shim (sanity): %r" % (k, plain))
        shim = run([cj, k], shim_env(VALKMEM_REPORT=rep))
        if not same(plain, shim, "proc_cjson %d (cJSON with its default hooks, text freed with free())" % k):
            continue
        if check(os.path.exists(rep), "proc_cjson %d: report %s written by the time the process exited" % (k, rep)):
            counts[k] = load(rep)["totals"]["alloc_count"]
    if len(counts) == 2:
        check(counts[n] - counts[0] >= 2 * n,
              "cJSON's allocations are the program's: alloc_count(N=%d) - alloc_count(N=0) = %d - %d = %d, want >= %d"
              % (n, counts[n], counts[0], counts[n] - counts[0], 2 * n))


def case_stderr_clean():
    progs = [[PROG, "stdio"], ["/bin/true"], [PY, "-c", "pass"]]
    for argv in progs:
        plain = run(argv, base_env())
        shim = run(argv, shim_env())  # default settings: dashboard on, no VALKMEM_* at all
        same(plain, shim, "%s with stdout and stderr as pipes, default settings" % " ".join(argv))


def case_heap_untouched():
    """The recorder takes nothing from the program's heap before main, also
    in the process that starts the tree's agent (and sets
    VALKMEM_AGENT_SOCK for its descendants) and with VALKMEM_FOLLOW_EXEC=0
    (which rewrites LD_PRELOAD)."""
    plain = run([PROG, "heap"], base_env())
    check(plain.rc == 0 and plain.out.startswith(b"at main: arena 0, in use 0"),
          "without the shim nothing is allocated before main (test program sanity): %r" % plain)
    for extra in ({}, {"VALKMEM_FOLLOW_EXEC": "0"}, {"VALKMEM_REPORT": os.path.join(mkdir("heap"), "r.json")}):
        shim = run([PROG, "heap"], shim_env(**extra))
        same(plain, shim, "the heap at main and an aligned block's usable size (%s)" % (extra or "default settings"))


def case_alloc_errno():
    """An allocation that cannot be had returns what the allocator returned,
    with the errno it set: glibc's, and jemalloc's or tcmalloc's preloaded
    behind the shim (tcmalloc's calloc leaves errno alone on overflow)."""
    libdir = "/usr/lib/x86_64-linux-gnu"
    for alloc in ["", libdir + "/libjemalloc.so.2", libdir + "/libtcmalloc_minimal.so.4"]:
        if alloc and not os.path.exists(alloc):
            print("NOTE: %s not installed, not compared" % alloc)
            continue
        env = base_env(LD_PRELOAD=alloc) if alloc else base_env()
        plain = run([PROG, "overflow"], env)
        shim = run([PROG, "overflow"], base_env(LD_PRELOAD=LIB + (":" + alloc if alloc else ""), VALKMEM_HTTP="0"))
        same(plain, shim, "impossible allocations under %s" % (os.path.basename(alloc) or "glibc"))


def case_malloc_debug():
    """glibc's malloc debugging (libc_malloc_debug.so preloaded, MALLOC_CHECK_=3)
    stays on under the shim: it defines its malloc only under a non-default
    symbol version, which the program binds to and a plain dlsym skips.
    With it, malloc_usable_size is the size requested."""
    dbg = [d for d in ("/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0", "/lib64/libc_malloc_debug.so.0",
                       "/usr/lib/aarch64-linux-gnu/libc_malloc_debug.so.0") if os.path.exists(d)]
    if not dbg:
        skip("no libc_malloc_debug.so.0 (glibc < 2.34)")
    plain = run([PROG, "usable"], base_env(LD_PRELOAD=dbg[0], MALLOC_CHECK_="3"))
    check(plain.out.startswith(b"100\n100\n200\n"), "MALLOC_CHECK_=3 without the shim: usable = requested (sanity): %r" % plain)
    shim = run([PROG, "usable"], base_env(LD_PRELOAD=LIB + ":" + dbg[0], MALLOC_CHECK_="3", VALKMEM_HTTP="0"))
    same(plain, shim, "usable sizes under MALLOC_CHECK_=3 with libc_malloc_debug.so behind the shim")
    plain = run([PROG, "usable"], base_env())
    shim = run([PROG, "usable"], base_env(LD_PRELOAD=LIB, VALKMEM_HTTP="0"))
    same(plain, shim, "usable sizes with glibc's malloc")


def agent_pids(spawner_pid):
    """The agent a recorder started (agentd and its workers): their command
    line names the socket, which carries the spawning process's pid."""
    tag = ("agent-%010d-" % spawner_pid).encode()
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"--from-recorder" in cmd and tag in cmd:
                pids.append(int(d))
    return pids


def wait_agent(spawner_pid, seconds):
    """The pids of the agent a recorder started, once there is one (or [])."""
    end = time.time() + seconds
    while True:
        pids = agent_pids(spawner_pid)
        if pids or time.time() > end:
            return pids
        time.sleep(0.01)


def kill_agent(spawner_pid):
    """SIGKILL to the agent a recorder started, and to its workers."""
    for pid in set(agent_pids(spawner_pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def case_agent_gone():
    """Exact mode waits while a ring is full, for the agent to drain it. When
    the agent is gone (killed, crashed) the program must still end: one
    bounded wait, then events are dropped, not waited for one by one."""
    n = 300000
    plain = run([PROG, "churn", "0", n], base_env())
    check_eq(plain.out, b"done\n", "without the shim (sanity)")
    p = subprocess.Popen([PROG, "churn", "1500", str(n)], env=shim_env(VALKMEM_SAMPLE_BYTES="1", VALKMEM_HTTP="0"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=default_signals)
    pids = wait_agent(p.pid, 1.0)
    if not check(pids, "the program's agent was found (socket named after pid %d)" % p.pid):
        killpg(p.pid)
        p.communicate()
        return
    time.sleep(0.2)  # the worker is forked once the segment arrives
    kill_agent(p.pid)
    res = finish(p, 50)
    same(plain, res, "exact mode, %d allocations after its agent was killed (limit 50 s; without the shim 0.1 s)" % n)


def case_agent_replaced():
    """The tree's agent is killed while its script goes on starting
    processes: one process of the tree starts a new agent at the same path
    (the others' environment still names it) and the rest hand over to it -
    not an agent for every process from then on. Every process started
    after the kill has its report; the script's output and status are as
    without the shim."""
    d = mkdir("replaced")
    spawns = os.path.join(d, "spawns")
    wrapper = os.path.join(d, "agent.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\necho \"$*\" >> %s\nexec %s \"$@\"\n" % (spawns, CLI))
    os.chmod(wrapper, 0o755)
    go = os.path.join(d, "go")
    script = ("while [ ! -e %s ]; do sleep 0.02; done; for i in $(seq 30); do /bin/true; done; echo done" % go)
    plain = run(["bash", "-c", script.replace(go, "/")], base_env())
    reps = os.path.join(d, "reps")
    os.mkdir(reps)
    p = subprocess.Popen(["bash", "-c", script], env=shim_env(VALKMEM_HTTP="0", VALKMEM_AGENT_BIN=wrapper,
                                                                VALKMEM_REPORT=os.path.join(reps, "r-%p.json")),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, preexec_fn=default_signals)
    pids = wait_agent(p.pid, 3.0)
    check(pids, "the script's agent was found")
    time.sleep(0.2)
    kill_agent(p.pid)
    time.sleep(0.1)
    open(go, "w").close()
    res = finish(p, 60)
    same(plain, res, "the script, its agent killed half-way")
    for _ in range(100):  # the new agent writes the last reports as its processes end
        if not agent_pids(p.pid):
            break
        time.sleep(0.05)
    lines = open(spawns).read().splitlines() if os.path.exists(spawns) else []
    check(len(lines) == 2 and "--in-place" not in lines[0] and "--in-place" in lines[1] and all(lines[1].split()[3] == l.split()[3] for l in lines),
          "two agents in all: the first, then one in its place at the same path: %r" % lines)
    progs = []
    for f in os.listdir(reps):
        try:
            progs.append(load(os.path.join(reps, f)).get("program"))
        except Exception:
            pass
    check(progs.count("true") == 30, "every /bin/true started after the kill has its report: %d of 30" % progs.count("true"))


def case_sweep():
    """A killed agent leaves its socket, its lock and its workers' sockets in
    the recorders' directory ($TMPDIR/valkmem-UID). The next tree's agent
    removes what belongs to nobody, and leaves alone a socket something
    listens at and a lock something holds."""
    import fcntl
    import socket
    tmp = mkdir("sweep")
    d = os.path.join(tmp, "valkmem-%d" % os.getuid())
    os.mkdir(d, 0o700)

    def sock(name, listen):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(os.path.join(d, name))
        if listen:
            s.listen(4)
            return s
        s.close()  # the file stays, nobody listens: as a killed agent leaves it
        return None

    dead = ["agent-0000000001-0000000000000001.sock", "agent-0000000002-0000000000000002.sock",
            "agent-0000000002-0000000000000002.sock.lock", "w1-2.sock"]
    sock(dead[0], False)
    sock(dead[1], False)
    open(os.path.join(d, dead[2]), "w").close()
    sock(dead[3], False)
    keep = ["agent-0000000003-0000000000000003.sock", "agent-0000000004-0000000000000004.sock",
            "agent-0000000004-0000000000000004.sock.lock", "w3-4.sock"]
    live = [sock(keep[0], True), sock(keep[1], False), sock(keep[3], True)]
    held = open(os.path.join(d, keep[2]), "w")
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # an agent alive, its socket busy elsewhere
    r = run(["/bin/true"], shim_env(VALKMEM_HTTP="0", TMPDIR=tmp))
    check(r.rc == 0, "/bin/true ran: %r" % r)
    for _ in range(100):
        left = set(os.listdir(d))
        if not left & set(dead):
            break
        time.sleep(0.05)
    check(not left & set(dead), "what belongs to nobody is gone: %r" % sorted(left & set(dead)))
    check(set(keep) <= left, "a socket something listens at and a held lock stay: %r" % sorted(set(keep) - left))
    held.close()
    for s in live:
        if s:
            s.close()


BASH_FD5 = 'exec 5>OUT; for i in $(seq 200); do echo line$i >&5; done; exec 5>&-'


def case_fd_reuse():
    for mode, extra in (("default", {}), ("exact", {"VALKMEM_SAMPLE_BYTES": "1"})):
        dirs = {side: mkdir("fd", mode, side) for side in ("plain", "shim")}

        def both(sub, argv, preexec=default_signals, files=()):
            res = {}
            for side in ("plain", "shim"):
                wd = os.path.join(dirs[side], sub)
                os.makedirs(wd, exist_ok=True)
                env = base_env() if side == "plain" else shim_env(**extra)
                res[side] = run([a.replace("@DIR@", wd) for a in argv], env, cwd=wd, preexec=preexec)
            same(res["plain"], res["shim"], "%s mode: %s" % (mode, sub),
                 [(os.path.join(dirs["plain"], sub, f), os.path.join(dirs["shim"], sub, f)) for f in files])
            return res

        if shutil.which("bash"):
            both("bash", ["bash", "-c", BASH_FD5], files=["OUT"])
        both("close_range", [PROG, "fds", "@DIR@"], files=["a.txt", "b.txt"])

        def closed02():
            default_signals()
            os.close(0)
            os.close(2)

        r = both("closed02", [PROG, "closed02", "@DIR@"], preexec=closed02, files=["zero.txt", "two.txt"])
        check_eq(r["plain"].rc, 0, "%s mode: started with 0 and 2 closed, the files got 0 and 2 without the shim (sanity)"
                 % mode)


def case_sigkill_report():
    k = 25
    d = mkdir("kill")
    reps = {}
    for n in (0, k):
        for side in ("plain", "shim"):
            rep = os.path.join(d, "r%d.json" % n)
            env = base_env() if side == "plain" else shim_env(VALKMEM_REPORT=rep, VALKMEM_HTTP="0")
            p = subprocess.Popen([PROG, "plant", str(n)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=default_signals)
            got, deadline = b"", time.monotonic() + 20
            while b"\n" not in got and time.monotonic() < deadline:
                ready, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    break
                chunk = os.read(p.stdout.fileno(), 100)
                if not chunk:
                    break
                got += chunk
            check_eq(got, b"ready\n", "plant %d (%s): the program's stdout before the kill" % (n, side))
            p.kill()  # SIGKILL to the process alone
            try:
                rc = p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                killpg(p.pid)
                rc = p.wait()
            p.stdout.close()
            check_eq(rc, -signal.SIGKILL, "plant %d (%s): died by SIGKILL" % (n, side))
            if side == "shim":
                r, found = final_report(rep, REPORT_WAIT_S)
                if check(r is not None, "plant %d: a final report at %s within %d s of SIGKILL (found: %s)"
                         % (n, rep, REPORT_WAIT_S, found)):
                    reps[n] = r
    for n, r in reps.items():
        end = r.get("end")
        check(isinstance(end, dict) and end.get("kind") == "signal" and end.get("signal") == 9
              and end.get("name") == "SIGKILL",
              "plant %d: report \"end\" after SIGKILL: %r, want {\"kind\": \"signal\", \"signal\": 9, \"name\": \"SIGKILL\"}"
              % (n, end))
    if len(reps) == 2:
        a, b = reps[0], reps[k]
        check_eq(b["totals"]["alloc_count"] - a["totals"]["alloc_count"], k, "SIGKILL: totals.alloc_count difference")
        check_eq(b["live"]["count"] - a["live"]["count"], k, "SIGKILL: live.count difference")
        check_eq(b["totals"]["alloc_bytes"] - a["totals"]["alloc_bytes"], sum(1000 + 16 * i for i in range(k)),
                 "SIGKILL: totals.alloc_bytes difference (the planted sizes)")
    # A normal exit(3): complete by the time the process has exited.
    rep = os.path.join(d, "exit3.json")
    plain = run([PROG, "exit", 3], base_env())
    shim = run([PROG, "exit", 3], shim_env(VALKMEM_REPORT=rep, VALKMEM_HTTP="0"))
    same(plain, shim, "exit(3)")
    if check(os.path.exists(rep), "exit(3): report %s present when the process has exited" % rep):
        end = load(rep).get("end")
        check(isinstance(end, dict) and end.get("kind") == "exit" and end.get("code") == 3,
              "exit(3): report \"end\" %r, want {\"kind\": \"exit\", \"code\": 3}" % (end,))


def case_gate_tree():
    clean, leaky, seq = (os.path.join(BINDIR, p) for p in ("proc_clean", "proc_leaky", "proc_seq"))
    d = mkdir("gate")
    pidfile = os.path.join(d, "leaky.pid")

    def gate(flags, cmd, what, want_rc, want_named=False):
        env = base_env(VALKMEM_LIB=LIB, VALKMEM_HTTP="0", PROC_PIDFILE=pidfile)
        plain = run(cmd, base_env(PROC_PIDFILE=pidfile), cwd=d)
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        g = run([CLI, "gate"] + flags + ["--"] + cmd, env, cwd=d, timeout=60)
        show = "gate %s -- %s: %r" % (" ".join(flags), " ".join(cmd), g)
        check_eq(g.out, plain.out, "%s: the tree's stdout passes through the gate unchanged" % what)
        check(g.rc == want_rc, "%s: gate exit status %r, want %r\n  %s" % (what, g.rc, want_rc, show))
        if want_named:
            pid = read_bytes(pidfile)
            pid = pid.strip().decode() if pid else "?"
            text = g.out + g.err
            check(b"proc_leaky" in text and pid.encode() in text,
                  "%s: the verdict names proc_leaky and its pid %s\n  %s" % (what, pid, show))

    three = "%s; %s; %s" % (clean, leaky, clean)
    # 3: the gate's failure status (agent/cli/README-ci.md).
    gate(["--max-leak", "0"], ["sh", "-c", three], "sh -c 'clean; leaky; clean'", 3, want_named=True)
    # The same tree under a launcher that leaks nothing itself (dash keeps its
    # own state live at exit, so only proc_leaky can be the culprit here).
    gate(["--max-leak", "0"], [seq, clean, leaky, clean], "proc_seq clean leaky clean", 3, want_named=True)
    gate(["--max-leak", "0"], [seq, clean, clean], "proc_seq clean clean (every process clean)", 0)
    gate(["--max-leak", "0", "--only", "proc_clean"], ["sh", "-c", three],
         "--only proc_clean: sh and proc_leaky not checked", 0)


CHROMIUM = "/usr/bin/chromium"


def descendants(root_sid):
    """pid -> exe of every process in the session root_sid."""
    found = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e) as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            if int(fields[3]) != root_sid:  # session id
                continue
            found[int(e)] = os.readlink("/proc/%s/exe" % e)
        except (OSError, ValueError):
            continue
    return found


def run_watched(argv, env, out_path, err_path, timeout, cwd=None):
    """Runs argv (stdout/stderr to files) in a new session, noting every
    process of the session while it runs. Returns (rc or None, {pid: exe})."""
    seen = {}
    with open(out_path, "wb") as o, open(err_path, "wb") as e:
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                             start_new_session=True, preexec_fn=default_signals)
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        seen.update(descendants(p.pid))
        time.sleep(0.02)
    if p.poll() is None:
        killpg(p.pid)
        p.wait()
        return None, seen
    return p.returncode, seen


def case_chromium():
    if not os.path.exists(CHROMIUM):
        skip("%s not found" % CHROMIUM)
    t0 = time.monotonic()

    def budget():  # the whole case stays within 120 s
        return max(5.0, 115 - REPORT_WAIT_S - (time.monotonic() - t0))

    os.chmod(TMP, 0o755)
    page = os.path.join(TMP, "page.html")
    with open(page, "w") as f:
        f.write('<html><body><p id="x">valkmem proc test</p>'
                '<script>document.getElementById("x").textContent += " with js";</script></body></html>\n')
    os.chmod(page, 0o644)
    flags = ["--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]

    def one(tag, sandbox, as_user):
        """Runs chromium without and with the shim; checks; returns False to
        skip (the plain run itself failed)."""
        home = mkdir("chr-" + tag)
        if as_user:
            os.chmod(home, 0o755)
        res = {}
        for side in ("plain", "shim"):
            ud = os.path.join(home, "ud-" + side)
            repdir = os.path.join(home, "rep-" + side)
            os.makedirs(repdir)
            if as_user:
                os.chown(home, 65534, 65534)
                os.chown(repdir, 65534, 65534)
            cmd = [CHROMIUM] + flags + ([] if sandbox else ["--no-sandbox"]) + \
                  ["--user-data-dir=" + ud, "--dump-dom", "file://" + page]
            env = base_env(HOME=home)
            if side == "shim":
                shim_vars = ["LD_PRELOAD=" + LIB, "VALKMEM_REPORT=" + os.path.join(repdir, "r-%p.json")]
                if as_user:
                    cmd = ["env"] + shim_vars + cmd  # only chromium's tree under the shim, not setpriv
                else:
                    env.update(v.split("=", 1) for v in shim_vars)
            if as_user:
                cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
            outp, errp = os.path.join(home, side + ".out"), os.path.join(home, side + ".err")
            rc, seen = run_watched(cmd, env, outp, errp, timeout=min(40, budget()))
            res[side] = (rc, read_bytes(outp), read_bytes(errp), seen, repdir)
            if side == "plain" and (rc != 0 or b"valkmem proc test with js" not in (res[side][1] or b"")):
                return "chromium fails without the shim: exit %r, stdout %r, stderr tail %r" % (
                    rc, res[side][1][-300:], res[side][2][-600:])
        (prc, pout, _, _, _), (src, sout, serr, seen, repdir) = res["plain"], res["shim"]
        what = "chromium --dump-dom (%s)" % tag
        check(src == prc, "%s: exit status without the shim %r, with it %r (stderr tail: %r)" % (what, prc, src, serr[-1500:]))
        check(pout == sout, "%s: stdout differs\n  without: %r\n  with:    %r" % (what, pout, sout))
        chrome = {pid for pid, exe in seen.items() if "chromium" in os.path.basename(exe) or "chrome" in exe}
        check(len(chrome) >= 3, "%s: at least 3 chromium processes seen running under the shim: %s" % (what, sorted(chrome)))
        deadline = time.monotonic() + REPORT_WAIT_S
        while time.monotonic() < deadline and not all(
                os.path.exists(os.path.join(repdir, "r-%d.json" % pid)) for pid in chrome):
            time.sleep(0.2)
        names = sorted(n for n in os.listdir(repdir) if n.endswith(".json"))  # not a report being written (.tmp.PID)
        missing = sorted(pid for pid in chrome if "r-%d.json" % pid not in names)
        if as_user and missing:
            # Processes that Chromium forks after its sandbox engages (a
            # chroot, new namespaces) cannot reach the agent's socket, and
            # an agent running as that user has no right to adopt them
            # (/proc/PID/map_files needs CAP_SYS_ADMIN; proc_sandbox_adopt
            # tests adoption where it is allowed). README: "Sandboxes".
            print("NOTE: %s: %d sandboxed process(es) without a report (an unprivileged agent cannot adopt them): %s"
                  % (what, len(missing), missing))
        else:
            check(not missing, "%s: chromium processes without a report after %d s: %s (reports: %s)"
                  % (what, REPORT_WAIT_S, missing, names))
        n_chrome_reports, no_end = 0, []
        for name in names:
            # A process may still be finishing (crashpad's handler outlives
            # the browser by a moment): wait for its final report.
            r, found = final_report(os.path.join(repdir, name), max(1.0, deadline - time.monotonic()))
            if r is None:
                try:
                    r = load(os.path.join(repdir, name))
                except (OSError, ValueError) as e:
                    fail("%s: report %s unreadable: %s (%s)" % (what, name, e, found))
                    continue
            check_eq(name, "r-%s.json" % r.get("pid"), "%s: a report is named by the pid that wrote it" % what)
            if "end" not in r:
                no_end.append("%s (%s)" % (name, r.get("program")))
            if "chrom" in str(r.get("program")) or "chrom" in " ".join(map(str, r.get("argv", [])[:1])):
                n_chrome_reports += 1
        check(not no_end, "%s: reports without \"end\": %s" % (what, ", ".join(no_end)))
        check(n_chrome_reports >= 3, "%s: %d chromium reports, want >= 3 (%d chromium processes seen)"
              % (what, n_chrome_reports, len(chrome)))
        return None

    why = one("no-sandbox", sandbox=False, as_user=False)
    if why:
        fail(why)
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("SKIP (sandbox half): needs root and setpriv to run chromium as uid 65534")
        return
    probe = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "test", "-r", LIB], base_env())
    if probe.rc != 0:
        print("SKIP (sandbox half): uid 65534 cannot read %s" % LIB)
        return
    why = one("sandbox-uid65534", sandbox=True, as_user=True)
    if why:
        print("SKIP (sandbox half):", why)


def case_sandbox_adopt():
    """A child forked after its parent cut itself off from the agent (a
    mount namespace that hides the agent's socket and the valkmem
    executable, as a sandbox's chroot does) cannot hand its segment over;
    the agent adopts it, and its report is exact."""
    if os.geteuid() != 0:
        skip("adoption reads /proc/PID/map_files, which needs CAP_SYS_ADMIN")
    counts = {}
    for k in (0, 400):
        tmpdir = mkdir("tmp-%d" % k)
        repdir = mkdir("rep-%d" % k)
        env = base_env(LD_PRELOAD=LIB, TMPDIR=tmpdir, VALKMEM_HTTP="0",
                       VALKMEM_REPORT=os.path.join(repdir, "r-%p.json"))
        sockdir = os.path.join(tmpdir, "valkmem-%d" % os.getuid())
        r = run([os.path.join(BINDIR, "proc_jail"), str(k), sockdir, os.path.dirname(os.path.abspath(CLI))], env)
        if r.rc == 77:
            skip("the kernel refuses a mount namespace here")
        check_eq(r.rc, 0, "proc_jail %d exit status (stderr %r)" % (k, r.err[-500:]))
        m = re.search(rb"child (\d+)", r.out or b"")
        if not m:
            fail("proc_jail %d printed no child pid: %r" % (k, r.out))
            return
        child = int(m.group(1))
        path = os.path.join(repdir, "r-%d.json" % child)
        rep, _found = final_report(path, REPORT_WAIT_S)
        if rep is None:
            fail("the jailed child %d has no report after %d s (reports: %s)" % (child, REPORT_WAIT_S, os.listdir(repdir)))
            return
        check_eq((rep.get("end") or {}).get("kind"), "exit", "the jailed child's end")
        counts[k] = (rep["totals"]["alloc_count"], rep["live"]["count"])
    if len(counts) == 2:
        check_eq(counts[400][0] - counts[0][0], 400, "allocations planted in the jailed child")
        check_eq(counts[400][1] - counts[0][1], 400, "live blocks planted in the jailed child")


def case_attach():
    """VALKMEM_AGENT=0: the recorder counts with no agent at all (one
    thread, no child); `valkmem attach PID` later serves the process and
    writes its report, with counts exact since it started."""
    if os.geteuid() != 0:
        skip("attach opens /proc/PID/map_files, which needs root or CAP_CHECKPOINT_RESTORE")
    counts = {}
    for k in (0, 300):
        rep = os.path.join(TMP, "attach-%d.json" % k)
        env = base_env(LD_PRELOAD=LIB, VALKMEM_AGENT="0", VALKMEM_REPORT=rep)
        prog = subprocess.Popen([os.path.join(BINDIR, "proc_attachee"), str(k)], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            line = prog.stdout.readline()
            check_eq(line, b"ready\n", "the program started")
            tasks = os.listdir("/proc/%d/task" % prog.pid)
            check_eq(len(tasks), 1, "VALKMEM_AGENT=0: one thread")
            kids = open("/proc/%d/task/%d/children" % (prog.pid, prog.pid)).read().split()
            check_eq(kids, [], "VALKMEM_AGENT=0: no child")
            att = subprocess.Popen([CLI, "attach", str(prog.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=base_env(), start_new_session=True)
            deadline = time.monotonic() + 20
            err = b""
            while time.monotonic() < deadline and b"dashboard for" not in err:
                r, _, _ = select.select([att.stderr], [], [], 0.5)
                if r:
                    chunk = os.read(att.stderr.fileno(), 4096)
                    if not chunk:
                        break
                    err += chunk
            check(b"dashboard for proc_attachee (pid %d)" % prog.pid in err, "attach prints the URL: %r" % err)
            prog.stdin.write(b"x\n")
            prog.stdin.flush()
            check_eq(prog.wait(timeout=20), 0, "the program's exit status")
            try:
                att.wait(timeout=20)
            except subprocess.TimeoutExpired:
                att.kill()
                fail("attach did not end with its process")
            r, found = final_report(rep, REPORT_WAIT_S)
            if r is None:
                fail("attach %d: no final report (%s)" % (k, found))
                continue
            check_eq(r.get("end"), {"kind": "exit", "code": 0}, "end")
            counts[k] = (r["totals"]["alloc_count"], r["live"]["count"])
        finally:
            if prog.poll() is None:
                prog.kill()
    if len(counts) == 2:
        check_eq(counts[300][0] - counts[0][0], 300, "allocations since start, counted before the agent came")
        check_eq(counts[300][1] - counts[0][1], 300, "live blocks")


def http_get(url, timeout=10, raw_lines=0):
    """(status, body) of a GET on 127.0.0.1; raw_lines > 0 reads that many
    lines of a stream (SSE) instead of the whole body."""
    import http.client, urllib.parse
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    c.request("GET", u.path + ("?" + u.query if u.query else ""))
    r = c.getresponse()
    if raw_lines:
        lines = [r.fp.readline() for _ in range(raw_lines)]
        c.close()
        return r.status, b"".join(lines)
    body = r.read()
    c.close()
    return r.status, body


def case_tree_dashboard():
    """One URL for the whole tree: the root's dashboard lists the tree's
    processes and serves each one's API (and stream) under /p/PID/."""
    urlf = os.path.join(TMP, "url")
    env = base_env(LD_PRELOAD=LIB, VALKMEM_URL_FILE=urlf)
    prog = os.path.join(BINDIR, "proc_attachee")
    script = "%s 100 </dev/fifo-a >/dev/null & %s 250 </dev/fifo-b >/dev/null & wait" % (prog, prog)
    fa, fb = os.path.join(TMP, "fa"), os.path.join(TMP, "fb")
    os.mkfifo(fa)
    os.mkfifo(fb)
    script = script.replace("/dev/fifo-a", fa).replace("/dev/fifo-b", fb)
    sh = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          start_new_session=True)
    wa = wb = None
    try:
        wa, wb = open(fa, "wb"), open(fb, "wb")  # the children block on their fifo until we write
        deadline = time.monotonic() + 20
        url, procs = None, []
        while time.monotonic() < deadline:
            if url is None and os.path.exists(urlf):
                url = open(urlf).read().strip()
            if url:
                st, body = http_get(url + "api/processes")
                if st == 200:
                    d = json.loads(body)
                    procs = [p for p in d["processes"] if p["program"] == "proc_attachee" and p["state"] == "running"]
                    if len(procs) == 2 and all(p["live_bytes"] > 0 for p in procs):
                        break
            time.sleep(0.2)
        check(url is not None, "the root's URL file appeared")
        if not url:
            return
        st, body = http_get(url + "api/processes")
        check_eq(st, 200, "/api/processes")
        d = json.loads(body)
        check_eq(d.get("root"), sh.pid, "the tree's root is the shell")
        check_eq(d.get("self"), sh.pid, "the root answered")
        check_eq(len(procs), 2, "both children listed: %r" % d)
        for p in procs:
            check_eq(p["ppid"], sh.pid, "a child's parent")
            st, body = http_get(url + "p/%d/api/snapshot" % p["pid"])
            check_eq(st, 200, "/p/%d/api/snapshot" % p["pid"])
            if st == 200:
                snap = json.loads(body)
                check_eq(snap["pid"], p["pid"], "the snapshot is the child's own")
            st2, body2 = http_get(url + "api/snapshot?pid=%d" % p["pid"])
            check(st2 == 200 and json.loads(body2)["pid"] == p["pid"], "?pid= reaches the child too")
            st3, body3 = http_get(url + "p/%d/api/events" % p["pid"], raw_lines=6)
            check(st3 == 200 and b"data:" in body3 and b'"pid":%d' % p["pid"] in body3,
                  "the child's stream through the root: %r" % body3[:300])
        # the plants differ by 150 blocks of 1000 bytes: each process's own counts
        snaps = sorted((json.loads(http_get(url + "p/%d/api/snapshot" % p["pid"])[1]) for p in procs),
                       key=lambda s: s["live"]["count"])
        if len(snaps) == 2:
            check_eq(snaps[1]["live"]["count"] - snaps[0]["live"]["count"], 150, "each child's own live blocks")
        st, _ = http_get(url + "api/snapshot?pid=abc")
        check_eq(st, 400, "?pid=abc")
        st, _ = http_get(url + "api/snapshot?pid=-1")
        check_eq(st, 400, "?pid=-1")
        st, _ = http_get(url + "p/99999999/api/snapshot")
        check_eq(st, 404, "/p/99999999/")
        st, _ = http_get(url + "p/4194000/api/snapshot")
        check_eq(st, 404, "a pid not in the tree")
        st, body = http_get(url + "?pid=%d" % procs[0]["pid"]) if procs else (0, b"")
        check_eq(st, 302, "the page with ?pid= goes to /p/PID/")
    finally:
        for w in (wa, wb):
            if w:
                w.write(b"x")
                w.close()
        try:
            sh.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(sh.pid, signal.SIGKILL)
            fail("the shell did not end")


def case_report_at_exit():
    """VALKMEM_REPORT without %p is the root's report, there when the root has
    exited: also when the root exec'd another program (same pid, so it
    still waits for its report) and when it ran children (which have no
    report, so do not wait for one). Its end state (peak RSS) is read
    while the process is still there."""
    d = mkdir("atexit")
    rep = os.path.join(d, "env.json")
    argv = ["/usr/bin/env", "VKM_X=1", PROG, "exit", "3"]
    plain = run(argv, base_env())
    shim = run(argv, shim_env(VALKMEM_REPORT=rep, VALKMEM_HTTP="0"))
    same(plain, shim, "env ... exit(3)")
    if check(os.path.exists(rep), "env exec'd into the program: report %s present when it has exited" % rep):
        r = load(rep)
        check(os.path.basename((r.get("argv") or ["?"])[0]) == "proc_prog",
              "the report is the exec'd image's: argv %r" % (r.get("argv"),))
        end = r.get("end")
        check(isinstance(end, dict) and end.get("kind") == "exit" and end.get("code") == 3,
              "exec'd root: report \"end\" %r, want exit 3" % (end,))
        rss = (r.get("peak") or {}).get("rss_bytes")
        check(isinstance(rss, int) and rss > 0, "exec'd root: peak RSS read before it was gone: %r" % (r.get("peak"),))
    # bash, not dash: dash ends with _exit(), which runs no exit handler, so
    # its report comes a moment after it (README, "A report at the end").
    rep = os.path.join(d, "sh.json")
    argv = ["/bin/bash", "-c", "%s exit 0; %s exit 0; exit 4" % (PROG, PROG)]
    plain = run(argv, base_env())
    shim = run(argv, shim_env(VALKMEM_REPORT=rep, VALKMEM_HTTP="0"))
    same(plain, shim, "bash with two children")
    if check(os.path.exists(rep), "bash with children: the root's report %s present when it has exited" % rep):
        r = load(rep)
        check(os.path.basename((r.get("argv") or ["?"])[0]) == "bash", "the report is the root's: argv %r" % (r.get("argv"),))
        end = r.get("end")
        check(isinstance(end, dict) and end.get("kind") == "exit" and end.get("code") == 4,
              "bash: report \"end\" %r, want exit 4" % (end,))


def case_raw_clone():
    """A copy made by a raw clone (no CLONE_VM, so no atfork handler runs)
    must not write its parent's segment: the parent's report, in exact
    mode, is the one it has without the copy - its kept blocks still live
    (the copy freed its copies of them), none of the copy's 2000 blocks,
    and its own exit code, not the copy's exit(7). The copy's first
    request may count in the parent before a slow path notices (hot.h)."""
    d = mkdir("clone")
    prog = os.path.join(BINDIR, "proc_clone")
    reps = {}
    for mode in ("plain", "clone"):
        rep = os.path.join(d, mode + ".json")
        plain = run([prog, mode], base_env())
        shim = run([prog, mode], shim_env(VALKMEM_REPORT=rep, VALKMEM_HTTP="0", VALKMEM_SAMPLE_BYTES="1"))
        same(plain, shim, "proc_clone " + mode)
        if check(os.path.exists(rep), "%s: report present at exit" % mode):
            reps[mode] = load(rep)
    if len(reps) != 2:
        return
    a, b = reps["plain"], reps["clone"]
    end = b.get("end")
    check(isinstance(end, dict) and end.get("kind") == "exit" and end.get("code") == 0,
          "the parent's end is its own exit 0, not the copy's exit(7): %r" % (end,))
    na, nb = a["totals"]["alloc_count"], b["totals"]["alloc_count"]
    check(na <= nb <= na + 1, "the parent's allocations without the copy's 2000: %d with the copy, %d without" % (nb, na))
    fa, fb = a["totals"]["free_count"], b["totals"]["free_count"]
    check(fb == fa, "the copy's 100 frees are not the parent's: %d with the copy, %d without" % (fb, fa))

    def site(r, fn):
        for s in r.get("sites") or []:
            if any(f.get("function") == fn for f in (s.get("frames") or [])[:1]):
                return s
        return None
    k = site(b, "keep_block")
    check(k is not None and k.get("live_count") == 100,
          "keep_block still holds its 100 blocks in the parent: %r" % (k and k.get("live_count"),))
    c = site(b, "copy_block")
    check(c is None or c.get("alloc_count", 0) <= 1, "no copy_block site in the parent's report: %r" % (c and c.get("alloc_count"),))


def case_peak():
    """The live heap's peak against a peak the program planted and summed
    itself (proc_peak.c): threads hold their shares at once, then free in
    small steps between smaller allocations. Sampled mode checks the peak
    after each 64 KiB a thread frees: the mark may be low by the reported
    bound, never high. Exact mode checks at every free: with one thread
    the peak is the planted one, give or take what the C library itself
    holds (its stdio buffer, the threads' bookkeeping, a sanitizer
    runtime's tables: what is still live at exit, since the program frees
    all its own blocks)."""
    d = mkdir("peak")
    prog = os.path.join(BINDIR, "proc_peak")
    for threads, mib in ((1, 24), (4, 24)):
        for mode, sample in (("sampled", None), ("exact", "1")):
            rep = os.path.join(d, "%s-%d.json" % (mode, threads))
            extra = dict(VALKMEM_REPORT=rep, VALKMEM_HTTP="0")
            if sample:
                extra["VALKMEM_SAMPLE_BYTES"] = sample
            r = run([prog, threads, mib], shim_env(**extra), timeout=120)
            if not check(r.rc == 0 and os.path.exists(rep), "proc_peak %d %s ran: %r" % (threads, mode, r)):
                continue
            planted = int(r.out.decode().strip())
            b = load(rep)
            peak, bound = b["peak"]["live_bytes"], b["peak"]["live_error_bytes"]
            slack = 16384 + b["live"]["bytes"]
            if mode == "sampled":
                check(bound == 65536 * threads, "%s, %d thread(s): bound is a quantum a thread: %d" % (mode, threads, bound))
            else:
                check(bound == 65536 * (threads - 1), "%s, %d thread(s): bound %d" % (mode, threads, bound))
            print("%s, %d thread(s): planted %d, peak %d (%+d), bound %d, live at exit %d" %
                  (mode, threads, planted, peak, peak - planted, bound, b["live"]["bytes"]))
            check(planted - bound <= peak <= planted + slack,
                  "%s, %d thread(s): peak %d within [planted %d - bound %d, + %d]" % (mode, threads, peak, planted, bound, slack))


def case_pid1_init():
    """The first process of a PID namespace (a container's entrypoint) starts
    no agent: every orphan there is its child, and an init that waits for
    all its children would wait for the agent, which waits for it."""
    if not shutil.which("unshare"):
        print("SKIP: no unshare")
        return
    d = mkdir("pid1")
    init = os.path.join(d, "init.py")
    with open(init, "w") as f:
        f.write("""import os, sys, time
if sys.argv[1] == "fork":
    p = os.fork()
    if p == 0:
        os._exit(3)
    time.sleep(0.5)
while True:
    try:
        pid, st = os.waitpid(-1, 0)
        if sys.argv[1] == "fork" and pid == p:
            print("reaped my child", os.waitstatus_to_exitcode(st), flush=True)
    except ChildProcessError:
        print("no more children", flush=True)
        break
print("processes:", sorted(open("/proc/%s/comm" % e).read().strip() for e in os.listdir("/proc") if e.isdigit()))
""")
    rep = os.path.join(d, "r-%p.json")
    for what in ("alone", "fork"):
        argv = ["unshare", "-f", "-p", "--mount-proc", "env"]
        plain = run(argv + ["python3", init, what], base_env(), timeout=30)
        if plain.rc != 0:
            print("SKIP: unshare -p fails here even without the shim: %r" % plain)
            return
        shim = run(argv + ["LD_PRELOAD=" + LIB, "VALKMEM_REPORT=" + rep, "python3", init, what], base_env(), timeout=30)
        if what == "alone":
            same(plain, shim, "python3 as PID 1 of a new PID namespace: no child of its own appears")
        else:
            # Its forked child starts an agent of its own, which PID 1 adopts
            # and reaps once that child's report is out: it must not wait.
            check(not shim.timed_out and shim.rc == 0 and b"reaped my child 3\n" in shim.out and b"no more children" in shim.out,
                  "PID 1 that forks and then waits until no child is left ends: %r" % shim)

def case_env_no_follow():
    """VALKMEM_FOLLOW_EXEC=0: the programs the process execs run without the
    shim, and without the agent's socket in their environment either."""
    show = ["sh", "-c", "echo ${VALKMEM_AGENT_SOCK-unset}; sh -c 'echo ${VALKMEM_AGENT_SOCK-unset}'"]
    plain = run(show, base_env(VALKMEM_FOLLOW_EXEC="0"))
    check_eq(plain.out, b"unset\nunset\n", "without the shim (sanity)")
    shim = run(show, shim_env(VALKMEM_FOLLOW_EXEC="0"))
    same(plain, shim, "FOLLOW_EXEC=0: no VALKMEM_AGENT_SOCK in the program's environment or its children's")
    # Under valkmem run, which gives the command the socket.
    p = subprocess.run([CLI, "run", "--no-http", "--quiet", "--"] + show, env=base_env(VALKMEM_LIB=LIB, VALKMEM_FOLLOW_EXEC="0"),
                       capture_output=True, timeout=60)
    check_eq(p.stdout, b"unset\nunset\n", "valkmem run, FOLLOW_EXEC=0: the command does not pass the socket on")

def case_other_user():
    """Under a plain LD_PRELOAD, a process that runs as another user (setpriv
    as root) hands its segment to the tree's agent, as a process of the same
    user does: its report is written by that agent (owned by root), in
    place of setpriv's (the same pid), not by an agent of its own."""
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    leaky = os.path.join(BINDIR, "proc_leaky")
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("SKIP: needs root and setpriv")
        return
    if run(as_nobody + ["sh", "-c", 'test -x "$0" && test -r "$1"', leaky, LIB], base_env()).rc != 0:
        print("SKIP: uid 65534 cannot run %s with %s" % (leaky, LIB))
        return
    d = mkdir("otheruser")
    os.chmod(d, 0o777)  # an agent of uid 65534's own could write here too
    rep = os.path.join(d, "r-%p.json")
    plain = run(as_nobody + [leaky], base_env())
    shim = run(as_nobody + [leaky], shim_env(VALKMEM_REPORT=rep, VALKMEM_HTTP="0"))
    same(plain, shim, "setpriv to uid 65534, then a leak")
    files = [f for f in os.listdir(d) if f.endswith(".json")]
    check(len(files) == 1, "one report, for the one pid: %s" % files)
    if len(files) != 1:
        return
    path = os.path.join(d, files[0])
    r, found = final_report(path, 20)
    check(r is not None and r.get("program") == "proc_leaky" and r["live"]["bytes"] >= 4096,
          "the report is proc_leaky's, with its 4096-byte leak (%s)" % found)
    check(os.stat(path).st_uid == 0, "written by the tree's agent (root), not by an agent of uid 65534's own (owner %d)"
          % os.stat(path).st_uid)

def case_rlimit_as():
    """Under a finite RLIMIT_AS (ulimit -v) the segment is 12 MiB, not 64:
    the program can allocate about as much as without the shim."""
    import resource
    limit = 200 << 20
    fill = ("import ctypes\nlibc = ctypes.CDLL(None)\nlibc.malloc.restype = ctypes.c_void_p\nn = 0\n"
            "while libc.malloc(1 << 20):\n    n += 1\nprint(n)\n")

    def limited():
        default_signals()
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rep = os.path.join(mkdir("rlimit"), "r.json")
    plain = run(["python3", "-c", fill], base_env(), preexec=limited)
    shim = run(["python3", "-c", fill], shim_env(VALKMEM_REPORT=rep, VALKMEM_HTTP="0"), preexec=limited)
    try:
        a, b = int(plain.out), int(shim.out)
    except ValueError:
        check(False, "both runs print a count: %r / %r" % (plain, shim))
        return
    print("1 MiB blocks under RLIMIT_AS %d MiB: %d without the shim, %d with it" % (limit >> 20, a, b))
    check(a - b <= 16, "the shim takes at most 16 MiB of a limited address space (took %d MiB)" % (a - b))
    r, found = final_report(rep, 20)
    check(r is not None and r["totals"]["failed_count"] >= 1,
          "the report is written and counts the failure that ended the loop (%s)" % found)

def case_url_first():
    """On a terminal the URL line comes before the program's first output
    (the recorder waits, bounded, until the agent has said it), so a
    full-screen program draws over it instead of having it written over
    its screen."""
    import pty
    import select
    for i in range(3):
        master, slave = pty.openpty()
        p = subprocess.Popen(["sh", "-c", "echo MAIN"], stdin=slave, stdout=slave, stderr=slave,
                             env=shim_env(), start_new_session=True, preexec_fn=default_signals)
        os.close(slave)
        data = b""
        deadline = time.monotonic() + 20
        while b"MAIN" not in data and time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    data += os.read(master, 4096)
                except OSError:
                    break
        p.wait(timeout=30)
        os.close(master)
        url, main = data.find(b"valkmem: dashboard for sh"), data.find(b"MAIN")
        check(0 <= url < main, "run %d: the URL line before the program's output: %r" % (i, data[:300]))

CASES = {"peak": case_peak, "agent_replaced": case_agent_replaced, "sweep": case_sweep, "tree_dashboard": case_tree_dashboard, "attach": case_attach, "sandbox_adopt": case_sandbox_adopt, "single_thread": case_single_thread, "pthread_exit_main": case_pthread_exit_main,
         "setxid_caps": case_setxid_caps, "signals_default": case_signals_default, "cjson_host": case_cjson_host,
         "stderr_clean": case_stderr_clean, "fd_reuse": case_fd_reuse, "sigkill_report": case_sigkill_report,
         "gate_tree": case_gate_tree, "chromium": case_chromium, "report_at_exit": case_report_at_exit,
         "heap_untouched": case_heap_untouched, "agent_gone": case_agent_gone, "alloc_errno": case_alloc_errno,
         "malloc_debug": case_malloc_debug, "raw_clone": case_raw_clone, "pid1_init": case_pid1_init, "env_no_follow": case_env_no_follow, "rlimit_as": case_rlimit_as, "url_first": case_url_first, "other_user": case_other_user}
if CASE not in CASES:
    print("unknown case %r (cases: %s)" % (CASE, " ".join(CASES)), file=sys.stderr)
    sys.exit(2)
try:
    CASES[CASE]()
finally:
    if not failures:
        shutil.rmtree(TMP, ignore_errors=True)
print("proc_%s: %s" % (CASE, "ok" if not failures else "%d failure(s); files kept in %s" % (failures, TMP)))
sys.exit(1 if failures else 0)
