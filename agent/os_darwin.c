/* os_darwin.c - process memory from Mach, and the malloc zones' statistics.
 *
 * The macOS half of the agent's platform seam (os_linux.c is the other);
 * CMakeLists.txt compiles exactly one of them. Not built on the Linux CI
 * machine: keep it to documented Mach/libmalloc calls.
 *
 * Cadence:
 *   every tick   task_info(TASK_VM_INFO)   phys_footprint (the headline
 *                                          "rss": what Activity Monitor and
 *                                          jetsam count, compressed pages
 *                                          included), virtual size, peak
 *   every second proc_pidinfo(PROC_PIDTASKINFO)  threads, faults, pageins
 * There is no smaps on macOS: "smaps" is null. Compressed bytes stand in for
 * "swap" (macOS compresses before it swaps, per process only the compressor
 * share is known).
 *
 * No allocation: task_info and proc_pidinfo fill caller buffers.
 * Agent thread only.
 */
#include "agent.h"
#include "os_alloc.h"

#include <dlfcn.h>
#include <errno.h>
#include <libproc.h>
#include <mach/mach.h>
#include <mach/task_info.h>
#include <malloc/malloc.h>
#include <string.h>
#include <sys/proc_info.h>
#include <unistd.h>

#define STATUS_EVERY_NS 1000000000ull

static vkm_os_t cur;
static uint64_t status_at_ns;
static int status_done;

static void read_vm_info(void) {
  task_vm_info_data_t vm;
  mach_msg_type_number_t count = TASK_VM_INFO_COUNT;
  memset(&vm, 0, sizeof vm);
  if (task_info(mach_task_self(), TASK_VM_INFO, (task_info_t)&vm, &count) != KERN_SUCCESS) return;
  cur.vms = vm.virtual_size;
  /* phys_footprint arrived with revision 1 of the structure; older kernels
   * fill less and say so through count. */
  cur.rss = count >= TASK_VM_INFO_REV1_COUNT ? vm.phys_footprint : vm.resident_size;
  cur.swap = vm.compressed;
#ifdef TASK_VM_INFO_REV3_COUNT
  if (count >= TASK_VM_INFO_REV3_COUNT && vm.ledger_phys_footprint_peak > 0)
    cur.peak_rss = (uint64_t)vm.ledger_phys_footprint_peak;
#endif
  if (cur.rss > cur.peak_rss) cur.peak_rss = cur.rss;
}

static void read_task_info(void) {
  struct proc_taskinfo ti;
  int n = proc_pidinfo(getpid(), PROC_PIDTASKINFO, 0, &ti, (int)sizeof ti);
  if (n != (int)sizeof ti) return;
  cur.threads = (uint64_t)ti.pti_threadnum;
  /* Faults that had to read a page in are the major ones. */
  uint64_t faults = (uint64_t)ti.pti_faults, pageins = (uint64_t)ti.pti_pageins;
  cur.major_faults = pageins;
  cur.minor_faults = faults > pageins ? faults - pageins : 0;
}

void vkm_os_sample(vkm_os_t *os, uint64_t now_ns, int smaps) {
  (void)smaps; /* no breakdown on this platform */
  read_vm_info();
  if (!status_done || now_ns - status_at_ns >= STATUS_EVERY_NS) {
    read_task_info();
    status_at_ns = now_ns;
    status_done = 1;
  }
  cur.have_smaps = 0;
  *os = cur;
}

/* ---------------------------------------------------------------------------
 * malloc zones (allocator half of the seam, os_alloc.h)
 * ------------------------------------------------------------------------- */

static int native_state; /* 0 unknown, 1 libsystem_malloc, -1 something else */

static void native_detect(void) {
  native_state = -1;
  void *m = dlsym(RTLD_NEXT, "malloc");
  Dl_info mi;
  if (!m || !dladdr(m, &mi) || !mi.dli_fname) return;
  const char *base = strrchr(mi.dli_fname, '/');
  base = base ? base + 1 : mi.dli_fname;
  if (strcmp(base, "libsystem_malloc.dylib") == 0) native_state = 1;
}

int vkm_os_native_malloc(void) {
  if (!native_state) native_detect();
  return native_state == 1;
}

int vkm_os_native_allocstats(vkm_allocstats_t *a) {
  if (!vkm_os_native_malloc()) return -ENOTSUP;
  /* NULL sums every registered zone (default, nano, scalable, and any a
   * library added). Each zone takes its own lock briefly. */
  malloc_statistics_t st;
  memset(&st, 0, sizeof st);
  malloc_zone_statistics(NULL, &st);
  a->source = "malloc_zones";
  a->held = st.size_allocated;
  a->in_use = st.size_in_use < st.size_allocated ? st.size_in_use : st.size_allocated;
  a->free_held = a->held - a->in_use;
  return 0;
}

/* One file table per process on macOS: the agent shares the program's. */
int vkm_os_private_files_probe(int keep) {
  (void)keep;
  return 0;
}
int vkm_os_private_files(int keep) {
  (void)keep;
  return 0;
}
