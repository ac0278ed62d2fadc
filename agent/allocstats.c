/* allocstats.c - allocator statistics (glibc mallinfo2, mimalloc). (stub) */
#include "agent.h"
#include <string.h>
void vkm_allocstats_sample(vkm_allocstats_t *a, uint64_t now_ns) { (void)now_ns; memset(a, 0, sizeof *a); a->source = "none"; }
void vkm_allocstats_json(const vkm_allocstats_t *a, cJSON *obj) { (void)a; (void)obj; }
