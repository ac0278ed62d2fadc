/* gate_allocs.c - exact planted counts: extra_allocs() does K = argv[1]
 * malloc/free pairs of 32 bytes; peak_block() holds one block of P =
 * argv[2] bytes for a moment. Exit code argv[3] (default 0). */
#include <stdlib.h>
#include <string.h>

void extra_allocs(long k) {
  for (long i = 0; i < k; i++) {
    void *p = malloc(32);
    memset(p, 0, 32);
    free(p);
  }
}

void peak_block(size_t p) {
  if (!p) return;
  char *b = malloc(p);
  memset(b, 1, p);
  free(b);
}

int main(int argc, char **argv) {
  extra_allocs(argc > 1 ? atol(argv[1]) : 0);
  peak_block(argc > 2 ? (size_t)atol(argv[2]) : 0);
  return argc > 3 ? atoi(argv[3]) : 0;
}
