/* gate_grow.c - growth against a baseline: grow_work() holds 2000 blocks
 * of 1000 * S / 100 bytes (S = argv[1] percent, default 100) and frees
 * them, so S=120 allocates and peaks 20 % higher than S=100 with the same
 * number of allocations. */
#include <stdlib.h>
#include <string.h>

void grow_work(int scale) {
  static char *v[2000];
  size_t sz = (size_t)1000 * (size_t)scale / 100;
  for (int i = 0; i < 2000; i++) {
    v[i] = malloc(sz);
    memset(v[i], 2, sz);
  }
  for (int i = 0; i < 2000; i++) free(v[i]);
}

int main(int argc, char **argv) {
  grow_work(argc > 1 ? atoi(argv[1]) : 100);
  return 0;
}
