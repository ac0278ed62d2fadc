/* proc.h - the agent's view of another process: the platform half of its
 * seam besides the OS readers (os_linux.c, os_darwin.c). One file per
 * platform, proc_linux.c and proc_darwin.c, chosen by CMake.
 *
 * A worker blocks in one place (poll, vkm_agent_poll) on one descriptor
 * for everything that is not HTTP: the wait set, an epoll set on Linux and
 * a kqueue on macOS, both pollable. Into it go readable descriptors (the
 * control socket, the waker) and the process's end (its pidfd on Linux,
 * EVFILT_PROC NOTE_EXIT on its pid on macOS).
 */
#ifndef VKM_PROC_H
#define VKM_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "symbols.h"

/* ---------------------------------------------------------------------------
 * The worker's wait set
 * ------------------------------------------------------------------------- */
#define VKM_PROC_ENDED (-2) /* vkm_proc_ready's id for the process's end */
int vkm_proc_waitset(void);                          /* pollable descriptor, or -1 */
int vkm_proc_watch_fd(int ws, int fd);               /* wake when fd is readable; 0 or -1 */
/* Wake when the process ends: handle is the descriptor a recorder handed
 * over for itself (a pidfd), or -1; pid is used where there is none. */
int vkm_proc_watch_end(int ws, int handle, int pid);
/* Without blocking: up to max ids of what woke the set, a descriptor given
 * to vkm_proc_watch_fd or VKM_PROC_ENDED. Returns their number. */
int vkm_proc_ready(int ws, int *ids, int max);
/* Is the process still running (not a zombie's, not gone)? */
int vkm_proc_alive(int handle, int pid);

/* A descriptor that turns readable when the 32-bit word *word (in the
 * shared segment) changes: the recorder bumps it when a ring passes half
 * full. Linux: a thread sleeps on it as a futex and writes an eventfd;
 * macOS (no futex): a thread polls it every millisecond and writes a pipe.
 * -1 when none could be had; vkm_proc_waker_clear empties it. */
int vkm_proc_waker(uint32_t *word);
void vkm_proc_waker_clear(int fd);

/* ---------------------------------------------------------------------------
 * Facts about a process
 * ------------------------------------------------------------------------- */
/* The kernel's wait status of an ended process, when it can be had without
 * being its parent (Linux: a zombie's /proc/PID/stat or the pidfd). 0, or
 * -1 (always on macOS, which tells that only to the parent). */
int vkm_proc_exit_status(int handle, int pid, int *status);
/* Its command name, "" when unknown. */
void vkm_proc_comm(int pid, char *out, size_t cap);
/* Its parent as this process sees it; fallback when unknown. */
int vkm_proc_parent(int pid, int fallback);
/* A handle on pid for vkm_proc_watch_end (a pidfd), or -1. */
int vkm_proc_open_handle(int pid);

/* ---------------------------------------------------------------------------
 * Segments
 * ------------------------------------------------------------------------- */
/* The first len bytes of the segment behind fd (pread; shared memory on
 * macOS cannot be read, only mapped). 0, or -1. */
int vkm_proc_seg_peek(int fd, void *buf, size_t len);
/* An identity of the segment behind fd, the same for every descriptor of
 * it (a memfd's inode), or 0 when the platform has none. */
uint64_t vkm_proc_seg_id(int fd);
/* Do descriptors a and b stand for the same open file? */
int vkm_proc_same_file(int a, int b);
/* The segment mapped in pid, opened from outside (adoption, `valkmem
 * attach`): its descriptor; -1 with errno 0 when pid has none, or errno
 * saying why it cannot be opened (*where names what was tried). */
int vkm_proc_open_segment(int pid, char *where, size_t cap);
/* Calls fn for each child of pid (adoption). */
void vkm_proc_children(int pid, void (*fn)(int child, void *arg), void *arg);
/* Code mappings of pid that its published module list may not hold
 * (objects the loader opened for itself, code mapped by hand). */
void vkm_proc_extra_modules(int pid, vkm_module_add_fn add);

#endif
