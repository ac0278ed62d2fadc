/* os.c - the "os" section of a snapshot, the same on every platform: the
 * readers behind the seam (os_linux.c, os_darwin.c) fill a vkm_os_t, and a
 * platform without an smaps breakdown leaves have_smaps 0 ("smaps": null). */
#include "agent.h"

void vkm_os_json(const vkm_os_t *os, cJSON *obj) {
  cJSON *o = cJSON_AddObjectToObject(obj, "os");
  if (!o) return;
  cJSON_AddNumberToObject(o, "rss", (double)os->rss);
  cJSON_AddNumberToObject(o, "vms", (double)os->vms);
  cJSON_AddNumberToObject(o, "peak_rss", (double)os->peak_rss);
  cJSON_AddNumberToObject(o, "minor_faults", (double)os->minor_faults);
  cJSON_AddNumberToObject(o, "major_faults", (double)os->major_faults);
  cJSON_AddNumberToObject(o, "threads", (double)os->threads);
  cJSON_AddNumberToObject(o, "swap", (double)os->swap);
  if (!os->have_smaps) {
    cJSON_AddNullToObject(o, "smaps");
    return;
  }
  cJSON *s = cJSON_AddObjectToObject(o, "smaps");
  if (!s) return;
  cJSON_AddNumberToObject(s, "heap", (double)os->smaps_heap);
  cJSON_AddNumberToObject(s, "anon", (double)os->smaps_anon);
  cJSON_AddNumberToObject(s, "file", (double)os->smaps_file);
  cJSON_AddNumberToObject(s, "stack", (double)os->smaps_stack);
  cJSON_AddNumberToObject(s, "other", (double)os->smaps_other);
  cJSON_AddNumberToObject(s, "at_ms", (double)os->smaps_at_ms);
}
