/* sys.h - the libc half of the agent's and the CLI's platform seam:
 * descriptors, sockets, the executable's path, how a library is preloaded.
 * One file per platform (sys_linux.c, sys_darwin.c), chosen by CMake; they
 * use libc alone, so unit tests link them without the rest of the agent.
 * Every descriptor made here is close-on-exec.
 */
#ifndef VKM_SYS_H
#define VKM_SYS_H

#include <stddef.h>
#include <sys/types.h>
#include <unistd.h>

struct msghdr;

/* A stream socket of `domain` (AF_UNIX, AF_INET, AF_INET6); nonblock sets
 * O_NONBLOCK. Writes to it never raise SIGPIPE where the platform can say
 * so per socket (macOS); Linux callers pass MSG_NOSIGNAL. -1 and errno. */
int vkm_sys_socket(int domain, int nonblock);
/* accept(2) of a connection, close-on-exec, O_NONBLOCK when nonblock. */
int vkm_sys_accept(int ls, int nonblock);
/* pipe(2), both ends close-on-exec. */
int vkm_sys_pipe(int fds[2]);
/* recvmsg(2) with `flags`; every descriptor received is close-on-exec. */
ssize_t vkm_sys_recvmsg(int s, struct msghdr *m, int flags);
/* The pid of the process at the other end of a Unix socket, as this
 * process sees it; -1 when unknown. */
int vkm_sys_peer_pid(int s);
/* The effective uid of the process at the other end of a Unix socket:
 * 0 and *uid, or -1. */
int vkm_sys_peer_uid(int s, unsigned *uid);
/* Whether the other end runs as this process's user or as root: the
 * sockets' directories once let no one else in, and still do but for a
 * root agent's tree (agentd.c, peer_allowed). */
static inline int vkm_sys_peer_trusted(int s) {
  unsigned uid;
  return vkm_sys_peer_uid(s, &uid) == 0 && (uid == (unsigned)geteuid() || uid == 0);
}
/* Path of the running executable into buf. 0, or -1. */
int vkm_sys_exe_path(char *buf, size_t cap);

/* The variable the loader preloads from, the library's file name, and
 * whether the first bytes of a file are a shared library of this
 * platform's format (NULL) or not (the reason). */
const char *vkm_sys_preload_var(void);
const char *vkm_sys_lib_name(void);
const char *vkm_sys_lib_format_problem(const unsigned char *head, size_t n);

/* A signal's name without "SIG" ("KILL"), or NULL. */
const char *vkm_sys_signal_abbrev(int sig);

/* `valkmem agent` spawned by a recorder: make sure the program that
 * spawned it has no child of ours to reap (macOS: fork, and the first
 * process exits at once; Linux: the recorder already made us a
 * grandchild). Returns in the process that goes on. */
void vkm_sys_detach(void);
/* Run on every CPU, whatever the spawning program was pinned to (where
 * the platform pins processes at all). */
void vkm_sys_all_cpus(void);
/* Closes every descriptor from lowfd up. */
void vkm_sys_close_from(int lowfd);

#endif
