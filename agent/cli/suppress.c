/* suppress.c - LeakSanitizer-style leak suppressions.
 *
 * A suppressions file holds one `leak:<pattern>` per line; blank lines and
 * lines starting with '#' are ignored. A pattern matches a site when it
 * matches any frame's function name, module (path or basename) or source
 * file, as LSan does. Pattern syntax is LSan's TemplateMatch: '*' matches
 * any run of characters, a leading '^' anchors at the start and a trailing
 * '$' at the end; without anchors the pattern matches anywhere in the name
 * (so `leak:cache_put` suppresses `lru_cache_put` too, exactly as LSan
 * would). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* '*'-only glob over [p, pe) against [s, se), iterative with one
 * backtrack point: O(len(p) * len(s)) worst case, no recursion. */
static bool glob_match(const char *p, const char *pe, const char *s, const char *se) {
  const char *star_p = NULL, *star_s = NULL;
  while (s < se) {
    if (p < pe && *p == '*') {
      star_p = ++p;
      star_s = s;
    } else if (p < pe && *p == *s) {
      p++;
      s++;
    } else if (star_p) {
      p = star_p;
      s = ++star_s;
    } else {
      return false;
    }
  }
  while (p < pe && *p == '*') p++;
  return p == pe;
}

bool vkm_supp_match(const char *pattern, const char *s) {
  if (!pattern || !s || !s[0]) return false;
  size_t pl = strlen(pattern);
  bool start = pl && pattern[0] == '^';
  bool end = pl > (size_t)start && pattern[pl - 1] == '$';
  const char *p = pattern + start;
  size_t n = pl - start - end;
  /* Unanchored ends are an implicit '*'. */
  char local[256];
  char *g = n + 3 <= sizeof local ? local : malloc(n + 3);
  if (!g) return false;
  size_t k = 0;
  if (!start) g[k++] = '*';
  memcpy(g + k, p, n);
  k += n;
  if (!end) g[k++] = '*';
  bool r = glob_match(g, g + k, s, s + strlen(s));
  if (g != local) free(g);
  return r;
}

int vkm_supp_add(vkm_supp_list_t *l, const char *pattern, const char *source) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    vkm_supp_t *v = realloc(l->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  vkm_supp_t *s = &l->v[l->n];
  memset(s, 0, sizeof *s);
  s->pattern = strdup(pattern);
  s->source = strdup(source);
  if (!s->pattern || !s->source) {
    free(s->pattern);
    free(s->source);
    return -ENOMEM;
  }
  l->n++;
  return 0;
}

int vkm_supp_parse(vkm_supp_list_t *l, const char *text, size_t len, const char *source, char *err,
                   size_t errlen) {
  size_t lineno = 0;
  const char *p = text, *end = text + len;
  /* A UTF-8 byte order mark (editors on Windows write one) is not part of
   * the first line: it would read as an unknown type "\xef\xbb\xbfleak". */
  if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) p += 3;
  while (p < end) {
    lineno++;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *a = p, *b = le;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    p = nl ? nl + 1 : end;
    if (a == b || *a == '#') continue;
    size_t n = (size_t)(b - a);
    if (memchr(a, 0, n)) {
      snprintf(err, errlen, "line %zu: NUL byte in the line", lineno);
      return -EINVAL;
    }
    const char *colon = memchr(a, ':', n);
    if (!colon) {
      snprintf(err, errlen, "line %zu: expected leak:<pattern>, got \"%.*s\"", lineno, (int)(n > 60 ? 60 : n), a);
      return -EINVAL;
    }
    size_t tl = (size_t)(colon - a);
    if (tl != 4 || memcmp(a, "leak", 4) != 0) {
      snprintf(err, errlen, "line %zu: unknown suppression type \"%.*s\" (only leak:<pattern> applies here)",
               lineno, (int)(tl > 40 ? 40 : tl), a);
      return -EINVAL;
    }
    const char *pat = colon + 1;
    while (pat < b && isspace((unsigned char)*pat)) pat++;
    if (pat == b) {
      snprintf(err, errlen, "line %zu: empty pattern after leak:", lineno);
      return -EINVAL;
    }
    char *pt = strndup(pat, (size_t)(b - pat));
    char src[1100];
    snprintf(src, sizeof src, "%s:%zu", source, lineno);
    int rc = pt ? vkm_supp_add(l, pt, src) : -ENOMEM;
    free(pt);
    if (rc < 0) {
      snprintf(err, errlen, "out of memory");
      return rc;
    }
  }
  return 0;
}

int vkm_supp_load(vkm_supp_list_t *l, const char *path) {
  char *text;
  size_t len;
  int rc = vkm_cli_slurp(path, &text, &len);
  if (rc < 0) {
    vkm_cli_err("cannot read suppressions file %s: %s", path, strerror(-rc));
    return rc;
  }
  char err[256];
  rc = vkm_supp_parse(l, text, len, path, err, sizeof err);
  free(text);
  if (rc < 0) vkm_cli_err("malformed suppressions file %s: %s", path, err);
  return rc;
}

/* Allocations glibc, ld.so and libstdc++ make once and keep until exit in
 * every program: not the program's leaks. Anchored, so they name exactly
 * these functions. `_dl_*` is deliberately not one glob: the program's own
 * constructors run below _dl_init, and a blanket `_dl_` would hide every
 * leak they make. */
static const char *const default_supps[] = {
    "^_IO_file_doallocate$",   /* stdio buffers of stdin/stdout/stderr and fopen'd files */
    "^_IO_setb$",
    "^_dl_new_object$",        /* link maps of loaded objects */
    "^_dl_map_object",         /* dlopen path and map bookkeeping */
    "^_dl_allocate_tls",       /* static TLS blocks */
    "^_dl_resize_dtv$",
    "^_dl_update_slotinfo$",
    "^_dl_important_hwcaps$",
    "^_dl_init_paths$",
    "^_dl_add_to_namespace_list$",
    "^_dl_check_map_versions$",
    "^_dlerror_run$",          /* the dlerror buffer */
    "^_nl_",                   /* locale data (setlocale, catalogs) */
    "^__new_exitfn$",          /* atexit/on_exit table */
    "^__libc_setlocale$",
    "^setlocale$",
    "^__tzfile_read$",         /* tzset: the loaded time zone */
    "^tzset_internal$",
    "^__gconv_open",           /* iconv steps cached by glibc */
    "^__gconv_read_conf$",
    "^getpw",                  /* getpwuid/getpwnam & co. keep one static result buffer */
    "^getgr",
    "^getsp",
    "^gethostby",
    "^getservby",
    "^getprotoby",
    "^getnetby",
    "^getlogin$",
    "^ttyname$",
    "^__nss_",                 /* NSS modules kept loaded */
    "^nss_",
    "emergency_pool",          /* libstdc++ EH emergency pool (symbolised builds) */
    "^_GLOBAL__sub_I_eh_alloc.cc$",
    "^__cxa_get_globals",      /* libstdc++ per-thread EH globals */
    "^__cxa_thread_atexit",
};

#define SYSTEM_ONLY_RULE "<every frame in libc, ld.so, libstdc++ or libgcc_s>"

void vkm_supp_add_defaults(vkm_supp_list_t *l) {
  for (size_t i = 0; i < sizeof default_supps / sizeof default_supps[0]; i++)
    vkm_supp_add(l, default_supps[i], "default");
  /* Allocations with no frame of the program at all: made by the runtime
   * for itself, mostly from library constructors run by ld.so (libstdc++'s
   * emergency exception pool is the classic one). Their functions are
   * local symbols, so no name pattern can catch them: the rule is on the
   * modules. A stack with any frame of the program's own code never
   * matches. */
  if (vkm_supp_add(l, SYSTEM_ONLY_RULE, "default") == 0) l->v[l->n - 1].system_only = true;
}

void vkm_supp_print_defaults(FILE *f) {
  size_t col = 2;
  fputs("  ", f);
  for (size_t i = 0; i < sizeof default_supps / sizeof default_supps[0]; i++) {
    size_t n = strlen(default_supps[i]) + 6;
    if (col + n > 78) {
      fputs("\n  ", f);
      col = 2;
    }
    fprintf(f, "leak:%s ", default_supps[i]);
    col += n;
  }
  fputs("\n  and " SYSTEM_ONLY_RULE "\n", f);
}

static bool system_module(const char *m) {
  static const char *const prefixes[] = {"libc.so", "ld-linux", "ld64.so", "ld-musl", "libstdc++.so",
                                         "libgcc_s.so", "libm.so", "libpthread.so", "libdl.so", "librt.so"};
  const char *base = strrchr(m, '/');
  base = base ? base + 1 : m;
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
    if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0) return true;
  return false;
}

static bool all_system(const cJSON *frames) {
  const cJSON *f;
  int n = 0;
  cJSON_ArrayForEach(f, frames) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(f, "module");
    if (!cJSON_IsString(m) || !system_module(m->valuestring)) return false;
    n++;
  }
  return n > 0;
}

static bool frame_matches(const char *pat, const cJSON *f) {
  const char *keys[] = {"function", "module", "file"};
  for (size_t k = 0; k < 3; k++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, keys[k]);
    if (!cJSON_IsString(v) || !v->valuestring[0]) continue;
    if (vkm_supp_match(pat, v->valuestring)) return true;
    if (k == 1) {
      const char *base = strrchr(v->valuestring, '/');
      if (base && vkm_supp_match(pat, base + 1)) return true;
    }
  }
  return false;
}

int vkm_supp_find(const vkm_supp_list_t *l, const cJSON *site) {
  const cJSON *frames = cJSON_GetObjectItemCaseSensitive(site, "frames");
  for (size_t i = 0; i < l->n; i++) {
    if (l->v[i].system_only) {
      if (all_system(frames)) return (int)i;
      continue;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, frames) {
      if (frame_matches(l->v[i].pattern, f)) return (int)i;
    }
  }
  return -1;
}

void vkm_supp_free(vkm_supp_list_t *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].pattern);
    free(l->v[i].source);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}
