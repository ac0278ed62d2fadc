/* os_linux.c - process memory from /proc. (stub) */
#include "agent.h"
#include <string.h>
void vkm_os_sample(vkm_os_t *os, uint64_t now_ns, int force_smaps) { (void)now_ns; (void)force_smaps; memset(os, 0, sizeof *os); }
void vkm_os_json(const vkm_os_t *os, cJSON *obj) { (void)os; (void)obj; }
