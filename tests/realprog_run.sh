#!/bin/bash
# realprog_run.sh - runs one real program without and with the shim and
# checks that valkmem is invisible to it: byte-identical stdout, the same exit
# code, no "valkmem: error" on stderr, and every report it leaves parses as
# JSON (schema valkmem.report/1) with a non-zero totals.alloc_count for the
# process the harness started.
#
# usage: realprog_run.sh LIB MODE CASE SRCDIR PYTHON
#   MODE: sampled (default sampling) | exact (VALKMEM_SAMPLE_BYTES=1)
#   CASE: bash | python | sqlite | git | perl | pipeline | gcc | node | java | cpython
# Both runs use the same working directory path (recreated in between) so
# that nothing that depends on the path can differ.
set -u
lib=$1 mode=$2 case=$3 src=$4 py=$5
fail() { echo "realprog $case/$mode: FAIL: $*" >&2; exit 1; }
[ -f "$lib" ] || fail "$lib: no such library"

work=$(mktemp -d /tmp/vkm-realprog-XXXXXX) || fail "mktemp"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/reports" "$work/home"

# A deterministic environment for both runs.
export LC_ALL=C TZ=UTC HOME="$work/home" PYTHONHASHSEED=0 PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0
export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=valkmem GIT_AUTHOR_EMAIL=valkmem@example.invalid
export GIT_COMMITTER_NAME=valkmem GIT_COMMITTER_EMAIL=valkmem@example.invalid
export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
unset LD_PRELOAD VALKMEM_REPORT

case $case in
  bash) cmd=(bash "$src/realprog_script.sh") ;;
  python) cmd=("$py" "$src/realprog_threads.py") ;;
  sqlite) cmd=(sqlite3 test.db ".read $src/realprog_workload.sql") ;;
  git) cmd=(bash "$src/realprog_git.sh") ;;
  perl) cmd=(perl "$src/realprog_script.pl") ;;
  pipeline) cmd=(bash "$src/realprog_pipeline.sh") ;;
  gcc) cmd=(bash "$src/realprog_gcc.sh" "$src/realprog_hello.c") ;;
  node) cmd=(node "$src/realprog_node.js") ;;
  java) cmd=(bash "$src/realprog_java.sh") ;;
  cpython) cmd=(bash "$src/realprog_cpython.sh" "$py") ;;
  *) fail "unknown case" ;;
esac
case $mode in
  sampled) shim_env=() ;;
  exact) shim_env=(VALKMEM_SAMPLE_BYTES=1) ;;
  *) fail "unknown mode" ;;
esac

# run NAME [env assignments...]: runs the case in $work/w, stdout to
# $work/NAME.out, stderr to $work/NAME.err; sets rc. timeout(1) stays outside
# the shim; the small bash in between writes its pid, which the command keeps
# (exec env ... exec cmd), so the harness knows which report is the command's.
run() {
  local name=$1; shift
  rm -rf "$work/w" && mkdir "$work/w" || fail "mkdir"
  (cd "$work/w" && exec timeout -k 5 240 bash -c 'echo $$ >"$0"; exec env "$@"' "$work/$name.pid" \
     "$@" "${cmd[@]}" >"$work/$name.out" 2>"$work/$name.err")
  rc=$?
}

run plain
rc_plain=$rc
[ $rc_plain -eq 124 ] && fail "timed out without the shim"
# %p gives every process in the tree its own report (children inherit the
# shim); the command's own is r-<its pid>.json.
run shim LD_PRELOAD="$lib" VALKMEM_HTTP=0 VALKMEM_REPORT="$work/reports/r-%p.json" "${shim_env[@]}"
rc_shim=$rc
[ $rc_shim -eq 124 ] && fail "timed out under the shim"

echo "realprog $case/$mode: exit codes $rc_plain (plain) $rc_shim (shim); stdout $(wc -c <"$work/plain.out") bytes"
[ $rc_plain -eq $rc_shim ] || fail "exit code $rc_shim under the shim, $rc_plain without"
if ! cmp -s "$work/plain.out" "$work/shim.out"; then
  diff "$work/plain.out" "$work/shim.out" | head -20 >&2
  fail "stdout differs"
fi
[ -s "$work/plain.out" ] || fail "no output at all (the case itself is broken)"
if grep -q 'valkmem: error' "$work/shim.err"; then
  grep 'valkmem: error' "$work/shim.err" | head -5 >&2
  fail "the shim reported an error"
fi

"$py" - "$work/reports" "$case" "$(cat "$work/shim.pid")" <<'EOF' || fail "report check"
import json, os, sys
d, case, top_pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
reports = {}
for name in sorted(os.listdir(d)):
    if not name.endswith(".json"):
        continue  # a temp file left by a process still writing is an error below
    with open(os.path.join(d, name)) as f:
        try:
            r = json.load(f)
        except ValueError as e:
            sys.exit("%s: not JSON: %s" % (name, e))
    if r.get("schema") != "valkmem.report/1":
        sys.exit("%s: schema %r" % (name, r.get("schema")))
    reports[r.get("pid")] = r
leftovers = [n for n in os.listdir(d) if not n.endswith(".json")]
if leftovers:
    sys.exit("unfinished report files: %s" % leftovers)
if not reports:
    sys.exit("no report written")
counts = []
for r in reports.values():
    t = r.get("totals") or {}
    for k in ("alloc_count", "free_count", "alloc_bytes"):
        if not isinstance(t.get(k), int) or t[k] < 0:
            sys.exit("pid %s: totals.%s = %r" % (r.get("pid"), k, t.get(k)))
    counts.append((os.path.basename((r.get("argv") or ["?"])[0]), t["alloc_count"]))
first = reports.get(top_pid)
if first is None:
    sys.exit("no report from the command itself (pid %d); have %s" % (top_pid, sorted(reports)))
if first["totals"]["alloc_count"] <= 0:
    sys.exit("the command's report (pid %s, %s) has alloc_count 0" % (first.get("pid"), first.get("argv")))
print("realprog %s: %d report(s); %s" % (case, len(reports),
      ", ".join("%s=%d" % c for c in counts[:12]) + (" ..." if len(counts) > 12 else "")))
EOF
echo "realprog $case/$mode: ok"
