/* os_darwin.c - the recorded process's memory, read from outside on macOS.
 *
 * The macOS half of the agent's OS readers (os_linux.c is the other);
 * CMakeLists.txt compiles exactly one of them. The agent is another
 * process, and asks the kernel about the recorded pid through libproc,
 * which any process of the same user may do - never task_for_pid, which
 * needs the debugger entitlement (or root) and would stop at hardened
 * runtimes:
 *   every tick   proc_pid_rusage(RUSAGE_INFO_V2)   phys_footprint: the
 *                                    headline "rss", what Activity Monitor
 *                                    and jetsam count (compressed pages
 *                                    included); the peak is the highest
 *                                    footprint a tick saw (its lifetime
 *                                    maximum needs RUSAGE_INFO_V4)
 *   every second proc_pidinfo(PROC_PIDTASKINFO)    resident and virtual
 *                                    size, threads, faults, pageins
 * There is no smaps on macOS: "smaps" is null, and the allocator section
 * has no heap Rss to compare with (vkm_os_heap_rss is 0: source "none").
 * "swap" stays 0: the compressor's share per process is not told outside.
 * "vms" is the task's virtual size, which on macOS counts the shared
 * cache's reservation too (hundreds of GB on Apple silicon): it is shown,
 * not judged.
 *
 * No allocation: the calls fill our buffers. Agent thread only.
 * Cross-compiled and linked in CI (tests/macos_check.py), never run there.
 */
#include "agent.h"
#include "os_alloc.h"

#include <libproc.h>
#include <string.h>
#include <sys/proc_info.h>
#include <sys/resource.h>

#define STATUS_EVERY_NS 1000000000ull

static vkm_os_t cur;
static uint64_t status_at_ns;
static int status_done;
static int state_pid; /* a forked worker starts over */

static void read_rusage(int pid) {
  struct rusage_info_v2 ri;
  memset(&ri, 0, sizeof ri);
  if (proc_pid_rusage(pid, RUSAGE_INFO_V2, (rusage_info_t *)&ri) != 0) return;
  cur.rss = ri.ri_phys_footprint;
}

static void read_task_info(int pid) {
  struct proc_taskinfo ti;
  int n = proc_pidinfo(pid, PROC_PIDTASKINFO, 0, &ti, (int)sizeof ti);
  if (n != (int)sizeof ti) return;
  cur.vms = ti.pti_virtual_size;
  if (!cur.rss) cur.rss = ti.pti_resident_size; /* no footprint: resident pages instead */
  cur.threads = (uint64_t)ti.pti_threadnum;
  /* Faults that had to read a page in are the major ones. */
  uint64_t faults = (uint64_t)ti.pti_faults, pageins = (uint64_t)ti.pti_pageins;
  cur.major_faults = pageins;
  cur.minor_faults = faults > pageins ? faults - pageins : 0;
}

void vkm_os_sample(vkm_os_t *os, uint64_t now_ns, int smaps) {
  (void)smaps; /* no breakdown on this platform */
  int pid = vkm_target_pid();
  if (pid != state_pid) {
    memset(&cur, 0, sizeof cur);
    status_done = 0;
    state_pid = pid;
  }
  read_rusage(pid);
  if (!status_done || now_ns - status_at_ns >= STATUS_EVERY_NS) {
    read_task_info(pid);
    status_at_ns = now_ns;
    status_done = 1;
  }
  if (cur.rss > cur.peak_rss) cur.peak_rss = cur.rss;
  cur.have_smaps = 0;
  *os = cur;
}

/* No smaps: no heap Rss (allocstats.c then says source "none"). */
uint64_t vkm_os_heap_rss(void) { return 0; }
