/* config.c - every VALKMEM_* environment variable, parsed in one table.
 * Read once at start-up, before any thread is tracked; nothing reads the
 * environment afterwards. Booleans accept 1/true/yes/on and 0/false/no/off;
 * unknown VALKMEM_* names are noted once (the agent says it), since a typo
 * silently ignored is a wasted run. The result is copied into the segment:
 * the agent works from the recorder's reading, not from its own.
 */
#include "hot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


vkm_config_t vkm_config = {
    .sample_bytes = 512 * 1024,
    .max_frames = 64,
    .follow_fork = true,
    .follow_exec = true,
    .http = true,
    .enabled = true,
    .listen = "127.0.0.1:0",
    .top_sites = 50,
    .tick_ms = 100,
    .checkpoint_ms = 10000,
    .agent = true,
    .fast_path = true,
};

enum opt_kind { OPT_BOOL, OPT_U64, OPT_U32, OPT_STR };

typedef struct opt_s {
  const char *name; /* after the VALKMEM_ prefix */
  enum opt_kind kind;
  void *ptr;
  size_t cap;       /* strings */
  const char *help;
} opt_t;

#define STR(field) OPT_STR, vkm_config.field, sizeof vkm_config.field
static const opt_t options[] = {
    {"SAMPLE_BYTES", OPT_U64, &vkm_config.sample_bytes, 0, "mean bytes between samples; 1 = exact, 0 = off"},
    {"MAX_FRAMES", OPT_U32, &vkm_config.max_frames, 0, "stack depth cap"},
    {"FOLLOW_FORK", OPT_BOOL, &vkm_config.follow_fork, 0, "forked children start their own agent"},
    {"FOLLOW_EXEC", OPT_BOOL, &vkm_config.follow_exec, 0, "exec'd children inherit the shim"},
    {"HTTP", OPT_BOOL, &vkm_config.http, 0, "serve the dashboard"},
    {"DISABLE", OPT_BOOL, NULL, 0, "turn tracking off"},
    {"REPORT", STR(report), "write the JSON report here at exit (%p = pid)"},
    {"LISTEN", STR(listen), "dashboard address, host:port"},
    {"TOKEN", STR(token), "bearer token; required for non-loopback"},
    {"URL_FILE", STR(url_file), "write the dashboard URL here"},
    {"ALLOCATOR", STR(allocator), "'mimalloc' forwards the app's allocations to mimalloc"},
    {"TOP_SITES", OPT_U32, &vkm_config.top_sites, 0, "sites per ranking in reports (0 = all)"},
    {"LIVE_SITES", OPT_BOOL, &vkm_config.live_sites, 0, "reports list every site holding memory, whatever TOP_SITES says"},
    {"TICK_MS", OPT_U32, &vkm_config.tick_ms, 0, "agent tick"},
    {"CHECKPOINT_MS", OPT_U32, &vkm_config.checkpoint_ms, 0, "rewrite the report this often (0 = at exit only)"},
    {"QUIET", OPT_BOOL, &vkm_config.quiet, 0, "no URL line, no warnings"},
    {"AGENT", OPT_BOOL, &vkm_config.agent, 0, "hand the segment to an agent process (0 = count only)"},
    {"FAST_PATH", OPT_BOOL, &vkm_config.fast_path, 0, "0: count glibc's calls the general way, as on a CPU without LZCNT (for tests)"},
    /* Read elsewhere, listed so they are not reported as unknown. */
    {"VIEW", OPT_STR, NULL, 0, "serve a saved report instead of live data"},
    {"AGENT_SOCK", OPT_STR, NULL, 0, "internal: the agent of this process tree"},
    {"AGENT_BIN", OPT_STR, NULL, 0, "the valkmem executable that serves as agent"},
    {"LIB", OPT_STR, NULL, 0, "the valkmem launcher: path of libvalkmem.so"},
};

static int parse_bool(const char *v, bool *out) {
  if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) {
    *out = true;
    return 0;
  }
  if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) {
    *out = false;
    return 0;
  }
  return -1;
}

/* Plain numbers with an optional k/m/g (binary) suffix: "524288", "512k", "512KiB". */
static int parse_u64(const char *v, uint64_t *out) {
  char *end;
  if (*v == '-' || *v == 0) return -1;
  int saved = errno;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  int range = errno == ERANGE; /* 99999999999999999999999 is not UINT64_MAX */
  errno = saved;
  if (end == v || range) return -1;
  uint64_t mul = 1;
  switch (*end) {
  case 'k': case 'K': mul = 1ull << 10; end++; break;
  case 'm': case 'M': mul = 1ull << 20; end++; break;
  case 'g': case 'G': mul = 1ull << 30; end++; break;
  default: break;
  }
  if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
  if (mul > 1 && (*end == 'b' || *end == 'B')) end++;
  if (*end) return -1;
  if (n > UINT64_MAX / mul) return -1;
  *out = n * mul;
  return 0;
}

void vkm_config_load(void) {
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
    const opt_t *o = &options[i];
    char name[64] = "VALKMEM_";
    strncat(name, o->name, sizeof name - 9);
    const char *v = getenv(name);
    if (!v || !o->ptr) {
      if (v && !strcmp(o->name, "DISABLE")) {
        bool off = false;
        if (parse_bool(v, &off) == 0) vkm_config.enabled = !off;
      }
      continue;
    }
    int bad = 0;
    switch (o->kind) {
    case OPT_BOOL: bad = parse_bool(v, (bool *)o->ptr); break;
    case OPT_U64: bad = parse_u64(v, (uint64_t *)o->ptr); break;
    case OPT_U32: {
      uint64_t n;
      bad = parse_u64(v, &n) || n > UINT32_MAX;
      if (!bad) *(uint32_t *)o->ptr = (uint32_t)n;
      break;
    }
    case OPT_STR:
      if (strlen(v) >= o->cap) bad = 1;
      else memcpy(o->ptr, v, strlen(v) + 1);
      break;
    }
    if (bad) vkm_seg_note("%s=%s is not valid (%s); using the default", name, v, o->help);
  }
  /* No agent: counting only, the near-zero cost that mode is for, unless
   * sampling was asked for (a later `valkmem attach` then has call sites
   * from the start). */
  if (!vkm_config.agent && !getenv("VALKMEM_SAMPLE_BYTES")) vkm_config.sample_bytes = 0;
  if (vkm_config.max_frames == 0 || vkm_config.max_frames > 256)
    vkm_seg_note("VALKMEM_MAX_FRAMES=%s is out of range (1-256); using %d", getenv("VALKMEM_MAX_FRAMES"),
                 vkm_config.max_frames ? 256 : 1);
  if (vkm_config.max_frames == 0) vkm_config.max_frames = 1;
  if (vkm_config.max_frames > 256) vkm_config.max_frames = 256;
  if (vkm_config.tick_ms < 10) vkm_seg_note("VALKMEM_TICK_MS=%s is below the minimum; using 10", getenv("VALKMEM_TICK_MS"));
  if (vkm_config.tick_ms < 10) vkm_config.tick_ms = 10;
  for (const char *r = vkm_config.report; *r; r++) { /* %p and %% only */
    if (*r != '%') continue;
    if (r[1] != 'p' && r[1] != '%') {
      if (!r[1]) vkm_seg_note("VALKMEM_REPORT=%s ends in a lone %% (%%p = pid, %%%% = %%); written as is", vkm_config.report);
      else vkm_seg_note("VALKMEM_REPORT=%s: \"%%%.1s\" is not an escape (%%p = pid, %%%% = %%); written as is",
                        vkm_config.report, r + 1);
      break;
    }
    r++;
  }
  if (!vkm_config.report[0]) vkm_config.checkpoint_ms = 0;
  vkm_config.exact = vkm_config.sample_bytes == 1;

  for (char **e = vkm_plat_environ(); e && *e; e++) {
    if (strncmp(*e, "VALKMEM_", 8)) continue;
    const char *eq = strchr(*e, '=');
    size_t len = eq ? (size_t)(eq - *e) - 8 : strlen(*e) - 8;
    int known = 0;
    for (size_t i = 0; i < sizeof options / sizeof options[0] && !known; i++)
      known = strlen(options[i].name) == len && !strncmp(options[i].name, *e + 8, len);
    if (!known) vkm_seg_note("unknown variable %.*s ignored", (int)(len + 8), *e);
  }
}
