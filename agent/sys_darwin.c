/* sys_darwin.c - sys.h on macOS. No SOCK_CLOEXEC, accept4, pipe2 or
 * MSG_CMSG_CLOEXEC: the flags are set with fcntl right after (the agent and
 * the CLI start no program between the two calls, except `valkmem run`'s
 * own fork, which happens on one thread). SO_NOSIGPIPE stands in for
 * MSG_NOSIGNAL on every socket made here. LOCAL_PEERPID for SO_PEERCRED,
 * _NSGetExecutablePath for /proc/self/exe. Cross-compiled and linked in CI
 * (tests/macos_check.py), never run there. */
#include "sys.h"

#include <fcntl.h>
#include <mach-o/dyld.h>
#include <mach-o/loader.h>
#include <mach-o/fat.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int cloexec(int fd, int nonblock) {
  if (fd < 0) return fd;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one); /* fails harmlessly on a pipe */
  return fd;
}

int vkm_sys_socket(int domain, int nonblock) { return cloexec(socket(domain, SOCK_STREAM, 0), nonblock); }

/* An accepted socket inherits O_NONBLOCK from the listener on BSD kernels:
 * set or clear it as asked. */
int vkm_sys_accept(int ls, int nonblock) {
  int c = cloexec(accept(ls, NULL, NULL), 0);
  if (c >= 0) {
    int fl = fcntl(c, F_GETFL);
    fcntl(c, F_SETFL, nonblock ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
  }
  return c;
}

int vkm_sys_pipe(int fds[2]) {
  if (pipe(fds) != 0) return -1;
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  return 0;
}

ssize_t vkm_sys_recvmsg(int s, struct msghdr *m, int flags) {
  ssize_t n = recvmsg(s, m, flags);
  if (n < 0 || !m->msg_control) return n;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  return n;
}

int vkm_sys_peer_pid(int s) {
  pid_t pid = 0;
  socklen_t len = sizeof pid;
  if (getsockopt(s, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0 && pid > 0) return (int)pid;
  return -1;
}

int vkm_sys_peer_uid(int s, unsigned *uid) {
  uid_t u;
  gid_t g;
  if (getpeereid(s, &u, &g) != 0) return -1;
  *uid = (unsigned)u;
  return 0;
}

int vkm_sys_exe_path(char *buf, size_t cap) {
  uint32_t size = (uint32_t)cap;
  if (_NSGetExecutablePath(buf, &size) != 0) return -1;
  return buf[0] ? 0 : -1;
}

const char *vkm_sys_preload_var(void) { return "DYLD_INSERT_LIBRARIES"; }
const char *vkm_sys_lib_name(void) { return "libvalkmem.dylib"; }

/* A thin 64-bit Mach-O, or a universal (fat) file, whose slices are
 * Mach-O too. */
const char *vkm_sys_lib_format_problem(const unsigned char *head, size_t n) {
  uint32_t le, be;
  if (n < 4) return "not a Mach-O dynamic library";
  memcpy(&le, head, 4);
  be = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
  if (le == MH_MAGIC_64 || be == FAT_MAGIC || be == FAT_MAGIC_64) return NULL;
  return "not a Mach-O dynamic library";
}

/* sys_signame holds the names in lower case ("kill"). */
const char *vkm_sys_signal_abbrev(int sig) {
  static char name[16];
  if (sig <= 0 || sig >= NSIG) return NULL;
  size_t i = 0;
  for (const char *s = sys_signame[sig]; *s && i + 1 < sizeof name; s++) name[i++] = (char)(*s >= 'a' && *s <= 'z' ? *s - 32 : *s);
  name[i] = 0;
  return name;
}

/* The recorder waits for this first process (interpose/darwin.c) and the
 * agent goes on in the child, which the program never sees: launchd
 * inherits it. */
void vkm_sys_detach(void) {
  pid_t p = fork();
  if (p > 0) _exit(0);
  /* p < 0: go on as we are, a child of the program */
}

/* macOS has no CPU affinity to undo. */
void vkm_sys_close_from(int lowfd) {
  for (int fd = lowfd, n = getdtablesize(); fd < n && fd < 65536; fd++) close(fd);
}

void vkm_sys_all_cpus(void) {}
