/* symbols.h - address -> (function, module, offset) for the agent.
 *
 * Agent thread only (no locking). Modules come from the recorded process's
 * published list (or this process's own); each module's symbol table is
 * read from its file on disk by the platform's reader (objfile.h: ELF
 * .symtab and .dynsym, Mach-O nlist; mmap'd read-only, kept mapped: symbol
 * names point into the mapping), because dladdr alone only sees exported
 * symbols and misses static functions. file:line comes from DWARF
 * .debug_line when present (the module's own, or its dSYM on macOS). All memory
 * from vkm_malloc. Results are cached per address.
 */
#ifndef VKM_SYMBOLS_H
#define VKM_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vkm_sym_s {
  const char *function; /* symbol name (mangled for C++), or NULL when unknown; owned by the cache */
  const char *module;   /* basename of the module, or "?"; owned by the cache */
  uint64_t offset;      /* address - module load bias: what addr2line -e <module> wants */
  uint64_t fn_offset;   /* address - function start (valid when function != NULL) */
  const char *file;     /* source file (basename) from DWARF .debug_line, or NULL; owned by the cache */
  unsigned line;        /* its line, valid when file != NULL */
  bool alloc_frame;     /* an allocation function in valkmem, libc, libstdc++ or an allocator
                           library: trimmed from the top of a stack */
} vkm_sym_t;

/* Symbolises a code address. `pc` should already point inside the call
 * instruction (return address - 1) for caller frames. Never fails: unknown
 * addresses get function NULL and module "?". Pointers in *out stay valid
 * until vkm_symbols_reset. */
void vkm_sym_lookup(uintptr_t pc, vkm_sym_t *out);

/* Forgets every module and cached address (e.g. in a forked child before
 * new dlopens matter, or between unit tests). */
void vkm_symbols_reset(void);

/* Modules of another process: the source calls add(path, bias, lo, hi)
 * once per loaded module. NULL (the default) reads this process's own. */
typedef void (*vkm_module_add_fn)(const char *path, uintptr_t bias, uintptr_t lo, uintptr_t hi);
typedef void (*vkm_module_source_fn)(vkm_module_add_fn add);
void vkm_symbols_set_source(vkm_module_source_fn fn);

/* For tests: look up module-relative address rel in the ELF file at path
 * (which may be malformed). 0, or -1 when the file is unusable. */
int vkm_symbols_probe_file(const char *path, uint64_t rel, vkm_sym_t *out);

#endif
