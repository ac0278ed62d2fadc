/* objfile_linux.c - objfile.h for ELF: function symbols from .symtab and
 * .dynsym, DWARF line sections by name, and this process's modules from
 * dl_iterate_phdr. */
#include "objfile.h"
#include "../interpose/vkm.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Appends the function symbols of one SHT_SYMTAB/SHT_DYNSYM section. All
 * offsets are bounds-checked against the file: the file is untrusted. */
static void add_symtab(vkm_objfile_t *o, const unsigned char *f, size_t len, const Elf64_Shdr *sh,
                       const Elf64_Shdr *shs, unsigned shnum, size_t *cap) {
  if (sh->sh_entsize != sizeof(Elf64_Sym) || sh->sh_link >= shnum) return;
  const Elf64_Shdr *st = &shs[sh->sh_link];
  if (sh->sh_offset > len || sh->sh_size > len - sh->sh_offset || sh->sh_offset % 8 != 0) return;
  if (st->sh_offset > len || st->sh_size > len - st->sh_offset || st->sh_size == 0) return;
  const Elf64_Sym *s = (const Elf64_Sym *)(f + sh->sh_offset);
  size_t n = sh->sh_size / sizeof *s;
  const char *strs = (const char *)(f + st->sh_offset);
  if (strs[st->sh_size - 1] != 0) return; /* names must be terminated inside the table */
  for (size_t i = 0; i < n; i++) {
    unsigned type = ELF64_ST_TYPE(s[i].st_info), bind = ELF64_ST_BIND(s[i].st_info);
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s[i].st_shndx == SHN_UNDEF || s[i].st_value == 0)
      continue;
    if (s[i].st_name == 0 || s[i].st_name >= st->sh_size) continue;
    const char *name = strs + s[i].st_name;
    unsigned us = 0;
    while (name[us] == '_' && us < 3) us++;
    /* Prefer global names, then names with fewer leading underscores
     * ("malloc" over "__libc_malloc"). */
    if (vkm_objfile_add(o, cap, s[i].st_value, s[i].st_size, name,
                        (bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2) * 4 + us) != 0)
      return;
  }
}

void vkm_objfile_read(const char *path, vkm_objfile_t *o) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat sb;
  if (fstat(fd, &sb) != 0 || sb.st_size < (off_t)sizeof(Elf64_Ehdr)) {
    close(fd);
    return;
  }
  void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return;
  const unsigned char *f = map;
  size_t len = (size_t)sb.st_size;
  const Elf64_Ehdr *eh = map;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff > len || eh->e_shoff % 8 != 0 ||
      (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > len - eh->e_shoff) {
    munmap(map, len);
    return;
  }
  o->map = map;
  o->map_len = len;
  const Elf64_Shdr *shs = (const Elf64_Shdr *)(f + eh->e_shoff);
  size_t cap = 0;
  for (unsigned i = 0; i < eh->e_shnum; i++)
    if (shs[i].sh_type == SHT_SYMTAB || shs[i].sh_type == SHT_DYNSYM)
      add_symtab(o, f, len, &shs[i], shs, eh->e_shnum, &cap);
  /* DWARF sections by name; compressed ones (SHF_COMPRESSED) would need
   * zlib, which the shim does not link: those modules get no file:line. */
  const Elf64_Shdr *names = eh->e_shstrndx < eh->e_shnum ? &shs[eh->e_shstrndx] : NULL;
  for (unsigned i = 0; names && i < eh->e_shnum; i++) {
    const Elf64_Shdr *sh = &shs[i];
    if (sh->sh_type == SHT_NOBITS || (sh->sh_flags & SHF_COMPRESSED) || sh->sh_offset > len ||
        sh->sh_size > len - sh->sh_offset || names->sh_offset > len || sh->sh_name >= names->sh_size ||
        names->sh_size > len - names->sh_offset)
      continue;
    const char *nm = (const char *)f + names->sh_offset + sh->sh_name;
    size_t room = names->sh_size - sh->sh_name;
    if (strnlen(nm, room) == room) continue;
    if (strcmp(nm, ".debug_line") == 0) o->dl = f + sh->sh_offset, o->dl_len = sh->sh_size;
    else if (strcmp(nm, ".debug_line_str") == 0) o->dl_str = f + sh->sh_offset, o->dl_str_len = sh->sh_size;
    else if (strcmp(nm, ".debug_str") == 0) o->d_str = f + sh->sh_offset, o->d_str_len = sh->sh_size;
  }
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *ud) {
  vkm_module_add_fn add = *(vkm_module_add_fn *)ud;
  (void)size;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr;
    if (a < lo) lo = a;
    if (a + ph->p_memsz > hi) hi = a + ph->p_memsz;
  }
  const char *path = info->dlpi_name;
  char exe[4096];
  if (!path || !*path) { /* the main program */
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    path = exe;
  }
  add(path, info->dlpi_addr, lo, hi);
  return 0;
}

void vkm_objfile_self_modules(vkm_module_add_fn add) { dl_iterate_phdr(phdr_cb, &add); }

/* The GNU build-id note among the notes of one PT_NOTE segment. */
static void elf_build_id(int fd, const Elf64_Phdr *ph, char *out, size_t cap) {
  unsigned char note[2048];
  size_t len = ph->p_filesz < sizeof note ? ph->p_filesz : sizeof note;
  if (pread(fd, note, len, (off_t)ph->p_offset) != (ssize_t)len) return;
  size_t off = 0;
  while (off + sizeof(Elf64_Nhdr) <= len) {
    Elf64_Nhdr nh;
    memcpy(&nh, note + off, sizeof nh);
    size_t name_off = off + sizeof nh, desc_off = name_off + ((nh.n_namesz + 3) & ~3u);
    size_t next = desc_off + ((nh.n_descsz + 3) & ~3u);
    if (next > len || desc_off > len) return;
    if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && memcmp(note + name_off, "GNU", 4) == 0 &&
        nh.n_descsz * 2 < cap) {
      for (size_t i = 0; i < nh.n_descsz; i++) snprintf(out + 2 * i, 3, "%02x", note[desc_off + i]);
      return;
    }
    off = next;
  }
}

/* The executable PT_LOAD segments, read with pread: only the headers and
 * the notes, never the whole file. */
int vkm_objfile_exec_segments(const char *path, uint64_t bias, char *id, size_t id_cap, vkm_objfile_seg_fn seg,
                              void *ctx) {
  int nseg = 0;
  if (id_cap) id[0] = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  Elf64_Ehdr eh;
  if (pread(fd, &eh, sizeof eh, 0) == sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
      eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum <= 64) {
    Elf64_Phdr ph[64];
    size_t bytes = (size_t)eh.e_phnum * sizeof ph[0];
    if (pread(fd, ph, bytes, (off_t)eh.e_phoff) == (ssize_t)bytes) {
      long pg = sysconf(_SC_PAGESIZE);
      uint64_t mask = ~((uint64_t)(pg > 0 ? pg : 4096) - 1);
      for (int i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type == PT_NOTE && id_cap && !id[0]) elf_build_id(fd, &ph[i], id, id_cap);
        if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X)) continue;
        /* The kernel maps whole pages. */
        seg(ctx, bias + (ph[i].p_vaddr & mask), bias + ph[i].p_vaddr + ph[i].p_memsz, ph[i].p_offset & mask);
        nseg++;
      }
    }
  }
  close(fd);
  return nseg;
}
