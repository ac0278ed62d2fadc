/* forker.c - N children, each forked and exiting at once (exit(0), so
 * their exit handlers run), one after another: the cost of a forked
 * child under the shim (bench/procs.py, "start").
 * usage: bench_forker N */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100;
  for (int i = 0; i < n; i++) {
    pid_t p = fork();
    if (p == 0) exit(0);
    if (p > 0) waitpid(p, NULL, 0);
  }
  return 0;
}
