/* util.c - the CLI's small helpers: messages, whole-file I/O, JSON loading
 * with line:column errors, a growable buffer, and the escapers the gate's
 * outputs need (XML, GitHub workflow commands, Markdown cells). */
#include "cli.h"
#include "vkm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------- */
static int diag_fd = 2;

void vkm_set_diag_fd(int fd) { diag_fd = fd; }

void vkm_write_stderr(const char *buf, size_t len) {
  while (len > 0 && diag_fd >= 0) {
    ssize_t n = write(diag_fd, buf, len);
    if (n <= 0) break;
    buf += n;
    len -= (size_t)n;
  }
}

uint64_t vkm_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void say(const char *level, const char *fmt, va_list ap) {
  char msg[4096];
  vsnprintf(msg, sizeof msg, fmt, ap);
  fflush(stdout);
  char line[4200];
  int n = snprintf(line, sizeof line, "valkmem: %s: %s\n", level, msg);
  if (n > 0) vkm_write_stderr(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void vkm_cli_err(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("error", fmt, ap);
  va_end(ap);
}

void vkm_cli_warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("warning", fmt, ap);
  va_end(ap);
}

void vkm_cli_note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("note", fmt, ap);
  va_end(ap);
}

/* The agent's messages (VALKMEM_QUIET keeps all but errors to itself). */
void vkm_say(const char *level, const char *fmt, ...) {
  if (vkm_config.quiet && strcmp(level, "error") != 0) return;
  va_list ap;
  va_start(ap, fmt);
  say(level, fmt, ap);
  va_end(ap);
}

/* ---------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------- */
int vkm_cli_slurp(const char *path, char **out, size_t *len) {
  *out = NULL;
  if (len) *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    return -EISDIR;
  }
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  if (!buf) {
    close(fd);
    return -ENOMEM;
  }
  for (;;) {
    if (cap - n < 2) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        close(fd);
        return -ENOMEM;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = -errno;
      free(buf);
      close(fd);
      return e;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = 0;
  *out = buf;
  if (len) *len = n;
  return 0;
}

/* Before the command runs: could vkm_cli_write_file write `path` (a
 * temporary file beside it, renamed over it)? Says why not. */
const char *vkm_cli_base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s && s[1] ? s + 1 : path;
}

int vkm_cli_check_writable(const char *what, const char *path) {
  struct stat st;
  if (!*path) {
    vkm_cli_err("cannot write %s: the file name is empty", what);
    return -EINVAL;
  }
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    vkm_cli_err("cannot write %s %s: %s", what, path, strerror(EISDIR));
    return -EISDIR;
  }
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == path) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  if (access(dir, W_OK | X_OK) != 0) {
    int e = errno;
    vkm_cli_err("cannot write %s %s: %s: %s", what, path, dir, strerror(e));
    return -e;
  }
  return 0;
}

int vkm_cli_write_file(const char *what, const char *path, const void *data, size_t len) {
  size_t pl = strlen(path);
  char *tmp = malloc(pl + 32);
  if (!tmp) return -ENOMEM;
  snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    vkm_cli_err("cannot write %s %s: %s", what, path, strerror(e));
    free(tmp);
    return -e;
  }
  const char *p = data;
  size_t left = len;
  while (left) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      vkm_cli_err("cannot write %s %s: %s", what, path, strerror(e));
      close(fd);
      unlink(tmp);
      free(tmp);
      return -e;
    }
    p += w;
    left -= (size_t)w;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    int e = errno;
    vkm_cli_err("cannot write %s %s: %s", what, path, strerror(e));
    unlink(tmp);
    free(tmp);
    return -e;
  }
  free(tmp);
  return 0;
}

/* ---------------------------------------------------------------------------
 * JSON with located errors
 * ------------------------------------------------------------------------- */
cJSON *vkm_cli_json_parse(const char *text, size_t len, char *err, size_t errlen) {
  const char *end = NULL;
  if (len == 0) {
    snprintf(err, errlen, "empty file, expected a JSON document");
    return NULL;
  }
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (root) {
    /* Trailing garbage after the document is an error too. */
    const char *p = end;
    while (p && p < text + len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    if (!p || p >= text + len) return root;
    cJSON_Delete(root);
    end = p;
  }
  if (!end || end < text || end > text + len) end = text + len;
  size_t off = (size_t)(end - text);
  unsigned line = 1, col = 1;
  for (size_t i = 0; i < off; i++) {
    if (text[i] == '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  char near[24];
  size_t k = 0;
  for (size_t i = off; i < len && k < 16 && text[i] != '\n'; i++) {
    unsigned char c = (unsigned char)text[i];
    near[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  near[k] = 0;
  if (off >= len)
    snprintf(err, errlen, "line %u, column %u (offset %zu): invalid JSON: unexpected end of input", line,
             col, off);
  else
    snprintf(err, errlen, "line %u, column %u (offset %zu): invalid JSON near '%s'", line, col, off, near);
  return NULL;
}

cJSON *vkm_cli_json_load(const char *what, const char *path) {
  char *text;
  size_t len;
  int rc = vkm_cli_slurp(path, &text, &len);
  if (rc < 0) {
    vkm_cli_err("cannot read %s %s: %s", what, path, strerror(-rc));
    return NULL;
  }
  char err[256];
  cJSON *root = vkm_cli_json_parse(text, len, err, sizeof err);
  free(text);
  if (!root) vkm_cli_err("malformed %s %s: %s", what, path, err);
  return root;
}

/* ---------------------------------------------------------------------------
 * Buffer
 * ------------------------------------------------------------------------- */
static void buf_reserve(vkm_buf_t *b, size_t more) {
  if (b->len + more + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more + 1) cap *= 2;
  char *np = realloc(b->p, cap);
  if (!np) {
    vkm_cli_err("out of memory");
    exit(VKM_EXIT_USAGE);
  }
  b->p = np;
  b->cap = cap;
}

void vkm_buf_put(vkm_buf_t *b, const char *s, size_t n) {
  buf_reserve(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

void vkm_buf_printf(vkm_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n <= 0) {
    buf_reserve(b, 0);
    return;
  }
  buf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void vkm_buf_free(vkm_buf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* ---------------------------------------------------------------------------
 * Escapers
 * ------------------------------------------------------------------------- */

/* XML 1.0 text and attribute values: the five entities, whitespace control
 * characters as character references (so attribute values keep their
 * newlines), and the characters XML 1.0 cannot hold at all (other C0
 * controls, invalid UTF-8) replaced with U+FFFD. */
void vkm_xml_escape(vkm_buf_t *b, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned char c = *p;
    if (c == '&') vkm_buf_put(b, "&amp;", 5);
    else if (c == '<') vkm_buf_put(b, "&lt;", 4);
    else if (c == '>') vkm_buf_put(b, "&gt;", 4);
    else if (c == '"') vkm_buf_put(b, "&quot;", 6);
    else if (c == '\'') vkm_buf_put(b, "&apos;", 6);
    else if (c == '\n') vkm_buf_put(b, "&#10;", 5);
    else if (c == '\r') vkm_buf_put(b, "&#13;", 5);
    else if (c == '\t') vkm_buf_put(b, "&#9;", 4);
    else if (c < 0x20 || c == 0x7f) vkm_buf_put(b, "\xEF\xBF\xBD", 3);
    else if (c < 0x80) vkm_buf_put(b, (const char *)p, 1);
    else {
      /* Validate one UTF-8 sequence. */
      int n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
      int ok = n > 0 && !(n == 2 && c < 0xC2) && !(n == 4 && c > 0xF4);
      for (int i = 1; ok && i < n; i++)
        if ((p[i] & 0xC0) != 0x80) ok = 0;
      if (ok && n == 3) {
        unsigned cp = ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
        if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF) ok = 0;
      }
      if (ok && n == 4) {
        unsigned cp = ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
        if (cp < 0x10000 || cp > 0x10FFFF) ok = 0;
      }
      if (!ok) {
        vkm_buf_put(b, "\xEF\xBF\xBD", 3);
      } else {
        vkm_buf_put(b, (const char *)p, (size_t)n);
        p += n - 1;
      }
    }
    p++;
  }
}

/* GitHub's workflow-command escaping (actions/toolkit command.ts):
 * data: % -> %25, \r -> %0D, \n -> %0A; properties additionally
 * : -> %3A and , -> %2C. */
void vkm_gh_escape_data(vkm_buf_t *b, const char *s) {
  for (; *s; s++) {
    if (*s == '%') vkm_buf_put(b, "%25", 3);
    else if (*s == '\r') vkm_buf_put(b, "%0D", 3);
    else if (*s == '\n') vkm_buf_put(b, "%0A", 3);
    else vkm_buf_put(b, s, 1);
  }
}

void vkm_gh_escape_property(vkm_buf_t *b, const char *s) {
  for (; *s; s++) {
    if (*s == '%') vkm_buf_put(b, "%25", 3);
    else if (*s == '\r') vkm_buf_put(b, "%0D", 3);
    else if (*s == '\n') vkm_buf_put(b, "%0A", 3);
    else if (*s == ':') vkm_buf_put(b, "%3A", 3);
    else if (*s == ',') vkm_buf_put(b, "%2C", 3);
    else vkm_buf_put(b, s, 1);
  }
}

/* A Markdown table cell: pipes escaped, line breaks as <br>, and the HTML
 * specials as entities so a function name like operator<< renders. */
void vkm_md_escape(vkm_buf_t *b, const char *s) {
  for (; *s; s++) {
    if (*s == '|') vkm_buf_put(b, "\\|", 2);
    else if (*s == '\n') vkm_buf_put(b, "<br>", 4);
    else if (*s == '\r') continue;
    else if (*s == '<') vkm_buf_put(b, "&lt;", 4);
    else if (*s == '>') vkm_buf_put(b, "&gt;", 4);
    else if (*s == '&') vkm_buf_put(b, "&amp;", 5);
    else if (*s == '`') vkm_buf_put(b, "\\`", 2);
    else vkm_buf_put(b, s, 1);
  }
}
