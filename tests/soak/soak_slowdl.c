/* soak_slowdl.c - preloaded ahead of the shim by soak_fork_slowdl: makes
 * the agent thread hold the loader's lock for a while.
 *
 * dl_iterate_phdr holds glibc's loader write lock while it calls back, and
 * glibc does not reset that lock in the child of fork(). The agent walks
 * the module list when it meets an address in no module it knows
 * (symbols.c); this wrapper, on the agent thread only, sleeps 2 ms inside
 * the first callback, lock held. A fork that copied the agent there would
 * leave a child that hangs at its first unwind; with the shim's fork
 * handshake (agent.c, "fork") every fork waits until the agent is out.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

typedef int (*phdr_cb)(struct dl_phdr_info *, size_t, void *);
typedef struct {
  phdr_cb cb;
  void *data;
  int slept;
} wrap_t;

static int slow_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  wrap_t *w = arg;
  if (!w->slept) {
    w->slept = 1;
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return w->cb(info, size, w->data);
}

__attribute__((visibility("default"))) int dl_iterate_phdr(phdr_cb cb, void *data) {
  static int (*real)(phdr_cb, void *);
  if (!real) real = (int (*)(phdr_cb, void *))dlsym(RTLD_NEXT, "dl_iterate_phdr");
  char name[16] = "";
  prctl(PR_GET_NAME, name);
  if (strcmp(name, "valkmem-agent")) return real(cb, data);
  wrap_t w = {cb, data, 0};
  return real(slow_cb, &w);
}
