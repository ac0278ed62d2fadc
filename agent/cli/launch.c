/* launch.c - finding libvalkmem.so and running a command under it.
 *
 * The library is looked for, in order: $VALKMEM_LIB (a file, used as given:
 * an unusable path is an error, never silently skipped), next to the
 * `valkmem` executable (the build tree), ../lib* / relative to it (an
 * install prefix: lib, lib64, lib/<multiarch>), and the configured install
 * directory VKM_LIBDIR. */
#include "cli.h"
#include "../agent.h"
#include "../sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef VKM_LIBDIR
#define VKM_LIBDIR "/usr/local/lib"
#endif

extern char **environ;

/* 0 when path is a readable shared library of this platform's format
 * (ELF, Mach-O), else a reason. */
static const char *library_problem(const char *path) {
  static char why[128];
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(why, sizeof why, "%s", strerror(errno));
    return why;
  }
  if (S_ISDIR(st.st_mode)) return "is a directory";
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(why, sizeof why, "%s", strerror(errno));
    return why;
  }
  unsigned char magic[4];
  ssize_t n = read(fd, magic, 4);
  close(fd);
  return vkm_sys_lib_format_problem(magic, n > 0 ? (size_t)n : 0);
}

static bool try_path(char *out, size_t len, const char *dir, const char *sub) {
  char p[PATH_MAX];
  int n = snprintf(p, sizeof p, "%s%s%s/%s", dir, sub[0] ? "/" : "", sub, vkm_sys_lib_name());
  if (n <= 0 || (size_t)n >= sizeof p || library_problem(p)) return false;
  if (!realpath(p, out) || strlen(out) >= len) snprintf(out, len, "%s", p);
  return true;
}

int vkm_find_library(char *path, size_t len) {
  const char *env = getenv("VALKMEM_LIB");
  if (env && *env) {
    const char *why = library_problem(env);
    if (why) {
      vkm_cli_err("VALKMEM_LIB=%s is unusable: %s", env, why);
      return -ENOENT;
    }
    if (env[0] != '/') {
      if (!realpath(env, path)) snprintf(path, len, "%s", env);
    } else {
      snprintf(path, len, "%s", env);
    }
    return 0;
  }
  char exe[PATH_MAX];
  char dir[PATH_MAX] = "";
  if (vkm_sys_exe_path(exe, sizeof exe) == 0) {
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = 0;
      snprintf(dir, sizeof dir, "%s", exe);
    }
  }
  if (dir[0]) {
    if (try_path(path, len, dir, "")) return 0;
    /* ../lib* relative to the executable, then one level of multiarch
     * subdirectories below each (lib/x86_64-linux-gnu). */
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s/..", dir);
    DIR *d = opendir(parent);
    if (d) {
      struct dirent *e;
      char found[PATH_MAX] = "";
      while (!found[0] && (e = readdir(d))) {
        if (strncmp(e->d_name, "lib", 3) != 0) continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", parent, e->d_name) >= (int)sizeof sub) continue;
        if (try_path(found, sizeof found, sub, "")) break;
        DIR *d2 = opendir(sub);
        if (!d2) continue;
        struct dirent *e2;
        while ((e2 = readdir(d2))) {
          if (e2->d_name[0] == '.') continue;
          if (try_path(found, sizeof found, sub, e2->d_name)) break;
        }
        closedir(d2);
      }
      closedir(d);
      if (found[0]) {
        snprintf(path, len, "%s", found);
        return 0;
      }
    }
  }
  if (try_path(path, len, VKM_LIBDIR, "")) return 0;
  vkm_cli_err("cannot find %s: looked next to %s, in %s/../lib*/ and in " VKM_LIBDIR "; set VALKMEM_LIB=/path/to/%s",
              vkm_sys_lib_name(), dir[0] ? dir : "the valkmem executable", dir[0] ? dir : ".", vkm_sys_lib_name());
  return -ENOENT;
}

bool vkm_signal_is_crash(int sig) {
  return sig == SIGSEGV || sig == SIGABRT || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
         sig == SIGSYS;
}

const char *vkm_signal_name(int sig) {
  switch (sig) {
  case SIGSEGV: return "SIGSEGV";
  case SIGABRT: return "SIGABRT";
  case SIGBUS: return "SIGBUS";
  case SIGFPE: return "SIGFPE";
  case SIGILL: return "SIGILL";
  case SIGKILL: return "SIGKILL";
  case SIGTERM: return "SIGTERM";
  case SIGINT: return "SIGINT";
  case SIGHUP: return "SIGHUP";
  case SIGQUIT: return "SIGQUIT";
  case SIGPIPE: return "SIGPIPE";
  case SIGTRAP: return "SIGTRAP";
  case SIGSYS: return "SIGSYS";
  case SIGXCPU: return "SIGXCPU";
  case SIGXFSZ: return "SIGXFSZ";
  case SIGALRM: return "SIGALRM";
  case SIGUSR1: return "SIGUSR1";
  case SIGUSR2: return "SIGUSR2";
  default: return "signal";
  }
}

int vkm_temp_report(char *path, size_t len) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = "/tmp";
  snprintf(path, len, "%s/valkmem-report-XXXXXX.json", tmp);
  int fd = mkstemps(path, 5);
  if (fd < 0) {
    int e = errno;
    vkm_cli_err("cannot create a temporary report file in %s: %s", tmp, strerror(e));
    return -e;
  }
  close(fd);
  return 0;
}

int vkm_temp_dir(char *path, size_t len, const char *name) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = "/tmp";
  snprintf(path, len, "%s/valkmem-%s-XXXXXX", tmp, name);
  if (!mkdtemp(path)) {
    int e = errno;
    vkm_cli_err("cannot create a temporary directory in %s: %s", tmp, strerror(e));
    path[0] = 0;
    return -e;
  }
  return 0;
}

void vkm_temp_dir_remove(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
      if (strncmp(e->d_name, "report-", 7) != 0) continue; /* only what the shim writes there */
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
}

/* ---------------------------------------------------------------------------
 * Running the child
 * ------------------------------------------------------------------------- */
static volatile sig_atomic_t child_pid;
int vkm_launch_orphan_ms;

/* A signal to us is passed on to the command unless the command has had
 * it already:
 * - the terminal's (Ctrl-C, Ctrl-backslash, a hang-up) go to the whole
 *   foreground process group, the command included;
 * - so does a kill of the group from inside it (the command's own
 *   kill(0, ...), or `timeout`, which starts us in a group of its own);
 * - a kill of the group from outside it (a supervisor's killpg, systemd
 *   stopping a unit, which signals each of its processes) looks like a
 *   kill of us alone (kill PID, docker stop) from here. A witness tells
 *   them apart: a child of ours in the group, not the command's, that
 *   reports each such signal it gets on a pipe. When it got the same
 *   signal at the same moment, so did the command.
 * A second SIGINT would interrupt the command's clean-up; a second SIGTERM
 * makes many servers skip theirs. The handler only notes the signal; the
 * wait loop in vkm_run_child decides, after hearing from the witness. */
enum { WITNESS_MS = 100 }; /* how long a group-wide signal may take to reach the witness */
static const int forwarded[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP};
#define NFWD ((int)(sizeof forwarded / sizeof forwarded[0]))
static volatile sig_atomic_t fwd_pending[NFWD];
static uint64_t fwd_at[NFWD]; /* ms, when it arrived (set before fwd_pending) */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void forward_signal(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  /* The kernel's own (the terminal's) carry no sender: si_pid is 0, on
   * Linux (SI_KERNEL) and on macOS alike. */
  if (child_pid <= 0 || si == NULL || si->si_pid <= 0) return;
  if (getpgid(si->si_pid) == getpgrp()) return;
  for (int i = 0; i < NFWD; i++)
    if (forwarded[i] == sig) {
      fwd_at[i] = mono_ms();
      fwd_pending[i] = 1;
    }
}

/* The witness: what it got, and when (its clock is ours: CLOCK_MONOTONIC). */
typedef struct witness_msg_s {
  int sig;
  uint64_t at_ms;
} witness_msg_t;

typedef struct witness_s {
  pid_t pid;
  int rd;           /* its reports */
  int ctl;          /* closed to make it go */
  uint64_t seen[NFWD]; /* ms of the last report of each signal */
} witness_t;

static int witness_fd = -1;

static void witness_heard(int sig) {
  witness_msg_t m = {sig, mono_ms()};
  ssize_t w = write(witness_fd, &m, sizeof m); /* atomic: below PIPE_BUF */
  (void)w;
}

static void witness_start(witness_t *w) {
  memset(w, 0, sizeof *w);
  w->pid = -1;
  w->rd = w->ctl = -1;
  int rep[2], ctl[2];
  if (vkm_sys_pipe(rep) != 0) return;
  if (vkm_sys_pipe(ctl) != 0) {
    close(rep[0]);
    close(rep[1]);
    return;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    /* It holds nothing of ours or the command's (a pipe the command's
     * output goes to must reach its end without it): its two pipes at 3
     * and 4, /dev/null at 0, 1 and 2. */
    dup2(rep[1], 3);
    dup2(ctl[0], 4);
    vkm_sys_close_from(5);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
      if (null > 4) close(null);
    }
    witness_fd = 3;
    struct sigaction sa = {.sa_handler = witness_heard, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NFWD; i++) sigaction(forwarded[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    char c;
    while (read(4, &c, 1) < 0 && errno == EINTR) {
    }
    _exit(0); /* valkmem closed its end, or is gone */
  }
  close(rep[1]);
  close(ctl[0]);
  if (pid < 0) {
    close(rep[0]);
    close(ctl[1]);
    return;
  }
  fcntl(rep[0], F_SETFL, fcntl(rep[0], F_GETFL) | O_NONBLOCK);
  w->pid = pid;
  w->rd = rep[0];
  w->ctl = ctl[1];
}

/* Reads what the witness has said so far; waits at most until deadline_ms. */
static void witness_listen(witness_t *w, uint64_t deadline_ms) {
  if (w->rd < 0) return;
  for (;;) {
    witness_msg_t m;
    ssize_t r = read(w->rd, &m, sizeof m);
    if (r == (ssize_t)sizeof m) {
      for (int i = 0; i < NFWD; i++)
        if (forwarded[i] == m.sig) w->seen[i] = m.at_ms;
      continue;
    }
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) { /* gone: every signal is ours alone from now */
      close(w->rd);
      w->rd = -1;
      return;
    }
    uint64_t now = mono_ms();
    if (now >= deadline_ms) return;
    struct pollfd p = {.fd = w->rd, .events = POLLIN};
    poll(&p, 1, (int)(deadline_ms - now));
  }
}

/* The signals noted by forward_signal: each passed on unless the witness
 * got it within WITNESS_MS of us. */
static void forward_pending(witness_t *w) {
  for (int i = 0; i < NFWD; i++) {
    if (!fwd_pending[i]) continue;
    fwd_pending[i] = 0;
    uint64_t at = fwd_at[i];
    int group = 0;
    for (uint64_t deadline = at + WITNESS_MS; !group;) {
      witness_listen(w, deadline);
      group = w->seen[i] + WITNESS_MS >= at && w->seen[i] <= at + WITNESS_MS;
      if (w->rd < 0 || mono_ms() >= deadline) break;
    }
    if (!group && child_pid > 0) kill((pid_t)child_pid, forwarded[i]);
  }
}

static void on_child(int sig) { (void)sig; } /* wakes sigsuspend */

/* The dispositions (and mask, when given) valkmem had before the command. */
static void restore_signals(const struct sigaction old[NFWD], const struct sigaction *old_chld, const sigset_t *mask) {
  sigaction(SIGCHLD, old_chld, NULL);
  for (int i = 0; i < NFWD; i++) sigaction(forwarded[i], &old[i], NULL);
  if (mask) sigprocmask(SIG_SETMASK, mask, NULL); /* last: nothing held comes to our handlers */
}

static void witness_stop(witness_t *w) {
  if (w->ctl >= 0) close(w->ctl);
  if (w->rd >= 0) close(w->rd);
  if (w->pid > 0)
    while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
    }
  w->pid = -1;
  w->rd = w->ctl = -1;
}

/* Builds LD_PRELOAD: ours first, so a malloc replacement the user already
 * preloads (jemalloc, tcmalloc) becomes the "next" allocator our wrappers
 * call through to. Appended after it, ours would never see a malloc call. */
static char *make_preload(const char *lib) {
  const char *old = getenv(vkm_sys_preload_var());
  size_t n = strlen(lib) + (old ? strlen(old) : 0) + 2;
  char *v = malloc(n);
  if (!v) return NULL;
  if (!old || !*old) {
    snprintf(v, n, "%s", lib);
    return v;
  }
  /* Already there (valkmem run inside valkmem run): keep it as it is. */
  const char *base = strrchr(lib, '/');
  base = base ? base + 1 : lib;
  if (strstr(old, base)) {
    snprintf(v, n, "%s", old);
    return v;
  }
  snprintf(v, n, "%s:%s", lib, old);
  return v;
}

/* The agent for the command's process tree: a child of ours that listens
 * on a socket in a private directory (VALKMEM_AGENT_SOCK for the command),
 * and that ends once the command has ended (done pipe) and every process
 * of the tree is reported. */
typedef struct agent_s {
  pid_t pid;
  int done_w;            /* closed when the command has ended */
  char sock[108];
  char dir[96];
} agent_t;

/* The recorder tells the root of its tree (the one process that waits for
 * its report at exit when VALKMEM_REPORT has no %p) by the pid in its
 * agent's socket name, agent-PID-NONCE.sock (interpose/link.c). The
 * command is given a symbolic link of that name to our socket. */
static int root_link_name(const agent_t *a, pid_t pid, char *out, size_t cap) {
  int n = snprintf(out, cap, "%s/agent-%010d-%016x.sock", a->dir, (int)pid, 0u);
  return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int agent_start(agent_t *a) {
  memset(a, 0, sizeof *a);
  a->pid = -1;
  a->done_w = -1;
  const char *tmp = getenv("TMPDIR");
  if (!tmp || tmp[0] != '/' || strlen(tmp) > 40) tmp = "/tmp";
  snprintf(a->dir, sizeof a->dir, "%s/valkmem-run-XXXXXX", tmp);
  if (!mkdtemp(a->dir)) return -errno;
  /* Others may pass through the directory (not list it) and connect to
   * the sockets in it, so that a process of the command's tree that runs
   * as another user (setpriv, runuser, a server dropping root) is recorded
   * by this agent, not one of its own that the gate would not hear of;
   * the agent takes other users' segments only from the command's tree
   * (agentd.c, peer_allowed). */
  if (geteuid() == 0) chmod(a->dir, 0711); /* only root's processes can become another user */
  snprintf(a->sock, sizeof a->sock, "%s/agent.sock", a->dir);
  int ls = vkm_sys_socket(AF_UNIX, 0);
  if (ls < 0) return -errno;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path, a->sock, strlen(a->sock) + 1);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 4096) != 0) {
    int e = errno;
    close(ls);
    return -e;
  }
  chmod(a->sock, 0666);
  int done[2];
  if (vkm_sys_pipe(done) != 0) {
    close(ls);
    return -errno;
  }
  fflush(NULL);
  pid_t p = fork();
  if (p < 0) {
    int e = errno;
    close(ls);
    close(done[0]);
    close(done[1]);
    return -e;
  }
  if (p == 0) {
    close(done[1]);
    signal(SIGINT, SIG_IGN); /* the command's Ctrl-C; the agent writes its reports */
    vkm_agentd_t d = {.listen_fd = ls, .sock_path = a->sock, .first_seg_fd = -1, .first_pid_fd = -1, .lock_fd = -1, .http_fd = -1, .ready_fd = -1,
                      .done_fd = done[0], .orphan_ms = vkm_launch_orphan_ms};
    _exit(vkm_agentd_run(&d));
  }
  close(ls);
  close(done[0]);
  a->pid = p;
  a->done_w = done[1];
  return 0;
}

/* The command has ended: let the agent finish its reports, then wait. */
static void agent_finish(agent_t *a) {
  if (a->done_w >= 0) close(a->done_w);
  a->done_w = -1;
  if (a->pid > 0) {
    int st;
    while (waitpid(a->pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  a->pid = -1;
  /* The directory is ours alone (mkdtemp): our socket, the command's link
   * to it, and any worker socket a killed worker left behind all go. */
  DIR *d = opendir(a->dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
  }
  rmdir(a->dir);
}

int vkm_exit_like_child(const vkm_child_t *c, int status) {
  /* A shell stops a loop or a list at Ctrl-C only when its child itself
   * died of SIGINT (or SIGQUIT): it takes an exit status of 130 for a
   * command that caught the signal and carried on. Other signals keep the
   * shell's 128+N, with the summary saying which. */
  if ((c->signal != SIGINT && c->signal != SIGQUIT) || status != c->exit_code) return status;
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  fflush(NULL);
  signal(c->signal, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, c->signal);
  sigprocmask(SIG_UNBLOCK, &one, NULL);
  raise(c->signal);
  return status; /* a signal that does not end a process */
}

int vkm_run_child(const char *lib, char *const argv[], const char *const env[], vkm_child_t *out) {
  memset(out, 0, sizeof *out);
  agent_t agent;
  int arc = lib ? agent_start(&agent) : -1;
  if (lib && arc != 0) vkm_cli_warn("cannot start the agent (%s): the command runs without reports", strerror(-arc));
  int pfd[2];
  if (vkm_sys_pipe(pfd) != 0) return -errno;
  char *preload = lib ? make_preload(lib) : NULL;
  if (lib && !preload) return -ENOMEM;
  fflush(NULL);
  struct sigaction fwd = {.sa_sigaction = forward_signal, .sa_flags = SA_SIGINFO};
  struct sigaction old[NFWD];
  sigemptyset(&fwd.sa_mask);
  for (int i = 0; i < NFWD; i++) sigaction(forwarded[i], &fwd, &old[i]);
  /* Ignored when we started (nohup, a shell's `cmd &`): stays ignored, not
   * forwarded. */
  for (int i = 0; i < NFWD; i++)
    if (old[i].sa_handler == SIG_IGN) sigaction(forwarded[i], &old[i], NULL);
  witness_t witness;
  witness_start(&witness);
  /* Until the command has ended, the signals to pass on and SIGCHLD are
   * taken only in sigsuspend (below), so none is noted after the loop has
   * looked and before it sleeps. */
  struct sigaction chld = {.sa_handler = on_child}, old_chld;
  sigemptyset(&chld.sa_mask);
  sigaction(SIGCHLD, &chld, &old_chld);
  sigset_t held, old_mask;
  sigemptyset(&held);
  sigaddset(&held, SIGCHLD);
  for (int i = 0; i < NFWD; i++) sigaddset(&held, forwarded[i]);
  sigprocmask(SIG_BLOCK, &held, &old_mask);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    witness_stop(&witness);
    restore_signals(old, &old_chld, &old_mask);
    free(preload);
    close(pfd[0]);
    close(pfd[1]);
    return -e;
  }
  if (pid == 0) {
    /* The dispositions valkmem was started with: `nohup valkmem run`
     * must leave SIGHUP ignored in the command, as nohup alone does
     * (exec resets our forwarding handlers to SIG_DFL anyway). */
    restore_signals(old, &old_chld, &old_mask);
    close(pfd[0]);
    if (preload) setenv(vkm_sys_preload_var(), preload, 1);
    if (lib && arc == 0) {
      char link[sizeof agent.sock];
      if (root_link_name(&agent, getpid(), link, sizeof link) == 0 && symlink("agent.sock", link) == 0)
        setenv("VALKMEM_AGENT_SOCK", link, 1);
      else
        setenv("VALKMEM_AGENT_SOCK", agent.sock, 1);
    }
    /* The CLI's own setting, not the shim's (which warns about unknown
     * VALKMEM_* names). */
    unsetenv("VALKMEM_LIB");
    for (size_t i = 0; env && env[i]; i++) {
      const char *eq = strchr(env[i], '=');
      if (eq) {
        char name[256];
        size_t nl = (size_t)(eq - env[i]);
        if (nl >= sizeof name) continue;
        memcpy(name, env[i], nl);
        name[nl] = 0;
        setenv(name, eq + 1, 1);
      } else {
        unsetenv(env[i]);
      }
    }
    execvp(argv[0], argv);
    int e = errno;
    ssize_t w = write(pfd[1], &e, sizeof e);
    (void)w;
    _exit(e == ENOENT ? 127 : 126);
  }
  child_pid = pid;
  out->pid = (int)pid;
  close(pfd[1]);
  free(preload);
  int e = 0;
  ssize_t r;
  do r = read(pfd[0], &e, sizeof e);
  while (r < 0 && errno == EINTR);
  close(pfd[0]);
  if (r == (ssize_t)sizeof e) out->exec_errno = e;
  int status = 0;
  pid_t w;
  /* Waited for, not reaped: while the command is a zombie the agent can
   * still read how it ended (/proc/PID/stat) for its report. */
  for (;;) {
    forward_pending(&witness);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int wr = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT | WNOHANG);
    if ((wr == 0 && si.si_pid == pid) || (wr < 0 && errno != EINTR)) break;
    sigsuspend(&old_mask); /* a signal to pass on, or a child's end */
  }
  witness_stop(&witness);
  sigprocmask(SIG_SETMASK, &old_mask, NULL);
  if (lib && arc == 0) agent_finish(&agent);
  do w = waitpid(pid, &status, 0);
  while (w < 0 && errno == EINTR);
  child_pid = 0;
  restore_signals(old, &old_chld, NULL);
  if (w < 0) return -errno;
  if (WIFEXITED(status)) {
    out->exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out->signal = WTERMSIG(status);
    out->exit_code = 128 + out->signal;
  }
  return 0;
}
