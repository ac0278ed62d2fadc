/* gate_crash.c - leaks in crash_leak(), waits for the agent's report
 * checkpoint (VALKMEM_CHECKPOINT_MS=500 under the gate), then dies of
 * SIGSEGV. */
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

int main(void) {
  crash_leak();
  struct timespec ts = {1, 500 * 1000 * 1000};
  nanosleep(&ts, NULL);
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
  return 0;
}
