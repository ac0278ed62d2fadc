#!/bin/bash
# realprog_script.sh - a bash script that exercises the shell's own
# allocations: functions, indexed and associative arrays, string surgery,
# command substitution, here-docs, arithmetic. Ends with exit 3 so the
# harness also checks that the exit code passes through the shim.
set -u
declare -A count
words=(alpha bravo charlie delta echo foxtrot golf hotel india juliet)
fib() { local a=0 b=1 i; for ((i = 0; i < $1; i++)); do ((b = a + b, a = b - a)); done; echo "$a"; }
for ((i = 0; i < 3000; i++)); do
  w=${words[i % ${#words[@]}]}
  key="$w-$((i % 37))"
  count[$key]=$(( ${count[$key]:-0} + i ))
  s+="${w:0:2}"
done
echo "keys: ${#count[@]} len: ${#s}"
for k in $(printf '%s\n' "${!count[@]}" | sort | head -5); do echo "$k=${count[$k]}"; done
echo "fib(80)=$(fib 80)"
upper=${s^^}; echo "${upper:100:40}"
rev=""; for ((i = ${#words[@]} - 1; i >= 0; i--)); do rev+="${words[i]} "; done; echo "$rev"
arr=(); for ((i = 0; i < 20000; i++)); do arr+=("item$i"); done; echo "arr: ${#arr[@]} ${arr[12345]}"
unset 'arr[5]'; echo "after unset: ${#arr[@]}"
cat <<DOC | while read -r a b; do echo "$b $a"; done
one 1
two 2
three 3
DOC
x=$( (for i in {1..50}; do echo "$i"; done) | paste -sd+ ); echo "sum $x = $((x))"
printf '%05d|%-8s|%x\n' 42 bash 48879
exit 3
