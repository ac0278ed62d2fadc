/* gate_sites.c - more call sites than a report's top 50, for the gate's
 * reduced reports (VALKMEM_LIVE_SITES):
 *   - 60 sites that each leak one block of 10000 bytes (leak_at at each
 *     recursion depth 0..59 is a stack, so a site, of its own);
 *   - tiny_leak(): one block of 8 bytes, the last site by live bytes;
 *   - many_small(): 5000 allocations of 1 byte, all freed: the most
 *     allocations and, at 5000 bytes, fewer bytes than any leaking site.
 * The gate must still see tiny_leak (to suppress it) and name many_small
 * first by count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *keep[64];
static void *volatile sink;

__attribute__((noinline)) static void leak_at(int depth, int slot) {
  if (depth > 0) {
    leak_at(depth - 1, slot);
    __asm__ volatile("" ::: "memory"); /* not a tail call: each depth is a frame */
    return;
  }
  keep[slot] = malloc(10000);
  memset(keep[slot], 1, 10000);
}

__attribute__((noinline)) void tiny_leak(void) { keep[63] = malloc(8); }

__attribute__((noinline)) void many_small(void) {
  for (int i = 0; i < 5000; i++) {
    sink = malloc(1);
    free(sink);
  }
}

int main(void) {
  for (int d = 0; d < 60; d++) leak_at(d, d);
  tiny_leak();
  many_small();
  printf("60 sites\n");
  return 0;
}
