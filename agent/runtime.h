/* runtime.h - the agent's side of the runtime API: walking the pool
 * registry that the recorder keeps in the segment (the handle layout and
 * the event payloads are in interpose/pool.h). */
#ifndef VKM_RUNTIME_H
#define VKM_RUNTIME_H

#include <stdint.h>
#include "../include/valkmem.h"
#include "../interpose/pool.h"

/* Head of the registry (newest first) in the segment, and the next handle. */
valkmem_pool_t *vkm_api_pools(void);
valkmem_pool_t *vkm_api_pool_next(const valkmem_pool_t *p);

/* Agent-side extras beyond agent.h (runtime.c). */
double vkm_runtime_gc_pause_ms_total(void);

#endif
