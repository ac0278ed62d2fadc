/* metrics.h - Prometheus text exposition (format 0.0.4) of a snapshot.
 *
 * Built only from a valkmem.snapshot/1 document (agent/SCHEMA.md), so it
 * depends on the schema and nothing else, and renders a saved snapshot as
 * well as a live one. The served process's series are label-free: nothing
 * here grows with the number of sites, pools or threads. Under a process
 * tree the valkmem_process_* families add one series per process, labelled
 * pid and program (the root's /metrics lists every running process of the
 * tree; another process's lists itself).
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

/* A process of the tree other than the served one (agent.h's tree rows). */
typedef struct vkm_metrics_proc_s {
  int pid;
  const char *program;
  double live_bytes, rss_bytes, alloc_count, free_count, alloc_bytes, free_bytes;
} vkm_metrics_proc_t;

/* The same, plus the valkmem_process_* families: the served process (from
 * the snapshot's pid, program and counters) and procs[0..n). n may be 0:
 * the families then hold the served process alone. */
int vkm_metrics_render_tree(const cJSON *snapshot, const vkm_metrics_extra_t *extra, const vkm_metrics_proc_t *procs,
                            size_t n, char **out, size_t *out_len);

#define VKM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
