/* allocstats.c - what the application's allocator holds, uses and wastes,
 * seen from outside the process.
 *
 * The agent is not in the process, so the allocator's own statistics
 * (mallinfo2, mi_process_info) are out of reach. What it has: the exact
 * live heap (usable bytes, from the counters) and the memory the heap
 * occupies (Rss of [heap] plus anonymous mappings, from the last smaps
 * breakdown). held = that Rss, in_use = the live heap, free_held = the
 * difference: an upper bound of what the allocator keeps without using
 * (anonymous mappings also hold thread stacks and the program's own
 * mmaps). source says which allocator the recorder found behind it.
 *
 * fragmentation = free_held / held * 100; warning at 25 %.
 */
#include "agent.h"
#include "os_alloc.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define FRAG_WARN_PCT 25.0

void vkm_allocstats_sample(vkm_allocstats_t *a, const vkm_tick_t *t, const char *alloc) {
  memset(a, 0, sizeof *a);
  a->source = "none";
  if (!alloc) alloc = "";
  /* jemalloc, tcmalloc: their arenas and caches are not ours to guess. */
  if (strcmp(alloc, "glibc") != 0 && strcmp(alloc, "mimalloc") != 0) return;
  a->source = strcmp(alloc, "glibc") == 0 ? "glibc" : "mimalloc";
  uint64_t live = (t && t->live_bytes > 0) ? (uint64_t)t->live_bytes : 0;
  uint64_t held = vkm_os_heap_rss();
  if (!t || !held) return;
  /* The program's own anonymous mmaps are counted by the recorder's mmap
   * wrapper (the allocator's internal ones are not): they are not heap. */
  uint64_t own = t->c.mmap_bytes > t->c.munmap_bytes ? t->c.mmap_bytes - t->c.munmap_bytes : 0;
  held = held > own ? held - own : 0;
  a->held = held > live ? held : live;
  a->in_use = live;
  a->free_held = a->held - a->in_use;
  if (a->held) {
    a->frag_pct = (double)a->free_held * 100.0 / (double)a->held;
    a->frag_warn = a->frag_pct >= FRAG_WARN_PCT;
  }
}

void vkm_allocstats_json(const vkm_allocstats_t *a, cJSON *obj) {
  cJSON *o = cJSON_AddObjectToObject(obj, "allocator");
  if (!o) return;
  cJSON_AddStringToObject(o, "source", a->source ? a->source : "none");
  cJSON_AddNumberToObject(o, "held", (double)a->held);
  cJSON_AddNumberToObject(o, "in_use", (double)a->in_use);
  cJSON_AddNumberToObject(o, "free_held", (double)a->free_held);
  cJSON_AddNumberToObject(o, "frag_pct", a->frag_pct);
  cJSON_AddBoolToObject(o, "frag_warn", a->frag_warn != 0);
}
