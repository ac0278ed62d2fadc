#!/bin/bash
# realprog_git.sh - git on a small repository created in the current
# (temporary) directory. Identity, dates and config are fixed by the harness
# (GIT_* variables, HOME) so commit ids are the same in every run.
set -eu
git init -q -b main repo
cd repo
for i in $(seq 1 30); do
  printf 'line %d of file %d\n' $(seq 1 $((i * 3))) > "f$((i % 7)).txt"
  mkdir -p "d$((i % 3))"; echo "entry $i" >> "d$((i % 3))/log.txt"
  git add -A
  git commit -q -m "commit $i"
done
git log --oneline | head -5
git rev-list --count HEAD
git branch side HEAD~10
git checkout -q side
echo "side change" > side.txt && git add side.txt && git commit -q -m "side"
git checkout -q main
git merge -q --no-edit side
git log --graph --oneline | head -8
git diff --stat HEAD~5 HEAD
git show --stat HEAD~3 | tail -3
git gc -q
git count-objects -v | grep -E '^(count|in-pack|packs)'
git fsck --no-progress 2>&1 | head -3
git ls-tree -r HEAD | sort | sha256sum
