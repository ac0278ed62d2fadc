/* proc_seq.c - runs each argument as a program (no arguments) in turn, the
 * way `sh -c 'a; b; c'` does, but allocating nothing, so that a gate over the
 * whole tree has only the children to blame. Exits with the first non-zero
 * status (128 + N for a signal), else 0. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    pid_t pid = fork();
    if (pid < 0) return 125;
    if (pid == 0) {
      char *args[] = {argv[i], NULL};
      execv(argv[i], args);
      _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    int r = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r && !rc) rc = r;
  }
  return rc;
}
