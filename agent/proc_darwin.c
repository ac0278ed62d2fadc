/* proc_darwin.c - proc.h on macOS: kqueue, libproc, a polling waker.
 *
 * The worker's wait set is a kqueue (pollable like any descriptor). The
 * recorded process's end is EVFILT_PROC NOTE_EXIT on its pid: a kqueue
 * watches any process of the same user without being its parent, and the
 * watch holds on to that process, not to a pid a later process may reuse.
 * There is no futex to sleep on: the waker thread reads the segment's wake
 * word every millisecond (while it runs: from the first busy ring on, or
 * from the start in exact mode) and writes a pipe when it moved.
 * How a process ended: only its parent is told the wait status on macOS
 * (NOTE_EXITSTATUS is for children), so the agent has the exit code the
 * recorder saw and nothing for a signal (learn_end says "unknown").
 * Names from proc_name, parents and children from proc_pidinfo and
 * proc_listchildpids: no task_for_pid anywhere.
 * Cross-compiled and linked in CI (tests/macos_check.py), never run there.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <libproc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/event.h>
#include <sys/mman.h>
#include <sys/proc_info.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Wait set
 * ------------------------------------------------------------------------- */
int vkm_proc_waitset(void) {
  int kq = kqueue();
  if (kq >= 0) fcntl(kq, F_SETFD, FD_CLOEXEC);
  return kq;
}

int vkm_proc_watch_fd(int ws, int fd) {
  struct kevent ev;
  EV_SET(&ev, (uintptr_t)fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
  return kevent(ws, &ev, 1, NULL, 0, NULL) == 0 ? 0 : -1;
}

static int watched_pid;
static volatile int pid_gone; /* NOTE_EXIT seen (or the watch could not be set: ESRCH) */

int vkm_proc_watch_end(int ws, int handle, int pid) {
  (void)handle;
  if (pid <= 0) return -1;
  watched_pid = pid;
  struct kevent ev;
  EV_SET(&ev, (uintptr_t)pid, EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, NULL);
  if (kevent(ws, &ev, 1, NULL, 0, NULL) == 0) return 0;
  if (errno == ESRCH) pid_gone = 1; /* it ended before we looked */
  return -1;
}

int vkm_proc_ready(int ws, int *ids, int max) {
  struct kevent ev[4];
  struct timespec zero = {0, 0};
  int n = kevent(ws, NULL, 0, ev, max < 4 ? max : 4, &zero);
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (ev[i].filter == EVFILT_PROC) {
      pid_gone = 1;
      ids[k++] = VKM_PROC_ENDED;
    } else {
      ids[k++] = (int)ev[i].ident;
    }
  }
  return k;
}

/* A zombie is no longer running: proc_pidinfo says so by its status
 * (SZOMB of sys/proc.h, which the SDK keeps to the kernel's headers). */
#define VKM_SZOMB 5
int vkm_proc_alive(int handle, int pid) {
  (void)handle;
  if (pid == watched_pid && pid_gone) return 0;
  struct proc_bsdinfo bi;
  if (proc_pidinfo(pid, PROC_PIDTBSDINFO, 0, &bi, (int)sizeof bi) == (int)sizeof bi) return bi.pbi_status != VKM_SZOMB;
  return kill(pid, 0) == 0 || errno == EPERM;
}

/* ---------------------------------------------------------------------------
 * Waker
 * ------------------------------------------------------------------------- */
static int waker_w = -1;
static uint32_t *waker_word;

static void *waker_main(void *arg) {
  (void)arg;
  uint32_t seen = __atomic_load_n(waker_word, __ATOMIC_ACQUIRE);
  for (;;) {
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
    uint32_t now = __atomic_load_n(waker_word, __ATOMIC_ACQUIRE);
    if (now == seen) continue;
    seen = now;
    char one = 1;
    if (write(waker_w, &one, 1) < 0) { /* a full pipe: a drain is due anyway */
    }
  }
  return NULL;
}

int vkm_proc_waker(uint32_t *word) {
  int p[2];
  if (pipe(p) != 0) return -1;
  for (int i = 0; i < 2; i++) {
    fcntl(p[i], F_SETFD, FD_CLOEXEC);
    fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
  }
  waker_w = p[1];
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
  return p[0];
}

void vkm_proc_waker_clear(int fd) {
  char buf[256];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

/* ---------------------------------------------------------------------------
 * Facts about a process
 * ------------------------------------------------------------------------- */
int vkm_proc_exit_status(int handle, int pid, int *status) {
  (void)handle;
  (void)pid;
  (void)status;
  return -1;
}

void vkm_proc_comm(int pid, char *out, size_t cap) {
  out[0] = 0;
  char name[2 * MAXCOMLEN + 1];
  if (proc_name(pid, name, sizeof name) > 0) snprintf(out, cap, "%s", name);
}

int vkm_proc_parent(int pid, int fallback) {
  struct proc_bsdinfo bi;
  if (proc_pidinfo(pid, PROC_PIDTBSDINFO, 0, &bi, (int)sizeof bi) == (int)sizeof bi) return (int)bi.pbi_ppid;
  return fallback;
}

int vkm_proc_open_handle(int pid) {
  (void)pid;
  return -1;
}

/* ---------------------------------------------------------------------------
 * Segments
 * ------------------------------------------------------------------------- */
/* POSIX shared memory on macOS cannot be read(2), only mapped. */
int vkm_proc_seg_peek(int fd, void *buf, size_t len) {
  void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -1;
  memcpy(buf, p, len);
  munmap(p, len);
  return 0;
}

/* Shared memory objects have no inode number to tell them apart; a
 * segment reaches the agent once, from its own process (no adoption). */
uint64_t vkm_proc_seg_id(int fd) {
  (void)fd;
  return 0;
}

int vkm_proc_same_file(int a, int b) {
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino &&
         (sa.st_mode & S_IFMT) == (sb.st_mode & S_IFMT) && sa.st_size == sb.st_size;
}

/* Another process's mappings cannot be opened from outside without
 * task_for_pid, which valkmem never asks for: no adoption and no `valkmem
 * attach` on macOS. */
int vkm_proc_open_segment(int pid, char *where, size_t cap) {
  snprintf(where, cap, "pid %d", pid);
  errno = ENOTSUP;
  return -1;
}

void vkm_proc_children(int pid, void (*fn)(int child, void *arg), void *arg) {
  (void)pid;
  (void)fn;
  (void)arg;
}

/* dyld's image list, published by the recorder, is the whole list. */
void vkm_proc_extra_modules(int pid, vkm_module_add_fn add) {
  (void)pid;
  (void)add;
}
