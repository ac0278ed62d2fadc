/* soak_dlib.c - the library soak_dlopen loads and unloads 1000 times.
 * Its constructor allocates a marker-A block that its destructor frees; its
 * work function allocates and frees M marker-B blocks and returns one more
 * that the caller keeps after the library is gone (a block whose sampled
 * stack points into an unmapped module). */
#include "soak.h"

static char *ctor_block;

__attribute__((constructor)) static void soak_dlib_init(void) {
  ctor_block = malloc(SOAK_MARK_A);
  if (ctor_block) ctor_block[0] = 1;
}

__attribute__((destructor)) static void soak_dlib_fini(void) {
  free(ctor_block);
  ctor_block = NULL;
}

__attribute__((visibility("default"))) void *soak_dlib_work(unsigned m) {
  if (!ctor_block) return NULL;
  for (unsigned i = 0; i < m; i++) {
    char *p = malloc(SOAK_MARK_B);
    if (!p) return NULL;
    p[i] = (char)i;
    free(p);
  }
  char *keep = malloc(SOAK_MARK_B);
  if (keep) keep[0] = 2;
  return keep;
}
