/* proc_attachee.c - a program for `valkmem attach`: plants K blocks of
 * 1000 bytes (never freed), says "ready", and exits once a line arrives
 * on stdin. usage: proc_attachee K */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  int k = argc > 1 ? atoi(argv[1]) : 0;
  for (int i = 0; i < k; i++) {
    void *volatile p = malloc(1000);
    (void)p;
  }
  printf("ready\n");
  fflush(stdout);
  char b[8];
  return read(0, b, 1) < 0;
}
