#!/bin/bash
# realprog_gcc.sh SRC - gcc compiling a small file (driver, cc1, as, collect2
# and ld all under the shim), then running the result.
set -eu
cp "$1" hello.c
gcc -O2 -Wall -c hello.c -o hello.o
sha256sum hello.o
gcc -O2 -Wall hello.c -o hello
./hello
gcc -E hello.c | grep -c .
gcc -O0 -S hello.c -o - | grep -c 'call'
