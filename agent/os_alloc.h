/* os_alloc.h - the allocator half of the agent's platform seam.
 *
 * allocstats.c is platform-free; what the platform's own allocator says
 * about itself lives next to the other OS readers (os_linux.c: glibc
 * the heap's Rss from smaps; os_darwin.c: malloc zones), chosen by CMake
 * with them.
 */
#ifndef VKM_OS_ALLOC_H
#define VKM_OS_ALLOC_H

#include "agent.h"

/* Is the allocator the application really reaches (the next malloc after
 * valkmem) the platform's own (glibc's, libsystem_malloc's)? Decided once;
 * worker. */
int vkm_os_native_malloc(void);

/* Fills a->source, held, in_use and free_held from the platform allocator.
 * Returns 0, or -ENOTSUP when the next malloc is not the platform's (a
 * preloaded jemalloc or tcmalloc) or its statistics call is missing.
 * Expensive (glibc locks every arena): callers rate-limit. Agent thread. */
int vkm_os_native_allocstats(vkm_allocstats_t *a);

/* Rss of the heap and anonymous mappings at the last smaps breakdown (0
 * when none was taken). */
uint64_t vkm_os_heap_rss(void);

#endif
