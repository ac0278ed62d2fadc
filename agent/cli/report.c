/* report.c - a report file (schema valkmem.report/1, SCHEMA.md) turned into
 * the numbers the CLI compares: totals, live, peak and the sites list.
 *
 * Import is strict about shape (a section that is present must be an
 * object, a number must be a non-negative number) and lenient about
 * absence (a checkpoint or an older report may lack sections: they read as
 * 0), so a baseline from an older build still loads. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *vkm_schema_problem(const cJSON *root) {
  if (!cJSON_IsObject(root)) return "not a JSON object";
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "schema");
  if (!s) return "no \"schema\" field (not a valkmem report)";
  if (!cJSON_IsString(s)) return "\"schema\" is not a string";
  if (strncmp(s->valuestring, "valkmem.", 8) != 0) return "\"schema\" does not start with \"valkmem.\"";
  /* Another version's fields may mean other things: not read as ours. */
  static const char *const known[] = {"valkmem.report/1", "valkmem.snapshot/1", "valkmem.export/1"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(s->valuestring, known[i]) == 0) return NULL;
  return "unsupported \"schema\" (this valkmem reads valkmem.report/1, valkmem.snapshot/1 and valkmem.export/1)";
}

/* Reads obj[key] as a non-negative integer into *out. Absent: 0. */
static int get_u64(const cJSON *obj, const char *sect, const char *key, uint64_t *out, char *err,
                   size_t errlen) {
  *out = 0;
  if (!obj) return 0;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
      v->valuedouble >= 18446744073709551616.0) {
    snprintf(err, errlen, "\"%s%s%s\" is not a non-negative number", sect, sect[0] ? "." : "", key);
    return -EINVAL;
  }
  *out = (uint64_t)v->valuedouble;
  return 0;
}

static int get_section(const cJSON *root, const char *key, const cJSON **out, char *err, size_t errlen) {
  *out = NULL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsObject(v)) {
    snprintf(err, errlen, "\"%s\" is not an object", key);
    return -EINVAL;
  }
  *out = v;
  return 0;
}

/* "f1 <- f2 <- f3": the stack by function names (what survives a rebuild;
 * offsets do not). A frame without a function name is its module. */
static char *site_key(const cJSON *frames) {
  vkm_buf_t b = {0};
  const cJSON *f;
  int i = 0;
  cJSON_ArrayForEach(f, frames) {
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "function");
    const cJSON *mod = cJSON_GetObjectItemCaseSensitive(f, "module");
    const char *name = cJSON_IsString(fn) && fn->valuestring[0] ? fn->valuestring : NULL;
    if (i++) vkm_buf_put(&b, " <- ", 4);
    if (name) {
      vkm_buf_printf(&b, "%s", name);
    } else if (cJSON_IsString(mod) && mod->valuestring[0]) {
      const char *base = strrchr(mod->valuestring, '/');
      vkm_buf_printf(&b, "?(%s)", base ? base + 1 : mod->valuestring);
    } else {
      vkm_buf_put(&b, "?", 1);
    }
  }
  if (!b.p) vkm_buf_put(&b, "(no stack)", 10);
  return b.p;
}

int vkm_report_from_json(cJSON *root, vkm_report_t *r, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  r->root = root;
  if (!root) {
    snprintf(err, errlen, "no document");
    return -EINVAL;
  }
  const char *why = vkm_schema_problem(root);
  if (why) {
    snprintf(err, errlen, "%s", why);
    return -EINVAL;
  }
  r->schema = cJSON_GetObjectItemCaseSensitive(root, "schema")->valuestring;
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "state");
  r->state = cJSON_IsString(st) ? st->valuestring : NULL;
  const cJSON *totals, *live, *peak;
  if (get_section(root, "totals", &totals, err, errlen) || get_section(root, "live", &live, err, errlen) ||
      get_section(root, "peak", &peak, err, errlen))
    return -EINVAL;
  if (!totals) {
    snprintf(err, errlen, "no \"totals\" object (not a valkmem report or snapshot)");
    return -EINVAL;
  }
  if (get_u64(totals, "totals", "alloc_count", &r->alloc_count, err, errlen) ||
      get_u64(totals, "totals", "free_count", &r->free_count, err, errlen) ||
      get_u64(totals, "totals", "realloc_count", &r->realloc_count, err, errlen) ||
      get_u64(totals, "totals", "failed_count", &r->failed_count, err, errlen) ||
      get_u64(totals, "totals", "alloc_bytes", &r->alloc_bytes, err, errlen) ||
      get_u64(totals, "totals", "alloc_usable_bytes", &r->alloc_usable_bytes, err, errlen) ||
      get_u64(totals, "totals", "free_usable_bytes", &r->free_usable_bytes, err, errlen) ||
      get_u64(live, "live", "bytes", &r->live_bytes, err, errlen) ||
      get_u64(live, "live", "count", &r->live_count, err, errlen) ||
      get_u64(peak, "peak", "live_bytes", &r->peak_live_bytes, err, errlen) ||
      get_u64(peak, "peak", "live_error_bytes", &r->peak_live_error_bytes, err, errlen) ||
      get_u64(peak, "peak", "rss_bytes", &r->peak_rss_bytes, err, errlen) ||
      get_u64(root, "", "sample_bytes", &r->sample_bytes, err, errlen) ||
      get_u64(root, "", "dropped_events", &r->dropped_events, err, errlen) ||
      get_u64(root, "", "self_bytes", &r->self_bytes, err, errlen))
    return -EINVAL;
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "duration_s");
  if (!d) d = cJSON_GetObjectItemCaseSensitive(root, "uptime_s");
  if (cJSON_IsNumber(d) && isfinite(d->valuedouble)) r->duration_s = d->valuedouble;
  const cJSON *ec = cJSON_GetObjectItemCaseSensitive(root, "exit_code");
  if (cJSON_IsNumber(ec) && isfinite(ec->valuedouble)) {
    r->have_exit_code = true;
    r->exit_code = ec->valueint;
  }
  const cJSON *sites = cJSON_GetObjectItemCaseSensitive(root, "sites");
  if (!sites || cJSON_IsNull(sites)) return 0;
  if (!cJSON_IsArray(sites)) {
    snprintf(err, errlen, "\"sites\" is not an array");
    return -EINVAL;
  }
  r->have_sites = true;
  size_t n = (size_t)cJSON_GetArraySize(sites);
  r->sites = calloc(n ? n : 1, sizeof *r->sites);
  if (!r->sites) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  const cJSON *s;
  size_t i = 0;
  cJSON_ArrayForEach(s, sites) {
    vkm_site_t *site = &r->sites[i];
    char sect[32];
    snprintf(sect, sizeof sect, "sites[%zu]", i);
    if (!cJSON_IsObject(s)) {
      snprintf(err, errlen, "\"%s\" is not an object", sect);
      return -EINVAL;
    }
    const cJSON *frames = cJSON_GetObjectItemCaseSensitive(s, "frames");
    if (frames && !cJSON_IsArray(frames)) {
      snprintf(err, errlen, "\"%s.frames\" is not an array", sect);
      return -EINVAL;
    }
    const cJSON *f;
    size_t k = 0;
    cJSON_ArrayForEach(f, frames) {
      if (!cJSON_IsObject(f)) {
        snprintf(err, errlen, "\"%s.frames[%zu]\" is not an object", sect, k);
        return -EINVAL;
      }
      k++;
    }
    site->json = s;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "id");
    site->id = cJSON_IsString(id) ? id->valuestring : "";
    site->suppressed_by = -1;
    if (get_u64(s, sect, "alloc_bytes", &site->alloc_bytes, err, errlen) ||
        get_u64(s, sect, "alloc_count", &site->alloc_count, err, errlen) ||
        get_u64(s, sect, "live_bytes", &site->live_bytes, err, errlen) ||
        get_u64(s, sect, "live_count", &site->live_count, err, errlen))
      return -EINVAL;
    site->key = site_key(frames);
    i++;
    r->nsites = i;
  }
  return 0;
}

int vkm_report_load(const char *what, const char *path, vkm_report_t *r) {
  memset(r, 0, sizeof *r);
  cJSON *root = vkm_cli_json_load(what, path);
  if (!root) return -EINVAL;
  char err[256];
  int rc = vkm_report_from_json(root, r, err, sizeof err);
  if (rc < 0) {
    vkm_cli_err("malformed %s %s: %s", what, path, err);
    vkm_report_free(r);
  }
  return rc;
}

void vkm_report_free(vkm_report_t *r) {
  for (size_t i = 0; i < r->nsites; i++) free(r->sites[i].key);
  free(r->sites);
  cJSON_Delete(r->root);
  memset(r, 0, sizeof *r);
}

const char *vkm_frame_str(const cJSON *frame, char *buf, size_t len) {
  const cJSON *fn = cJSON_GetObjectItemCaseSensitive(frame, "function");
  const cJSON *mod = cJSON_GetObjectItemCaseSensitive(frame, "module");
  const cJSON *file = cJSON_GetObjectItemCaseSensitive(frame, "file");
  const cJSON *line = cJSON_GetObjectItemCaseSensitive(frame, "line");
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(frame, "offset");
  const char *m = cJSON_IsString(mod) ? mod->valuestring : "";
  const char *base = strrchr(m, '/');
  base = base ? base + 1 : m;
  size_t n = 0;
  if (cJSON_IsString(fn) && fn->valuestring[0])
    n = (size_t)snprintf(buf, len, "%s", fn->valuestring);
  else if (cJSON_IsNumber(off) && off->valuedouble >= 0 && off->valuedouble < 18446744073709551616.0)
    n = (size_t)snprintf(buf, len, "?+0x%llx", (unsigned long long)off->valuedouble);
  else
    n = (size_t)snprintf(buf, len, "?");
  if (n < len && base[0]) n += (size_t)snprintf(buf + n, len - n, " (%s)", base);
  if (n < len && cJSON_IsString(file) && file->valuestring[0]) {
    n += (size_t)snprintf(buf + n, len - n, " %s", file->valuestring);
    if (n < len && cJSON_IsNumber(line) && line->valuedouble > 0)
      snprintf(buf + n, len - n, ":%d", line->valueint);
  }
  return buf;
}
