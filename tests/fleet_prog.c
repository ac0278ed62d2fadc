/* fleet_prog.c - a program for the fleet tests (tests/fleet_test.py),
 * driven line by line on stdin so that every allocation happens when the
 * test says, and nothing allocates in between (the counters the test
 * compares with Prometheus's must stand still while it scrapes):
 *
 *   before N S   N blocks of S bytes from fleet_before(), kept live
 *   during N S   N blocks of S bytes from fleet_during(), kept live
 *   churn K      K malloc/free pairs of 100 bytes from fleet_churn()
 *   fork         a child that lives until stdin closes (fleet_child allocs 1 MiB first)
 *   quit
 *
 * Each command is answered with "ok\n" on stdout once it is done. The
 * functions are not static and not inlined (tests/CMakeLists.txt builds
 * test programs with -fno-inline), so a profile names them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A pause every 256 blocks: a burst of samples faster than the agent
 * drains would fill the thread's event ring (64 KiB, a few hundred
 * samples), and sampled mode drops (and counts) what does not fit; the
 * estimates the tests check would then be short by the drops. At 1 KiB
 * blocks and a 64 KiB mean that is 4 samples per 3 ms, so the agent's
 * worker would have to miss ~200 ms of drains on a loaded machine. */
static void pace(size_t i) {
  static const struct timespec nap = {0, 3 * 1000 * 1000};
  if (i % 256 == 255) nanosleep(&nap, NULL);
}

static void **kept;
static size_t nkept, capkept;

static void keep(void *p) {
  if (nkept == capkept) {
    capkept = capkept ? capkept * 2 : 1 << 16;
    kept = realloc(kept, capkept * sizeof *kept);
    if (!kept) exit(3);
  }
  kept[nkept++] = p;
}

void fleet_before(size_t n, size_t s) {
  for (size_t i = 0; i < n; i++) {
    char *p = malloc(s);
    if (!p) exit(2);
    p[0] = (char)i;
    keep(p);
    pace(i);
  }
}

void fleet_during(size_t n, size_t s) {
  for (size_t i = 0; i < n; i++) {
    char *p = malloc(s);
    if (!p) exit(2);
    p[0] = (char)i;
    keep(p);
    pace(i);
  }
}

void fleet_churn(size_t k) {
  for (size_t i = 0; i < k; i++) {
    volatile char *p = malloc(100);
    if (!p) exit(2);
    p[0] = 1;
    free((void *)p);
  }
}

void fleet_child(void) {
  for (int i = 0; i < 1024; i++) keep(malloc(1024));
}

int main(void) {
  /* Everything stdio needs, allocated before the first command. */
  static char line[256];
  setvbuf(stdout, NULL, _IOLBF, 0);
  /* Room for every block the tests keep, so that keep() never reallocs in a
   * delta's window (freeing an array allocated before it). */
  capkept = 1 << 18;
  kept = malloc(capkept * sizeof *kept);
  if (!kept) return 3;
  pid_t child = -1;
  while (fgets(line, sizeof line, stdin)) {
    size_t n = 0, s = 0;
    if (sscanf(line, "before %zu %zu", &n, &s) == 2) fleet_before(n, s);
    else if (sscanf(line, "during %zu %zu", &n, &s) == 2) fleet_during(n, s);
    else if (sscanf(line, "churn %zu", &n) == 1) fleet_churn(n);
    else if (strncmp(line, "fork", 4) == 0) {
      child = fork();
      if (child == 0) {
        fleet_child();
        printf("child %d\n", (int)getpid());
        while (fgets(line, sizeof line, stdin)) { /* until the test closes stdin */
        }
        _exit(0);
      }
      continue; /* the child answers */
    } else if (strncmp(line, "quit", 4) == 0) break;
    else {
      printf("error: %s", line);
      continue;
    }
    printf("ok\n");
  }
  if (child > 0) waitpid(child, NULL, 0);
  return 0;
}
