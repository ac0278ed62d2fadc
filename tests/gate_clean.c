/* gate_clean.c - a clean program for the gate: everything it allocates it
 * frees, and it writes to stdout (so glibc keeps a stdio buffer until exit,
 * which the default suppressions must account for). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void work(void) {
  char *v[100];
  for (int i = 0; i < 100; i++) {
    v[i] = malloc(100 + (size_t)i);
    memset(v[i], i, 100);
  }
  for (int i = 0; i < 100; i++) free(v[i]);
}

int main(void) {
  work();
  printf("clean\n");
  return 0;
}
