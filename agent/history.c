/* history.c - bounded, downsampled history rings. (stub) */
#include "agent.h"
void vkm_history_init(void) {}
void vkm_history_push(const vkm_tick_t *t, const vkm_os_t *os, const vkm_allocstats_t *a) { (void)t; (void)os; (void)a; }
cJSON *vkm_history_json(const char *range, uint64_t since_seq) { (void)range; (void)since_seq; return cJSON_CreateArray(); }
uint64_t vkm_history_bytes(void) { return 0; }
