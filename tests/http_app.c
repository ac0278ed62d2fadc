/* http_app.c - a small program for the HTTP tests under LD_PRELOAD: it
 * allocates at a steady pace until SIGTERM (or APP_SECONDS, default 60),
 * keeps a planted leak of 100 blocks of 1000 bytes, checks its own work,
 * and prints "allocs N checksum ok" so the test can compare the agent's
 * counters with what really happened while clients misbehaved.
 * DRV_FORK=1: fork once after 1 s; the child works on for 5 s and exits,
 * so the test can see it get its own dashboard. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static void *leaked[100];

int main(void) {
  signal(SIGTERM, on_term);
  double seconds = getenv("APP_SECONDS") ? atof(getenv("APP_SECONDS")) : 60;
  struct timespec t0, now, nap = {0, 5 * 1000 * 1000};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < 100; i++) {
    leaked[i] = malloc(1000);
    memset(leaked[i], i, 1000);
  }
  uint64_t allocs = 100, sum = 0, want = 0;
  int fork_at_1s = getenv("DRV_FORK") != NULL;
  pid_t child = -1;
  for (uint64_t round = 0; !stop; round++) {
    /* 64 blocks of 64..4096 bytes, filled, summed and freed. */
    void *blk[64];
    for (int i = 0; i < 64; i++) {
      size_t n = 64u << (i % 7);
      blk[i] = malloc(n);
      if (!blk[i]) return 2;
      memset(blk[i], (int)(round + (uint64_t)i) & 0x7f, n);
      want += ((round + (uint64_t)i) & 0x7f) * n;
    }
    for (int i = 0; i < 64; i++) {
      size_t n = 64u << (i % 7);
      for (size_t k = 0; k < n; k += 64) sum += (uint64_t)((unsigned char *)blk[i])[k] * 64;
      free(blk[i]);
    }
    allocs += 64;
    nanosleep(&nap, NULL);
    clock_gettime(CLOCK_MONOTONIC, &now);
    double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
    if (fork_at_1s && child < 0 && el > 1.0) {
      fflush(stdout);
      child = fork();
      if (child == 0) {
        t0 = now;
        seconds = 5;
        fork_at_1s = 0;
      }
    }
    if (el > seconds) break;
  }
  if (child > 0) {
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
  }
  for (int i = 0; i < 100; i++)
    if (((unsigned char *)leaked[i])[999] != i) return 3;
  printf("allocs %llu checksum %s\n", (unsigned long long)allocs, sum == want ? "ok" : "BAD");
  return sum == want ? 0 : 1;
}
