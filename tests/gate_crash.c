/* gate_crash.c - leaks in crash_leak(), waits 1.5 s, then dies of
 * SIGSEGV (its worker writes the report from the segment). With the argument "badfree": frees a pointer 8 bytes into a
 * block instead, which glibc answers with an abort (the recorder has
 * counted whatever the word before it held as a size by then). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *keep[16];

void crash_leak(void) {
  for (int i = 0; i < 16; i++) {
    keep[i] = malloc(4096);
    memset(keep[i], 3, 4096);
  }
}

int main(int argc, char **argv) {
  crash_leak();
  if (argc > 1 && strcmp(argv[1], "badfree") == 0) {
    char *p = malloc(100);
    memset(p, 0, 100);
    free(p + 8);
  }
  struct timespec ts = {1, 500 * 1000 * 1000};
  nanosleep(&ts, NULL);
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
  return 0;
}
