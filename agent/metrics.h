/* metrics.h - Prometheus text exposition (format 0.0.4) of a snapshot.
 *
 * Built only from a valkmem.snapshot/1 document (agent/SCHEMA.md), so it
 * depends on the schema and nothing else, and renders a saved snapshot as
 * well as a live one. Every series is label-free: nothing here can grow
 * with the number of sites, pools or threads.
 */
#ifndef VKM_METRICS_H
#define VKM_METRICS_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Process facts a snapshot does not hold; a negative value leaves the
 * series out. */
typedef struct vkm_metrics_extra_s {
  double cpu_seconds;  /* process_cpu_seconds_total (user + system) */
  double open_fds;     /* process_open_fds */
  double max_fds;      /* process_max_fds (soft RLIMIT_NOFILE) */
} vkm_metrics_extra_t;

/* Renders the exposition for `snapshot`. *out is NUL-terminated and comes
 * from vkm_malloc; the caller frees it with vkm_free. A field missing from
 * the snapshot leaves its series out rather than reporting a made-up 0.
 * Returns 0 or -ENOMEM (*out is then NULL). extra may be NULL. */
int vkm_metrics_render(const cJSON *snapshot, const vkm_metrics_extra_t *extra, char **out, size_t *out_len);

#define VKM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
