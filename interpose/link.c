/* link.c - the recorder's link to the agent process.
 *
 * At start-up the recorder hands its segment and a handle on itself (a
 * pidfd) to the agent of its process tree over a Unix socket, then closes
 * both descriptors and the socket: from then on it holds none. Which agent:
 *
 *   - VALKMEM_AGENT_SOCK, inherited from an ancestor (or set by `valkmem
 *     run`/`gate`, which are agents themselves): connect and hand over;
 *   - otherwise this process starts one: the `valkmem` executable next to
 *     the library (or VALKMEM_AGENT_BIN), detached in a session of its own
 *     (platform.h), and leaves its socket path in the environment for
 *     descendants;
 *   - when that agent is gone (killed, crashed: nobody listens at the
 *     path), one process of the tree starts another at the same path, so
 *     that the rest of the tree, whose environment still names it, reaches
 *     the new one instead of each starting its own. Which one: whoever
 *     takes the lock on PATH.lock, which every agent holds for its life
 *     (the kernel lets it go when the agent dies); the others wait for
 *     the new agent to listen and hand over to it.
 *
 * At exit() the recorder writes the exit code into the segment; when a
 * report is due it also tells its agent and waits (bounded) until the
 * report is written, so that a report exists once the process has exited.
 * Every other ending (_exit, a signal, SIGKILL) the agent sees by itself.
 *
 * VALKMEM_AGENT=0 hands nothing over: counting only.
 */
#include "hot.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef VKM_BINDIR
#define VKM_BINDIR "/usr/local/bin"
#endif

static char agent_sock[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* the tree's agent */
static char agent_bin[1024];
static int handed;  /* this process's segment reached an agent */

/* ---------------------------------------------------------------------------
 * One message to an agent
 * ------------------------------------------------------------------------- */
static int sock_addr(const char *path, struct sockaddr_un *a, socklen_t *len) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof a->sun_path) return -1;
  memcpy(a->sun_path, path, n);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

/* Sends a hello (with descriptors) to the agent at `path`; with want_reply,
 * waits up to timeout_ms for its one-byte answer. 0; -2 when nobody
 * listens at path (the agent is gone); -1 on any other failure. */
static int send_hello(const char *path, uint32_t kind, const int *fds, int nfds, int want_reply, int timeout_ms) {
  struct sockaddr_un a;
  socklen_t alen;
  if (sock_addr(path, &a, &alen) != 0) return -1;
  int s = vkm_plat_unix_socket();
  if (s < 0) return -1;
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int rc = -1;
  if (connect(s, (struct sockaddr *)&a, alen) != 0) {
    if (errno == ECONNREFUSED || errno == ENOENT) rc = -2;
  } else {
    vkm_hello_t h = {.magic = VKM_HELLO_MAGIC, .version = VKM_SEG_VERSION, .pid = vkm_seg->pid,
                     .ppid = vkm_seg->ppid, .kind = kind};
    struct iovec iov = {&h, sizeof h};
    union {
      char buf[CMSG_SPACE(sizeof(int) * 4)];
      struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
      memset(&u, 0, sizeof u);
      m.msg_control = u.buf;
      m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
      struct cmsghdr *c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t w;
    do w = sendmsg(s, &m, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)sizeof h) {
      rc = 0;
      if (want_reply) {
        char b;
        ssize_t r;
        do r = recv(s, &b, 1, 0);
        while (r < 0 && errno == EINTR);
        rc = r == 1 ? 0 : -1;
      }
    }
  }
  close(s);
  return rc;
}

/* ---------------------------------------------------------------------------
 * Starting an agent
 * ------------------------------------------------------------------------- */
static int executable(const char *p) { return p[0] && access(p, X_OK) == 0; }

static int find_agent_bin(char *out, size_t cap) {
  if (agent_bin[0]) {
    snprintf(out, cap, "%s", agent_bin);
    return executable(out) ? 0 : -1;
  }
  char dir[900];
  snprintf(dir, sizeof dir, "%s", vkm_plat_object_path((const void *)vkm_link_start));
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = 0;
    snprintf(out, cap, "%s/valkmem", dir);
    if (executable(out)) return 0;
    snprintf(out, cap, "%s/../bin/valkmem", dir);
    if (executable(out)) return 0;
  }
  snprintf(out, cap, "%s/valkmem", VKM_BINDIR);
  return executable(out) ? 0 : -1;
}

/* A directory for the socket: $TMPDIR (or /tmp)/valkmem-UID, ours. Root's
 * lets others pass through it (0711) but not list or change it, so that a
 * process of the tree that drops root (setpriv, su, a server) reaches the
 * tree's agent by the name it inherited; the agent takes another user's
 * segment only from a process of its tree (agentd.c). Another user's stays
 * closed (0700): no process of theirs can become another user. */
static int socket_path(char *out, size_t cap) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || tmp[0] != '/' || strlen(tmp) > 40) tmp = "/tmp";
  char dir[96];
  snprintf(dir, sizeof dir, "%s/valkmem-%u", tmp, (unsigned)getuid());
  mode_t mode = getuid() == 0 ? 0711 : 0700;
  if (mkdir(dir, mode) != 0 && errno != EEXIST) return -1;
  struct stat st;
  if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 066)) return -1;
  if ((st.st_mode & 0777) != mode) chmod(dir, mode); /* a umask's, or an earlier version's */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  /* Fixed-width numbers: the environment string the program inherits has
   * the same size in every run. */
  int n = snprintf(out, cap, "%s/agent-%010d-%016lx.sock", dir, (int)getpid(), (unsigned long)(ts.tv_nsec ^ ts.tv_sec));
  return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* setenv() for the recorder: setenv takes the new vector and the string
 * from the program's heap (and its search tree), which left the heap of a
 * process that started the agent in another state than without valkmem
 * (mallinfo2, addresses, the usable size of an aligned block). The vector
 * and the string go into a mapping of our own instead; glibc copies a
 * vector it did not allocate before it changes it, and never frees it. */
void vkm_env_set(const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value), n = 0, at = (size_t)-1;
  char **cur = vkm_plat_environ();
  for (char **e = cur; e && e[n]; n++)
    if (at == (size_t)-1 && !strncmp(e[n], name, nl) && e[n][nl] == '=') at = n;
  size_t vec = (n + 2) * sizeof(char *);
  char **env = vkm_plat_map(vec + nl + vl + 2);
  if (!env) {
    setenv(name, value, 1);
    return;
  }
  char *str = (char *)env + vec;
  memcpy(str, name, nl);
  str[nl] = '=';
  memcpy(str + nl + 1, value, vl + 1);
  if (n) memcpy(env, cur, n * sizeof(char *));
  if (at != (size_t)-1) env[at] = str; /* where setenv would have put it */
  else env[n++] = str;
  env[n] = NULL;
  vkm_plat_set_environ(env);
}

/* The environment for the agent: the program's, without LD_PRELOAD (the
 * agent records nothing) and without the old socket. */
static char **agent_env(void) {
  static char *env[512];
  size_t n = 0;
  const char *pre = vkm_plat_preload_var();
  size_t pre_len = strlen(pre);
  for (char **e = vkm_plat_environ(); e && *e && n < 510; e++) {
    if ((!strncmp(*e, pre, pre_len) && (*e)[pre_len] == '=') || !strncmp(*e, "VALKMEM_AGENT_SOCK=", 19)) continue;
    env[n++] = *e;
  }
  env[n] = NULL;
  return env;
}

/* Starts an agent for this process: at a new path, or (at != NULL) in
 * place of the tree's agent that is gone. 0; -2 when another agent holds
 * the lock of that path (alive, or being started by another process of
 * the tree); -1 when no agent could be started. */
static int spawn_agent(int segfd, int pidfd, const char *at) {
  char bin[1024];
  if (find_agent_bin(bin, sizeof bin) != 0) {
    vkm_seg_note("no agent: cannot find the valkmem executable next to libvalkmem (set VALKMEM_AGENT_BIN)");
    return -1;
  }
  char path[sizeof agent_sock], lock[sizeof agent_sock + 8];
  if (at) snprintf(path, sizeof path, "%s", at);
  else if (socket_path(path, sizeof path) != 0) return -1;
  struct sockaddr_un a;
  socklen_t alen;
  if (sock_addr(path, &a, &alen) != 0) return -1;
  /* The agent holds the lock for its life. Without one (a path too long
   * for it, a directory we cannot write) the agent runs all the same; it
   * just cannot be replaced in place. */
  int lk = -1;
  if ((size_t)snprintf(lock, sizeof lock, "%s.lock", path) < sizeof lock)
    lk = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lk >= 0 && flock(lk, LOCK_EX | LOCK_NB) != 0) {
    int busy = errno == EWOULDBLOCK;
    close(lk);
    if (busy && at) return -2;
    lk = -1; /* a new path's lock held: only an agent sweeping dead ones (agentd.c) holds it, for a moment */
  }
  if (at) unlink(path); /* the socket of the agent that is gone */
  int ls = vkm_plat_unix_socket();
  if (ls < 0) {
    if (lk >= 0) close(lk);
    return -1;
  }
  if (bind(ls, (struct sockaddr *)&a, alen) != 0 || listen(ls, 4096) != 0) {
    close(ls);
    if (lk >= 0) close(lk);
    return -1;
  }
  chmod(path, 0666); /* reachable by the tree's processes of other users (socket_path) */
  /* The URL line goes to the terminal the program was started from, never
   * into a pipe or file the program owns. */
  char tty[256] = "";
  if (isatty(2) && ttyname_r(2, tty, sizeof tty) != 0) tty[0] = 0;
  /* The line is said before main: a full-screen program draws after it,
   * instead of having it written over its screen. The agent closes its
   * end of this pipe once the line is out (or will not be). */
  int ready[2] = {-1, -1};
  if (tty[0] && vkm_config.http && !vkm_config.quiet && !vkm_config.url_file[0] && !at) {
    if (pipe(ready) == 0) { /* at start-up: no other thread forks meanwhile */
      fcntl(ready[0], F_SETFD, FD_CLOEXEC);
      fcntl(ready[1], F_SETFD, FD_CLOEXEC);
    } else {
      ready[0] = ready[1] = -1;
    }
  }
  char *argv[10] = {bin, "agent", "--from-recorder", "--sock", path};
  int k = 5;
  if (at) argv[k++] = "--in-place";
  if (tty[0]) {
    argv[k++] = "--tty";
    argv[k++] = tty;
  }
  if (ready[1] >= 0) argv[k++] = "--ready";
  argv[k] = NULL;
  /* Descriptors 3..6 in the agent: the listening socket, the segment, this
   * process's pidfd and the lock (the segment again where one is missing);
   * 7: the pipe above. */
  int fds[5] = {ls, segfd, pidfd >= 0 ? pidfd : segfd, lk >= 0 ? lk : segfd, ready[1]};
  int rc = vkm_plat_spawn_detached(bin, argv, agent_env(), fds, ready[1] >= 0 ? 5 : 4);
  close(ls);
  if (lk >= 0) close(lk);
  if (ready[1] >= 0) {
    close(ready[1]);
    /* Bounded: an agent that is slow to start costs the program at most
     * this much, and the line then comes when it comes. */
    struct pollfd p = {.fd = ready[0], .events = POLLIN};
    if (rc == 0)
      while (poll(&p, 1, 500) < 0 && errno == EINTR) {
      }
    close(ready[0]);
  }
  if (rc != 0) {
    unlink(path);
    return -1;
  }
  snprintf(agent_sock, sizeof agent_sock, "%s", path);
  /* For the programs this one execs; a forked child has agent_sock. */
  if (vkm_config.follow_exec) vkm_env_set("VALKMEM_AGENT_SOCK", path);
  return 0;
}

/* Hands this process's segment to the tree's agent, starting one when
 * there is none. Closes the descriptors either way. */
static void hand_over(int may_spawn) {
  int segfd = vkm_seg_take_fd();
  if (segfd < 0) return;
  int pidfd = vkm_plat_self_handle();
  int fds[2] = {segfd, pidfd};
  int n = pidfd >= 0 ? 2 : 1;
  int rc = agent_sock[0] ? send_hello(agent_sock, VKM_HELLO_SEGMENT, fds, n, 0, 2000) : -1;
  if (rc == 0) handed = 1;
  /* The tree's agent is gone: take its place, or hand over to the process
   * that does (link.c's head comment). Bounded: 100 tries, 2 ms apart. */
  for (int i = 0; rc == -2 && may_spawn && i < 100; i++) {
    int s = spawn_agent(segfd, pidfd, agent_sock);
    if (s == 0) handed = 1;
    if (s != -2) break;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    rc = send_hello(agent_sock, VKM_HELLO_SEGMENT, fds, n, 0, 2000);
    if (rc == 0) handed = 1;
  }
  if (!handed && may_spawn && spawn_agent(segfd, pidfd, NULL) == 0) handed = 1;
  close(segfd);
  if (pidfd >= 0) close(pidfd);
}

/* Whether this process may start an agent. Not as the first process of a
 * PID namespace (a container's entrypoint, `unshare -p`): every orphan of
 * the namespace is its child, the detached agent included, and an init
 * that waits for all its children would wait for the agent, which waits
 * for it. It still hands its segment to an agent it is given
 * (VALKMEM_AGENT_SOCK), and its descendants start their own. */
static int may_start_agent(void) { return getpid() != 1; }

void vkm_link_start(void) {
  const char *s = getenv("VALKMEM_AGENT_SOCK");
  if (s && strlen(s) < sizeof agent_sock) snprintf(agent_sock, sizeof agent_sock, "%s", s);
  /* Programs this one execs run without the shim: they are not given the
   * agent's socket either (unsetenv moves pointers, it allocates nothing). */
  if (s && !vkm_config.follow_exec) unsetenv("VALKMEM_AGENT_SOCK");
  const char *b = getenv("VALKMEM_AGENT_BIN");
  if (b) snprintf(agent_bin, sizeof agent_bin, "%s", b);
  if (!vkm_config.agent) {
    int fd = vkm_seg_take_fd();
    if (fd >= 0) close(fd);
    return;
  }
  hand_over(may_start_agent());
}

void vkm_link_fork_child(void) {
  handed = 0;
  if (!vkm_config.agent || !vkm_config.follow_fork) {
    int fd = vkm_seg_take_fd();
    if (fd >= 0) close(fd);
    return;
  }
  hand_over(may_start_agent());
}

/* Whether this process's exit must wait for its report, decided here,
 * without asking the agent (which may be busy starting workers for the
 * processes before it). With %p every process has a report. Without it
 * only the tree's root has one, and the socket every tree's agent is
 * reached by is named agent-PID-NONCE.sock after the root: the process
 * that started the agent (socket_path above), or the command of `valkmem
 * run`/`gate` (a link of that name, agent/cli/launch.c). An exec'd image
 * of the root keeps its pid. A socket of another name: wait, to be safe. */
static int report_due_here(void) {
  if (strstr(vkm_config.report, "%p")) return 1;
  long root = vkm_sock_root(agent_sock);
  return root < 0 || root == (long)getpid();
}

void vkm_link_at_exit(int code) {
  vkm_seg->end_ns = vkm_now_ns();
  /* A code the platform could not tell (platform.h) is left to the agent,
   * which then says how it learnt the end, or that it does not know. */
  if (code != VKM_EXIT_UNKNOWN) {
    vkm_seg->exit_code = code;
    __atomic_store_n(&vkm_seg->end_state, VKM_END_EXIT, __ATOMIC_RELEASE);
  }
  if (!handed || !vkm_config.report[0] || !report_due_here()) return;
  /* The agent forks a worker for this process when it receives the
   * segment; a process that ends at once may get here first. agent_sock
   * says what to do (segment.h): a path, or "-" (the worker has no socket)
   * or "!" (the worker has stopped). */
  char path[sizeof vkm_seg->agent_sock];
  for (int i = 0; i < 2000; i++) {
    memcpy(path, vkm_seg->agent_sock, sizeof path);
    path[sizeof path - 1] = 0;
    if (path[0]) break;
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (path[0] && path[0] != '-' && path[0] != '!') send_hello(path, VKM_HELLO_FINAL, NULL, 0, 1, 30000);
}
