/* soak_signals.c - signals arriving in the middle of allocation.
 *
 * usage: soak_signals N
 * The main thread runs N rounds of malloc/free (a marker-size block and a
 * small one) while
 *  - an interval timer fires SIGALRM every 50 us at it; the handler only
 *    bumps a counter (it does not allocate), and
 *  - a signaller thread sends it SIGUSR1 in a tight loop; that handler
 *    writes one byte to a pipe (async-signal-safe), and a reader thread
 *    allocates one marker-B block per byte it reads.
 * Both handlers interrupt the shim's wrappers at arbitrary points. Exact:
 * size_hist of marker A == N, of marker B == bytes the reader got; planted:
 * alloc/free counts; live count unchanged.
 */
#include "soak.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t alarms, usr1s;
static int pipefd[2];
static atomic_int done;
static pthread_t main_thread;
static uint64_t reader_allocs;

static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

static void on_usr1(int sig) {
  (void)sig;
  int saved = errno;
  char c = 'x';
  if (write(pipefd[1], &c, 1) == 1) usr1s++; /* a full pipe drops the byte: not counted */
  errno = saved;
}

static void *reader(void *arg) {
  (void)arg;
  char buf[256];
  for (;;) {
    ssize_t r = read(pipefd[0], buf, sizeof buf);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      soak_die("read");
    }
    for (ssize_t i = 0; i < r; i++) {
      char *p = malloc(SOAK_MARK_B);
      if (!p) soak_die("malloc");
      p[SOAK_MARK_B - 1] = buf[i];
      free(p);
      reader_allocs++;
    }
  }
  return NULL;
}

static void *signaller(void *arg) {
  (void)arg;
  struct timespec ts = {0, 20000};
  while (!atomic_load(&done)) {
    pthread_kill(main_thread, SIGUSR1);
    nanosleep(&ts, NULL);
  }
  return NULL;
}

int main(int argc, char **argv) {
  uint64_t n = soak_arg(argc, argv, 1, 2000000);
  main_thread = pthread_self();
  if (pipe2(pipefd, O_NONBLOCK)) soak_die("pipe2");
  /* The reader blocks; only the write end stays non-blocking. */
  fcntl(pipefd[0], F_SETFL, fcntl(pipefd[0], F_GETFL) & ~O_NONBLOCK);

  /* Handlers first: the signaller starts sending at once. */
  struct sigaction sa = {0};
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);

  /* Helper threads do not take the signals: they must land on main. */
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGALRM);
  sigaddset(&block, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  pthread_t rt, st;
  if (pthread_create(&rt, NULL, reader, NULL) || pthread_create(&st, NULL, signaller, NULL))
    soak_die("pthread_create");
  pthread_sigmask(SIG_SETMASK, &old, NULL);

  struct itimerval it = {{0, 50}, {0, 50}};
  setitimer(ITIMER_REAL, &it, NULL);
  /* On a busy runner the signaller may not have run yet, and a short run
   * could finish before its first signal: wait for it (no allocation here,
   * so the counts are unchanged), at most ~5 s. */
  for (int w = 0; w < 5000 && (usr1s == 0 || alarms == 0); w++) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }

  uint64_t allocs = 0;
  for (uint64_t i = 0; i < n; i++) {
    char *a = malloc(SOAK_MARK_A);
    char *b = malloc(8 + i % 120);
    if (!a || !b) soak_die("malloc");
    a[0] = b[0] = (char)i;
    free(b);
    free(a);
    allocs += 2;
  }

  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  atomic_store(&done, 1);
  pthread_join(st, NULL);
  signal(SIGUSR1, SIG_IGN);
  signal(SIGALRM, SIG_IGN);
  close(pipefd[1]);
  pthread_join(rt, NULL);
  fprintf(stderr, "soak_signals: %d SIGALRM, %d SIGUSR1 during %" PRIu64 " rounds\n", (int)alarms, (int)usr1s, n);
  if (alarms == 0 || usr1s == 0) soak_die("no signals arrived: the test tested nothing");

  soak_obj_t planted = {0}, exact = {0};
  soak_put(&planted, "totals.alloc_count", (int64_t)(allocs + reader_allocs));
  soak_put(&planted, "totals.free_count", (int64_t)(allocs + reader_allocs));
  soak_put(&planted, "live.count", 0);
  soak_putf(&exact, (int64_t)n, "totals.size_hist.%d", SOAK_BUCKET_A);
  soak_putf(&exact, (int64_t)reader_allocs, "totals.size_hist.%d", SOAK_BUCKET_B);
  soak_print(&planted, &exact, NULL, NULL);
  return 0;
}
