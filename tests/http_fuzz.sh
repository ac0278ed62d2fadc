#!/bin/sh
# http_fuzz.sh FUZZER WORK_DIR - runs the libFuzzer target for the
# HTTP request parser for 20 s from a seed corpus of real requests.
# Exit 77 (ctest SKIP_RETURN_CODE) when the target could not be built.
fuzzer=$1 work=$2
if [ -z "$fuzzer" ] || [ ! -x "$fuzzer" ]; then
  echo "http_fuzz: skipped: no clang with libFuzzer to build the target"
  exit 77
fi
mkdir -p "$work/corpus" || exit 1
i=0
for r in \
  'GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n' \
  'GET /api/history?range=1m&token=a%2Fb HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer x\r\n\r\n' \
  'HEAD /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' \
  'GET /api/events HTTP/1.1\r\nHost: [::1]:9\r\nLast-Event-ID: 12\r\nCookie: a=b; valkmem_token=t\r\n\r\n' \
  'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello'; do
  printf "$r" > "$work/corpus/seed$i"
  i=$((i + 1))
done
# -timeout: one input may take at most 5 s; -rss_limit_mb keeps a runaway bounded.
exec "$fuzzer" -max_total_time=20 -timeout=5 -rss_limit_mb=1024 -max_len=12000 \
  -print_final_stats=1 "$work/corpus"
