/* proc_clone.c - a copy of the process made by a raw clone system call
 * (no CLONE_VM, no atfork handler: what sandboxes and zygotes do), for
 * tests/proc_test.py "raw_clone". The parent keeps KEEP blocks in
 * keep_block, then (mode "clone") makes the copy, which frees the parent's
 * blocks, allocates COPY blocks of its own in copy_block and calls
 * exit(7); the parent waits for it and exits 0. Mode "plain" does the
 * parent's part alone. The parent's report must be the same in both.
 *
 *   proc_clone clone|plain
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEEP 100
#define COPY 2000

static void *kept[KEEP];

__attribute__((noinline)) static void *keep_block(size_t n) {
  void *p = malloc(n);
  __asm__ volatile("" ::"r"(p) : "memory");
  return p;
}

__attribute__((noinline)) static void *copy_block(size_t n) {
  void *p = malloc(n);
  __asm__ volatile("" ::"r"(p) : "memory");
  return p;
}

int main(int argc, char **argv) {
  if (argc != 2 || (strcmp(argv[1], "clone") && strcmp(argv[1], "plain"))) {
    fprintf(stderr, "usage: proc_clone clone|plain\n");
    return 2;
  }
  for (int i = 0; i < KEEP; i++) kept[i] = keep_block(1000);
  if (!strcmp(argv[1], "clone")) {
    long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0) {
      perror("clone");
      return 1;
    }
    if (pid == 0) {
      for (int i = 0; i < KEEP; i++) free(kept[i]);
      static void *mine[COPY];
      for (int i = 0; i < COPY; i++) mine[i] = copy_block(1000);
      exit(mine[COPY - 1] ? 7 : 8);
    }
    int st = 0;
    if (waitpid((pid_t)pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 7) {
      fprintf(stderr, "proc_clone: the copy ended with status %#x\n", st);
      return 1;
    }
  }
  printf("kept %d\n", KEEP);
  return kept[0] ? 0 : 1;
}
