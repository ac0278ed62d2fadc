/* live_fds.c - the program's descriptors are its own: the recorder holds
 * none after start-up, and the agent (a process of its own) never reaches
 * into the program's table.
 *
 * usage: live_fds LIBVALKMEM
 * Re-runs itself under the shim (HTTP on, so the agent holds a listening
 * socket and the dashboard's descriptors have small numbers) with stdout
 * and stderr on pipes, and checks what arrives. The inner run opens 16
 * pipes before the agent has started its server and 16 after, forks (the
 * child hands its own segment over), and in both processes checks every
 * pipe still works; the parent's last line goes through stdio's buffer,
 * flushed at exit after valkmem's exit handshake. Around that, the
 * lowest-descriptor rule (reopen_stdin): in this process and in 200 forked
 * children, the program reopens descriptor 0 again and again and must
 * always get 0. Nothing of valkmem's may arrive on the program's stderr
 * (a pipe): the URL line goes to a terminal or nowhere.
 */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPIPES 32

static int pipes[NPIPES][2];

static int pipes_work(const char *who) {
  int bad = 0;
  for (int i = 0; i < NPIPES; i++) {
    char c = (char)('a' + i % 26), d = 0;
    if (write(pipes[i][1], &c, 1) != 1 || read(pipes[i][0], &d, 1) != 1 || d != c) {
      fprintf(stderr, "%s: pipe %d (fds %d, %d) broken: %s\n", who, i, pipes[i][0], pipes[i][1], strerror(errno));
      bad++;
    }
  }
  return bad;
}

/* POSIX: open() returns the lowest free descriptor, and programs rely on
 * it (xargs and daemons do close(0); open("/dev/null") and expect 0). The
 * agent thread must never take a descriptor in the program's table, not
 * even for a moment while it starts: in a fresh process (its constructor)
 * and in every forked child (which starts an agent thread of its own), the
 * program's main thread reopens descriptor 0 over and over meanwhile.
 * Returns how many reopenings did not get 0. */
static int reopen_stdin(int rounds) {
  int bad = 0;
  for (int i = 0; i < rounds; i++) {
    close(0);
    int fd = open("/dev/null", O_RDONLY);
    if (fd != 0) {
      bad++;
      if (fd > 0) {
        dup2(fd, 0);
        close(fd);
      }
    }
  }
  return bad;
}

#define NFORKS 200

static int fork_reopen_storm(void) {
  int failed = 0;
  for (int i = 0; i < NFORKS; i++) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) _exit(reopen_stdin(400) ? 8 : 0);
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
  }
  return failed;
}

static int inner(void) {
  int early = reopen_stdin(2000); /* while the agent thread starts */
  if (early) {
    fprintf(stderr, "parent: %d of 2000 reopenings of stdin did not get descriptor 0\n", early);
    return 9;
  }
  for (int i = 0; i < NPIPES; i++) {
    if (i == NPIPES / 2) usleep(500 * 1000); /* the agent's server starts meanwhile */
    if (pipe(pipes[i]) != 0) return 2;
  }
  usleep(300 * 1000);
  if (pipes_work("parent before fork")) return 3;
  pid_t pid = fork();
  if (pid < 0) return 4;
  if (pid == 0) {
    usleep(400 * 1000); /* the child's agent starts its server after 250 ms */
    int bad = pipes_work("child");
    if (write(1, "child stdout ok\n", 16) != 16) bad++;
    if (write(2, "child stderr ok\n", 16) != 16) bad++;
    _exit(bad ? 5 : 0);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "child failed: status %d\n", st);
    return 6;
  }
  if (pipes_work("parent after fork")) return 7;
  int storm = fork_reopen_storm();
  if (storm) {
    fprintf(stderr, "%d of %d forked children: a reopening of stdin did not get descriptor 0\n", storm, NFORKS);
    return 10;
  }
  printf("parent done\n"); /* buffered: written at exit, after valkmem's stop */
  return 0;
}

static size_t read_all(int fd, char *buf, size_t cap) {
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0) n += (size_t)r;
  buf[n] = 0;
  return n;
}

int main(int argc, char **argv) {
  if (getenv("LIVE_FDS_INNER")) return inner();
  if (argc < 2) {
    fprintf(stderr, "usage: live_fds LIBVALKMEM\n");
    return 2;
  }
  int out[2], err[2];
  CHECK_EQ(pipe(out), 0);
  CHECK_EQ(pipe(err), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(out[0]);
    close(err[0]);
    setenv("LD_PRELOAD", argv[1], 1);
    setenv("LIVE_FDS_INNER", "1", 1);
    setenv("VALKMEM_HTTP", "1", 1);
    setenv("VALKMEM_LISTEN", "127.0.0.1:0", 1);
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  static char obuf[8192], ebuf[8192];
  read_all(out[0], obuf, sizeof obuf); /* EOF once every copy of the write end is closed */
  read_all(err[0], ebuf, sizeof ebuf);
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st));
  CHECK_EQ(WEXITSTATUS(st), 0);
  CHECK(strstr(obuf, "child stdout ok\n") != NULL);
  CHECK(strstr(obuf, "parent done\n") != NULL);
  CHECK(strstr(ebuf, "child stderr ok\n") != NULL);
  CHECK(strstr(ebuf, "valkmem") == NULL);
  if (check_failures) fprintf(stderr, "--- inner stdout:\n%s--- inner stderr:\n%s", obuf, ebuf);
  return check_done("live_fds");
}
