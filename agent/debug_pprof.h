/* debug_pprof.h - Go's net/http/pprof contract on the agent: the heap
 * profile's buckets (heapprof.c) and the /debug/pprof/ endpoints
 * (debug_pprof.c) that Parca, Pyroscope and Grafana Alloy scrape.
 */
#ifndef VKM_DEBUG_PPROF_H
#define VKM_DEBUG_PPROF_H

#include "agent.h"
#include "http_parse.h"
#include "symbols.h"

/* ---- buckets (heapprof.c) ---- */
#define VKM_HBUCKET_MIXED UINT64_MAX /* size of a site's bucket for sizes that found no room */
typedef struct vkm_hbucket_s {
  uint32_t site;          /* sites.c's index */
  uint64_t size;          /* requested bytes, or VKM_HBUCKET_MIXED */
  uint64_t allocs, frees; /* raw samples (every allocation in exact mode) */
  uint64_t alloc_bytes, free_bytes;
} vkm_hbucket_t;

void vkm_heapprof_alloc(uint32_t site, uint64_t size);
void vkm_heapprof_free(uint32_t site, uint64_t size);
void vkm_heapprof_reset(void);
/* Every bucket, in creation order: an index stays the same bucket until a
 * reset, which changes *generation. */
const vkm_hbucket_t *vkm_heapprof_buckets(size_t *n, uint64_t *generation);

/* sites.c: site idx's frames as shown (allocator frames trimmed), leaf
 * first: symbols and return addresses. The count; 0 for an unknown site. */
unsigned vkm_sites_frames(uint32_t idx, const vkm_sym_t **syms, const uintptr_t **pcs);

/* ---- endpoints (debug_pprof.c) ---- */
#define VKM_DBG_MAX_SECONDS 300 /* ?seconds= bound: a delta holds a client slot that long */

struct vkm_dbg_pending_s;
typedef struct vkm_dbg_resp_s {
  int status;
  const char *ctype;
  char *body;                 /* vkm_malloc'd (the caller frees), or NULL */
  size_t len;
  char headers[192];          /* extra header lines, each ending in CRLF */
  unsigned defer_ms;          /* > 0: nothing to send yet; after this long call vkm_dbg_pprof_finish */
  struct vkm_dbg_pending_s *pending;
} vkm_dbg_resp_t;

/* Answers GET path (which starts with /debug/pprof) with query. */
void vkm_dbg_pprof_serve(vkm_span_t path, vkm_span_t query, vkm_dbg_resp_t *r);
/* The delta profile a deferred answer was waiting for, now (early when the
 * process ended). Frees p. */
void vkm_dbg_pprof_finish(struct vkm_dbg_pending_s *p, vkm_dbg_resp_t *r);
void vkm_dbg_pprof_cancel(struct vkm_dbg_pending_s *p);

#endif
