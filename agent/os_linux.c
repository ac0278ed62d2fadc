/* os_linux.c - process memory from /proc, and glibc's malloc statistics.
 *
 * Cadence (each reader rate-limits itself on the caller's monotonic clock):
 *   every tick   /proc/PID/statm          rss, vms
 *   every second /proc/PID/status         peak rss (VmHWM), threads, swap
 *                /proc/PID/stat           minor/major faults
 *   every 10 s   /proc/PID/smaps          Rss by kind: heap, stack, file,
 *   (or forced, or when statm's rss      anon, other
 *    moved > 1 % since the last one)
 *
 * smaps walks every page of every mapping: with 10,000 mappings it costs
 * ~30 ms here. It waits at least 100x as long as its last read took
 * (SMAPS_DUTY), so it never takes more than ~1 % of the worker,
 * however many mappings the process has; a forced breakdown (the caller
 * asked) is the one exception. Drift is noticed from statm, which the
 * kernel answers from its counters without a walk (smaps_rollup, read
 * here once a second before, walks every page too: a third of an idle
 * agent's time).
 *
 * Everything is read with open/read into static buffers: no stdio and no
 * allocation at all, so a reader can never touch the application's heap nor
 * valkmem's. smaps can be megabytes for a process with many mappings; it is
 * streamed through one 64 KiB buffer and parsed line by line.
 *
 * The last complete view is kept here and copied out whole on every call,
 * so fields read once a second are never zero on the ticks in between.
 * Agent thread only.
 */
#include "agent.h"
#include "../interpose/platform.h"
#include "os_alloc.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000ull
#define STATUS_EVERY_NS (1 * NS_PER_S)
#define SMAPS_EVERY_NS (10 * NS_PER_S)
#define SMAPS_DRIFT_PCT 1
#define SMAPS_DUTY 100 /* drift re-reads at most 1/SMAPS_DUTY of the time */

static vkm_os_t cur;
static uint64_t page_size;
static uint64_t status_at_ns, smaps_at_ns;
static int status_done, smaps_done;
static uint64_t smaps_rss;       /* statm's rss at the last breakdown */
static uint64_t smaps_cost_ns;   /* how long the last breakdown took */
static pid_t state_pid;          /* a forked child starts over */

static char small_buf[8192];     /* statm, stat, status */
static char smaps_buf[65536];    /* smaps chunks */

/* ---------------------------------------------------------------------------
 * Small helpers: read a whole small file, parse numbers
 * ------------------------------------------------------------------------- */

/* read(2) retried on EINTR: bytes read, 0 at the end, or -errno. */
static ssize_t read_retry(int fd, char *buf, size_t len) {
  for (;;) {
    ssize_t r = read(fd, buf, len);
    if (r >= 0 || errno != EINTR) return r < 0 ? -errno : r;
  }
}

/* Reads up to sizeof small_buf - 1 bytes from fd at offset 0,
 * NUL-terminated. Returns the length, or -errno. */
static ssize_t pread_all(int fd) {
  size_t n = 0;
  while (n < sizeof small_buf - 1) {
    ssize_t r = pread(fd, small_buf + n, sizeof small_buf - 1 - n, (off_t)n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) break;
    n += (size_t)r;
  }
  small_buf[n] = 0;
  return (ssize_t)n;
}

/* The /proc files of the recorded process, read every tick or every
 * second; opened and closed each time (the process may end at any
 * moment, and its pid be reused: a kept descriptor would read the old
 * process's files, or nothing). */
enum { PROC_STATM, PROC_STATUS, PROC_STAT, PROC_FILES };
static const char *const proc_name[PROC_FILES] = {"statm", "status", "stat"};

/* Reads proc file `which` into small_buf. Returns the length, or -errno. */
static ssize_t read_proc(int which) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", vkm_target_pid(), proc_name[which]);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n = pread_all(fd);
  close(fd);
  return n;
}

/* Parses a decimal number at *s, skipping leading blanks; advances *s. */
static uint64_t parse_u64(const char **s) {
  const char *p = *s;
  while (*p == ' ' || *p == '\t') p++;
  uint64_t v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
  *s = p;
  return v;
}

static uint64_t parse_hex(const char **s) {
  const char *p = *s;
  uint64_t v = 0;
  for (;; p++) {
    int d;
    if (*p >= '0' && *p <= '9') d = *p - '0';
    else if (*p >= 'a' && *p <= 'f') d = *p - 'a' + 10;
    else break;
    v = (v << 4) | (uint64_t)d;
  }
  *s = p;
  return v;
}

/* Value of a "Key:   123 kB" line in buf, in bytes (kB lines) or as is.
 * Returns 0 when the key is absent. */
static uint64_t field_value(const char *buf, const char *key, int kib) {
  size_t klen = strlen(key);
  for (const char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
      const char *v = p + klen + 1;
      uint64_t n = parse_u64(&v);
      return kib ? n * 1024 : n;
    }
  }
  return 0;
}

static uint64_t unix_ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------
 * statm (every tick), status + stat (every second)
 * ------------------------------------------------------------------------- */

static void read_statm(void) {
  if (read_proc(PROC_STATM) <= 0) return;
  const char *p = small_buf;
  uint64_t size = parse_u64(&p);
  uint64_t resident = parse_u64(&p);
  cur.vms = size * page_size;
  cur.rss = resident * page_size;
}

static void read_status(void) {
  if (read_proc(PROC_STATUS) <= 0) return;
  cur.peak_rss = field_value(small_buf, "VmHWM", 1);
  cur.threads = field_value(small_buf, "Threads", 0);
  cur.swap = field_value(small_buf, "VmSwap", 1);
}

static void read_stat(void) {
  if (read_proc(PROC_STAT) <= 0) return;
  /* comm may hold spaces and parentheses: fields start after the last ')'.
   * Then: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt. */
  const char *p = strrchr(small_buf, ')');
  if (!p) return;
  p++;
  for (int field = 3; *p && field <= 12; field++) {
    while (*p == ' ') p++;
    if (field == 10) cur.minor_faults = parse_u64(&p);
    else if (field == 12) cur.major_faults = parse_u64(&p);
    while (*p && *p != ' ') p++;
  }
}

/* ---------------------------------------------------------------------------
 * smaps breakdown
 *
 * Each mapping opens with a header line
 *   start-end perms offset dev inode [pathname]
 * followed by "Key: value kB" lines. A mapping is classified once its Rss
 * and Anonymous lines are in:
 *   [heap]                      heap (the brk heap)
 *   [stack], [stack:tid]        stack
 *   anonymous rw-p directly above a small ---p anonymous guard
 *                               stack (a pthread stack: glibc maps the
 *                               guard page(s) at the low end)
 *   other anonymous, [anon:x]   anon (malloc arenas and big blocks, mmap;
 *   /dev/zero, /memfd:, /SYSV   shared anonymous memory and memfds too)
 *   /path                       file, except its Anonymous pages (written
 *                               private data: relocations, .data, .bss
 *                               merged in) which are anon
 *   [vdso], [vvar], ...         other
 * A glibc arena's PROT_NONE tail sits *above* its rw part, so it never
 * looks like a guard unless an arena is within a guard's size of full.
 * ------------------------------------------------------------------------- */

#define GUARD_MAX (1024 * 1024)

enum vma_kind { VMA_NONE, VMA_HEAP, VMA_STACK, VMA_ANON, VMA_FILE, VMA_OTHER };

typedef struct smaps_acc_s {
  uint64_t heap, stack, anon, file, other;
  /* the mapping being read */
  int kind;
  uint64_t rss, anonymous;
  /* the previous mapping, for the guard-page test */
  uint64_t prev_start, prev_end;
  int prev_guard; /* anonymous ---p */
} smaps_acc_t;

static void vma_close(smaps_acc_t *s) {
  switch (s->kind) {
    case VMA_HEAP: s->heap += s->rss; break;
    case VMA_STACK: s->stack += s->rss; break;
    case VMA_ANON: s->anon += s->rss; break;
    case VMA_FILE: {
      uint64_t a = s->anonymous < s->rss ? s->anonymous : s->rss;
      s->anon += a;
      s->file += s->rss - a;
      break;
    }
    case VMA_OTHER: s->other += s->rss; break;
    default: break;
  }
  s->kind = VMA_NONE;
  s->rss = s->anonymous = 0;
}

static void vma_open(smaps_acc_t *s, const char *line) {
  vma_close(s);
  const char *p = line;
  uint64_t start = parse_hex(&p);
  if (*p == '-') p++;
  uint64_t end = parse_hex(&p);
  while (*p == ' ') p++;
  char perms[5] = {0};
  for (int i = 0; i < 4 && *p && *p != ' '; i++) perms[i] = *p++;
  /* offset, dev, inode */
  for (int f = 0; f < 3; f++) {
    while (*p == ' ') p++;
    while (*p && *p != ' ' && *p != '\n') p++;
  }
  while (*p == ' ') p++;
  const char *name = p; /* up to end of line */
  int anonymous = (*name == '\n' || *name == 0);

  if (strncmp(name, "[heap]", 6) == 0) s->kind = VMA_HEAP;
  else if (strncmp(name, "[stack", 6) == 0) s->kind = VMA_STACK;
  else if (strncmp(name, "[anon", 5) == 0) s->kind = VMA_ANON;
  else if (strncmp(name, "/dev/zero", 9) == 0 || strncmp(name, "/memfd:", 7) == 0 ||
           strncmp(name, "/SYSV", 5) == 0)
    s->kind = VMA_ANON; /* shared anonymous memory has a name but no file behind it */
  else if (*name == '/') s->kind = VMA_FILE;
  else if (!anonymous) s->kind = VMA_OTHER;
  else if (perms[0] == 'r' && perms[1] == 'w' && s->prev_guard && s->prev_end == start &&
           s->prev_end - s->prev_start <= GUARD_MAX)
    s->kind = VMA_STACK;
  else s->kind = VMA_ANON;

  s->prev_start = start;
  s->prev_end = end;
  s->prev_guard = anonymous && perms[0] == '-' && perms[1] == '-' && perms[2] == '-';
}

static int is_header(const char *line) {
  /* Headers start with a lowercase hex address; keys start uppercase. */
  char c = line[0];
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void smaps_line(smaps_acc_t *s, const char *line) {
  if (is_header(line)) vma_open(s, line);
  else if (strncmp(line, "Rss:", 4) == 0) {
    const char *v = line + 4;
    s->rss = parse_u64(&v) * 1024;
  } else if (strncmp(line, "Anonymous:", 10) == 0) {
    const char *v = line + 10;
    s->anonymous = parse_u64(&v) * 1024;
  }
}

/* Streams path through smaps_buf. 0 or -errno. */
static int read_smaps(const char *path, smaps_acc_t *s) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t have = 0;
  for (;;) {
    ssize_t r = read_retry(fd, smaps_buf + have, sizeof smaps_buf - 1 - have);
    if (r < 0) {
      close(fd);
      return (int)r;
    }
    if (r == 0) break;
    have += (size_t)r;
    smaps_buf[have] = 0;
    char *line = smaps_buf, *nl;
    while ((nl = memchr(line, '\n', have - (size_t)(line - smaps_buf))) != NULL) {
      *nl = 0;
      smaps_line(s, line);
      line = nl + 1;
    }
    /* Keep the unfinished line for the next read. A line longer than the
     * whole buffer cannot occur (paths are < PATH_MAX), but never spin. */
    size_t rest = have - (size_t)(line - smaps_buf);
    if (rest == sizeof smaps_buf - 1) rest = 0;
    memmove(smaps_buf, line, rest);
    have = rest;
  }
  close(fd);
  if (have) {
    smaps_buf[have] = 0;
    smaps_line(s, smaps_buf);
  }
  vma_close(s);
  return 0;
}

/* Exposed for the unit test (tests/live_os.c): the breakdown of any smaps
 * file. Agent thread (the buffer is static). */
int vkm_os_smaps_breakdown(const char *path, vkm_os_t *out);
int vkm_os_smaps_breakdown(const char *path, vkm_os_t *out) {
  smaps_acc_t s;
  memset(&s, 0, sizeof s);
  int rc = read_smaps(path, &s);
  if (rc) return rc;
  out->smaps_heap = s.heap;
  out->smaps_stack = s.stack;
  out->smaps_anon = s.anon;
  out->smaps_file = s.file;
  out->smaps_other = s.other;
  out->have_smaps = 1;
  out->smaps_at_ms = unix_ms_now();
  return 0;
}

/* ---------------------------------------------------------------------------
 * The reader
 * ------------------------------------------------------------------------- */

/* Costs are measured in this thread's CPU time (user + kernel): wall time
 * would count the agent being descheduled on a busy machine and back off
 * for no reason. */
static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vkm_os_sample(vkm_os_t *os, uint64_t now_ns, int smaps) {
  pid_t pid = vkm_target_pid();
  if (pid != state_pid) {
    /* First call, or a worker forked off another's view. */
    memset(&cur, 0, sizeof cur);
    status_done = smaps_done = 0;
    smaps_rss = smaps_cost_ns = 0;
    state_pid = pid;
  }
  if (!page_size) {
    long ps = sysconf(_SC_PAGESIZE);
    page_size = ps > 0 ? (uint64_t)ps : 4096;
  }
  read_statm();

  uint64_t smaps_gap = smaps_cost_ns * SMAPS_DUTY;
  int want_smaps = smaps == VKM_SMAPS_FORCE || !smaps_done ||
                   now_ns - smaps_at_ns >= (smaps_gap > SMAPS_EVERY_NS ? smaps_gap : SMAPS_EVERY_NS);
  if (!status_done || now_ns - status_at_ns >= STATUS_EVERY_NS) {
    read_status();
    read_stat();
    /* Memory moved since the last breakdown: refresh it now rather than
     * show a stale split for up to 10 s. */
    if (smaps_done && smaps_rss &&
        (cur.rss > smaps_rss ? cur.rss - smaps_rss : smaps_rss - cur.rss) * 100 > smaps_rss * SMAPS_DRIFT_PCT &&
        now_ns - smaps_at_ns >= smaps_cost_ns * SMAPS_DUTY)
      want_smaps = 1;
    status_at_ns = now_ns;
    status_done = 1;
  }
  if (want_smaps && smaps != VKM_SMAPS_NONE) {
    uint64_t t0 = cpu_ns();
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
    int rc = vkm_os_smaps_breakdown(path, &cur);
    smaps_cost_ns = cpu_ns() - t0;
    if (rc == 0) smaps_rss = cur.rss;
    smaps_at_ns = now_ns;
    smaps_done = 1;
  }
  /* VmHWM is read once a second; statm is fresher. */
  if (cur.rss > cur.peak_rss) cur.peak_rss = cur.rss;
  *os = cur;
}

/* Rss of the heap and anonymous mappings at the last smaps breakdown. */
uint64_t vkm_os_heap_rss(void) { return cur.have_smaps ? cur.smaps_heap + cur.smaps_anon : 0; }
