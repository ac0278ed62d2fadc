/* wrap_linux.c - the mapped-memory wrappers (mmap, mmap64, munmap, mremap),
 * Linux's alone: counted apart from the heap. glibc's malloc maps its large
 * chunks through its internal __mmap, so these count the program's own maps
 * (and other allocators' arenas when one is preloaded). Before the real
 * functions are resolved they are raw system calls. Not on the malloc hot
 * path (wrap.c).
 */
#include "hot.h"

#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define VKM_WRAP VKM_EXPORT

static vkm_tstate_t *map_state(void) {
  vkm_tstate_t *ts = vkm_tls.state;
  if (vkm_likely(ts != NULL)) return vkm_tls.guard ? NULL : ts;
  if (!vkm_ready || vkm_tls.guard || vkm_tls.exiting) return NULL;
  return vkm_thread_attach();
}

VKM_WRAP void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (vkm_unlikely(!vkm_real.mmap)) return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
  void *r = vkm_real.mmap(addr, len, prot, flags, fd, off);
  vkm_tstate_t *ts;
  if (r != MAP_FAILED && (ts = map_state()) != NULL) {
    VKM_OWN_ADD(ts->c.mmap_count, 1);
    VKM_OWN_ADD(ts->c.mmap_bytes, len);
  }
  return r;
}

VKM_WRAP void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap(addr, len, prot, flags, fd, off);
}

VKM_WRAP int munmap(void *addr, size_t len) {
  if (vkm_unlikely(!vkm_real.munmap)) return (int)syscall(SYS_munmap, addr, len);
  int rc = vkm_real.munmap(addr, len);
  vkm_tstate_t *ts;
  if (rc == 0 && (ts = map_state()) != NULL) {
    VKM_OWN_ADD(ts->c.munmap_count, 1);
    VKM_OWN_ADD(ts->c.munmap_bytes, len);
  }
  return rc;
}

VKM_WRAP void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...) {
  void *new_addr = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void *);
    va_end(ap);
  }
  void *r;
  if (vkm_unlikely(!vkm_real.mremap)) r = (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
  else r = vkm_real.mremap(old, old_len, new_len, flags, new_addr);
  vkm_tstate_t *ts;
  if (r != MAP_FAILED && (ts = map_state()) != NULL) {
    VKM_OWN_ADD(ts->c.mremap_count, 1);
    if (new_len > old_len) VKM_OWN_ADD(ts->c.mmap_bytes, new_len - old_len);
    else VKM_OWN_ADD(ts->c.munmap_bytes, old_len - new_len);
  }
  return r;
}
