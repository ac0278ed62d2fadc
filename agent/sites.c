/* sites.c - call sites: stack interning, live heap by site, lifetimes, leak suspects. (stub, owned by the sites work) */
#include "agent.h"
void vkm_sites_init(void) {}
void vkm_sites_on_event(const vkm_event_t *ev, const void *extra) { (void)ev; (void)extra; }
void vkm_sites_tick(const vkm_tick_t *t, uint64_t gc_cycles) { (void)t; (void)gc_cycles; }
void vkm_sites_json(cJSON *obj, unsigned top) { (void)obj; (void)top; }
