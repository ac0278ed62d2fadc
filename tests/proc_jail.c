/* proc_jail.c - a process that cuts itself off from the agent before it
 * forks, as sandboxes do (Chromium's zygote chroots, then forks its
 * renderers): the parent moves into a new mount namespace where the
 * agent's socket directory is hidden under an empty tmpfs, then forks a
 * child that plants K allocations of 1000 bytes, never freed, and exits.
 * The child cannot hand its segment over; the agent adopts it.
 *
 * usage: proc_jail K DIR...  (the directories to hide: the agent's socket
 *                            directory, and where the valkmem executable is,
 *                            so that the child cannot start an agent either)
 * Prints "child PID" on stdout. Exit 0, or 77 when the kernel refuses the
 * namespace (not root), 1 on failure. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  long k = atol(argv[1]);
  if (unshare(CLONE_NEWNS) != 0) return 77;
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return 77;
  for (int i = 2; i < argc; i++)
    if (mount("tmpfs", argv[i], "tmpfs", 0, "size=64k") != 0) return 77;
  fflush(stdout);
  pid_t c = fork();
  if (c < 0) return 1;
  if (c == 0) {
    for (long i = 0; i < k; i++) {
      void *volatile p = malloc(1000);
      (void)p;
    }
    usleep(1500 * 1000); /* long enough to be adopted: the agent waits 500 ms for a hand-over first */
    _exit(0);
  }
  printf("child %d\n", (int)c);
  fflush(stdout);
  int st;
  if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) return 1;
  return 0;
}
