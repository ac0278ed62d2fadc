/* objfile.h - the object-file half of the symbolizer's platform seam:
 * reading one module's function symbols and DWARF line sections from its
 * file, and listing this process's own modules. objfile_linux.c reads ELF,
 * objfile_darwin.c Mach-O (and a dSYM beside it); symbols.c does the rest
 * (sorting, lookups, DWARF line programs, the cache). Files are untrusted
 * input: every offset is bounds-checked. Memory from vkm_malloc.
 */
#ifndef VKM_OBJFILE_H
#define VKM_OBJFILE_H

#include <stddef.h>
#include <stdint.h>

#include "symbols.h"

typedef struct vkm_objsym_s {
  uint64_t value, size; /* module-relative (what the bias is added to); size 0: up to the next */
  const char *name;     /* points into the file's mapping */
  uint8_t rank;         /* lower is preferred among aliases at one address */
} vkm_objsym_t;

typedef struct vkm_objfile_s {
  void *map, *map2;          /* the file, read-only; a second file with its DWARF (a dSYM) or NULL */
  size_t map_len, map2_len;
  vkm_objsym_t *syms;        /* vkm_realloc'd, unsorted */
  size_t nsyms;
  const uint8_t *dl, *dl_str, *d_str; /* .debug_line, .debug_line_str, .debug_str (inside a map) */
  size_t dl_len, dl_str_len, d_str_len;
} vkm_objfile_t;

/* Fills *o from the file at path; o->map stays NULL when it is not an
 * object file of this platform (or cannot be read). */
void vkm_objfile_read(const char *path, vkm_objfile_t *o);
/* Unmaps and frees what vkm_objfile_read left in *o. */
void vkm_objfile_release(vkm_objfile_t *o);
/* This process's own loaded modules (tests and tools that symbolise
 * themselves), as add(path, bias, lo, hi). */
void vkm_objfile_self_modules(vkm_module_add_fn add);

/* The executable segments of the object file at path, loaded with bias:
 * seg(ctx, start, limit, file_offset) for each, page-aligned as the loader
 * maps them, and its build id in hex into id (ELF: the GNU build-id note;
 * Mach-O: LC_UUID), "" when it has none. Returns the number of segments,
 * 0 when the file is not an object file of this platform or cannot be read. */
typedef void (*vkm_objfile_seg_fn)(void *ctx, uint64_t start, uint64_t limit, uint64_t offset);
int vkm_objfile_exec_segments(const char *path, uint64_t bias, char *id, size_t id_cap, vkm_objfile_seg_fn seg,
                              void *ctx);

/* Appends one symbol to o->syms; 0, or -1 when memory ran out. */
int vkm_objfile_add(vkm_objfile_t *o, size_t *cap, uint64_t value, uint64_t size, const char *name, unsigned rank);

#endif
