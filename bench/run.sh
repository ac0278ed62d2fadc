#!/bin/sh
# run.sh - builds the benchmark targets and runs bench/run.py.
# usage: bench/run.sh [BUILD_DIR] [run.py options...]
# e.g.   bench/run.sh build-bench --rounds 9 --heaptrack --selfmem 60
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
[ $# -gt 0 ] && shift
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$here/.." -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
make -C "$build" -j2 valkmem bench_storm bench_selfmem >/dev/null
exec python3 "$here/run.py" --build "$build" "$@"
