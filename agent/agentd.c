/* agentd.c - the agent process: one per process tree.
 *
 * It listens on a Unix socket. Each recorder of the tree connects once,
 * hands over its segment and a pidfd (SCM_RIGHTS), and hangs up; the agent
 * forks a worker for that process (agent.c), which maps the segment and
 * serves it until the process ends and its report is out. Workers are
 * processes, not threads: each keeps its own tables, and one process's
 * analysis never waits for another's.
 *
 * Started three ways:
 *   - by the first recorder of a tree under a bare LD_PRELOAD
 *     (`valkmem agent --from-recorder`, descriptors 3, 4, 5: the listening
 *     socket, the first segment and its pidfd), detached in its own
 *     session;
 *   - by `valkmem run` and `valkmem gate`, which fork it before the
 *     command and wait for it after (launch.c);
 * and it ends once every recorded process has ended, its worker is done,
 * and nobody has connected for a moment (a process may still be between
 * fork and handover), or once the launcher's command ended and every
 * worker is done.
 *
 * Report ownership: without %p in VALKMEM_REPORT only the tree's root
 * writes the report, and an exec'd image of it (same pid); with %p, every
 * process.
 */
#include "agent.h"
#include "proc.h"
#include "sys.h"
#include "../interpose/segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GRACE_MS 300 /* after the last worker: a child between fork and handover */

typedef struct worker_s {
  int pid;       /* the recorded process */
  int wpid;      /* our worker process */
  uint64_t ino;  /* its segment (a memfd's inode; 0: none, proc.h): one worker per segment */
  uint64_t born; /* the segment's start_ns: of two images of one pid, the newer */
  int row;       /* its row in vkm_tree, or -1 */
} worker_t;

static worker_t *workers;
static size_t nworkers, capworkers;
static volatile sig_atomic_t got_chld, got_term;

static void on_chld(int s) {
  (void)s;
  got_chld = 1;
}
static void on_term(int s) {
  (void)s;
  got_term = 1;
}

static void sock_dir_of(const char *sock, char *dir, size_t cap) {
  snprintf(dir, cap, "%s", sock ? sock : "");
  char *sl = strrchr(dir, '/');
  if (sl) *sl = 0;
  else dir[0] = 0;
}

/* The lock on sock_path.lock (interpose/link.c): removed, then let go, so
 * that a process arriving after us takes the path for a new agent. */
static void release_lock(vkm_agentd_t *d) {
  if (d->lock_fd < 0) return;
  char lock[256];
  if (d->sock_path && (size_t)snprintf(lock, sizeof lock, "%s.lock", d->sock_path) < sizeof lock) unlink(lock);
  close(d->lock_fd);
  d->lock_fd = -1;
}

static int report_owner(const vkm_agentd_t *d, int pid) {
  /* Without %p: the root only (its exec'd images share its pid). */
  (void)d;
  return pid == d->root_pid;
}

static void start_worker(vkm_agentd_t *d, int segfd, int pidfd, const vkm_hello_t *h) {
  uint64_t ino = vkm_proc_seg_id(segfd);
  for (size_t i = 0; ino && i < nworkers; i++)
    if (workers[i].ino == ino) { /* adopted already (below), or sent twice */
      close(segfd);
      if (pidfd >= 0) close(pidfd);
      return;
    }
  if (!d->root_pid) d->root_pid = h->pid;
  /* Peek at the segment's configuration for %p, and when it began. */
  static vkm_seg_hdr_t peek;
  memset(&peek, 0, sizeof peek);
  int pct = 0, forked = 0;
  if (vkm_proc_seg_peek(segfd, &peek, sizeof peek) == 0 && peek.magic == VKM_SEG_MAGIC &&
      peek.version == VKM_SEG_VERSION) {
    pct = vkm_report_per_pid(peek.config.report);
    forked = peek.forked != 0;
  }
  /* An exec replaces a process's image under the same pid: the older
   * image's worker finishes with "exec" as the ending. Segments can
   * arrive out of order (a forked child's hand-over may come after its
   * exec'd image's), so the start times decide which image is older. */
  for (size_t i = 0; i < nworkers; i++) {
    if (workers[i].pid != h->pid || workers[i].wpid <= 0) continue;
    if (workers[i].born > peek.start_ns) { /* this one was replaced already: nothing to serve */
      close(segfd);
      if (pidfd >= 0) close(pidfd);
      return;
    }
    kill(workers[i].wpid, SIGUSR1);
  }
  vkm_worker_t w = {.seg_fd = segfd, .pid_fd = pidfd, .pid = h->pid, .forked = forked, .linger = d->linger, .row = -1,
                    .ready_fd = -1};
  if (vkm_tree) {
    uint32_t r = __atomic_fetch_add(&vkm_tree->nrows, 1, __ATOMIC_ACQ_REL);
    if (r < VKM_TREE_ROWS) {
      vkm_tree_row_t *row = &vkm_tree->rows[r];
      memset(row, 0, sizeof *row);
      row->pid = h->pid;
      row->ppid = vkm_proc_parent(h->pid, peek.magic == VKM_SEG_MAGIC ? peek.ppid : 0);
      snprintf(row->program, sizeof row->program, "?");
      __atomic_store_n(&row->state, VKM_ROW_RUNNING, __ATOMIC_RELEASE);
      w.row = (int)r;
    }
    vkm_tree->root = d->dash_pid ? d->dash_pid : h->pid;
  }
  w.owner = pct || report_owner(d, h->pid);
  /* The dashboard's root is the first process to arrive: the tree's root,
   * or for an agent started in place of one that is gone, the process
   * that started it (the root, named in the socket, is not ours). */
  if (!d->dash_pid) d->dash_pid = h->pid;
  w.root = h->pid == d->dash_pid;
  w.http_fd = -1;
  if (w.root && peek.magic == VKM_SEG_MAGIC) {
    /* The root's dashboard outlives its images: an exec keeps the address,
     * where each image used to bind a port of its own (the URL line of
     * the first went dead, and a fixed VALKMEM_LISTEN was taken). */
    if (d->http_fd < 0) d->http_fd = vkm_http_listener(&peek.config);
    w.http_fd = d->http_fd;
    w.announce = !d->announced;
    d->announced = 1;
    w.ready_fd = d->ready_fd; /* the recorder that started us waits for the URL line */
  }
  sock_dir_of(d->sock_path, w.sock_dir, sizeof w.sock_dir);
  /* The worker's signals wait until it has its own handlers (a SIGUSR1
   * for an exec may follow at once). */
  sigset_t hold, old;
  sigemptyset(&hold);
  sigaddset(&hold, SIGUSR1);
  sigaddset(&hold, SIGTERM);
  sigprocmask(SIG_BLOCK, &hold, &old);
  pid_t c = fork();
  if (c == 0) {
    if (d->listen_fd >= 0) close(d->listen_fd);
    if (d->done_fd >= 0) close(d->done_fd);
    if (d->lock_fd >= 0) close(d->lock_fd); /* a worker that outlives us must not hold it */
    if (d->http_fd >= 0 && !w.root) close(d->http_fd);
    if (d->ready_fd >= 0 && w.ready_fd < 0) close(d->ready_fd);
    signal(SIGCHLD, SIG_DFL);
    _exit(vkm_worker_run(&w, &old));
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (w.ready_fd >= 0) { /* the worker has it now */
    close(d->ready_fd);
    d->ready_fd = -1;
  }
  close(segfd);
  if (pidfd >= 0) close(pidfd);
  if (c < 0) {
    vkm_say("error", "pid %d: cannot start a worker: fork: %s", h->pid, strerror(errno));
    return;
  }
  if (nworkers == capworkers) {
    size_t nc = capworkers ? capworkers * 2 : 16;
    worker_t *nw = realloc(workers, nc * sizeof *nw);
    if (!nw) return;
    workers = nw;
    capworkers = nc;
  }
  workers[nworkers++] = (worker_t){.pid = h->pid, .wpid = (int)c, .ino = ino, .born = peek.start_ns, .row = w.row};
}

/* Who may hand a segment over. The socket's directory keeps other users
 * out, except under `valkmem run` and `gate`, whose directory lets a
 * process of the command's tree in when it runs as another user (setpriv,
 * runuser, a server dropping root): such a process is accepted when it,
 * or one of its ancestors, is a process this agent serves (an exec, a
 * fork) or the launcher itself; any other user's is refused. */
static int peer_allowed(const vkm_agentd_t *d, int c, int peer) {
  if (vkm_sys_peer_trusted(c)) return 1;
  int launcher = d->done_fd >= 0 ? (int)getppid() : 0;
  for (int p = peer, depth = 0; p > 1 && depth < 256; depth++) {
    if (p == launcher) return 1;
    for (size_t i = 0; i < nworkers; i++)
      if (workers[i].pid == p) return 1;
    p = vkm_proc_parent(p, 0);
  }
  return 0;
}

/* One connection: a hello with descriptors. */
static void on_connection(vkm_agentd_t *d, int c) {
  /* The sender's pid as this agent sees it: a process in a pid namespace
   * of its own (a sandbox) knows itself by another number. Known before a
   * byte is read: a refused sender, who could connect and say nothing, is
   * not waited for at all (only what it has sent already is read). */
  int peer = vkm_sys_peer_pid(c);
  int allowed = peer_allowed(d, c, peer);
  struct timeval tv = {2, 0};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  vkm_hello_t h;
  struct iovec iov = {&h, sizeof h};
  union {
    char buf[CMSG_SPACE(sizeof(int) * 4)];
    struct cmsghdr align;
  } u;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t n;
  do n = vkm_sys_recvmsg(c, &m, allowed ? MSG_WAITALL : MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  int fds[4] = {-1, -1, -1, -1}, nfds = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      nfds = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      if (nfds > 4) nfds = 4;
      memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)nfds);
    }
  if (peer > 0 && n == (ssize_t)sizeof h) h.pid = peer;
  close(c);
  if (!allowed) {
    vkm_say("warning", "pid %d: a recorder of another user, not of this process tree, was refused", peer);
    /* Tell it that no worker will take its end, so that its exit does not
     * wait for one (segment.h, agent_sock "-"). Its own mapping is the
     * file the descriptor names; a file that is not a segment is left. */
    vkm_seg_hdr_t hd;
    if (nfds >= 1 && vkm_proc_seg_peek(fds[0], &hd, sizeof hd) == 0 && hd.magic == VKM_SEG_MAGIC && hd.agent_sock[0] == 0) {
      ssize_t w = pwrite(fds[0], "-", 1, (off_t)offsetof(vkm_seg_hdr_t, agent_sock));
      (void)w;
    }
  } else if (n != (ssize_t)sizeof h || h.magic != VKM_HELLO_MAGIC) {
    vkm_say("warning", "a connection that is not a valkmem recorder's was ignored");
  } else if (h.version != VKM_SEG_VERSION) {
    vkm_say("error", "pid %d: its recorder speaks segment version %u, this agent version %u: use the libvalkmem and valkmem of one build",
            h.pid, h.version, VKM_SEG_VERSION);
  } else if (h.kind == VKM_HELLO_SEGMENT && nfds >= 1) {
    start_worker(d, fds[0], nfds >= 2 ? fds[1] : -1, &h);
    return;
  }
  for (int i = 0; i < nfds; i++) close(fds[i]);
}

static void reap(void) {
  int st;
  pid_t p;
  while ((p = waitpid(-1, &st, WNOHANG)) > 0)
    for (size_t i = 0; i < nworkers; i++)
      if (workers[i].wpid == p) {
        /* A worker that died before it said how its process ended. */
        if (vkm_tree && workers[i].row >= 0) {
          vkm_tree_row_t *r = &vkm_tree->rows[workers[i].row];
          if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == VKM_ROW_RUNNING) {
            r->sock[0] = 0;
            __atomic_store_n(&r->state, VKM_ROW_EXITED, __ATOMIC_RELEASE);
          }
        }
        workers[i] = workers[--nworkers];
        break;
      }
}

static uint64_t now_ms(void) { return vkm_now_ns() / 1000000ull; }

/* ---------------------------------------------------------------------------
 * Adoption. A process that cannot reach the agent's socket - a sandbox
 * that chroots or unshares before it forks (Chromium's zygote) - still
 * has its segment mapped. The agent finds the children of the processes
 * it knows (/proc/PID/task/TID/children) and, for one that holds a
 * segment no worker has, opens that mapping (/proc/PID/map_files, which
 * takes CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE) and serves it like a
 * handed-over one (proc.h; Linux only: macOS has no way in without
 * task_for_pid). A child that hands its segment over itself a moment
 * later is recognised by the segment's inode.
 * ------------------------------------------------------------------------- */
#define PLAIN_MAX 256
static int plain[PLAIN_MAX]; /* children seen with no segment: not looked at again */
static size_t nplain;
/* A child is adopted only once it has gone ADOPT_AFTER_MS without handing
 * its segment over: a hand-over takes microseconds, and adopting a child
 * that is about to hand over (or to exec) would race with it. */
#define ADOPT_AFTER_MS 500
#define SEEN_MAX 256
static struct {
  int pid;
  uint64_t since_ms;
} seen[SEEN_MAX];
static size_t nseen;

static int waited_long_enough(int pid, uint64_t now) {
  for (size_t i = 0; i < nseen; i++)
    if (seen[i].pid == pid) return now - seen[i].since_ms >= ADOPT_AFTER_MS;
  if (nseen == SEEN_MAX) nseen = 0; /* forget the oldest lot: they start waiting again */
  seen[nseen].pid = pid;
  seen[nseen++].since_ms = now;
  return 0;
}
static int adopt_refused;

static int known_pid(int pid) {
  for (size_t i = 0; i < nworkers; i++)
    if (workers[i].pid == pid) return 1;
  for (size_t i = 0; i < nplain; i++)
    if (plain[i] == pid) return 1;
  return 0;
}

static void try_adopt(vkm_agentd_t *d, int pid) {
  char where[128];
  int fd = vkm_proc_open_segment(pid, where, sizeof where);
  if (fd < 0) {
    if (errno && !adopt_refused++)
      vkm_say("warning", "pid %d could not reach the agent and cannot be adopted (%s: %s): it has no report", pid, where,
              strerror(errno));
    if (nplain < PLAIN_MAX) plain[nplain++] = pid;
    return;
  }
  vkm_seg_hdr_t peek;
  if (vkm_proc_seg_peek(fd, &peek, sizeof peek) != 0 || peek.magic != VKM_SEG_MAGIC ||
      peek.version != VKM_SEG_VERSION || (!peek.config.agent && !d->attach) || (peek.forked && !peek.config.follow_fork)) {
    close(fd);
    return;
  }
  vkm_hello_t h = {.magic = VKM_HELLO_MAGIC, .version = VKM_SEG_VERSION, .pid = pid, .kind = VKM_HELLO_SEGMENT};
  start_worker(d, fd, vkm_proc_open_handle(pid), &h);
}

static void adopt_child(int child, void *arg) {
  if (!known_pid(child) && waited_long_enough(child, vkm_now_ns() / 1000000ull)) try_adopt(arg, child);
}

static void adopt_children(vkm_agentd_t *d) {
  size_t n = nworkers;
  for (size_t i = 0; i < n && i < nworkers; i++) vkm_proc_children(workers[i].pid, adopt_child, d);
}

int vkm_agentd_run(vkm_agentd_t *d) {
  /* The tree's table, shared with every worker forked from here on. */
  if (!vkm_tree) {
    void *t = mmap(NULL, sizeof(vkm_tree_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t != MAP_FAILED) vkm_tree = t;
  }
  struct sigaction sa = {.sa_handler = on_chld};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  sa.sa_handler = on_term;
  sa.sa_flags = 0;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* A Ctrl-C to the program's group is the program's business (attach:
   * ours, to detach). */
  if (!d->attach) signal(SIGINT, SIG_IGN);
  else sigaction(SIGINT, &sa, NULL);
  if (d->first_seg_fd >= 0) {
    vkm_hello_t h = {.magic = VKM_HELLO_MAGIC, .version = VKM_SEG_VERSION, .kind = VKM_HELLO_SEGMENT};
    vkm_seg_hdr_t peek;
    if (vkm_proc_seg_peek(d->first_seg_fd, &peek, sizeof peek) == 0) h.pid = peek.pid;
    if (!d->root_pid) d->root_pid = h.pid;
    start_worker(d, d->first_seg_fd, d->first_pid_fd, &h);
  }
  if (d->ready_fd >= 0) { /* no worker took it (no dashboard, a segment refused): nothing to wait for */
    close(d->ready_fd);
    d->ready_fd = -1;
  }
  /* Accepted in a loop until EAGAIN: the listening socket must not block. */
  fcntl(d->listen_fd, F_SETFL, fcntl(d->listen_fd, F_GETFL) | O_NONBLOCK);
  int launcher_done = d->done_fd < 0;
  uint64_t idle_since = now_ms();
  int stopping = 0;
  uint64_t last_adopt = 0, done_at = 0;
  for (;;) {
    if (got_chld) {
      got_chld = 0;
      reap();
    }
    if (nworkers) idle_since = now_ms();
    if (nworkers && now_ms() - last_adopt >= 100) {
      last_adopt = now_ms();
      adopt_children(d);
    }
    /* A daemon (or a `cmd &` left behind) may run for ever: as the shell
     * would, the gate does not wait for it past orphan_ms. */
    if (launcher_done && d->orphan_ms && nworkers && !stopping && done_at && now_ms() - done_at >= (uint64_t)d->orphan_ms)
      got_term = 1;
    if (got_term && !stopping) {
      stopping = 1; /* lingering dashboards go, then so do we */
      for (size_t i = 0; i < nworkers; i++) kill(workers[i].wpid, SIGTERM);
      /* No new worker once stopping (it would not be told): a process that
       * arrives now starts an agent of its own. */
      if (d->sock_path) unlink(d->sock_path);
      close(d->listen_fd);
      d->listen_fd = -1;
      release_lock(d); /* so that the next one takes the path at once */
    }
    if (stopping && !nworkers) break;
    if (launcher_done && !nworkers && now_ms() - idle_since >= GRACE_MS) break;
    struct pollfd p[2] = {{.fd = d->listen_fd, .events = POLLIN}, {.fd = launcher_done ? -1 : d->done_fd, .events = POLLIN}};
    int r = poll(p, 2, 100);
    if (r > 0 && (p[0].revents & POLLIN)) {
      int c;
      while ((c = vkm_sys_accept(d->listen_fd, 1)) >= 0) {
        int fl = fcntl(c, F_GETFL);
        fcntl(c, F_SETFL, fl & ~O_NONBLOCK);
        on_connection(d, c);
      }
    }
    if (r > 0 && (p[1].revents & (POLLIN | POLLHUP))) {
      launcher_done = 1;
      idle_since = done_at = now_ms();
      if (d->linger) { /* valkmem run: the dashboards stay until Ctrl-C or SIGTERM */
      }
    }
  }
  if (d->sock_path && d->listen_fd >= 0) unlink(d->sock_path);
  if (d->listen_fd >= 0) close(d->listen_fd);
  if (d->http_fd >= 0) close(d->http_fd);
  release_lock(d);
  return 0;
}

/* ---------------------------------------------------------------------------
 * `valkmem agent`: what a recorder starts.
 * ------------------------------------------------------------------------- */
/* An agent that was killed leaves its socket and its lock behind in the
 * recorders' directory, and its workers their sockets (wAGENT-WORKER.sock).
 * A new tree's agent removes those whose lock nobody holds (their agent is
 * gone: the kernel let the lock go), sockets without a lock that nobody
 * listens at (left by an agent of an earlier version), and the sockets of
 * workers that no longer exist. A socket being set up right now already
 * listens, and its lock is held from before it was bound
 * (interpose/link.c). */
static int nobody_listens(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) return 0;
  memcpy(a.sun_path, path, strlen(path));
  int s = vkm_sys_socket(AF_UNIX, 1); /* close-on-exec, non-blocking: a listener never makes us wait */
  if (s < 0) return 0;
  int dead = connect(s, (struct sockaddr *)&a, sizeof a) != 0 && errno == ECONNREFUSED;
  close(s);
  return dead;
}

static void sweep_dead(const char *sock) {
  char dir[256];
  const char *slash = strrchr(sock, '/');
  if (!slash || (size_t)(slash - sock) >= sizeof dir) return;
  memcpy(dir, sock, (size_t)(slash - sock));
  dir[slash - sock] = 0;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) && n < 4096) {
    size_t len = strlen(e->d_name);
    char path[512], lock[520];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
    int target, worker, end = 0;
    if (sscanf(e->d_name, "w%d-%d.sock%n", &target, &worker, &end) == 2 && (size_t)end == len) {
      n++;
      if (nobody_listens(path)) unlink(path); /* a live worker takes the empty connection in its stride */
      continue;
    }
    if (strncmp(e->d_name, "agent-", 6) != 0 || len < 6 + 5) continue;
    n++;
    if (len > 10 && !strcmp(e->d_name + len - 10, ".sock.lock")) {
      int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) continue;
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        path[strlen(path) - 5] = 0; /* the socket */
        unlink(path);
        snprintf(lock, sizeof lock, "%s.lock", path);
        unlink(lock);
      }
      close(fd);
    } else if (!strcmp(e->d_name + len - 5, ".sock")) {
      snprintf(lock, sizeof lock, "%s.lock", path);
      if (access(lock, F_OK) != 0 && strcmp(path, sock) != 0 && nobody_listens(path)) unlink(path);
    }
  }
  closedir(d);
}


int vkm_cmd_agent(int argc, char **argv) {
  const char *sock = NULL, *tty = NULL;
  int from_recorder = 0, in_place = 0; /* in place of an agent that is gone: it keeps the root its socket names */
  int ready = 0;                       /* descriptor 7: the recorder waits for the URL line until it is closed */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--from-recorder")) from_recorder = 1;
    else if (!strcmp(argv[i], "--in-place")) in_place = 1;
    else if (!strcmp(argv[i], "--ready")) ready = 1;
    else if (!strcmp(argv[i], "--sock") && i + 1 < argc) sock = argv[++i];
    else if (!strcmp(argv[i], "--tty") && i + 1 < argc) tty = argv[++i];
    else {
      vkm_say("error", "agent: unknown argument \"%s\" (this command is started by libvalkmem, not by hand)", argv[i]);
      return 2;
    }
  }
  if (!from_recorder || !sock) {
    vkm_say("error", "agent: started by libvalkmem with --from-recorder --sock PATH, not by hand");
    return 2;
  }
  /* Diagnostics and the URL line go to the terminal the program was
   * started from, if any; never to the program's pipes. */
  int diag = tty ? open(tty, O_WRONLY | O_NOCTTY | O_CLOEXEC) : -1;
  vkm_set_diag_fd(diag);
  /* Never compete with a program pinned to one CPU. */
  vkm_sys_all_cpus();
  /* The program that spawned us keeps no child of ours (sys.h). */
  vkm_sys_detach();
  int pidfd = fcntl(5, F_GETFD) >= 0 ? 5 : -1;
  int lockfd = fcntl(6, F_GETFD) >= 0 ? 6 : -1;
  vkm_agentd_t d = {.listen_fd = 3, .sock_path = sock, .first_seg_fd = 4, .first_pid_fd = pidfd, .done_fd = -1,
                    .lock_fd = lockfd, .http_fd = -1, .ready_fd = ready && fcntl(7, F_GETFD) >= 0 ? 7 : -1};
  if (d.ready_fd >= 0) fcntl(d.ready_fd, F_SETFD, FD_CLOEXEC);
  /* Otherwise the root is the first process to arrive: the one that started us. */
  long named = in_place ? vkm_sock_root(sock) : -1;
  if (named > 0) d.root_pid = (int)named;
  /* Descriptors 5 and 6 are the segment again when the recorder had no
   * pidfd or no lock. */
  if (pidfd >= 0 && vkm_proc_same_file(4, 5)) {
    close(5);
    d.first_pid_fd = -1;
  }
  if (lockfd >= 0 && vkm_proc_same_file(4, 6)) {
    close(6);
    d.lock_fd = -1;
  }
  if (d.lock_fd >= 0) fcntl(d.lock_fd, F_SETFD, FD_CLOEXEC);
  if (!in_place) sweep_dead(sock);
  fcntl(3, F_SETFD, FD_CLOEXEC);
  fcntl(4, F_SETFD, FD_CLOEXEC);
  if (d.first_pid_fd >= 0) fcntl(d.first_pid_fd, F_SETFD, FD_CLOEXEC);
  return vkm_agentd_run(&d);
}

/* ---------------------------------------------------------------------------
 * `valkmem attach PID`: an agent for a process that runs without one
 * (VALKMEM_AGENT=0): its dashboard and report from now on, its counts
 * exact since it started (the recorder always counted). Its segment is
 * opened through /proc/PID/map_files, which takes CAP_SYS_ADMIN or
 * CAP_CHECKPOINT_RESTORE, as a debugger needs the right to trace.
 * ------------------------------------------------------------------------- */
static const char attach_usage[] =
    "usage: valkmem attach PID\n"
    "\n"
    "Serves the dashboard of a process that runs under the shim without an agent\n"
    "(VALKMEM_AGENT=0), and writes its VALKMEM_REPORT when it ends. Its counts are\n"
    "exact since it started; call sites are sampled from now on. Needs the right\n"
    "to read its memory mappings (root, or CAP_CHECKPOINT_RESTORE). Ctrl-C detaches.\n";

int vkm_cmd_attach(int argc, char **argv) {
  if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fputs(attach_usage, argc == 2 ? stdout : stderr);
    return argc == 2 ? 0 : 2;
  }
  char *end;
  long pid = strtol(argv[1], &end, 10);
  if (*end || pid <= 0 || pid > 0x3fffffff) {
    vkm_say("error", "attach: \"%s\" is not a process id", argv[1]);
    return 2;
  }
  if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
    vkm_say("error", "attach: no process %ld", pid);
    return 2;
  }
  char where[128];
  int fd = vkm_proc_open_segment((int)pid, where, sizeof where);
  if (fd < 0) {
    if (!errno) vkm_say("error", "attach: process %ld does not run under libvalkmem (no segment in %s)", pid, where);
    else vkm_say("error", "attach: cannot open %s: %s (needs root or CAP_CHECKPOINT_RESTORE)", where, strerror(errno));
    return 1;
  }
  vkm_seg_hdr_t peek;
  char why[256];
  int bad = vkm_proc_seg_peek(fd, &peek, sizeof peek) != 0;
  if (bad) snprintf(why, sizeof why, "cannot read its segment");
  else bad = vkm_segread_check(&peek, 0, why, sizeof why) != 0;
  if (bad) {
    vkm_say("error", "attach: process %ld: %s", pid, why);
    close(fd);
    return 1;
  }
  int ls = vkm_sys_socket(AF_UNIX, 0); /* nothing will connect: its children have no agent either */
  vkm_agentd_t d = {.listen_fd = ls, .root_pid = (int)pid, .first_seg_fd = -1, .first_pid_fd = -1, .lock_fd = -1, .http_fd = -1, .ready_fd = -1,
                    .done_fd = -1, .attach = 1, .linger = 0};
  vkm_hello_t h = {.magic = VKM_HELLO_MAGIC, .version = VKM_SEG_VERSION, .pid = (int)pid, .kind = VKM_HELLO_SEGMENT};
  fprintf(stderr, "valkmem: attached to pid %ld (Ctrl-C to detach)\n", pid);
  signal(SIGINT, SIG_DFL);
  start_worker(&d, fd, vkm_proc_open_handle((int)pid), &h);
  return vkm_agentd_run(&d);
}
