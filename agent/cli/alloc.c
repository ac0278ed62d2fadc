/* alloc.c - vkm_malloc & co. for the CLI.
 *
 * Agent modules linked into the `valkmem` executable (pprof.c) allocate
 * through vkm_malloc, which inside libvalkmem.so is mimalloc. The CLI is an
 * ordinary, unpreloaded program, so plain libc is the right heap here. */
#include "vkm.h"

#include <stdlib.h>
#include <string.h>

void *vkm_malloc(size_t n) { return malloc(n); }
void *vkm_calloc(size_t n, size_t m) { return calloc(n, m); }
void *vkm_realloc(void *p, size_t n) { return realloc(p, n); }
void vkm_free(void *p) { free(p); }
char *vkm_strdup(const char *s) { return s ? strdup(s) : NULL; }
