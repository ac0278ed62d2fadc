/* objfile_darwin.c - objfile.h for Mach-O: function symbols from the
 * LC_SYMTAB nlist_64 table (defined symbols in code sections, static
 * functions included unless the binary was stripped), DWARF line sections
 * from the dSYM next to the binary (path.dSYM/Contents/Resources/DWARF/
 * name, taken only when its LC_UUID is the binary's), or from the binary's
 * own __DWARF segment, and this process's modules from dyld's image list.
 * A universal (fat) file is read at the slice of this agent's own
 * architecture. Symbols' values are unslid addresses (n_value), which the
 * recorder's bias (the image's slide, interpose/darwin.c) turns into
 * runtime ones. Images that live only in the dyld shared cache (system
 * libraries since macOS 11) have no file to read: their frames keep
 * module and offset, without a name.
 * Cross-compiled and linked in CI (tests/macos_check.py), never run there.
 */
#include "objfile.h"
#include "../interpose/vkm.h"

#include <fcntl.h>
#include <mach-o/dyld.h>
#include <mach-o/fat.h>
#include <mach-o/loader.h>
#include <mach-o/nlist.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__aarch64__) || defined(__arm64__)
#define MY_CPU CPU_TYPE_ARM64
#else
#define MY_CPU CPU_TYPE_X86_64
#endif

static void *map_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat sb;
  void *map = MAP_FAILED;
  if (fstat(fd, &sb) == 0 && sb.st_size >= (off_t)sizeof(struct mach_header_64))
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return NULL;
  *len = (size_t)sb.st_size;
  return map;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* The thin 64-bit Mach-O of our architecture inside the file: itself, or
 * one slice of a fat file. NULL when none. */
static const uint8_t *thin(const uint8_t *f, size_t len, size_t *tlen) {
  uint32_t magic = be32(f);
  if (magic == FAT_MAGIC || magic == FAT_MAGIC_64) {
    size_t esz = magic == FAT_MAGIC ? 20 : 32;
    uint32_t n = be32(f + 4);
    if (n > 64 || 8 + (size_t)n * esz > len) return NULL;
    for (uint32_t i = 0; i < n; i++) {
      const uint8_t *a = f + 8 + i * esz;
      if ((int32_t)be32(a) != MY_CPU) continue;
      uint64_t off = magic == FAT_MAGIC ? be32(a + 8) : ((uint64_t)be32(a + 8) << 32 | be32(a + 12));
      uint64_t sz = magic == FAT_MAGIC ? be32(a + 12) : ((uint64_t)be32(a + 16) << 32 | be32(a + 20));
      if (off > len || sz > len - off || sz < sizeof(struct mach_header_64)) return NULL;
      *tlen = (size_t)sz;
      return thin(f + off, (size_t)sz, tlen) ? f + off : NULL;
    }
    return NULL;
  }
  const struct mach_header_64 *mh = (const struct mach_header_64 *)f;
  if (len < sizeof *mh || mh->magic != MH_MAGIC_64 || mh->cputype != MY_CPU) return NULL;
  if (mh->sizeofcmds > len - sizeof *mh) return NULL;
  *tlen = len;
  return f;
}

/* Walks the load commands, bounded by sizeofcmds. */
#define FOR_EACH_LC(mh, lc)                                                                               \
  for (const struct load_command *lc = (const struct load_command *)((mh) + 1), *end_ =                    \
           (const struct load_command *)((const uint8_t *)((mh) + 1) + (mh)->sizeofcmds);                  \
       (const uint8_t *)lc + sizeof *lc <= (const uint8_t *)end_ && lc->cmdsize >= sizeof *lc &&           \
       (const uint8_t *)lc + lc->cmdsize <= (const uint8_t *)end_;                                         \
       lc = (const struct load_command *)((const uint8_t *)lc + lc->cmdsize))

static int uuid_of(const struct mach_header_64 *mh, uint8_t out[16]) {
  FOR_EACH_LC(mh, lc) {
    if (lc->cmd == LC_UUID && lc->cmdsize >= sizeof(struct uuid_command)) {
      memcpy(out, ((const struct uuid_command *)lc)->uuid, 16);
      return 0;
    }
  }
  return -1;
}

/* The DWARF line sections of a thin image (in its __DWARF segment). */
static void dwarf_sections(vkm_objfile_t *o, const uint8_t *f, size_t len) {
  const struct mach_header_64 *mh = (const struct mach_header_64 *)f;
  FOR_EACH_LC(mh, lc) {
    if (lc->cmd != LC_SEGMENT_64 || lc->cmdsize < sizeof(struct segment_command_64)) continue;
    const struct segment_command_64 *seg = (const struct segment_command_64 *)lc;
    if (strncmp(seg->segname, "__DWARF", 16) != 0) continue;
    if (seg->nsects > (lc->cmdsize - sizeof *seg) / sizeof(struct section_64)) continue;
    const struct section_64 *sec = (const struct section_64 *)(seg + 1);
    for (uint32_t i = 0; i < seg->nsects; i++) {
      if (sec[i].offset > len || sec[i].size > len - sec[i].offset) continue;
      const uint8_t *p = f + sec[i].offset;
      if (strncmp(sec[i].sectname, "__debug_line", 16) == 0) o->dl = p, o->dl_len = sec[i].size;
      else if (strncmp(sec[i].sectname, "__debug_line_str", 16) == 0) o->dl_str = p, o->dl_str_len = sec[i].size;
      else if (strncmp(sec[i].sectname, "__debug_str", 16) == 0) o->d_str = p, o->d_str_len = sec[i].size;
    }
  }
}

void vkm_objfile_read(const char *path, vkm_objfile_t *o) {
  size_t len = 0, tlen = 0;
  uint8_t *map = map_file(path, &len);
  if (!map) return;
  const uint8_t *f = thin(map, len, &tlen);
  if (!f) {
    munmap(map, len);
    return;
  }
  o->map = map;
  o->map_len = len;
  const struct mach_header_64 *mh = (const struct mach_header_64 *)f;
  /* Section ordinals (1-based, in load-command order) that hold code. */
  uint8_t code[256] = {0};
  unsigned nsect = 0;
  const struct symtab_command *st = NULL;
  FOR_EACH_LC(mh, lc) {
    if (lc->cmd == LC_SYMTAB && lc->cmdsize >= sizeof *st) st = (const struct symtab_command *)lc;
    if (lc->cmd != LC_SEGMENT_64 || lc->cmdsize < sizeof(struct segment_command_64)) continue;
    const struct segment_command_64 *seg = (const struct segment_command_64 *)lc;
    if (seg->nsects > (lc->cmdsize - sizeof *seg) / sizeof(struct section_64)) break;
    const struct section_64 *sec = (const struct section_64 *)(seg + 1);
    for (uint32_t i = 0; i < seg->nsects && nsect < 255; i++) {
      nsect++;
      if (sec[i].flags & (S_ATTR_PURE_INSTRUCTIONS | S_ATTR_SOME_INSTRUCTIONS)) code[nsect] = 1;
    }
  }
  if (st && st->symoff <= tlen && (uint64_t)st->nsyms * sizeof(struct nlist_64) <= tlen - st->symoff &&
      st->stroff <= tlen && st->strsize <= tlen - st->stroff && st->strsize > 0) {
    const struct nlist_64 *nl = (const struct nlist_64 *)(f + st->symoff);
    const char *strs = (const char *)f + st->stroff;
    size_t cap = 0;
    for (uint32_t i = 0; i < st->nsyms; i++) {
      if (nl[i].n_type & N_STAB || (nl[i].n_type & N_TYPE) != N_SECT || !code[nl[i].n_sect]) continue;
      if (nl[i].n_value == 0 || nl[i].n_un.n_strx == 0 || nl[i].n_un.n_strx >= st->strsize) continue;
      const char *name = strs + nl[i].n_un.n_strx;
      size_t room = st->strsize - nl[i].n_un.n_strx;
      if (strnlen(name, room) == room) continue; /* not terminated inside the table */
      if (name[0] == '_') name++;                 /* C names carry one underscore in Mach-O */
      unsigned us = 0;
      while (name[us] == '_' && us < 3) us++;
      int global = (nl[i].n_type & N_EXT) && !(nl[i].n_type & N_PEXT);
      /* No sizes in nlist: a symbol reaches up to the next one. */
      if (vkm_objfile_add(o, &cap, nl[i].n_value, 0, name, (global ? 0 : 2) * 4 + us) != 0) break;
    }
  }
  /* DWARF: the dSYM of this very build, else the binary's own. */
  uint8_t uuid[16], duuid[16];
  char dsym[1200];
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t dlen = 0, dtlen = 0;
  uint8_t *dmap = NULL;
  if (uuid_of(mh, uuid) == 0 &&
      (size_t)snprintf(dsym, sizeof dsym, "%s.dSYM/Contents/Resources/DWARF/%s", path, base) < sizeof dsym)
    dmap = map_file(dsym, &dlen);
  const uint8_t *df = dmap ? thin(dmap, dlen, &dtlen) : NULL;
  if (df && uuid_of((const struct mach_header_64 *)df, duuid) == 0 && memcmp(uuid, duuid, 16) == 0) {
    o->map2 = dmap;
    o->map2_len = dlen;
    dwarf_sections(o, df, dtlen);
  } else {
    if (dmap) munmap(dmap, dlen);
    dwarf_sections(o, f, tlen);
  }
}

/* dyld's image list: the __TEXT segment's extent, the slide as the bias
 * (as the recorder publishes them, interpose/darwin.c). */
void vkm_objfile_self_modules(vkm_module_add_fn add) {
  uint32_t n = _dyld_image_count();
  for (uint32_t i = 0; i < n; i++) {
    const struct mach_header_64 *mh = (const struct mach_header_64 *)_dyld_get_image_header(i);
    const char *name = _dyld_get_image_name(i);
    intptr_t slide = _dyld_get_image_vmaddr_slide(i);
    if (!mh || !name || mh->magic != MH_MAGIC_64) continue;
    FOR_EACH_LC(mh, lc) {
      if (lc->cmd != LC_SEGMENT_64) continue;
      const struct segment_command_64 *seg = (const struct segment_command_64 *)lc;
      if (strncmp(seg->segname, SEG_TEXT, 16) != 0) continue;
      add(name, (uintptr_t)slide, (uintptr_t)(seg->vmaddr + (uint64_t)slide),
          (uintptr_t)(seg->vmaddr + (uint64_t)slide + seg->vmsize));
      break;
    }
  }
}

/* The executable segments (initprot has VM_PROT_EXECUTE: __TEXT) of our
 * architecture's image in the file, at bias (dyld's slide) plus their
 * vmaddr; file offsets count from the start of the file, a fat file's
 * slice offset included. The build id is LC_UUID in hex, as pprof reads a
 * Mach-O's. */
int vkm_objfile_exec_segments(const char *path, uint64_t bias, char *id, size_t id_cap, vkm_objfile_seg_fn seg,
                              void *ctx) {
  if (id_cap) id[0] = 0;
  size_t len = 0, tlen = 0;
  uint8_t *map = map_file(path, &len);
  if (!map) return 0;
  int nseg = 0;
  const uint8_t *f = thin(map, len, &tlen);
  if (f) {
    const struct mach_header_64 *mh = (const struct mach_header_64 *)f;
    uint8_t uuid[16];
    if (id_cap > 32 && uuid_of(mh, uuid) == 0)
      for (int i = 0; i < 16; i++) snprintf(id + 2 * i, 3, "%02x", uuid[i]);
    FOR_EACH_LC(mh, lc) {
      if (lc->cmd != LC_SEGMENT_64 || lc->cmdsize < sizeof(struct segment_command_64)) continue;
      const struct segment_command_64 *sc = (const struct segment_command_64 *)lc;
      if (!(sc->initprot & VM_PROT_EXECUTE) || sc->vmsize == 0) continue;
      seg(ctx, bias + sc->vmaddr, bias + sc->vmaddr + sc->vmsize, (uint64_t)(f - map) + sc->fileoff);
      nseg++;
    }
  }
  munmap(map, len);
  return nseg;
}
