/* pprof.c - exports from a report: gzip profile.proto and folded stacks. (stub) */
#include "agent.h"
#include <errno.h>
int vkm_pprof_from_report(const cJSON *report, const char *type, unsigned char **out, size_t *out_len) { (void)report; (void)type; *out = 0; *out_len = 0; return -ENOSYS; }
int vkm_folded_from_report(const cJSON *report, const char *type, char **out, size_t *out_len) { (void)report; (void)type; *out = 0; *out_len = 0; return -ENOSYS; }
