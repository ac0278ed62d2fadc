/* pprof.c - exports from a report's "sites" array, for existing tools:
 * gzip-compressed profile.proto (go tool pprof, speedscope, ...) and
 * Brendan Gregg's folded stacks (flamegraph.pl, speedscope).
 *
 * Works from the report JSON so it serves a live report (GET /api/profile)
 * and a saved one (`valkmem export`) alike. Also compiled into the CLI,
 * which brings its own vkm_malloc/vkm_free: keep this file free of other
 * agent dependencies (cJSON and vkm_malloc/vkm_free only).
 *
 * profile.proto is written by hand (a few varint and length-delimited
 * fields), and gzip without zlib: deflate "stored" blocks, CRC-32, ISIZE.
 * The output is not smaller than the input, but it is a valid gzip stream,
 * which is what pprof consumers require, and the shim gains no dependency.
 */
#include "agent.h"
#include "pprof_enc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Growable byte buffer
 * ------------------------------------------------------------------------- */

void vkm_pbuf_put(vkm_pbuf_t *b, const void *src, size_t len) {
  if (b->err || len == 0) return;
  if (b->n + len > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + len) nc *= 2;
    unsigned char *np = vkm_malloc(nc);
    if (!np) {
      b->err = -ENOMEM;
      return;
    }
    if (b->n) memcpy(np, b->p, b->n);
    vkm_free(b->p);
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->n, src, len);
  b->n += len;
}

static void buf_byte(vkm_pbuf_t *b, unsigned char c) { vkm_pbuf_put(b, &c, 1); }
void vkm_pbuf_free(vkm_pbuf_t *b) {
  vkm_free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------------------
 * Protobuf writer: just what profile.proto needs
 * ------------------------------------------------------------------------- */
void vkm_pb_varint(vkm_pbuf_t *b, uint64_t v) {
  unsigned char tmp[10];
  int n = 0;
  do {
    tmp[n] = (unsigned char)(v & 0x7f);
    v >>= 7;
    if (v) tmp[n] |= 0x80;
    n++;
  } while (v);
  vkm_pbuf_put(b, tmp, (size_t)n);
}

void vkm_pb_uint(vkm_pbuf_t *b, unsigned field, uint64_t v) { /* wire type 0 */
  vkm_pb_varint(b, (uint64_t)field << 3);
  vkm_pb_varint(b, v);
}

void vkm_pb_bytes(vkm_pbuf_t *b, unsigned field, const void *p, size_t len) { /* wire type 2 */
  vkm_pb_varint(b, ((uint64_t)field << 3) | 2);
  vkm_pb_varint(b, len);
  vkm_pbuf_put(b, p, len);
}

/* Appends a finished sub-message and empties it for reuse. */
void vkm_pb_msg(vkm_pbuf_t *b, unsigned field, vkm_pbuf_t *sub) {
  if (sub->err) b->err = sub->err;
  vkm_pb_bytes(b, field, sub->p, sub->n);
  sub->n = 0;
}

/* ---------------------------------------------------------------------------
 * Interning: strings -> index, keys -> id. Open addressing on FNV-1a.
 * ------------------------------------------------------------------------- */

static uint64_t fnv(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  while (*s) h = (h ^ (unsigned char)*s++) * 0x100000001b3ull;
  return h;
}

/* Returns the id of key (1-based, in insertion order), adding it if new;
 * *added says which. 0 on out-of-memory. */
uint64_t vkm_intern(vkm_intern_t *t, const char *key, int *added) {
  if (added) *added = 0;
  if ((t->n + 1) * 2 > t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 256;
    char **nk = vkm_malloc(nc * sizeof *nk);
    uint64_t *ni = vkm_malloc(nc * sizeof *ni);
    if (!nk || !ni) {
      vkm_free(nk);
      vkm_free(ni);
      return 0;
    }
    memset(ni, 0, nc * sizeof *ni);
    for (size_t i = 0; i < t->cap; i++) {
      if (!t->ids[i]) continue;
      size_t j = fnv(t->keys[i]) & (nc - 1);
      while (ni[j]) j = (j + 1) & (nc - 1);
      nk[j] = t->keys[i];
      ni[j] = t->ids[i];
    }
    vkm_free(t->keys);
    vkm_free(t->ids);
    t->keys = nk;
    t->ids = ni;
    t->cap = nc;
  }
  size_t j = fnv(key) & (t->cap - 1);
  while (t->ids[j]) {
    if (strcmp(t->keys[j], key) == 0) return t->ids[j];
    j = (j + 1) & (t->cap - 1);
  }
  size_t len = strlen(key) + 1;
  char *k = vkm_malloc(len);
  if (!k) return 0;
  memcpy(k, key, len);
  t->keys[j] = k;
  t->ids[j] = ++t->n;
  if (added) *added = 1;
  return t->n;
}

void vkm_intern_free(vkm_intern_t *t) {
  for (size_t i = 0; i < t->cap; i++)
    if (t->ids[i]) vkm_free(t->keys[i]);
  vkm_free(t->keys);
  vkm_free(t->ids);
  memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------------------
 * Report access
 * ------------------------------------------------------------------------- */
static double jnum(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *jstr(const cJSON *o, const char *k, const char *dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) && v->valuestring ? v->valuestring : dflt;
}

static int64_t jint(const cJSON *o, const char *k) {
  double d = jnum(o, k);
  return d > 0 ? (int64_t)llround(d) : 0;
}

/* Which values a type selects: bit 0 alloc, bit 1 inuse. -1: unknown. */
static int type_mask(const char *type) {
  if (!type || !*type) return 3;
  if (strcmp(type, "alloc") == 0) return 1;
  if (strcmp(type, "inuse") == 0) return 2;
  return -1;
}

/* ---------------------------------------------------------------------------
 * gzip with stored deflate blocks
 * ------------------------------------------------------------------------- */
static uint32_t crc32_of(const unsigned char *p, size_t n) {
  uint32_t table[256];
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

static void put_le32(vkm_pbuf_t *b, uint32_t v) {
  unsigned char t[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
  vkm_pbuf_put(b, t, 4);
}

void vkm_gzip_stored(vkm_pbuf_t *out, const unsigned char *p, size_t n) {
  static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}; /* deflate, no flags, mtime 0, unix */
  vkm_pbuf_put(out, hdr, sizeof hdr);
  size_t off = 0;
  do { /* at least one block, final one flagged */
    size_t len = n - off > 65535 ? 65535 : n - off;
    int final = off + len == n;
    unsigned char bh[5] = {(unsigned char)(final ? 1 : 0), (unsigned char)len, (unsigned char)(len >> 8),
                           (unsigned char)~len, (unsigned char)(~len >> 8)};
    vkm_pbuf_put(out, bh, sizeof bh);
    vkm_pbuf_put(out, p + off, len);
    off += len;
  } while (off < n);
  put_le32(out, crc32_of(p, n));
  put_le32(out, (uint32_t)n); /* ISIZE: size mod 2^32 */
}

/* ---------------------------------------------------------------------------
 * profile.proto
 * ------------------------------------------------------------------------- */
enum { /* field numbers of perftools.profiles.Profile */
  P_SAMPLE_TYPE = 1, P_SAMPLE = 2, P_LOCATION = 4, P_FUNCTION = 5, P_STRING_TABLE = 6,
  P_TIME_NANOS = 9, P_DURATION_NANOS = 10, P_PERIOD_TYPE = 11, P_PERIOD = 12, P_DEFAULT_SAMPLE_TYPE = 14,
};

uint64_t vkm_pp_str(vkm_pptab_t *c, const char *s) {
  if (!s || !*s) return 0;
  int added;
  uint64_t id = vkm_intern(&c->strs, s, &added);
  if (!id) {
    c->err = -ENOMEM;
    return 0;
  }
  if (added) vkm_pb_bytes(&c->strtab, P_STRING_TABLE, s, strlen(s));
  return id;
}

uint64_t vkm_pp_func(vkm_pptab_t *c, const char *name, const char *file) {
  char key[1100];
  snprintf(key, sizeof key, "%s\x01%s", name, file ? file : "");
  int added;
  uint64_t id = vkm_intern(&c->funcs, key, &added);
  if (!id) {
    c->err = -ENOMEM;
    return 0;
  }
  if (added) {
    vkm_pb_uint(&c->tmp2, 1, id);
    vkm_pb_uint(&c->tmp2, 2, vkm_pp_str(c, name));
    vkm_pb_uint(&c->tmp2, 3, vkm_pp_str(c, name));
    if (file && *file) vkm_pb_uint(&c->tmp2, 4, vkm_pp_str(c, file));
    vkm_pb_msg(&c->funcs_pb, P_FUNCTION, &c->tmp2);
  }
  return id;
}

int vkm_pptab_err(const vkm_pptab_t *c) {
  return c->err ? c->err : c->strtab.err ? c->strtab.err : c->locs_pb.err ? c->locs_pb.err : c->funcs_pb.err;
}

void vkm_pptab_free(vkm_pptab_t *c) {
  vkm_intern_free(&c->strs);
  vkm_intern_free(&c->funcs);
  vkm_intern_free(&c->locs);
  vkm_pbuf_free(&c->strtab);
  vkm_pbuf_free(&c->funcs_pb);
  vkm_pbuf_free(&c->locs_pb);
  vkm_pbuf_free(&c->tmp);
  vkm_pbuf_free(&c->tmp2);
}

static uint64_t loc_id(vkm_pptab_t *c, const cJSON *frame) {
  const char *fn = jstr(frame, "function", "[unknown]");
  const char *mod = jstr(frame, "module", "");
  const char *file = jstr(frame, "file", "");
  uint64_t off = (uint64_t)jint(frame, "offset"), line = (uint64_t)jint(frame, "line");
  char key[1400];
  snprintf(key, sizeof key, "%s\x01%s\x01%llx\x01%s\x01%llu", fn, mod, (unsigned long long)off, file,
           (unsigned long long)line);
  int added;
  uint64_t id = vkm_intern(&c->locs, key, &added);
  if (!id) {
    c->err = -ENOMEM;
    return 0;
  }
  if (added) {
    uint64_t fid = vkm_pp_func(c, fn, file);
    vkm_pb_uint(&c->tmp, 1, id);
    if (off) vkm_pb_uint(&c->tmp, 3, off);
    vkm_pb_uint(&c->tmp2, 1, fid);
    if (line) vkm_pb_uint(&c->tmp2, 2, line);
    vkm_pb_msg(&c->tmp, 4, &c->tmp2); /* Line */
    vkm_pb_msg(&c->locs_pb, P_LOCATION, &c->tmp);
  }
  return id;
}

static void value_type(vkm_pptab_t *c, vkm_pbuf_t *out, unsigned field, const char *type, const char *unit) {
  vkm_pb_uint(&c->tmp2, 1, vkm_pp_str(c, type));
  vkm_pb_uint(&c->tmp2, 2, vkm_pp_str(c, unit));
  vkm_pb_msg(out, field, &c->tmp2);
}

int vkm_pprof_from_report(const cJSON *report, const char *type, unsigned char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  int mask = type_mask(type);
  if (mask < 0 || !report) return -EINVAL;
  vkm_pptab_t c;
  memset(&c, 0, sizeof c);
  vkm_pbuf_t head = {0}, samples = {0}, prof = {0}, gz = {0};

  /* Sample types, in the order of the values in each sample. */
  if (mask & 1) {
    value_type(&c, &head, P_SAMPLE_TYPE, "alloc_objects", "count");
    value_type(&c, &head, P_SAMPLE_TYPE, "alloc_space", "bytes");
  }
  if (mask & 2) {
    value_type(&c, &head, P_SAMPLE_TYPE, "inuse_objects", "count");
    value_type(&c, &head, P_SAMPLE_TYPE, "inuse_space", "bytes");
  }

  const cJSON *site;
  cJSON_ArrayForEach(site, cJSON_GetObjectItemCaseSensitive(report, "sites")) {
    int64_t v[4] = {jint(site, "alloc_count"), jint(site, "alloc_bytes"), jint(site, "live_count"),
                    jint(site, "live_bytes")};
    if (mask == 2 && v[2] == 0 && v[3] == 0) continue; /* nothing in use here */
    const cJSON *fr;
    vkm_pbuf_t ids = {0}, vals = {0}, sample = {0};
    cJSON_ArrayForEach(fr, cJSON_GetObjectItemCaseSensitive(site, "frames")) { /* leaf first, as pprof wants */
      uint64_t id = loc_id(&c, fr);
      vkm_pb_varint(&ids, id);
    }
    for (int i = 0; i < 4; i++)
      if (mask & (i < 2 ? 1 : 2)) vkm_pb_varint(&vals, (uint64_t)v[i]);
    vkm_pb_bytes(&sample, 1, ids.p, ids.n);  /* packed location_id */
    vkm_pb_bytes(&sample, 2, vals.p, vals.n); /* packed value */
    if (sample.err || ids.err || vals.err) c.err = -ENOMEM;
    vkm_pb_bytes(&samples, P_SAMPLE, sample.p, sample.n);
    vkm_pbuf_free(&ids);
    vkm_pbuf_free(&vals);
    vkm_pbuf_free(&sample);
  }

  /* Period: one sample per sample_bytes of allocation, on average. */
  value_type(&c, &head, P_PERIOD_TYPE, "space", "bytes");
  uint64_t dflt = vkm_pp_str(&c, mask == 1 ? "alloc_space" : "inuse_space");

  /* Profile: string 0 must be "", first in the table. */
  vkm_pb_bytes(&prof, P_STRING_TABLE, "", 0);
  vkm_pbuf_put(&prof, head.p, head.n);
  vkm_pbuf_put(&prof, samples.p, samples.n);
  vkm_pbuf_put(&prof, c.locs_pb.p, c.locs_pb.n);
  vkm_pbuf_put(&prof, c.funcs_pb.p, c.funcs_pb.n);
  vkm_pbuf_put(&prof, c.strtab.p, c.strtab.n);
  double started_ms = jnum(report, "started_at");
  double dur_s = jnum(report, "duration_s");
  if (dur_s <= 0) dur_s = jnum(report, "uptime_s");
  if (started_ms > 0) vkm_pb_uint(&prof, P_TIME_NANOS, (uint64_t)(started_ms * 1e6));
  if (dur_s > 0) vkm_pb_uint(&prof, P_DURATION_NANOS, (uint64_t)(dur_s * 1e9));
  int64_t period = jint(report, "sample_bytes");
  vkm_pb_uint(&prof, P_PERIOD, (uint64_t)(period > 0 ? period : 1));
  vkm_pb_uint(&prof, P_DEFAULT_SAMPLE_TYPE, dflt);

  int err = vkm_pptab_err(&c);
  if (!err) err = head.err ? head.err : samples.err ? samples.err : prof.err;
  if (!err) {
    vkm_gzip_stored(&gz, prof.p, prof.n);
    err = gz.err;
  }
  vkm_pptab_free(&c);
  vkm_pbuf_free(&head);
  vkm_pbuf_free(&samples);
  vkm_pbuf_free(&prof);
  if (err) {
    vkm_pbuf_free(&gz);
    return err;
  }
  *out = gz.p;
  *out_len = gz.n;
  return 0;
}

/* ---------------------------------------------------------------------------
 * Folded stacks: "root;...;leaf <bytes>" per site
 * ------------------------------------------------------------------------- */

/* A frame name may not contain the separators of the format. */
static void put_name(vkm_pbuf_t *b, const char *s) {
  for (; *s; s++) buf_byte(b, *s == ';' ? ':' : (*s == '\n' || *s == '\r') ? ' ' : (unsigned char)*s);
}

int vkm_folded_from_report(const cJSON *report, const char *type, char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  int mask = type_mask(type);
  if (mask < 0 || !report) return -EINVAL;
  /* One value per line: allocated bytes for "alloc", live bytes otherwise. */
  const char *key = mask == 1 ? "alloc_bytes" : "live_bytes";
  vkm_pbuf_t b = {0};
  const cJSON *site;
  cJSON_ArrayForEach(site, cJSON_GetObjectItemCaseSensitive(report, "sites")) {
    int64_t v = jint(site, key);
    if (v <= 0) continue;
    const cJSON *frames = cJSON_GetObjectItemCaseSensitive(site, "frames");
    int n = cJSON_GetArraySize(frames);
    if (n == 0) put_name(&b, "[unknown]");
    for (int i = n - 1; i >= 0; i--) { /* the report is leaf first */
      put_name(&b, jstr(cJSON_GetArrayItem(frames, i), "function", "[unknown]"));
      if (i) buf_byte(&b, ';');
    }
    char num[32];
    int len = snprintf(num, sizeof num, " %lld\n", (long long)v);
    vkm_pbuf_put(&b, num, (size_t)len);
  }
  buf_byte(&b, 0);
  if (b.err) {
    vkm_pbuf_free(&b);
    return -ENOMEM;
  }
  *out = (char *)b.p;
  *out_len = b.n - 1;
  return 0;
}
