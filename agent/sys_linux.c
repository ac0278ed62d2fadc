/* sys_linux.c - sys.h on Linux: SOCK_CLOEXEC, accept4, pipe2,
 * MSG_CMSG_CLOEXEC, SO_PEERCRED, /proc/self/exe. libc only. */
#include "sys.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int vkm_sys_socket(int domain, int nonblock) {
  return socket(domain, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
}

int vkm_sys_accept(int ls, int nonblock) { return accept4(ls, NULL, NULL, SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0)); }

int vkm_sys_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

ssize_t vkm_sys_recvmsg(int s, struct msghdr *m, int flags) { return recvmsg(s, m, flags | MSG_CMSG_CLOEXEC); }

/* The sender's pid as this process sees it: a process in a pid namespace
 * of its own (a sandbox) knows itself by another number. */
int vkm_sys_peer_pid(int s) {
  struct ucred cred;
  socklen_t cl = sizeof cred;
  if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.pid > 0) return cred.pid;
  return -1;
}

int vkm_sys_peer_uid(int s, unsigned *uid) {
  struct ucred cred;
  socklen_t cl = sizeof cred;
  if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) return -1;
  *uid = (unsigned)cred.uid;
  return 0;
}

int vkm_sys_exe_path(char *buf, size_t cap) {
  ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
  if (n <= 0) return -1;
  buf[n] = 0;
  return 0;
}

const char *vkm_sys_preload_var(void) { return "LD_PRELOAD"; }
const char *vkm_sys_lib_name(void) { return "libvalkmem.so"; }

const char *vkm_sys_lib_format_problem(const unsigned char *head, size_t n) {
  if (n < 4 || memcmp(head, "\x7f" "ELF", 4) != 0) return "not an ELF shared library";
  return NULL;
}

const char *vkm_sys_signal_abbrev(int sig) { return sigabbrev_np(sig); }

void vkm_sys_detach(void) {}

void vkm_sys_close_from(int lowfd) {
  if (close_range((unsigned)lowfd, ~0u, 0) == 0) return;
  for (long fd = lowfd, n = sysconf(_SC_OPEN_MAX); fd < n && fd < 65536; fd++) close((int)fd);
}

void vkm_sys_all_cpus(void) {
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &all);
  sched_setaffinity(0, sizeof all, &all);
}
