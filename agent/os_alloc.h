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

/* Rss of the heap and anonymous mappings at the last smaps breakdown (0
 * when none was taken). */
uint64_t vkm_os_heap_rss(void);

#endif
