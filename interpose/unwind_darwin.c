/* unwind_darwin.c - stack capture on macOS: a frame-pointer walk.
 *
 * Why frame pointers and not the system unwinder: Apple's arm64 ABI
 * requires every function to keep a frame record (x29, the frame pointer,
 * pointing at {caller's x29, return address}), and on x86_64 macOS
 * compilers keep RBP frames by default, Apple's own libraries included.
 * So the chain of frame records is the stack, and walking it reads two
 * words a frame: no system call, no allocation, no lock, nothing that may
 * re-enter malloc - which libunwind's unw_backtrace (compact unwind
 * lookups through dyld, a per-thread cache) does not promise inside a
 * malloc hook. A function built with -fomit-frame-pointer on x86_64 is
 * skipped (its caller's frame appears instead); the walk never leaves the
 * thread's stack.
 *
 * Contract (hot.h): frames[0] is the return address into the caller of
 * vkm_unwind (capture() in sample.c), then its callers'. The answer is
 * never "not sure" (-1): there is no slower walker to defer to here.
 */
#include "hot.h"

#include <pthread.h>

void vkm_unwind_init(void) {}
void vkm_unwind_flush(void) {}

/* User addresses on macOS are below 2^47; the bits above can carry a
 * pointer-authentication code on arm64e, which a return address read from
 * the stack may hold. */
#define ADDR_MASK (((uintptr_t)1 << 47) - 1)

__attribute__((noinline)) int vkm_unwind(void **frames, int max, int *partial) {
  uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
  uintptr_t lo = fp;
  /* The top of this thread's stack (its highest address), read from the
   * thread's own structure. */
  uintptr_t hi = (uintptr_t)pthread_get_stackaddr_np(pthread_self());
  int n = 0;
  while (n < max) {
    if (fp < lo || fp & (sizeof(uintptr_t) - 1) || fp + 2 * sizeof(uintptr_t) > hi) break;
    const uintptr_t *rec = (const uintptr_t *)fp;
    uintptr_t next = rec[0], ret = rec[1] & ADDR_MASK;
    if (!ret) break;
    frames[n++] = (void *)ret;
    if (next <= fp) break; /* the chain must climb the stack */
    fp = next;
  }
  *partial = n;
  return n;
}
