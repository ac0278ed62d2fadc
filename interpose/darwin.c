/* darwin.c - the platform seam on macOS. See platform.h.
 *
 * Not built on Linux (CMakeLists.txt picks one file per platform). On macOS
 * the shim is loaded with DYLD_INSERT_LIBRARIES and interposes through the
 * __DATA,__interpose section rather than symbol order; RTLD_NEXT still finds
 * libsystem_malloc's functions.
 */
#include "platform.h"

#include <crt_externs.h>
#include <dlfcn.h>
#include <mach/mach.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

void *vkm_plat_next(const char *name) { return dlsym(RTLD_NEXT, name); }

int vkm_plat_is_libc_malloc(void *fn) { (void)fn; return 0; /* never read zone headers inline */ }

int vkm_plat_same_object(void *a, void *b) {
  Dl_info ia, ib;
  if (!a || !b || !dladdr(a, &ia) || !dladdr(b, &ib)) return 0;
  return ia.dli_fbase == ib.dli_fbase;
}

uint32_t vkm_plat_tid(void) {
  uint64_t tid = 0;
  pthread_threadid_np(NULL, &tid);
  return (uint32_t)tid;
}

void *vkm_plat_map(size_t len) {
  vm_address_t addr = 0;
  if (vm_allocate(mach_task_self(), &addr, len, VM_FLAGS_ANYWHERE) != KERN_SUCCESS) return NULL;
  return (void *)addr;
}

void vkm_plat_unmap(void *p, size_t len) {
  if (p) vm_deallocate(mach_task_self(), (vm_address_t)p, len);
}

void vkm_plat_zero(void *p, size_t len) { memset(p, 0, len); }

int vkm_plat_cmdline(char *buf, size_t cap, size_t *used) {
  int argc = *_NSGetArgc();
  char **argv = *_NSGetArgv();
  size_t n = 0;
  for (int i = 0; i < argc; i++) {
    size_t l = strlen(argv[i]) + 1;
    if (n + l > cap) break;
    memcpy(buf + n, argv[i], l);
    n += l;
  }
  *used = n;
  return argc;
}

const char *vkm_plat_name(void) { return "darwin"; }

/* No public futex: nap briefly, and let the caller re-check. */
void vkm_plat_wait(int *addr, int val, int timeout_ms) {
  struct timespec ts = {0, 100 * 1000};
  if (timeout_ms > 0 && __atomic_load_n(addr, __ATOMIC_ACQUIRE) == val) nanosleep(&ts, NULL);
}

void vkm_plat_wake(int *addr) { (void)addr; }
