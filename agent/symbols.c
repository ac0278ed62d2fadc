/* symbols.c - lazy, cached symbolisation of code addresses for reported
 * call sites: modules from dl_iterate_phdr, function symbols from each
 * module's own ELF .symtab/.dynsym (so static functions are named too),
 * dladdr as the fallback. Agent thread only; memory from vkm_malloc. */
#include "symbols.h"
#include "../interpose/vkm.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Modules and their symbol tables
 * ------------------------------------------------------------------------- */

typedef struct sym_s {
  uint64_t value, size; /* module-relative (st_value) */
  const char *name;     /* points into the module's mapping */
  uint8_t rank;         /* lower is preferred among aliases at one address */
} sym_t;

typedef struct module_s {
  char *path;           /* vkm_strdup'd; "" never stored */
  const char *name;     /* basename, inside path */
  uintptr_t bias;       /* dlpi_addr */
  uintptr_t lo, hi;     /* runtime extent of the PT_LOAD segments */
  bool loaded;          /* symbols read (or tried) */
  bool alloc_module;    /* libc/libstdc++/allocator: frames of its allocation functions are trimmed */
  bool self;            /* valkmem itself: every frame is trimmed */
  sym_t *syms;
  size_t nsyms;
  void *map;
  size_t map_len;
} module_t;

static module_t *mods;
static size_t nmods, capmods;

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool is_alloc_module(const char *name) {
  return has_prefix(name, "libc.so") || has_prefix(name, "libc-") || has_prefix(name, "libstdc++") ||
         has_prefix(name, "libmimalloc") || has_prefix(name, "libjemalloc") ||
         has_prefix(name, "libtcmalloc") || has_prefix(name, "libvalkmem") || has_prefix(name, "libasan") ||
         has_prefix(name, "libtsan");
}

/* Allocation entry points whose frames say nothing about the caller. */
static bool is_alloc_function(const char *fn) {
  static const char *const names[] = {
      "malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign", "aligned_alloc",
      "memalign", "valloc", "pvalloc", "__libc_malloc", "__libc_calloc", "__libc_realloc",
      "__libc_memalign", "__libc_valloc", "__libc_pvalloc", "__posix_memalign", "strdup",
      "__strdup", "strndup", "__strndup", "_int_malloc", "_int_realloc", "_int_memalign",
      "_mid_memalign", "tcache_init", "malloc_hook_ini", "realloc_hook_ini",
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(fn, names[i]) == 0) return true;
  return has_prefix(fn, "_Znw") || has_prefix(fn, "_Zna") || has_prefix(fn, "mi_") ||
         has_prefix(fn, "_mi_") || has_prefix(fn, "je_") || has_prefix(fn, "tc_") ||
         (has_prefix(fn, "__interceptor_") && is_alloc_function(fn + 14)) || /* sanitizer runtimes */
         (has_prefix(fn, "___interceptor_") && is_alloc_function(fn + 15));
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *ud) {
  (void)ud;
  (void)size;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr;
    if (a < lo) lo = a;
    if (a + ph->p_memsz > hi) hi = a + ph->p_memsz;
  }
  if (hi == 0) return 0;
  for (size_t i = 0; i < nmods; i++) /* already known (rescan after dlopen) */
    if (mods[i].lo == lo && mods[i].bias == info->dlpi_addr) return 0;
  const char *path = info->dlpi_name;
  char exe[4096];
  if (!path || !*path) { /* the main program */
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    path = exe;
  }
  if (nmods == capmods) {
    size_t nc = capmods ? capmods * 2 : 32;
    module_t *nm = vkm_realloc(mods, nc * sizeof *nm);
    if (!nm) return 1;
    mods = nm;
    capmods = nc;
  }
  module_t *m = &mods[nmods];
  memset(m, 0, sizeof *m);
  m->path = vkm_strdup(path);
  if (!m->path) return 1;
  m->name = base_name(m->path);
  m->bias = info->dlpi_addr;
  m->lo = lo;
  m->hi = hi;
  m->alloc_module = is_alloc_module(m->name);
  m->self = has_prefix(m->name, "libvalkmem");
#ifdef VALKMEM_BUILDING_LIBRARY
  uintptr_t me = (uintptr_t)&vkm_sym_lookup;
  if (me >= lo && me < hi) m->self = m->alloc_module = true;
#endif
  nmods++;
  return 0;
}

static void scan_modules(void) {
  dl_iterate_phdr(phdr_cb, NULL);
}

static int sym_cmp(const void *a, const void *b) {
  const sym_t *x = a, *y = b;
  if (x->value != y->value) return x->value < y->value ? -1 : 1;
  if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* Appends the function symbols of one SHT_SYMTAB/SHT_DYNSYM section. All
 * offsets are bounds-checked against the file: the file is untrusted. */
static void add_symtab(module_t *m, const unsigned char *f, size_t len, const Elf64_Shdr *sh,
                       const Elf64_Shdr *shs, unsigned shnum, size_t *cap) {
  if (sh->sh_entsize != sizeof(Elf64_Sym) || sh->sh_link >= shnum) return;
  const Elf64_Shdr *st = &shs[sh->sh_link];
  if (sh->sh_offset > len || sh->sh_size > len - sh->sh_offset) return;
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
    if (m->nsyms == *cap) {
      size_t nc = *cap ? *cap * 2 : 1024;
      sym_t *ns = vkm_realloc(m->syms, nc * sizeof *ns);
      if (!ns) return;
      m->syms = ns;
      *cap = nc;
    }
    const char *name = strs + s[i].st_name;
    unsigned us = 0;
    while (name[us] == '_' && us < 3) us++;
    sym_t *o = &m->syms[m->nsyms++];
    o->value = s[i].st_value;
    o->size = s[i].st_size;
    o->name = name;
    /* Prefer global names, then names with fewer leading underscores
     * ("malloc" over "__libc_malloc"). */
    o->rank = (uint8_t)((bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2) * 4 + us);
  }
}

static void load_symbols(module_t *m) {
  m->loaded = true;
  int fd = open(m->path, O_RDONLY | O_CLOEXEC);
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
      eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff > len ||
      (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > len - eh->e_shoff) {
    munmap(map, len);
    return;
  }
  const Elf64_Shdr *shs = (const Elf64_Shdr *)(f + eh->e_shoff);
  size_t cap = 0;
  for (unsigned i = 0; i < eh->e_shnum; i++)
    if (shs[i].sh_type == SHT_SYMTAB || shs[i].sh_type == SHT_DYNSYM)
      add_symtab(m, f, len, &shs[i], shs, eh->e_shnum, &cap);
  if (m->nsyms == 0) {
    munmap(map, len);
    return;
  }
  qsort(m->syms, m->nsyms, sizeof *m->syms, sym_cmp);
  /* Keep one symbol per address (the best-ranked, first after sorting). */
  size_t w = 0;
  for (size_t i = 0; i < m->nsyms; i++)
    if (w == 0 || m->syms[w - 1].value != m->syms[i].value) m->syms[w++] = m->syms[i];
  m->nsyms = w;
  m->map = map;
  m->map_len = len;
}

/* The function containing module-relative address rel, or NULL. */
static const sym_t *find_sym(const module_t *m, uint64_t rel) {
  size_t lo = 0, hi = m->nsyms;
  while (lo < hi) { /* first symbol with value > rel */
    size_t mid = lo + (hi - lo) / 2;
    if (m->syms[mid].value <= rel) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return NULL;
  const sym_t *s = &m->syms[lo - 1];
  if (s->size == 0 || rel < s->value + s->size) return s;
  return NULL;
}

static module_t *find_module(uintptr_t pc) {
  for (size_t i = 0; i < nmods; i++)
    if (pc >= mods[i].lo && pc < mods[i].hi) return &mods[i];
  return NULL;
}

/* ---------------------------------------------------------------------------
 * Per-address cache: open addressing on pc, linear probing.
 * ------------------------------------------------------------------------- */

typedef struct cent_s {
  uintptr_t pc; /* 0 = empty */
  vkm_sym_t sym;
} cent_t;

static cent_t *cache;
static size_t cache_cap, cache_n;

static size_t pc_hash(uintptr_t pc) {
  uint64_t x = pc;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (size_t)x;
}

static cent_t *cache_slot(uintptr_t pc) {
  size_t i = pc_hash(pc) & (cache_cap - 1);
  while (cache[i].pc && cache[i].pc != pc) i = (i + 1) & (cache_cap - 1);
  return &cache[i];
}

static bool cache_grow(void) {
  size_t nc = cache_cap ? cache_cap * 2 : 4096;
  cent_t *old = cache, *nt = vkm_calloc(nc, sizeof *nt);
  if (!nt) return false;
  size_t oc = cache_cap;
  cache = nt;
  cache_cap = nc;
  for (size_t i = 0; i < oc; i++)
    if (old[i].pc) *cache_slot(old[i].pc) = old[i];
  vkm_free(old);
  return true;
}

static void resolve(uintptr_t pc, vkm_sym_t *out) {
  memset(out, 0, sizeof *out);
  out->module = "?";
  module_t *m = find_module(pc);
  if (!m) {
    scan_modules(); /* a dlopen since the last scan */
    m = find_module(pc);
  }
  if (m) {
    out->module = m->name;
    out->offset = pc - m->bias;
    if (!m->loaded) load_symbols(m);
    const sym_t *s = find_sym(m, pc - m->bias);
    if (s) {
      out->function = s->name;
      out->fn_offset = pc - m->bias - s->value;
    }
  }
  if (!out->function) {
    Dl_info di;
    if (dladdr((void *)pc, &di) && di.dli_sname && di.dli_saddr) {
      out->function = di.dli_sname;
      out->fn_offset = pc - (uintptr_t)di.dli_saddr;
      if (!m && di.dli_fname) {
        out->module = base_name(di.dli_fname);
        out->offset = pc - (uintptr_t)di.dli_fbase;
      }
    }
  }
  if (m && m->self) out->alloc_frame = true;
  else if (m && m->alloc_module && out->function) out->alloc_frame = is_alloc_function(out->function);
}

void vkm_sym_lookup(uintptr_t pc, vkm_sym_t *out) {
  if (pc == 0) {
    memset(out, 0, sizeof *out);
    out->module = "?";
    return;
  }
  if ((cache_n + 1) * 2 > cache_cap && !cache_grow()) {
    resolve(pc, out); /* out of memory: answer uncached */
    return;
  }
  cent_t *e = cache_slot(pc);
  if (!e->pc) {
    resolve(pc, &e->sym);
    e->pc = pc;
    cache_n++;
  }
  *out = e->sym;
}

void vkm_symbols_reset(void) {
  for (size_t i = 0; i < nmods; i++) {
    if (mods[i].map) munmap(mods[i].map, mods[i].map_len);
    vkm_free(mods[i].syms);
    vkm_free(mods[i].path);
  }
  vkm_free(mods);
  mods = NULL;
  nmods = capmods = 0;
  vkm_free(cache);
  cache = NULL;
  cache_cap = cache_n = 0;
}
