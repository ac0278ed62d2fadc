/* gate_leak.c - a planted leak: leaky_put() keeps N blocks of 1000 bytes
 * (N = argv[1], default 10) that nothing frees; everything else is freed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *keep[4096];

void leaky_put(int i) {
  keep[i] = malloc(1000);
  memset(keep[i], 1, 1000);
}

static void churn(void) {
  for (int i = 0; i < 100; i++) free(malloc(64));
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10;
  if (n > 4096) n = 4096;
  churn();
  for (int i = 0; i < n; i++) leaky_put(i);
  printf("leaked %d blocks\n", n);
  return 0;
}
