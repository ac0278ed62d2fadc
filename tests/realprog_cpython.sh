#!/bin/bash
# realprog_cpython.sh PYTHON - some of CPython's own test modules: child
# processes whose stderr must stay empty (test_json), fork from threads
# (test_fork1), select, pty, atexit and popen. (test_signal, 47 s here, is
# left to proc_signals_default, which checks KeyboardInterrupt itself.) Prints regrtest's output without its timing and exits with its
# status.
py=$1
out=$("$py" -m test test_json test_fork1 test_select test_pty test_threading_local test_atexit test_popen 2>&1)
rc=$?
# Everything but the clock: "0:00:05 load avg: 1.23 " prefixes, "passed in
# 31.2 sec" and the total duration.
printf '%s\n' "$out" | sed -E 's/^[0-9]+:[0-9]{2}:[0-9]{2} load avg: [0-9.]+ //; s/ -- (test_[a-z0-9_]+ passed) in [0-9.]+ (sec|min).*$/ -- \1/' | grep -v '^Total duration:'
exit $rc
