/* symbols.c - lazy, cached symbolisation of code addresses for reported
 * call sites: modules from the recorded process's published list (or this
 * process's own), function symbols and DWARF line tables from each
 * module's file, read by the platform's object-file reader (objfile.h:
 * ELF .symtab/.dynsym on Linux, Mach-O nlist and a dSYM's DWARF on macOS,
 * so static functions are named too), nothing else (see resolve). Agent
 * thread only; memory from vkm_malloc. */
#include "symbols.h"
#include "objfile.h"
#include "../interpose/vkm.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Modules and their symbol tables
 * ------------------------------------------------------------------------- */

typedef vkm_objsym_t sym_t;

typedef struct module_s {
  char *path;           /* vkm_strdup'd; "" never stored */
  const char *name;     /* basename, inside path */
  uintptr_t bias;       /* dlpi_addr */
  uintptr_t lo, hi;     /* runtime extent of the PT_LOAD segments */
  bool loaded;          /* symbols read (or tried) */
  bool alloc_module;    /* libc/libstdc++/libsystem_malloc/allocator: frames of its allocation functions are trimmed */
  bool self;            /* valkmem itself: every frame is trimmed */
  sym_t *syms;
  size_t nsyms;
  void *map, *map2;     /* the file (and a dSYM with its DWARF) */
  size_t map_len, map2_len;
  /* DWARF line tables (sections inside map), and an index of their units */
  const uint8_t *dl, *dl_str, *d_str;
  size_t dl_len, dl_str_len, d_str_len;
  struct cu_s *cus;
  size_t ncus;
} module_t;

typedef struct cu_s {
  size_t off;      /* of the unit in .debug_line */
  uint64_t lo, hi; /* addresses its sequences cover (module-relative) */
} cu_t;

static void dwarf_index(module_t *m);
static const char *demangle(const char *name);

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

static void add_module(const char *path, uintptr_t bias, uintptr_t lo, uintptr_t hi) {
  if (hi <= lo || !path || !*path) return;
  for (size_t i = 0; i < nmods; i++) /* already known (rescan after dlopen), or overlapping one that is */
    if ((mods[i].lo == lo && mods[i].bias == bias) || (lo < mods[i].hi && mods[i].lo < hi)) return;
  if (nmods == capmods) {
    size_t nc = capmods ? capmods * 2 : 32;
    module_t *nm = vkm_realloc(mods, nc * sizeof *nm);
    if (!nm) return;
    mods = nm;
    capmods = nc;
  }
  module_t *m = &mods[nmods];
  memset(m, 0, sizeof *m);
  m->path = vkm_strdup(path);
  if (!m->path) return;
  m->name = base_name(m->path);
  m->bias = bias;
  m->lo = lo;
  m->hi = hi;
  m->alloc_module = is_alloc_module(m->name);
  m->self = has_prefix(m->name, "libvalkmem");
  if (m->self) m->alloc_module = true;
  nmods++;
}

/* Where modules come from: this process's own (objfile.h, for tests
 * and tools that symbolise themselves) or another process's published list
 * (the agent, vkm_symbols_set_source). */
static vkm_module_source_fn module_source;

void vkm_symbols_set_source(vkm_module_source_fn fn) { module_source = fn; }

static void scan_modules(void) {
  if (module_source) module_source(add_module);
  else vkm_objfile_self_modules(add_module);
}

/* objfile.h's two platform-independent calls; the readers that use them
 * are objfile_linux.c (ELF) and objfile_darwin.c (Mach-O). */
int vkm_objfile_add(vkm_objfile_t *o, size_t *cap, uint64_t value, uint64_t size, const char *name, unsigned rank) {
  if (o->nsyms == *cap) {
    size_t nc = *cap ? *cap * 2 : 1024;
    vkm_objsym_t *ns = vkm_realloc(o->syms, nc * sizeof *ns);
    if (!ns) return -1;
    o->syms = ns;
    *cap = nc;
  }
  vkm_objsym_t *s = &o->syms[o->nsyms++];
  s->value = value;
  s->size = size;
  s->name = name;
  s->rank = (uint8_t)rank;
  return 0;
}

void vkm_objfile_release(vkm_objfile_t *o) {
  if (o->map) munmap(o->map, o->map_len);
  if (o->map2) munmap(o->map2, o->map2_len);
  vkm_free(o->syms);
  memset(o, 0, sizeof *o);
}

static int sym_cmp(const void *a, const void *b) {
  const sym_t *x = a, *y = b;
  if (x->value != y->value) return x->value < y->value ? -1 : 1;
  if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
  return strcmp(x->name, y->name);
}

static void load_symbols(module_t *m) {
  m->loaded = true;
  vkm_objfile_t o;
  memset(&o, 0, sizeof o);
  vkm_objfile_read(m->path, &o);
  if (!o.map) return;
  if (o.nsyms == 0 && !o.dl) {
    vkm_objfile_release(&o);
    return;
  }
  m->map = o.map;
  m->map_len = o.map_len;
  m->map2 = o.map2;
  m->map2_len = o.map2_len;
  m->syms = o.syms;
  m->nsyms = o.nsyms;
  m->dl = o.dl, m->dl_len = o.dl_len;
  m->dl_str = o.dl_str, m->dl_str_len = o.dl_str_len;
  m->d_str = o.d_str, m->d_str_len = o.d_str_len;
  if (m->dl) dwarf_index(m);
  if (m->nsyms == 0) return;
  qsort(m->syms, m->nsyms, sizeof *m->syms, sym_cmp);
  /* Keep one symbol per address (the best-ranked, first after sorting). */
  size_t w = 0;
  for (size_t i = 0; i < m->nsyms; i++)
    if (w == 0 || m->syms[w - 1].value != m->syms[i].value) m->syms[w++] = m->syms[i];
  m->nsyms = w;
}

/* ---------------------------------------------------------------------------
 * DWARF .debug_line (versions 2 to 5): the file:line of an address.
 *
 * At a module's first lookup, one pass over its line programs records the
 * address range of each unit (a few words per unit); a lookup then runs
 * only the programs whose range holds the address. Everything is read from
 * the mapped file, bounds-checked: the file is untrusted input.
 * ------------------------------------------------------------------------- */
typedef struct rd_s {
  const uint8_t *p, *end;
  bool bad;
} rd_t;

static uint64_t rd_fixed(rd_t *r, unsigned n) {
  if ((size_t)(r->end - r->p) < n) {
    r->bad = true;
    r->p = r->end;
    return 0;
  }
  uint64_t v = 0;
  for (unsigned i = 0; i < n && i < 8; i++) v |= (uint64_t)r->p[i] << (8 * i);
  r->p += n;
  return v;
}

/* LEB128, unsigned or (sign) signed: one loop for both. */
static uint64_t rd_leb(rd_t *r, bool sign) {
  uint64_t v = 0;
  unsigned shift = 0;
  while (r->p < r->end) {
    uint8_t b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) {
      if (sign && shift < 64 && (b & 0x40)) v |= ~(uint64_t)0 << shift;
      return v;
    }
  }
  r->bad = true;
  return v;
}

static uint64_t rd_uleb(rd_t *r) { return rd_leb(r, false); }
static int64_t rd_sleb(rd_t *r) { return (int64_t)rd_leb(r, true); }

static const char *rd_cstr(rd_t *r) {
  const uint8_t *s = r->p;
  while (r->p < r->end && *r->p) r->p++;
  if (r->p >= r->end) {
    r->bad = true;
    return "";
  }
  r->p++;
  return (const char *)s;
}

typedef struct lhdr_s {
  unsigned version, offset_size, min_inst, line_range, opcode_base;
  int line_base;
  const uint8_t *std_lens;   /* opcode_base - 1 operand counts */
  const uint8_t *tables;     /* directory and file tables */
  const uint8_t *prog, *end; /* the line program */
} lhdr_t;

/* Parses the unit header at off. Returns the offset of the next unit (0 at
 * the end or on a malformed header); h->prog is NULL for a unit to skip. */
static size_t line_header(const module_t *m, size_t off, lhdr_t *h) {
  memset(h, 0, sizeof *h);
  rd_t r = {m->dl + off, m->dl + m->dl_len, false};
  uint64_t ulen = rd_fixed(&r, 4);
  h->offset_size = 4;
  if (ulen == 0xffffffffu) {
    ulen = rd_fixed(&r, 8);
    h->offset_size = 8;
  }
  if (r.bad || ulen > (uint64_t)(r.end - r.p) || ulen < 2) return 0;
  const uint8_t *uend = r.p + ulen;
  size_t next = (size_t)(uend - m->dl);
  r.end = uend;
  h->version = (unsigned)rd_fixed(&r, 2);
  if (h->version < 2 || h->version > 5) return next;
  if (h->version >= 5) rd_fixed(&r, 2); /* address_size, segment_selector_size */
  uint64_t hlen = rd_fixed(&r, h->offset_size);
  if (r.bad || hlen > (uint64_t)(r.end - r.p)) return next;
  const uint8_t *prog = r.p + hlen;
  h->min_inst = (unsigned)rd_fixed(&r, 1);
  if (h->version >= 4) rd_fixed(&r, 1); /* maximum_operations_per_instruction */
  rd_fixed(&r, 1);                      /* default_is_stmt */
  h->line_base = (int8_t)rd_fixed(&r, 1);
  h->line_range = (unsigned)rd_fixed(&r, 1);
  h->opcode_base = (unsigned)rd_fixed(&r, 1);
  if (r.bad || h->line_range == 0 || h->opcode_base == 0 || (size_t)(prog - r.p) < h->opcode_base - 1) return next;
  h->std_lens = r.p;
  h->tables = r.p + h->opcode_base - 1;
  h->prog = prog;
  h->end = uend;
  return next;
}

/* Reads one attribute of a v5 directory/file entry; strings come back in
 * *str (or NULL), numbers in *num. False on a form we cannot skip. */
static bool rd_form(rd_t *r, uint64_t form, const lhdr_t *h, const module_t *m, const char **str, uint64_t *num) {
  *str = NULL;
  *num = 0;
  uint64_t o;
  switch (form) {
  case 0x08: *str = rd_cstr(r); break;                          /* DW_FORM_string */
  case 0x1f:                                                    /* DW_FORM_line_strp */
  case 0x0e:                                                    /* DW_FORM_strp */
    o = rd_fixed(r, h->offset_size);
    if (form == 0x1f && m->dl_str && o < m->dl_str_len && memchr(m->dl_str + o, 0, m->dl_str_len - o))
      *str = (const char *)m->dl_str + o;
    if (form == 0x0e && m->d_str && o < m->d_str_len && memchr(m->d_str + o, 0, m->d_str_len - o))
      *str = (const char *)m->d_str + o;
    break;
  case 0x0f: *num = rd_uleb(r); break;       /* udata */
  case 0x0d: *num = (uint64_t)rd_sleb(r); break; /* sdata */
  case 0x0b: *num = rd_fixed(r, 1); break;   /* data1 */
  case 0x05: *num = rd_fixed(r, 2); break;   /* data2 */
  case 0x06: *num = rd_fixed(r, 4); break;   /* data4 */
  case 0x07: *num = rd_fixed(r, 8); break;   /* data8 */
  case 0x1e: rd_fixed(r, 16); break;         /* data16 (MD5) */
  case 0x09: o = rd_uleb(r); if (o > (uint64_t)(r->end - r->p)) return false; r->p += o; break; /* block */
  case 0x0a: o = rd_fixed(r, 1); if (o > (uint64_t)(r->end - r->p)) return false; r->p += o; break;
  default: return false;
  }
  return !r->bad;
}

/* The name of file number idx of a unit, or NULL. */
static const char *line_file(const module_t *m, const lhdr_t *h, uint64_t idx) {
  rd_t r = {h->tables, h->prog, false};
  if (h->version < 5) {
    while (!r.bad && r.p < r.end && *r.p) rd_cstr(&r); /* include_directories */
    if (r.p < r.end) r.p++;
    for (uint64_t i = 1; !r.bad && r.p < r.end && *r.p; i++) {
      const char *name = rd_cstr(&r);
      rd_uleb(&r), rd_uleb(&r), rd_uleb(&r); /* directory, mtime, length */
      if (i == idx) return r.bad ? NULL : name;
    }
    return NULL;
  }
  for (int table = 0; table < 2; table++) { /* directories, then files */
    uint64_t fmt[16][2];
    unsigned nfmt = (unsigned)rd_fixed(&r, 1);
    if (nfmt > 16) return NULL;
    for (unsigned k = 0; k < nfmt; k++) fmt[k][0] = rd_uleb(&r), fmt[k][1] = rd_uleb(&r);
    uint64_t count = rd_uleb(&r);
    for (uint64_t i = 0; i < count && !r.bad; i++) {
      const char *path = NULL;
      for (unsigned k = 0; k < nfmt; k++) {
        const char *str;
        uint64_t num;
        if (!rd_form(&r, fmt[k][1], h, m, &str, &num)) return NULL;
        if (fmt[k][0] == 1) path = str; /* DW_LNCT_path */
      }
      if (table == 1 && i == idx) return path;
    }
    if (r.bad) return NULL;
  }
  return NULL;
}

/* Runs a unit's line program. With find, stops at the row covering pc and
 * returns its file index and line; always widens [*lo, *hi). */
static bool line_run(const lhdr_t *h, bool find, uint64_t pc, uint64_t *lo, uint64_t *hi, uint64_t *file,
                     uint64_t *line) {
  rd_t r = {h->prog, h->end, false};
  uint64_t addr = 0, f = 1, paddr = 0, pfile = 0;
  int64_t ln = 1, pline = 0;
  bool have_prev = false;
  while (r.p < r.end && !r.bad) {
    uint8_t op = *r.p++;
    bool emit = false, endseq = false;
    if (op >= h->opcode_base) { /* special opcode: advance both, emit a row */
      unsigned adj = op - h->opcode_base;
      addr += (uint64_t)(adj / h->line_range) * h->min_inst;
      ln += h->line_base + (int)(adj % h->line_range);
      emit = true;
    } else if (op == 0) { /* extended */
      uint64_t len = rd_uleb(&r);
      if (r.bad || len == 0 || len > (uint64_t)(r.end - r.p)) break;
      const uint8_t *next = r.p + len;
      uint8_t sub = *r.p++;
      if (sub == 1) emit = endseq = true; /* end_sequence */
      else if (sub == 2) {              /* set_address */
        rd_t a = {r.p, next, false};
        addr = rd_fixed(&a, (unsigned)(len - 1 > 8 ? 8 : len - 1));
      }
      r.p = next;
    } else {
      switch (op) {
      case 1: emit = true; break;                                    /* copy */
      case 2: addr += rd_uleb(&r) * h->min_inst; break;              /* advance_pc */
      case 3: ln += rd_sleb(&r); break;                              /* advance_line */
      case 4: f = rd_uleb(&r); break;                                /* set_file */
      case 8: addr += (uint64_t)((255 - h->opcode_base) / h->line_range) * h->min_inst; break; /* const_add_pc */
      case 9: addr += rd_fixed(&r, 2); break;                        /* fixed_advance_pc */
      default:                                                        /* operands we ignore */
        for (unsigned i = 0; i < h->std_lens[op - 1]; i++) rd_uleb(&r);
      }
    }
    if (!emit) continue;
    if (addr < *lo) *lo = addr;
    if (addr + 1 > *hi) *hi = addr + 1;
    if (find && have_prev && paddr <= pc && pc < addr) {
      *file = pfile;
      *line = pline > 0 ? (uint64_t)pline : 0;
      return true;
    }
    if (endseq) {
      have_prev = false;
      addr = 0, f = 1, ln = 1;
    } else {
      have_prev = true;
      paddr = addr, pfile = f, pline = ln;
    }
  }
  return false;
}

static void dwarf_index(module_t *m) {
  size_t cap = 0;
  for (size_t off = 0, next; off < m->dl_len; off = next) {
    lhdr_t h;
    next = line_header(m, off, &h);
    if (next <= off) break;
    if (!h.prog) continue;
    uint64_t lo = UINT64_MAX, hi = 0, f, l;
    line_run(&h, false, 0, &lo, &hi, &f, &l);
    if (lo >= hi) continue;
    if (m->ncus == cap) {
      size_t nc = cap ? cap * 2 : 64;
      cu_t *n = vkm_realloc(m->cus, nc * sizeof *n);
      if (!n) return;
      m->cus = n;
      cap = nc;
    }
    m->cus[m->ncus++] = (cu_t){off, lo, hi};
  }
}

static void find_line(const module_t *m, uint64_t rel, vkm_sym_t *out) {
  for (size_t i = 0; i < m->ncus; i++) {
    if (rel < m->cus[i].lo || rel >= m->cus[i].hi) continue;
    lhdr_t h;
    line_header(m, m->cus[i].off, &h);
    uint64_t lo = UINT64_MAX, hi = 0, file = 0, line = 0;
    if (!h.prog || !line_run(&h, true, rel, &lo, &hi, &file, &line)) continue;
    const char *name = line_file(m, &h, file);
    if (!name || !*name) return;
    out->file = base_name(name);
    out->line = (unsigned)line;
    return;
  }
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
  out->offset = pc; /* in no module (JIT code, say): the address itself */
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
    if (m->ncus) find_line(m, pc - m->bias, out);
  }
  /* No dladdr fallback: its names live in the loader's memory, which a
   * concurrent dlclose on an application thread may free while we copy
   * them (TSan caught it). The module's own .dynsym is already read above,
   * which is all dladdr would have looked at. */
  if (m && m->self) out->alloc_frame = true;
  else if (m && m->alloc_module && out->function) out->alloc_frame = is_alloc_function(out->function);
  if (out->function) out->function = demangle(out->function);
}

/* ---------------------------------------------------------------------------
 * C++ names: demangled with __cxa_demangle when the process already has it
 * (a C++ program has libstdc++ loaded; a C program has no _Z names). It
 * returns malloc'd memory (in the agent's own process), so
 * that passes straight to the real allocator uncounted, and the text is
 * copied into valkmem's own memory at once. Copies live until reset.
 * ------------------------------------------------------------------------- */
typedef char *(*demangle_fn_t)(const char *, char *, size_t *, int *);
typedef struct dm_s {
  struct dm_s *next;
  char text[];
} dm_t;
static dm_t *demangled_list;

static const char *demangle(const char *name) {
  static demangle_fn_t fn;
  static bool looked;
  if (name[0] != '_' || name[1] != 'Z') return name;
  if (!looked) {
    looked = true;
    fn = (demangle_fn_t)dlsym(RTLD_DEFAULT, "__cxa_demangle");
  }
  if (!fn) return name;
  int status = -1;
  char *d = fn(name, NULL, NULL, &status);
  if (!d || status != 0) {
    free(d);
    return name;
  }
  size_t len = strlen(d) + 1;
  dm_t *n = vkm_malloc(sizeof *n + len);
  if (n) {
    memcpy(n->text, d, len);
    n->next = demangled_list;
    demangled_list = n;
  }
  free(d);
  return n ? n->text : name;
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
    if (mods[i].map2) munmap(mods[i].map2, mods[i].map2_len);
    vkm_free(mods[i].syms);
    vkm_free(mods[i].cus);
    vkm_free(mods[i].path);
  }
  vkm_free(mods);
  mods = NULL;
  nmods = capmods = 0;
  vkm_free(cache);
  cache = NULL;
  cache_cap = cache_n = 0;
  while (demangled_list) {
    dm_t *n = demangled_list->next;
    vkm_free(demangled_list);
    demangled_list = n;
  }
}

/* For tests: symbolise module-relative address rel against the object file at
 * path as if it were a loaded module (the file may be garbage). Returns 0,
 * or -1 when the file is not usable at all. Strings in *out are only valid
 * until the next call. */
int vkm_symbols_probe_file(const char *path, uint64_t rel, vkm_sym_t *out) {
  static module_t m;
  if (m.map) munmap(m.map, m.map_len);
  if (m.map2) munmap(m.map2, m.map2_len);
  vkm_free(m.syms);
  vkm_free(m.cus);
  vkm_free(m.path);
  memset(&m, 0, sizeof m);
  memset(out, 0, sizeof *out);
  out->module = "?";
  m.path = vkm_strdup(path);
  if (!m.path) return -1;
  m.name = base_name(m.path);
  load_symbols(&m);
  if (!m.map) return -1;
  out->module = m.name;
  out->offset = rel;
  const sym_t *s = find_sym(&m, rel);
  if (s) {
    out->function = s->name;
    out->fn_offset = rel - s->value;
  }
  if (m.ncus) find_line(&m, rel, out);
  return 0;
}

