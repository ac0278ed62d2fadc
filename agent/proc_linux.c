/* proc_linux.c - proc.h on Linux: epoll, pidfds, a futex waker, /proc.
 *
 * The worker's wait set is an epoll descriptor. The recorded process's end
 * is its pidfd turning readable. The recorder's producers wake the worker
 * through a futex word in the segment; a futex cannot be polled, so a
 * thread sleeps on it and turns each wake into an eventfd event in the set
 * (the thread touches nothing else). How a process ended comes from the
 * kernel while it is a zombie (/proc/PID/stat) or from its pidfd once it
 * is reaped (PIDFD_GET_INFO, Linux 6.15).
 */
#include "proc.h"
#include "../interpose/segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Wait set
 * ------------------------------------------------------------------------- */
static int end_fd = -1; /* the pidfd in the set: its events say VKM_PROC_ENDED */

int vkm_proc_waitset(void) { return epoll_create1(EPOLL_CLOEXEC); }

int vkm_proc_watch_fd(int ws, int fd) {
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  return epoll_ctl(ws, EPOLL_CTL_ADD, fd, &ev);
}

int vkm_proc_watch_end(int ws, int handle, int pid) {
  (void)pid;
  if (handle < 0) return -1; /* no pidfd: the tick's liveness check notices the end */
  end_fd = handle;
  return vkm_proc_watch_fd(ws, handle);
}

int vkm_proc_ready(int ws, int *ids, int max) {
  struct epoll_event ev[4];
  int n = epoll_wait(ws, ev, max < 4 ? max : 4, 0);
  for (int i = 0; i < n; i++) ids[i] = ev[i].data.fd == end_fd && end_fd >= 0 ? VKM_PROC_ENDED : ev[i].data.fd;
  return n < 0 ? 0 : n;
}

int vkm_proc_alive(int handle, int pid) {
  if (handle >= 0) {
    struct pollfd p = {.fd = handle, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
  }
  return kill(pid, 0) == 0 || errno == EPERM;
}

/* ---------------------------------------------------------------------------
 * Waker
 * ------------------------------------------------------------------------- */
static int waker_fd = -1;
static uint32_t *waker_word;

static void *waker_main(void *arg) {
  (void)arg;
  uint32_t seen = __atomic_load_n(waker_word, __ATOMIC_ACQUIRE);
  for (;;) {
    struct timespec ts = {1, 0};
    syscall(SYS_futex, waker_word, FUTEX_WAIT, seen, &ts, NULL, 0);
    uint32_t now = __atomic_load_n(waker_word, __ATOMIC_ACQUIRE);
    if (now == seen) continue;
    seen = now;
    uint64_t one = 1;
    if (write(waker_fd, &one, sizeof one) < 0) { /* a full counter: a drain is due anyway */
    }
  }
  return NULL;
}

int vkm_proc_waker(uint32_t *word) {
  waker_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (waker_fd < 0) return -1;
  waker_word = word;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the main thread's */
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 64 * 1024);
  if (pthread_create(&t, &a, waker_main, NULL) == 0) pthread_detach(t);
  pthread_attr_destroy(&a);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return waker_fd;
}

void vkm_proc_waker_clear(int fd) {
  uint64_t v;
  if (read(fd, &v, sizeof v) < 0) { /* already read */
  }
}

/* ---------------------------------------------------------------------------
 * How a process ended
 * ------------------------------------------------------------------------- */
/* The kernel's word on how a process ended: field 52 of /proc/PID/stat
 * (exit_code, a wait status) while it is a zombie. 0, or -1 when it has
 * been reaped already. */
static int zombie_status(int pid, int *status) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ' || p[2] != 'Z') return -1;
  int field = 2;
  for (char *q = p + 1; *q; q++) {
    if (*q != ' ') continue;
    field++;
    if (field == 52) {
      *status = atoi(q + 1);
      return 0;
    }
  }
  return -1;
}

/* The pidfd's word on it (PIDFD_GET_INFO, Linux 6.15): the wait status,
 * kept by the kernel once the process has been reaped. 0, or -1. */
struct vkm_pidfd_info {
  uint64_t mask, cgroupid;
  uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  int32_t exit_code;
};
#define VKM_PIDFD_GET_INFO _IOWR(0xFF, 11, struct vkm_pidfd_info)
#define VKM_PIDFD_INFO_EXIT (1ull << 3)

static int pidfd_status(int fd, int *status) {
  if (fd < 0) return -1;
  struct vkm_pidfd_info info;
  memset(&info, 0, sizeof info);
  info.mask = VKM_PIDFD_INFO_EXIT;
  if (ioctl(fd, VKM_PIDFD_GET_INFO, &info) != 0 || !(info.mask & VKM_PIDFD_INFO_EXIT)) return -1;
  *status = info.exit_code;
  return 0;
}

int vkm_proc_exit_status(int handle, int pid, int *status) {
  return pidfd_status(handle, status) == 0 || zombie_status(pid, status) == 0 ? 0 : -1;
}

/* The command name (comm) of the process, from /proc/PID/stat; "" when
 * it cannot be read. A zombie still has it. */
void vkm_proc_comm(int pid, char *out, size_t cap) {
  char path[64], buf[512];
  out[0] = 0;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = 0;
  char *a = strchr(buf, '('), *b = strrchr(buf, ')');
  if (!a || !b || b <= a) return;
  snprintf(out, cap, "%.*s", (int)(b - a - 1), a + 1);
}

/* The parent as this agent sees it (the recorder's getppid() is in its own
 * pid namespace). */
int vkm_proc_parent(int pid, int fallback) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f) return fallback;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  int ppid = 0;
  if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1) return fallback;
  return ppid;
}

int vkm_proc_open_handle(int pid) { return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0); }

/* ---------------------------------------------------------------------------
 * Segments
 * ------------------------------------------------------------------------- */
int vkm_proc_seg_peek(int fd, void *buf, size_t len) { return pread(fd, buf, len, 0) == (ssize_t)len ? 0 : -1; }

uint64_t vkm_proc_seg_id(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

int vkm_proc_same_file(int a, int b) {
  char pa[64], pb[64], la[64], lb[64];
  snprintf(pa, sizeof pa, "/proc/self/fd/%d", a);
  snprintf(pb, sizeof pb, "/proc/self/fd/%d", b);
  ssize_t na = readlink(pa, la, sizeof la - 1), nb = readlink(pb, lb, sizeof lb - 1);
  return na > 0 && nb > 0 && na == nb && !memcmp(la, lb, (size_t)na);
}

/* The segment mapped in process pid, opened through /proc/PID/map_files
 * (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE). */
int vkm_proc_open_segment(int pid, char *where, size_t cap) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/maps", pid);
  snprintf(where, cap, "%s", path);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  unsigned long lo = 0, hi = 0;
  int found = 0;
  while (fgets(line, sizeof line, f))
    if (strstr(line, "/memfd:valkmem") && sscanf(line, "%lx-%lx", &lo, &hi) == 2 && vkm_seg_size_ok(hi - lo)) found = 1;
  fclose(f);
  if (!found) {
    errno = 0;
    return -1;
  }
  snprintf(where, cap, "/proc/%d/map_files/%lx-%lx", pid, lo, hi);
  return open(where, O_RDWR | O_CLOEXEC);
}

/* Children of every thread of pid (/proc/PID/task/TID/children). */
void vkm_proc_children(int pid, void (*fn)(int child, void *arg), void *arg) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *dir = opendir(path);
  if (!dir) return;
  struct dirent *e;
  while ((e = readdir(dir))) {
    if (e->d_name[0] == '.') continue;
    char cpath[400];
    snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", pid, e->d_name);
    FILE *f = fopen(cpath, "re");
    if (!f) continue;
    int child;
    while (fscanf(f, "%d", &child) == 1) fn(child, arg);
    fclose(f);
  }
  closedir(dir);
}

/* /proc/PID/maps: executable file mappings. The object's extent is from its
 * first mapping (offset 0) to the end of its last one; the bias is the
 * first mapping's start (true for ELF objects linked at 0, i.e. PIE and
 * shared objects). */
void vkm_proc_extra_modules(int pid, vkm_module_add_fn add) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/maps", pid);
  FILE *f = fopen(path, "re");
  if (!f) return;
  char line[4096];
  char cur[4096] = "";
  uintptr_t lo = 0, hi = 0, bias = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long a, b, off;
    char perms[8];
    int name_at = 0;
    if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", &a, &b, perms, &off, &name_at) < 4 || !name_at) continue;
    char *name = line + name_at;
    name[strcspn(name, "\n")] = 0;
    if (name[0] != '/') continue;
    if (strcmp(name, cur) != 0) {
      if (cur[0] && hi > lo) add(cur, bias, lo, hi);
      snprintf(cur, sizeof cur, "%s", name);
      lo = a;
      bias = a - off;
    }
    hi = b;
  }
  if (cur[0] && hi > lo) add(cur, bias, lo, hi);
  fclose(f);
}
