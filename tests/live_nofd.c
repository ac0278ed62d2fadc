/* live_nofd.c - stack capture touches no file descriptor
 * (interpose/sample.c, capture).
 *
 * usage: live_nofd LIBVALKMEM
 * Re-runs itself under the shim in exact mode (VALKMEM_SAMPLE_BYTES=1:
 * every allocation captures a stack) with HTTP off. The inner run closes
 * every descriptor from 3 up, as daemons and shells do, so that the
 * program's next descriptors get the low numbers an unwinder that keeps a
 * descriptor of its own would have used (libunwind 1.6 validates addresses
 * through a pipe of its own, usually on 3 and 4, and reopens it on EBADF
 * wherever numbers are free). Then:
 *   1. a pipe (3 and 4): a known pattern is written in chunks, each chunk
 *      after a burst of allocations of varied sizes at varied stack depths
 *      (fresh stack pages included), read back and compared byte for byte;
 *      fstat on both ends must still name the same pipe, and nothing more
 *      may be readable than what the program wrote;
 *   2. a regular file on a low descriptor: written the same way, closed
 *      (the close must succeed: nobody closed it under us), re-read and
 *      compared.
 * An unwinder that reads the program's pipe blocks there (or eats its
 * bytes): a watchdog turns a hang into a failure with a message.
 * (An earlier design kept a wake-up eventfd in the program's table; the
 * test still leaves any eventfd it finds open, see inner().)
 * The outer run checks the inner one's exit status and verdict.
 */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK 61
#define NCHUNKS 512
#define TOTAL (CHUNK * NCHUNKS)

static unsigned char pattern[TOTAL], back[TOTAL + 64];
static volatile uintptr_t sink;

static unsigned char pat(size_t i) { return (unsigned char)((i * 131u + (i >> 8) * 7u + 17u) & 0xff); }

/* Allocations at depth `depth`, each level with a frame of its own and a
 * stack buffer that pushes deeper calls onto pages not touched before. */
static void churn(unsigned seed, int depth) {
  volatile char pad[depth % 4 == 0 ? 4096 : 64];
  pad[0] = (char)seed;
  if (depth > 0) {
    churn(seed * 1103515245u + 12345u, depth - 1);
  }
  size_t sz = (size_t)((seed >> 7) % 5000) + (size_t)(depth & 7);
  void *a = malloc(sz);
  void *b = calloc(1 + depth % 3, 24);
  a = realloc(a, sz * 2 + 1);
  sink ^= (uintptr_t)a ^ (uintptr_t)b ^ (uintptr_t)pad[0];
  free(b);
  free(a);
}

static void burst(unsigned seed) {
  for (int i = 0; i < 8; i++) churn(seed + (unsigned)i * 7919u, 4 + (int)((seed + (unsigned)i) % 28));
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT);
}

static int pipe_phase(void) {
  int p[2];
  if (pipe(p) != 0) {
    perror("pipe");
    return 1;
  }
  struct stat s0, s1, t0, t1;
  if (fstat(p[0], &s0) != 0 || fstat(p[1], &s1) != 0) return 1;
  /* The pattern must fit the pipe; reading it all after writing it all
   * also proves nothing else was written or read in between. */
  fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
  for (int c = 0; c < NCHUNKS; c++) {
    burst((unsigned)c);
    if (write_all(p[1], pattern + (size_t)c * CHUNK, CHUNK) != 0) {
      fprintf(stderr, "pipe: write of chunk %d failed: %s\n", c, strerror(errno));
      return 1;
    }
  }
  burst(99991u);
  size_t got = 0;
  while (got < TOTAL) {
    burst((unsigned)got);
    ssize_t r = read(p[0], back + got, TOTAL - got);
    if (r <= 0) {
      fprintf(stderr, "pipe: read after %zu bytes: %s\n", got, r ? strerror(errno) : "EOF");
      return 1;
    }
    got += (size_t)r;
  }
  int bad = 0;
  for (size_t i = 0; i < TOTAL; i++) {
    if (back[i] != pattern[i]) {
      fprintf(stderr, "pipe: byte %zu is 0x%02x, wrote 0x%02x\n", i, back[i], pattern[i]);
      bad = 1;
      break;
    }
  }
  struct pollfd pf = {.fd = p[0], .events = POLLIN};
  if (poll(&pf, 1, 0) != 0) {
    fprintf(stderr, "pipe: more to read than the program wrote (revents 0x%x)\n", pf.revents);
    bad = 1;
  }
  if (fstat(p[0], &t0) != 0 || fstat(p[1], &t1) != 0 || !same_file(&s0, &t0) || !same_file(&s1, &t1) ||
      !same_file(&t0, &t1)) {
    fprintf(stderr, "pipe: descriptors %d, %d no longer name the pipe the program made\n", p[0], p[1]);
    bad = 1;
  }
  if (close(p[0]) != 0 || close(p[1]) != 0) {
    fprintf(stderr, "pipe: close: %s\n", strerror(errno));
    bad = 1;
  }
  return bad;
}

static int file_phase(void) {
  char path[] = "/tmp/live_nofd.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) {
    perror("mkstemp");
    return 1;
  }
  struct stat s0, s1;
  int bad = fstat(fd, &s0) != 0;
  for (int c = 0; c < NCHUNKS && !bad; c++) {
    burst((unsigned)c * 3u + 1u);
    if (write_all(fd, pattern + (size_t)c * CHUNK, CHUNK) != 0) {
      fprintf(stderr, "file: write of chunk %d failed: %s\n", c, strerror(errno));
      bad = 1;
    }
  }
  burst(4242u);
  if (fstat(fd, &s1) != 0 || !same_file(&s0, &s1)) {
    fprintf(stderr, "file: descriptor %d no longer names the file\n", fd);
    bad = 1;
  }
  if (close(fd) != 0) {
    fprintf(stderr, "file: close(%d): %s\n", fd, strerror(errno));
    bad = 1;
  }
  fd = open(path, O_RDONLY);
  unlink(path);
  if (fd < 0) return 1;
  size_t got = 0;
  ssize_t r;
  while ((r = read(fd, back + got, sizeof back - got)) > 0) got += (size_t)r;
  close(fd);
  if (got != TOTAL) {
    fprintf(stderr, "file: %zu bytes, wrote %d\n", got, TOTAL);
    bad = 1;
  } else if (memcmp(back, pattern, TOTAL) != 0) {
    fprintf(stderr, "file: contents differ from what was written\n");
    bad = 1;
  }
  return bad;
}

static void close_from_to(unsigned lo, unsigned hi) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, lo, hi, 0u) == 0) return;
#endif
  for (unsigned fd = lo; fd <= hi && fd < 4096; fd++) close((int)fd);
}

/* The shim's eventfd in the program's table, or -1. */
static int agent_eventfd(void) {
  int found = -1;
  for (int fd = 3; fd < 256 && found < 0; fd++) {
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = 0;
    if (strcmp(link, "anon_inode:[eventfd]") == 0) found = fd;
  }
  return found;
}

static void hung(int sig) {
  (void)sig;
  static const char msg[] = "inner: hung (a read or write blocked on the program's descriptors)\n";
  if (write(2, msg, sizeof msg - 1)) {
  }
  _exit(30);
}

static int inner(void) {
  signal(SIGALRM, hung);
  alarm(20);
  for (size_t i = 0; i < TOTAL; i++) pattern[i] = pat(i);
  burst(1u); /* some unwinds before the descriptors go */
  /* Every descriptor from 3 up goes, except the agent's wake-up eventfd:
   * the program's threads write to it when a ring passes half full
   * (interpose/ring.c, maybe_wake), a descriptor use that is not stack
   * capture's and is outside what this test checks. */
  int keep = agent_eventfd();
  unsigned lo = 3;
  if (keep >= 3) {
    if ((unsigned)keep > lo) close_from_to(lo, (unsigned)keep - 1);
    lo = (unsigned)keep + 1;
  }
  close_from_to(lo, ~0u);
  int bad = pipe_phase();
  bad |= file_phase() << 1;
  fprintf(stderr, bad ? "inner: failed (%d)\n" : "inner: ok\n", bad);
  return bad ? 10 + bad : 0;
}

int main(int argc, char **argv) {
  if (getenv("LIVE_NOFD_INNER")) return inner();
  if (argc < 2) {
    fprintf(stderr, "usage: live_nofd LIBVALKMEM\n");
    return 2;
  }
  pid_t pid = fork();
  if (pid == 0) {
    setenv("LD_PRELOAD", argv[1], 1);
    setenv("LIVE_NOFD_INNER", "1", 1);
    setenv("VALKMEM_SAMPLE_BYTES", "1", 1);
    setenv("VALKMEM_HTTP", "0", 1);
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  int st = 0;
  CHECK_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st));
  CHECK_EQ(WEXITSTATUS(st), 0);
  return check_done("live_nofd");
}
