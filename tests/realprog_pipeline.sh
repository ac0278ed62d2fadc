#!/bin/bash
# realprog_pipeline.sh - bash pipelines with coreutils (every process in the
# pipeline runs under the shim: LD_PRELOAD is inherited).
set -eu  # no pipefail: `yes | head` ends with SIGPIPE by design
seq 1 200000 | awk '{ print ($1 * 7919) % 1000 }' | sort -n | uniq -c | sort -k1,1nr -k2,2n | head -5
seq 1 50000 | sed 's/1/one/g' | tr 'a-z' 'A-Z' | grep -c ONE
seq -w 1 3000 | paste -d, - - - | cut -d, -f2 | tail -3
printf '%s\n' banana apple cherry apple banana | sort | uniq -c | sort -rn
seq 1 100000 | sha256sum
seq 1 30000 | xargs -n 1000 echo | wc -lc
yes valkmem | head -n 10000 | md5sum
od -An -tx1 -N16 /dev/zero | tr -s ' ' | head -1
