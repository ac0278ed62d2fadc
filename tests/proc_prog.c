/* proc_prog.c - what a program sees of the shim (tests/proc_test.py): its
 * threads, its signal dispositions, its descriptor numbers, its credentials,
 * its way out. Every mode prints or writes only what is the same with and
 * without LD_PRELOAD, so the driver compares the two runs byte for byte.
 *
 *   tasks              entries of /proc/self/task at main
 *   userns             unshare(CLONE_NEWUSER) ("unshare ok" or the errno)
 *   pthread_exit       main leaves through pthread_exit(NULL); a thread
 *                      ends 100 ms later, which must end the process (0)
 *   setxid             as root: KEEPCAPS, setresuid(65534), capset raising
 *                      CAP_SETGID on this thread, setresgid(65534)
 *   sigdisp            SIGINT and SIGTERM dispositions at main
 *   stdio              a line on stdout and one on stderr
 *   fds DIR            close_range(3..), then files and a pipe on low
 *                      numbers, written and read between many mallocs
 *   closed02 DIR       started with 0 and 2 closed: two files must get 0 and 2
 *   plant K            K never-freed blocks of 1000 + 16 i bytes, "ready",
 *                      then sleeps (the driver kills it)
 *   exit CODE          a few allocations, then exit(CODE)
 *   churn MS N         sleeps MS ms, then N malloc/free pairs (64 blocks
 *                      kept at a time), then "done"
 *   usable             malloc_usable_size of blocks from each allocation
 *                      function (MALLOC_CHECK_=3 makes it the request)
 *   overflow           calloc, reallocarray and malloc of impossible
 *                      sizes: the result and errno, as the allocator left it
 *   heap               the malloc heap at main (mallinfo2: nothing in use
 *                      yet), then the usable size of an aligned block,
 *                      which depends on where the heap's top is */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int mode_tasks(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) {
    perror("opendir /proc/self/task");
    return 2;
  }
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  printf("tasks %d\n", n);
  return 0;
}

static int mode_userns(void) {
  if (unshare(CLONE_NEWUSER) != 0) {
    printf("unshare failed: %s\n", strerror(errno));
    return 1;
  }
  printf("unshare ok\n");
  return 0;
}

static void *late_thread(void *arg) {
  (void)arg;
  sleep_ms(100);
  return NULL;
}

static int mode_pthread_exit(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, late_thread, NULL) != 0) return 2;
  printf("main leaves\n");
  fflush(stdout);
  pthread_exit(NULL);
}

static int mode_setxid(void) {
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
    printf("prctl(PR_SET_KEEPCAPS): %s\n", strerror(errno));
    return 2;
  }
  if (setresuid(65534, 65534, 65534) != 0) {
    printf("setresuid(65534): %s\n", strerror(errno));
    return 3;
  }
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capget, &h, d) != 0) {
    printf("capget: %s\n", strerror(errno));
    return 4;
  }
  d[CAP_TO_INDEX(CAP_SETGID)].effective |= CAP_TO_MASK(CAP_SETGID);
  if (syscall(SYS_capset, &h, d) != 0) { /* this thread only */
    printf("capset(CAP_SETGID): %s\n", strerror(errno));
    return 5;
  }
  /* glibc applies this to every thread of the process, each with its own
   * capabilities; a thread that lacks CAP_SETGID makes glibc abort. */
  if (setresgid(65534, 65534, 65534) != 0) {
    printf("setresgid(65534): %s\n", strerror(errno));
    return 6;
  }
  printf("uid %d gid %d\n", (int)getuid(), (int)getgid());
  return 0;
}

static const char *disp(int sig) {
  struct sigaction sa;
  if (sigaction(sig, NULL, &sa) != 0) return "error";
  if (sa.sa_flags & SA_SIGINFO) return "handler";
  if (sa.sa_handler == SIG_DFL) return "SIG_DFL";
  if (sa.sa_handler == SIG_IGN) return "SIG_IGN";
  return "handler";
}

static int mode_sigdisp(void) {
  printf("SIGINT %s\nSIGTERM %s\n", disp(SIGINT), disp(SIGTERM));
  return 0;
}

static int mode_stdio(void) {
  char *s = malloc(64);
  snprintf(s, 64, "out %d", 42);
  printf("%s\n", s);
  fprintf(stderr, "err %d\n", 43);
  free(s);
  return 0;
}

static int open_at(const char *dir, const char *name, int flags) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return open(path, flags, 0644);
}

static void put(int fd, const char *s) {
  size_t n = strlen(s);
  while (n) {
    ssize_t w = write(fd, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static int mode_fds(const char *dir) {
  if (syscall(SYS_close_range, 3u, ~0u, 0) != 0) {
    printf("close_range: %s\n", strerror(errno));
    return 2;
  }
  int a = open_at(dir, "a.txt", O_WRONLY | O_CREAT | O_TRUNC);
  int p[2];
  if (a < 0 || pipe(p) != 0) return 3;
  int b = open_at(dir, "b.txt", O_WRONLY | O_CREAT | O_TRUNC);
  if (b < 0) return 3;
  char line[128];
  snprintf(line, sizeof line, "fds a=%d pipe=%d,%d b=%d\n", a, p[0], p[1], b);
  put(a, line);
  static void *keep[64];
  for (int i = 0; i < 20000; i++) {
    /* mallocs between descriptor calls, in the sizes and numbers that fill
     * an exact-mode event ring */
    for (int k = 0; k < 8; k++) {
      int slot = (i * 8 + k) % 64;
      free(keep[slot]);
      keep[slot] = malloc(16 + (size_t)((i * 37 + k * 101) % 2000));
    }
    snprintf(line, sizeof line, "a %d\n", i);
    put(a, line);
    snprintf(line, sizeof line, "p %d\n", i);
    put(p[1], line);
    char in[64];
    ssize_t r = read(p[0], in, sizeof in);
    if (r > 0) {
      ssize_t w = write(b, in, (size_t)r);
      (void)w;
    }
  }
  for (int s = 0; s < 64; s++) free(keep[s]);
  printf("fds done\n");
  return 0; /* a, b and the pipe stay open through exit */
}

static int mode_closed02(const char *dir) {
  char line[128];
  int f0 = open_at(dir, "zero.txt", O_RDWR | O_CREAT | O_TRUNC);
  void *m = malloc(100);
  int f2 = open_at(dir, "two.txt", O_RDWR | O_CREAT | O_TRUNC);
  free(m);
  for (int i = 0; i < 100; i++) {
    void *x = malloc(32 + (size_t)i);
    snprintf(line, sizeof line, "zero.txt fd=%d line %d\n", f0, i);
    if (f0 >= 0) put(f0, line);
    snprintf(line, sizeof line, "two.txt fd=%d line %d\n", f2, i);
    if (f2 >= 0) put(f2, line);
    free(x);
  }
  return f0 == 0 && f2 == 2 ? 0 : 1;
}

#define PLANT_MAX 1000
static void *planted[PLANT_MAX];

static int mode_plant(int k) {
  if (k > PLANT_MAX) k = PLANT_MAX;
  for (int i = 0; i < k; i++) {
    planted[i] = malloc(1000 + 16 * (size_t)i);
    memset(planted[i], i, 1000);
  }
  printf("ready\n");
  fflush(stdout);
  for (int i = 0; i < 600; i++) sleep_ms(100);
  return 0;
}

static int mode_exit(int code) {
  for (int i = 0; i < 100; i++) free(malloc(64 + (size_t)i));
  void *kept = malloc(500);
  (void)kept;
  exit(code);
}

static int mode_churn(long ms, long n) {
  void *keep[64] = {0};
  sleep_ms(ms);
  for (long i = 0; i < n; i++) {
    free(keep[i % 64]);
    keep[i % 64] = malloc(100 + (size_t)(i % 50));
  }
  for (int k = 0; k < 64; k++) free(keep[k]);
  printf("done\n");
  return 0;
}

static int mode_usable(void) {
  void *p[7];
  p[0] = malloc(100);
  p[1] = calloc(10, 10);
  p[2] = realloc(malloc(50), 200);
  p[3] = aligned_alloc(64, 100);
  p[4] = memalign(256, 100);
  if (posix_memalign(&p[5], 128, 100) != 0) p[5] = NULL;
  p[6] = valloc(100);
  for (int i = 0; i < 7; i++) {
    printf("%zu\n", malloc_usable_size(p[i]));
    free(p[i]);
  }
  printf("dlerror at the end: %s\n", dlerror() ? "set" : "none");
  return 0;
}

static int mode_overflow(void) {
  volatile size_t half = SIZE_MAX / 2, huge = SIZE_MAX - 4096;
  errno = 0;
  void *p = calloc(half, 4);
  printf("calloc(SIZE_MAX / 2, 4): %s, errno %d\n", p ? "a block" : "NULL", errno);
  errno = 0;
  p = reallocarray(NULL, half, 4);
  printf("reallocarray(NULL, SIZE_MAX / 2, 4): %s, errno %d\n", p ? "a block" : "NULL", errno);
  errno = 0;
  p = malloc(huge);
  printf("malloc(SIZE_MAX - 4096): %s, errno %d\n", p ? "a block" : "NULL", errno);
  return 0;
}

static int mode_heap(void) {
  struct mallinfo2 mi = mallinfo2();
  void *a = malloc(100), *b = aligned_alloc(64, 100);
  printf("at main: arena %zu, in use %zu in %zu mmapped\n", mi.arena, mi.uordblks, mi.hblks);
  printf("aligned_alloc(64, 100) after malloc(100): usable %zu\n", malloc_usable_size(b));
  free(a);
  free(b);
  return 0;
}

int main(int argc, char **argv) {
  const char *m = argc > 1 ? argv[1] : "";
  const char *arg = argc > 2 ? argv[2] : "";
  if (!strcmp(m, "tasks")) return mode_tasks();
  if (!strcmp(m, "userns")) return mode_userns();
  if (!strcmp(m, "pthread_exit")) return mode_pthread_exit();
  if (!strcmp(m, "setxid")) return mode_setxid();
  if (!strcmp(m, "sigdisp")) return mode_sigdisp();
  if (!strcmp(m, "stdio")) return mode_stdio();
  if (!strcmp(m, "fds")) return mode_fds(arg);
  if (!strcmp(m, "closed02")) return mode_closed02(arg);
  if (!strcmp(m, "plant")) return mode_plant(atoi(arg));
  if (!strcmp(m, "exit")) return mode_exit(atoi(arg));
  if (!strcmp(m, "heap")) return mode_heap();
  if (!strcmp(m, "overflow")) return mode_overflow();
  if (!strcmp(m, "usable")) return mode_usable();
  if (!strcmp(m, "churn")) return mode_churn(atol(arg), argc > 3 ? atol(argv[3]) : 0);
  fprintf(stderr, "proc_prog: unknown mode '%s'\n", m);
  return 64;
}
