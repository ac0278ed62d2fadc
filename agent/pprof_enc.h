/* pprof_enc.h - the small encoders behind pprof.c, shared with the
 * Go-compatible endpoints (debug_pprof.c): a growable byte buffer, the few
 * protobuf wire forms profile.proto needs, string interning, and gzip with
 * stored deflate blocks. No agent state: memory from vkm_malloc/vkm_free.
 */
#ifndef VKM_PPROF_ENC_H
#define VKM_PPROF_ENC_H

#include <stddef.h>
#include <stdint.h>

typedef struct vkm_pbuf_s {
  unsigned char *p;
  size_t n, cap;
  int err; /* sticky: -ENOMEM after a failed growth */
} vkm_pbuf_t;

void vkm_pbuf_put(vkm_pbuf_t *b, const void *src, size_t len);
void vkm_pbuf_free(vkm_pbuf_t *b);

void vkm_pb_varint(vkm_pbuf_t *b, uint64_t v);
void vkm_pb_uint(vkm_pbuf_t *b, unsigned field, uint64_t v);                   /* wire type 0 */
void vkm_pb_bytes(vkm_pbuf_t *b, unsigned field, const void *p, size_t len);   /* wire type 2 */
/* Appends a finished sub-message as field `field` and empties sub for reuse. */
void vkm_pb_msg(vkm_pbuf_t *b, unsigned field, vkm_pbuf_t *sub);

/* Strings -> ids 1, 2, ... in insertion order (open addressing, FNV-1a). */
typedef struct vkm_intern_s {
  char **keys;   /* owned copies */
  uint64_t *ids; /* 0 = empty slot */
  size_t cap, n;
} vkm_intern_t;
/* The id of key, adding it if new (*added says which; may be NULL); 0 on
 * out-of-memory. */
uint64_t vkm_intern(vkm_intern_t *t, const char *key, int *added);
void vkm_intern_free(vkm_intern_t *t);

/* The tables a profile.proto is built from, shared by both writers:
 * interned strings, functions and locations, and their encoded messages
 * (string_table entries in id order, Function and Location messages).
 * tmp and tmp2 are scratch for sub-messages; err is sticky. */
typedef struct vkm_pptab_s {
  vkm_intern_t strs, funcs, locs;
  vkm_pbuf_t strtab, funcs_pb, locs_pb, tmp, tmp2;
  int err;
} vkm_pptab_t;
/* The string table index of s (0 for NULL or ""). */
uint64_t vkm_pp_str(vkm_pptab_t *t, const char *s);
/* The id of the Function (name, file), adding its message if new (uses
 * tmp2); 0 on out-of-memory. */
uint64_t vkm_pp_func(vkm_pptab_t *t, const char *name, const char *file);
/* The first error any table met, or 0. */
int vkm_pptab_err(const vkm_pptab_t *t);
void vkm_pptab_free(vkm_pptab_t *t);

/* Appends a gzip member holding p[0..n) in stored deflate blocks. */
void vkm_gzip_stored(vkm_pbuf_t *out, const unsigned char *p, size_t n);

#endif
