/* proc_clean.c - frees everything it allocates (the gate's clean process;
 * its stdout buffer is covered by the gate's default suppressions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  char *v[50];
  for (int i = 0; i < 50; i++) {
    v[i] = malloc(64 + (size_t)i);
    memset(v[i], i, 64);
  }
  for (int i = 0; i < 50; i++) free(v[i]);
  printf("proc_clean\n");
  return 0;
}
