/* runtime.c - runtime API aggregation: GC, pools, frames, evals, roots. (stub) */
#include "agent.h"
void vkm_runtime_init(void) {}
void vkm_runtime_on_event(const vkm_event_t *ev, const void *extra) { (void)ev; (void)extra; }
void vkm_runtime_tick(const vkm_tick_t *t) { (void)t; }
uint64_t vkm_runtime_gc_cycles(void) { return 0; }
void vkm_runtime_json(cJSON *obj) { (void)obj; }
void vkm_runtime_tick_json(cJSON *obj) { (void)obj; }
